// The loader's reading machinery: message text, the Diagnostics collector and the typed
// readers of YAML values. See diagnostics.h.
#include "daemon/config/diagnostics.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>
#include <system_error>
#include <utility>

namespace zb::config_internal {
namespace {

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
std::optional<std::string_view> Nearest(std::string_view word, const Keys& candidates) {
  std::optional<std::string_view> best;
  size_t best_distance = 0;
  for (std::string_view candidate : candidates) {
    size_t distance = EditDistance(ToLower(word), candidate);
    if (!best || distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  if (best && best_distance <= std::max<size_t>(2, word.size() / 3)) return best;
  return std::nullopt;
}

}  // namespace

std::string Quote(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string JoinPath(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  return std::string(parent) + "." + std::string(key);
}

std::string IndexPath(std::string_view parent, size_t index) {
  return std::string(parent) + "[" + std::to_string(index) + "]";
}

std::string JoinList(const Keys& items) {
  std::string out;
  for (std::string_view item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// "did you mean 'x'?" or "expected one of: a, b".
std::string Suggest(std::string_view word, const Keys& candidates) {
  if (auto near = Nearest(word, candidates)) return "did you mean " + Quote(*near) + "?";
  return "expected one of: " + JoinList(candidates);
}

void Diagnostics::Add(const YAML::Mark& mark, std::string_view path, std::string_view message) {
  if (lines_.size() >= kMaxErrors) return;
  std::string line = file_;
  if (!mark.is_null()) {
    line += ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
  }
  line += ": ";
  if (!path.empty()) line += std::string(path) + ": ";
  line += message;
  lines_.push_back(
      {mark.is_null() ? -1 : mark.line, mark.is_null() ? -1 : mark.column, std::move(line)});
}

std::string Diagnostics::Joined() const {
  std::vector<Line> sorted = lines_;
  std::stable_sort(sorted.begin(), sorted.end(), [](const Line& a, const Line& b) {
    return std::pair(a.line, a.column) < std::pair(b.line, b.column);
  });
  std::string out;
  for (const Line& line : sorted) {
    if (!out.empty()) out += "\n";
    out += line.text;
  }
  return out;
}

Fields ReadMap(Diagnostics& diag, const Entry& entry, const Keys& allowed,
               std::vector<std::string>* order) {
  Fields fields;
  if (!entry.value.IsDefined() || entry.value.IsNull()) return fields;
  if (!entry.value.IsMap()) {
    diag.Add(entry.Mark(), entry.path, "expected a mapping of keys to values");
    return fields;
  }
  for (auto it = entry.value.begin(); it != entry.value.end(); ++it) {
    YAML::Node key = it->first;
    if (!key.IsScalar()) {
      diag.Add(key.Mark(), entry.path, "expected a plain key");
      continue;
    }
    const std::string& name = key.Scalar();
    std::string path = JoinPath(entry.path, name);
    if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      diag.Add(key.Mark(), path, "unknown key; " + Suggest(name, allowed));
      continue;
    }
    if (fields.count(name)) {
      diag.Add(
          key.Mark(), path,
          "duplicate key; the first is on line " + std::to_string(fields[name].key_mark.line + 1));
      continue;
    }
    fields.emplace(name, Entry{it->second, path, key.Mark()});
    if (order) order->push_back(name);
  }
  return fields;
}

const Entry* Find(const Fields& fields, std::string_view key) {
  auto it = fields.find(key);
  return it == fields.end() ? nullptr : &it->second;
}

bool ReadString(Diagnostics& diag, const Entry& e, std::string* out) {
  if (!e.value.IsScalar()) {
    diag.Add(e.Mark(), e.path, "expected a string");
    return false;
  }
  *out = e.value.Scalar();
  return true;
}

bool ReadNonEmptyString(Diagnostics& diag, const Entry& e, std::string* out) {
  if (!ReadString(diag, e, out)) return false;
  if (out->empty()) {
    diag.Add(e.Mark(), e.path, "expected a non-empty string");
    return false;
  }
  return true;
}

bool ReadBool(Diagnostics& diag, const Entry& e, bool* out) {
  if (e.value.IsScalar()) {
    std::string v = ToLower(e.value.Scalar());
    if (v == "true") {
      *out = true;
      return true;
    }
    if (v == "false") {
      *out = false;
      return true;
    }
  }
  diag.Add(e.Mark(), e.path, "expected true or false");
  return false;
}

bool ParseInt(std::string_view text, int64_t* out) {
  if (!text.empty() && text[0] == '+') text.remove_prefix(1);
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

bool ReadInt(Diagnostics& diag, const Entry& e, int64_t min, int64_t max, int64_t* out,
             std::string_view why) {
  int64_t v = 0;
  if (e.value.IsScalar() && ParseInt(e.value.Scalar(), &v) && v >= min && v <= max) {
    *out = v;
    return true;
  }
  std::string message =
      "expected an integer from " + std::to_string(min) + " to " + std::to_string(max);
  if (!why.empty()) message += " (" + std::string(why) + ")";
  diag.Add(e.Mark(), e.path, message);
  return false;
}

bool ReadChoice(Diagnostics& diag, const Entry& e, const Keys& choices, size_t* out) {
  if (e.value.IsScalar()) {
    auto it = std::find(choices.begin(), choices.end(), e.value.Scalar());
    if (it != choices.end()) {
      *out = static_cast<size_t>(it - choices.begin());
      return true;
    }
  }
  diag.Add(e.Mark(), e.path, "expected one of: " + JoinList(choices));
  return false;
}

bool ReadStringList(Diagnostics& diag, const Entry& e, std::vector<std::string>* out) {
  if (!e.value.IsSequence()) {
    diag.Add(e.Mark(), e.path, "expected a list of strings");
    return false;
  }
  out->clear();
  bool ok = true;
  for (size_t i = 0; i < e.value.size(); ++i) {
    YAML::Node item = e.value[i];
    if (!item.IsScalar() || item.Scalar().empty()) {
      diag.Add(item.IsNull() ? e.value.Mark() : item.Mark(), IndexPath(e.path, i),
               "expected a non-empty string");
      ok = false;
      continue;
    }
    out->push_back(item.Scalar());
  }
  return ok;
}

}  // namespace zb::config_internal
