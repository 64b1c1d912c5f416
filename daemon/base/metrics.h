// The daemon's metrics: counters, gauges and histograms with labels, rendered in Prometheus'
// text exposition format for /metrics.
//
// A metric is created once (usually when an account starts) and then updated lock-free from
// any thread through the reference the registry hands out; the reference stays valid until
// the series is removed (an account removed by reload) or the registry dies. Rendering takes
// the registry's lock and reads every value atomically, so a scrape never blocks the event
// loop for longer than a map walk.
#ifndef ZB_DAEMON_BASE_METRICS_H_
#define ZB_DAEMON_BASE_METRICS_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "daemon/base/mutex.h"

namespace zb {

// Label name/value pairs, in the order they are to be printed.
using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double d);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// A cumulative histogram with fixed upper bounds (in the metric's unit, e.g. seconds).
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double v);
  const std::vector<double>& upper_bounds() const { return bounds_; }
  // Count of observations <= upper_bounds()[i] (not cumulative; rendering accumulates).
  uint64_t bucket_count(size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // one per bound, plus +Inf
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Returns the series `name{labels}`, creating it (and its family, with `help`) on first use.
  // The same name must always be used with the same kind; a mismatch aborts (a bug).
  Counter& GetCounter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge& GetGauge(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram& GetHistogram(const std::string& name, const std::string& help,
                          const std::vector<double>& upper_bounds, const Labels& labels = {});

  // Removes every series that has label `name` equal to `value` (e.g. account="alice").
  // References to them become invalid.
  void RemoveSeriesWithLabel(const std::string& name, const std::string& value);

  // The Prometheus text format (version 0.0.4), families sorted by name.
  std::string RenderPrometheus() const;

 private:
  enum class Kind { kCounter, kGauge, kHistogram };
  struct Series {
    Labels labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
  };
  struct Family {
    Kind kind;
    std::string help;
    std::map<std::string, Series> series;  // keyed by rendered labels
  };
  Series& GetSeries(const std::string& name, const std::string& help, Kind kind,
                    const Labels& labels) ZB_REQUIRES(mu_);

  mutable Mutex mu_;
  std::map<std::string, Family> families_ ZB_GUARDED_BY(mu_);
};

}  // namespace zb

#endif  // ZB_DAEMON_BASE_METRICS_H_
