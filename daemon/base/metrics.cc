#include "daemon/base/metrics.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace zb {
namespace {

void AddDouble(std::atomic<double>& target, double d) {
  double old = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(old, old + d, std::memory_order_relaxed)) {
  }
}

// Label values escape backslash, double quote and newline (exposition format 0.0.4).
std::string RenderLabels(const Labels& labels, const char* extra_name = nullptr,
                         const std::string& extra_value = {}) {
  if (labels.empty() && extra_name == nullptr) return "";
  std::string out = "{";
  bool first = true;
  auto add = [&](const std::string& name, const std::string& value) {
    if (!first) out += ',';
    first = false;
    out += name;
    out += "=\"";
    for (char c : value) {
      if (c == '\\') {
        out += "\\\\";
      } else if (c == '"') {
        out += "\\\"";
      } else if (c == '\n') {
        out += "\\n";
      } else {
        out += c;
      }
    }
    out += '"';
  };
  for (const auto& [name, value] : labels) add(name, value);
  if (extra_name != nullptr) add(extra_name, extra_value);
  out += '}';
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  // 15 significant digits: every digit a double holds exactly, so a Unix timestamp keeps its
  // milliseconds (9 digits rounded it to 10 s) and sums show no binary noise.
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  return buf;
}

std::string EscapeHelp(const std::string& help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// Appends one sample line, "<name><suffix><labels> <value>\n", in place: /metrics renders
// every series on each scrape, so no temporary string per piece.
void AppendSample(std::string& out, std::string_view name, std::string_view suffix,
                  std::string_view labels, std::string_view value) {
  out.append(name).append(suffix).append(labels).append(" ").append(value).append("\n");
}

}  // namespace

void Gauge::Add(double d) { AddDouble(value_, d); }

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  AddDouble(sum_, v);
}

MetricsRegistry::Series& MetricsRegistry::GetSeries(const std::string& name,
                                                    const std::string& help, Kind kind,
                                                    const Labels& labels) {
  auto [fit, created] = families_.try_emplace(name);
  Family& family = fit->second;
  if (created) {
    family.kind = kind;
    family.help = help;
  } else if (family.kind != kind) {
    std::fprintf(stderr, "metrics: %s registered with two kinds\n", name.c_str());
    std::abort();
  }
  auto [sit, _] = family.series.try_emplace(RenderLabels(labels));
  sit->second.labels = labels;
  return sit->second;
}

Counter& MetricsRegistry::GetCounter(const std::string& name, const std::string& help,
                                     const Labels& labels) {
  MutexLock lock(&mu_);
  Series& series = GetSeries(name, help, Kind::kCounter, labels);
  if (!series.counter) series.counter = std::make_unique<Counter>();
  return *series.counter;
}

Gauge& MetricsRegistry::GetGauge(const std::string& name, const std::string& help,
                                 const Labels& labels) {
  MutexLock lock(&mu_);
  Series& series = GetSeries(name, help, Kind::kGauge, labels);
  if (!series.gauge) series.gauge = std::make_unique<Gauge>();
  return *series.gauge;
}

Histogram& MetricsRegistry::GetHistogram(const std::string& name, const std::string& help,
                                         const std::vector<double>& upper_bounds,
                                         const Labels& labels) {
  MutexLock lock(&mu_);
  Series& series = GetSeries(name, help, Kind::kHistogram, labels);
  if (!series.histogram) series.histogram = std::make_unique<Histogram>(upper_bounds);
  return *series.histogram;
}

void MetricsRegistry::RemoveSeriesWithLabel(const std::string& name, const std::string& value) {
  MutexLock lock(&mu_);
  for (auto& [_, family] : families_) {
    for (auto it = family.series.begin(); it != family.series.end();) {
      bool match = false;
      for (const auto& [n, v] : it->second.labels) match |= (n == name && v == value);
      it = match ? family.series.erase(it) : std::next(it);
    }
  }
}

std::string MetricsRegistry::RenderPrometheus() const {
  MutexLock lock(&mu_);
  std::string out;
  for (const auto& [name, family] : families_) {
    if (family.series.empty()) continue;
    const char* type = family.kind == Kind::kCounter ? "counter"
                       : family.kind == Kind::kGauge ? "gauge"
                                                     : "histogram";
    out += "# HELP " + name + " " + EscapeHelp(family.help) + "\n";
    out += "# TYPE " + name + " " + type + "\n";
    for (const auto& [rendered, series] : family.series) {
      switch (family.kind) {
        case Kind::kCounter:
          AppendSample(out, name, "", rendered, std::to_string(series.counter->value()));
          break;
        case Kind::kGauge:
          AppendSample(out, name, "", rendered, FormatValue(series.gauge->value()));
          break;
        case Kind::kHistogram: {
          const Histogram& h = *series.histogram;
          uint64_t cumulative = 0;
          for (size_t i = 0; i < h.upper_bounds().size(); ++i) {
            cumulative += h.bucket_count(i);
            AppendSample(out, name, "_bucket",
                         RenderLabels(series.labels, "le", FormatValue(h.upper_bounds()[i])),
                         std::to_string(cumulative));
          }
          cumulative += h.bucket_count(h.upper_bounds().size());
          AppendSample(out, name, "_bucket", RenderLabels(series.labels, "le", "+Inf"),
                       std::to_string(cumulative));
          AppendSample(out, name, "_sum", rendered, FormatValue(h.sum()));
          AppendSample(out, name, "_count", rendered, std::to_string(h.count()));
          break;
        }
      }
    }
  }
  return out;
}

}  // namespace zb
