// LoadConfig: YAML -> Config, collecting every problem with its file position instead of
// stopping at the first one, so that one --check-config run shows an operator all of them.
// The only translation unit that includes yaml-cpp: its exceptions stop here.
#include "daemon/config/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

namespace zb {

std::ostream& operator<<(std::ostream& os, const Secret&) { return os << kRedacted; }

namespace {

constexpr size_t kMaxErrors = 50;
constexpr size_t kMaxCredentialFileBytes = 64 * 1024;

using Keys = std::vector<std::string_view>;

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

// "did you mean 'x'?" or "expected one of: a, b".
std::string Suggest(std::string_view word, const Keys& candidates) {
  if (auto near = Nearest(word, candidates)) return "did you mean " + Quote(*near) + "?";
  return "expected one of: " + JoinList(candidates);
}

// Collects "<file>:<line>:<column>: <path>: <message>" lines.
class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}

  void Add(const YAML::Mark& mark, std::string_view path, std::string_view message) {
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

  bool empty() const { return lines_.empty(); }
  size_t count() const { return lines_.size(); }

  // The problems in the order of the file (the loader visits keys in its own order).
  std::string Joined() const {
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

 private:
  struct Line {
    int line;
    int column;
    std::string text;
  };
  std::string file_;
  std::vector<Line> lines_;
};

// One value in the document with what is needed to report on it.
struct Entry {
  YAML::Node value;
  std::string path;
  YAML::Mark key_mark;  // where a null value is reported (a null node's own mark is misleading)

  YAML::Mark Mark() const {
    if (!value.IsDefined() || value.IsNull()) return key_mark;
    return value.Mark();
  }
};

using Fields = std::map<std::string, Entry, std::less<>>;

// The entries of the mapping `entry`, refusing unknown keys (when `allowed` is not empty) and
// duplicates. A null value counts as an empty mapping. Order of the document is kept in
// `order` when asked for.
Fields ReadMap(Diagnostics& diag, const Entry& entry, const Keys& allowed,
               std::vector<std::string>* order = nullptr) {
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
             std::string_view why = {}) {
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

// ${NAME} -> the variable's value; "$${" -> a literal "${". Any other "$" is kept.
bool SubstituteEnv(std::string_view in, const EnvLookup& env, std::string* out,
                   std::string* error) {
  out->clear();
  size_t i = 0;
  while (i < in.size()) {
    if (in.compare(i, 3, "$${") == 0) {
      *out += "${";
      i += 3;
      continue;
    }
    if (in.compare(i, 2, "${") != 0) {
      *out += in[i++];
      continue;
    }
    size_t close = in.find('}', i + 2);
    if (close == std::string_view::npos) {
      *error = "unterminated ${ in the value; expected ${NAME} (write $${ for a literal ${)";
      return false;
    }
    std::string name(in.substr(i + 2, close - i - 2));
    static const std::regex kName("[A-Za-z_][A-Za-z0-9_]*");
    if (!std::regex_match(name, kName)) {
      // Not quoted: the text may be part of a secret.
      *error =
          "a ${...} with an invalid variable name; expected ${NAME} with NAME made of letters, "
          "digits and _ (write $${ for a literal ${)";
      return false;
    }
    std::optional<std::string> value = env(name);
    if (!value) {
      *error = "environment variable " + name + " is not set";
      return false;
    }
    *out += *value;
    i = close + 1;
  }
  return true;
}

// Reads a credential or small file without ever putting its content in an error.
bool ReadSmallFile(const std::string& path, std::string* out, std::string* error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = "cannot read " + Quote(path) + ": " + std::strerror(errno);
    return false;
  }
  out->clear();
  char buffer[4096];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      *error = "cannot read " + Quote(path) + ": " + std::strerror(errno);
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    out->append(buffer, static_cast<size_t>(n));
    if (out->size() > kMaxCredentialFileBytes) {
      *error = "cannot read " + Quote(path) + ": larger than 64 KiB; expected a small file";
      ::close(fd);
      return false;
    }
  }
  ::close(fd);
  return true;
}

// A file that must exist and be readable (certificates, CA bundles).
bool CheckReadable(const std::string& path, std::string* error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = "cannot read " + Quote(path) + ": " + std::strerror(errno);
    return false;
  }
  char byte;
  ssize_t n = ::read(fd, &byte, 1);
  int read_errno = errno;
  ::close(fd);
  if (n < 0) {
    *error = "cannot read " + Quote(path) + ": " + std::strerror(read_errno);
    return false;
  }
  return true;
}

std::string ExpandPath(std::string_view path, const std::string& base_dir, const EnvLookup& env) {
  std::string p(path);
  if (p.rfind("~/", 0) == 0) {
    if (auto home = env("HOME")) p = *home + p.substr(1);
  }
  std::filesystem::path fs_path(p);
  if (fs_path.is_relative()) fs_path = std::filesystem::path(base_dir) / fs_path;
  return fs_path.lexically_normal().string();
}

// An API key: trailing whitespace (the newline of a file) removed; one line of printable
// characters. The error never includes the key.
bool CleanApiKey(std::string raw, Secret* out, std::string* error) {
  while (!raw.empty() && std::isspace(static_cast<unsigned char>(raw.back()))) raw.pop_back();
  size_t start = 0;
  while (start < raw.size() && std::isspace(static_cast<unsigned char>(raw[start]))) ++start;
  raw.erase(0, start);
  if (raw.empty()) {
    *error = "the API key is empty";
    return false;
  }
  for (char c : raw) {
    if (!std::isgraph(static_cast<unsigned char>(c))) {
      *error = "the API key contains whitespace or control characters; expected one line";
      return false;
    }
  }
  *out = Secret(std::move(raw));
  return true;
}

// ---- zuliprc ----

struct Zuliprc {
  std::optional<std::string> key, email, site, client_cert, client_cert_key, cert_bundle;
  std::optional<bool> insecure;
};

const Keys kZuliprcKeys = {"key",         "email",           "site",    "client_cert",
                           "cert_bundle", "client_cert_key", "insecure"};

// Parses the INI format of Zulip's Python bindings (ConfigParser): "[api]" with
// "name = value" or "name: value" lines; "#" and ";" start comments. Other sections are
// ignored. Errors are "line N: ..." and never quote a line (it may hold the key).
bool ParseZuliprc(std::string_view text, Zuliprc* out, std::string* error) {
  std::string section;
  bool saw_api = false;
  std::set<std::string> seen;
  size_t line_number = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view raw = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    std::string where = "line " + std::to_string(line_number) + ": ";
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    std::string_view line = raw;
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.front()))) {
      line.remove_prefix(1);
    }
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) {
      line.remove_suffix(1);
    }
    if (line.empty() || line[0] == '#' || line[0] == ';') {
      if (end == text.size()) break;
      continue;
    }
    if (line.size() != raw.size() && std::isspace(static_cast<unsigned char>(raw[0])) &&
        section == "api") {
      *error = where + "indented continuation lines are not supported; expected name = value";
      return false;
    }
    if (line.front() == '[') {
      if (line.back() != ']') {
        *error = where + "unterminated section header; expected [api]";
        return false;
      }
      section = std::string(line.substr(1, line.size() - 2));
      if (section == "api") {
        if (saw_api) {
          *error = where + "duplicate section [api]";
          return false;
        }
        saw_api = true;
      }
      if (end == text.size()) break;
      continue;
    }
    size_t sep = line.find_first_of("=:");
    if (sep == std::string_view::npos) {
      *error = where + "expected name = value";
      return false;
    }
    if (section.empty()) {
      *error = where + "a setting before any section; expected it under [api]";
      return false;
    }
    if (section != "api") {
      if (end == text.size()) break;
      continue;
    }
    std::string name(line.substr(0, sep));
    while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
    name = ToLower(name);
    std::string_view value = line.substr(sep + 1);
    while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front()))) {
      value.remove_prefix(1);
    }
    if (std::find(kZuliprcKeys.begin(), kZuliprcKeys.end(), name) == kZuliprcKeys.end()) {
      *error = where + "unknown key " + Quote(name) + " in [api]; " + Suggest(name, kZuliprcKeys);
      return false;
    }
    if (!seen.insert(name).second) {
      *error = where + "duplicate key " + Quote(name) + " in [api]";
      return false;
    }
    std::string v(value);
    if (name == "key") {
      out->key = v;
    } else if (name == "email") {
      out->email = v;
    } else if (name == "site") {
      out->site = v;
    } else if (name == "client_cert") {
      out->client_cert = v;
    } else if (name == "client_cert_key") {
      out->client_cert_key = v;
    } else if (name == "cert_bundle") {
      out->cert_bundle = v;
    } else if (name == "insecure") {
      std::string lower = ToLower(v);
      if (lower != "true" && lower != "false") {
        *error = where + "insecure must be true or false";
        return false;
      }
      out->insecure = lower == "true";
    }
    if (end == text.size()) break;
  }
  if (!saw_api) {
    *error = "no [api] section; expected [api] with key, email and site";
    return false;
  }
  for (auto [field, name] : {std::pair{&out->key, "key"}, std::pair{&out->email, "email"},
                             std::pair{&out->site, "site"}}) {
    if (!*field || (*field)->empty()) {
      *error = std::string("[api] has no ") + name + "; expected key, email and site";
      return false;
    }
  }
  return true;
}

// ---- small validators ----

bool ValidAccountName(std::string_view name) {
  static const std::regex kAccountName("[A-Za-z0-9._-]{1,64}");
  return std::regex_match(name.begin(), name.end(), kAccountName) && name != "." && name != "..";
}

// "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)" -> seconds since the epoch.
bool ParseRfc3339(const std::string& text, int64_t* out) {
  static const std::regex kRfc3339(
      R"((\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2})))");
  std::smatch m;
  if (!std::regex_match(text, m, kRfc3339)) return false;
  auto num = [&](int i) { return std::stoi(m[i].str()); };
  std::tm tm{};
  tm.tm_year = num(1) - 1900;
  tm.tm_mon = num(2) - 1;
  tm.tm_mday = num(3);
  tm.tm_hour = num(4);
  tm.tm_min = num(5);
  tm.tm_sec = num(6);
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
      tm.tm_min > 59 || tm.tm_sec > 60) {
    return false;
  }
  std::tm copy = tm;
  time_t t = timegm(&copy);
  // timegm normalises 31 February into March: a changed day means an invalid date.
  if (copy.tm_mday != tm.tm_mday && tm.tm_sec != 60) return false;
  int64_t seconds = static_cast<int64_t>(t);
  if (m[9].matched) {
    int64_t offset = num(10) * 3600 + num(11) * 60;
    if (num(10) > 23 || num(11) > 59) return false;
    seconds += m[9].str() == "+" ? -offset : offset;
  }
  *out = seconds;
  return true;
}

// Checks a topic template's placeholders; OK text or the reason.
bool CheckPlaceholders(std::string_view tmpl, const Keys& allowed, std::string* error) {
  size_t i = 0;
  while ((i = tmpl.find_first_of("{}", i)) != std::string_view::npos) {
    if (tmpl[i] == '}') {
      *error = "a '}' without '{'; expected placeholders " + JoinList(allowed);
      return false;
    }
    size_t close = tmpl.find('}', i);
    if (close == std::string_view::npos) {
      *error = "an unterminated '{'; expected placeholders " + JoinList(allowed);
      return false;
    }
    std::string_view placeholder = tmpl.substr(i, close - i + 1);
    if (std::find(allowed.begin(), allowed.end(), placeholder) == allowed.end()) {
      *error =
          "unknown placeholder " + std::string(placeholder) + "; expected " + JoinList(allowed);
      return false;
    }
    i = close + 1;
  }
  return true;
}

std::string Expand(std::string_view tmpl, std::string_view type, std::string_view account) {
  std::string out;
  size_t i = 0;
  while (i < tmpl.size()) {
    if (tmpl.compare(i, 6, "{type}") == 0) {
      out += type;
      i += 6;
    } else if (tmpl.compare(i, 9, "{account}") == 0) {
      out += account;
      i += 9;
    } else {
      out += tmpl[i++];
    }
  }
  return out;
}

const Keys kLogLevels = {"trace", "debug", "info", "warn", "error"};
const Keys kLogFormats = {"logfmt", "json"};
const Keys kKeyChoices = {"account", "conversation"};
const Keys kNarrowOperators = {"channel", "stream", "topic", "sender", "is"};
const Keys kNarrowIsOperands = {"dm",        "private", "starred", "unread",
                                "mentioned", "alerted", "resolved"};
const Keys kClientCapabilities = {"notification_settings_null",
                                  "bulk_message_deletion",
                                  "user_avatar_url_field_optional",
                                  "stream_typing_notifications",
                                  "user_settings_object",
                                  "linkifier_url_template",
                                  "user_list_incomplete",
                                  "include_deactivated_groups",
                                  "archived_channels",
                                  "empty_topic_name"};

// Our defaults: every capability that makes events more complete or modern is on; the two
// that leave data out of events (avatar URLs, the full user list) are off.
std::map<std::string, bool, std::less<>> DefaultClientCapabilities() {
  std::map<std::string, bool, std::less<>> caps;
  for (std::string_view name : kClientCapabilities) caps[std::string(name)] = true;
  caps["user_avatar_url_field_optional"] = false;
  caps["user_list_incomplete"] = false;
  return caps;
}

Keys EventTypeKeys() {
  Keys keys(KnownEventTypes().begin(), KnownEventTypes().end());
  return keys;
}

// ---- the loader ----

class Loader {
 public:
  Loader(std::string path, const EnvLookup& env) : path_(std::move(path)), diag_(path_), env_(env) {
    // Absolute, so that every path in the Config is too, whatever the daemon's cwd later.
    std::error_code ec;
    std::filesystem::path dir = std::filesystem::path(path_).parent_path();
    if (dir.empty()) dir = ".";
    base_dir_ = std::filesystem::absolute(dir, ec).lexically_normal().string();
    if (ec) base_dir_ = dir.string();
  }

  StatusOr<Config> Load(const std::string& text) {
    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::ParserException& e) {
      diag_.Add(e.mark, "", "YAML syntax error: " + e.msg);
      return Status::InvalidArgument(diag_.Joined());
    }
    config_.path = path_;
    try {
      LoadRoot(root);
    } catch (const YAML::Exception& e) {
      diag_.Add(e.mark, "", std::string("unexpected YAML structure: ") + e.msg);
    }
    if (!diag_.empty()) return Status::InvalidArgument(diag_.Joined());
    return std::move(config_);
  }

 private:
  void LoadRoot(const YAML::Node& root) {
    Entry top{root, "", YAML::Mark()};
    if (!root.IsDefined() || root.IsNull()) {
      diag_.Add(YAML::Mark::null_mark(), "",
                "the file is empty; expected a mapping with kafka and accounts");
      return;
    }
    Fields fields = ReadMap(
        diag_, top,
        {"kafka", "state_dir", "http", "log", "metrics", "retry", "dead_letter", "accounts"});
    if (!root.IsMap()) return;

    // Accounts first: the topic checks expand templates with every account name.
    if (const Entry* e = Find(fields, "accounts")) {
      LoadAccounts(*e);
    } else {
      diag_.Add(root.Mark(), "accounts", "missing; expected a list of at least one account");
    }
    if (const Entry* e = Find(fields, "kafka")) {
      LoadKafka(*e);
    } else {
      diag_.Add(root.Mark(), "kafka", "missing; expected a mapping with at least brokers");
    }
    if (const Entry* e = Find(fields, "state_dir")) {
      std::string dir;
      if (ReadNonEmptyString(diag_, *e, &dir)) {
        config_.state_dir = ExpandPath(dir, base_dir_, env_);
        CheckStateDir(*e);
      }
    } else {
      CheckStateDir(Entry{YAML::Node(), "state_dir", root.Mark()});
    }
    if (const Entry* e = Find(fields, "http")) LoadHttp(*e);
    if (const Entry* e = Find(fields, "log")) LoadLog(*e);
    if (const Entry* e = Find(fields, "metrics")) {
      Fields m = ReadMap(diag_, *e, {"per_account_type"});
      if (const Entry* f = Find(m, "per_account_type")) {
        ReadBool(diag_, *f, &config_.metrics.per_account_type);
      }
    }
    if (const Entry* e = Find(fields, "retry")) LoadRetry(*e);
    if (const Entry* e = Find(fields, "dead_letter")) {
      Fields m = ReadMap(diag_, *e, {"max_bytes"});
      if (const Entry* f = Find(m, "max_bytes")) {
        ReadInt(diag_, *f, int64_t{1} << 20, int64_t{1} << 50, &config_.dead_letter.max_bytes,
                "at least 1 MiB");
      }
    }
  }

  void CheckStateDir(const Entry& e) {
    const std::string& dir = config_.state_dir;
    std::error_code ec;
    if (!std::filesystem::exists(dir, ec)) {
      // Create each missing component with mode 0700: checkpoints are nobody else's business.
      std::filesystem::path partial;
      for (const auto& part : std::filesystem::path(dir)) {
        partial /= part;
        if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST) {
          diag_.Add(e.Mark(), e.path,
                    "cannot create " + Quote(partial.string()) + ": " + std::strerror(errno) +
                        "; expected a directory the daemon can create and write");
          return;
        }
      }
    }
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      diag_.Add(e.Mark(), e.path, Quote(dir) + " is not a directory; expected a directory");
      return;
    }
    std::string probe = dir + "/.zulip-bridge-probe-" + std::to_string(::getpid());
    int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      diag_.Add(e.Mark(), e.path,
                "cannot write in " + Quote(dir) + ": " + std::strerror(errno) +
                    "; expected a directory the daemon can write");
      return;
    }
    ::close(fd);
    ::unlink(probe.c_str());
  }

  void LoadKafka(const Entry& entry) {
    KafkaConfig& k = config_.kafka;
    Fields f = ReadMap(diag_, entry,
                       {"brokers", "topic_template", "topics", "control_topic", "key",
                        "flush_timeout_secs", "properties"});
    if (const Entry* e = Find(f, "brokers")) {
      LoadBrokers(*e);
    } else if (entry.value.IsMap()) {
      diag_.Add(entry.Mark(), "kafka.brokers",
                "missing; expected a list of host:port bootstrap servers");
    }
    if (const Entry* e = Find(f, "topic_template")) {
      if (ReadNonEmptyString(diag_, *e, &k.topic_template)) {
        CheckTemplate(*e, k.topic_template, KnownEventTypes());
      }
    }
    if (const Entry* e = Find(f, "topics")) {
      std::vector<std::string> order;
      Fields topics = ReadMap(diag_, *e, {}, &order);
      for (const std::string& type : order) {
        const Entry& t = topics.at(type);
        if (!CheckEventType(t, type, /*published_only=*/true)) continue;
        std::string tmpl;
        if (!ReadNonEmptyString(diag_, t, &tmpl)) continue;
        std::vector<std::string_view> one = {type};
        if (CheckTemplate(t, tmpl, one)) k.topics[type] = tmpl;
      }
    }
    if (const Entry* e = Find(f, "control_topic")) {
      if (ReadNonEmptyString(diag_, *e, &k.control_topic)) {
        Status s = CheckTopicName(k.control_topic);
        if (!s.ok()) diag_.Add(e->Mark(), e->path, s.message());
      }
    }
    if (const Entry* e = Find(f, "key")) LoadKeys(*e);
    if (const Entry* e = Find(f, "flush_timeout_secs")) {
      ReadInt(diag_, *e, 1, 3600, &k.flush_timeout_secs);
    }
    if (const Entry* e = Find(f, "properties")) LoadProperties(*e);
  }

  void LoadBrokers(const Entry& e) {
    std::vector<std::string> brokers;
    if (e.value.IsScalar()) {
      std::stringstream ss(e.value.Scalar());
      std::string item;
      while (std::getline(ss, item, ',')) brokers.push_back(item);
    } else if (!ReadStringList(diag_, e, &brokers)) {
      return;
    }
    if (brokers.empty()) {
      diag_.Add(e.Mark(), e.path, "empty; expected at least one host:port bootstrap server");
      return;
    }
    for (const std::string& b : brokers) {
      if (b.empty() || std::any_of(b.begin(), b.end(), [](char c) {
            return std::isspace(static_cast<unsigned char>(c));
          })) {
        diag_.Add(e.Mark(), e.path,
                  "invalid broker " + Quote(b) + "; expected host:port without spaces");
        return;
      }
    }
    config_.kafka.brokers = std::move(brokers);
  }

  // Refuses names that are not event types Zulip documents (typos would silently match
  // nothing). With `published_only`, also refuses heartbeat, which is never published.
  bool CheckEventType(const Entry& e, std::string_view type, bool published_only) {
    const auto& known = KnownEventTypes();
    if (std::find(known.begin(), known.end(), type) == known.end()) {
      diag_.Add(e.key_mark, e.path, "unknown event type; " + Suggest(type, EventTypeKeys()));
      return false;
    }
    if (published_only && type == "heartbeat") {
      diag_.Add(e.key_mark, e.path, "heartbeats are never published; remove this entry");
      return false;
    }
    return true;
  }

  // Expands `tmpl` with each of `types` and each account name; reports the first bad result.
  bool CheckTemplate(const Entry& e, const std::string& tmpl,
                     const std::vector<std::string_view>& types) {
    std::string error;
    if (!CheckPlaceholders(tmpl, {"{type}", "{account}"}, &error)) {
      diag_.Add(e.Mark(), e.path, error);
      return false;
    }
    std::vector<std::string> accounts;
    for (const AccountConfig& a : config_.accounts) accounts.push_back(a.name);
    if (accounts.empty()) accounts.push_back("account");
    for (std::string_view type : types) {
      if (type == "heartbeat") continue;
      for (const std::string& account : accounts) {
        std::string topic = Expand(tmpl, type, account);
        Status s = CheckTopicName(topic);
        if (!s.ok()) {
          diag_.Add(e.Mark(), e.path,
                    "yields " + Quote(topic) + " for type " + std::string(type) + " and account " +
                        account + ", " + s.message());
          return false;
        }
      }
    }
    return true;
  }

  void LoadKeys(const Entry& entry) {
    std::vector<std::string> order;
    Fields keys = ReadMap(diag_, entry, {}, &order);
    for (const std::string& type : order) {
      const Entry& e = keys.at(type);
      if (type != "default" && !CheckEventType(e, type, /*published_only=*/true)) continue;
      size_t choice = 0;
      if (!ReadChoice(diag_, e, kKeyChoices, &choice)) continue;
      KeyChoice key = choice == 0 ? KeyChoice::kAccount : KeyChoice::kConversation;
      if (key == KeyChoice::kConversation && type != "message") {
        diag_.Add(e.Mark(), e.path,
                  "conversation keys exist only for message events; expected account");
        continue;
      }
      if (type == "default") {
        config_.kafka.default_key = key;
      } else {
        config_.kafka.keys[type] = key;
      }
    }
  }

  void LoadProperties(const Entry& entry) {
    std::vector<std::string> order;
    Fields props = ReadMap(diag_, entry, {}, &order);
    for (const std::string& name : order) {
      const Entry& e = props.at(name);
      if (!e.value.IsScalar()) {
        diag_.Add(e.Mark(), e.path, "expected a scalar value (librdkafka takes strings)");
        continue;
      }
      std::string value, error;
      if (!SubstituteEnv(e.value.Scalar(), env_, &value, &error)) {
        diag_.Add(e.Mark(), e.path, error);
        continue;
      }
      std::string lower = ToLower(value);
      if (name == "bootstrap.servers" || name == "metadata.broker.list") {
        diag_.Add(e.key_mark, e.path, "set the brokers in kafka.brokers instead");
        continue;
      }
      if ((name == "acks" || name == "request.required.acks") && lower != "all" && lower != "-1") {
        diag_.Add(e.Mark(), e.path,
                  name + "=" + value +
                      " would let a broker failure lose acknowledged events, breaking "
                      "at-least-once delivery; expected all (or remove it)");
        continue;
      }
      if (name == "enable.idempotence" && lower != "true") {
        diag_.Add(e.Mark(), e.path,
                  "enable.idempotence=" + value +
                      " would allow duplicates and reordering within a partition on retry; "
                      "expected true (or remove it)");
        continue;
      }
      config_.kafka.properties[name] = value;
    }
  }

  void LoadHttp(const Entry& entry) {
    Fields f = ReadMap(diag_, entry, {"listen"});
    const Entry* e = Find(f, "listen");
    if (!e) return;
    std::string listen;
    if (!ReadNonEmptyString(diag_, *e, &listen)) return;
    static const std::regex kListen(R"((\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5}))");
    std::smatch m;
    int64_t port = -1;
    if (!std::regex_match(listen, m, kListen) || !ParseInt(m[2].str(), &port) || port > 65535) {
      diag_.Add(e->Mark(), e->path,
                "invalid address " + Quote(listen) +
                    "; expected host:port, e.g. 127.0.0.1:9187 or [::1]:9187");
      return;
    }
    std::string host = m[1].str();
    if (host.front() == '[') host = host.substr(1, host.size() - 2);
    config_.http = HttpConfig{listen, host, static_cast<uint16_t>(port)};
  }

  void LoadLog(const Entry& entry) {
    Fields f = ReadMap(diag_, entry, {"level", "format"});
    size_t choice = 0;
    if (const Entry* e = Find(f, "level")) {
      if (ReadChoice(diag_, *e, kLogLevels, &choice)) {
        config_.log.level = static_cast<LogLevel>(choice);
      }
    }
    if (const Entry* e = Find(f, "format")) {
      if (ReadChoice(diag_, *e, kLogFormats, &choice)) {
        config_.log.format = static_cast<LogFormat>(choice);
      }
    }
  }

  void LoadRetry(const Entry& entry) {
    Fields f = ReadMap(diag_, entry, {"initial_backoff_ms", "max_backoff_ms"});
    RetryConfig& r = config_.retry;
    bool initial_ok = true;
    if (const Entry* e = Find(f, "initial_backoff_ms")) {
      initial_ok = ReadInt(diag_, *e, 1, 3600000, &r.initial_backoff_ms);
    }
    if (const Entry* e = Find(f, "max_backoff_ms")) {
      if (ReadInt(diag_, *e, 1, 86400000, &r.max_backoff_ms) && initial_ok &&
          r.max_backoff_ms < r.initial_backoff_ms) {
        diag_.Add(e->Mark(), e->path,
                  "smaller than retry.initial_backoff_ms (" + std::to_string(r.initial_backoff_ms) +
                      "); expected at least that");
      }
    } else if (initial_ok && r.max_backoff_ms < r.initial_backoff_ms) {
      r.max_backoff_ms = r.initial_backoff_ms;
    }
  }

  void LoadAccounts(const Entry& entry) {
    if (!entry.value.IsSequence() || entry.value.size() == 0) {
      diag_.Add(entry.Mark(), entry.path, "expected a list of at least one account");
      return;
    }
    std::map<std::string, size_t> seen;  // lower-cased name -> index
    for (size_t i = 0; i < entry.value.size(); ++i) {
      YAML::Node node = entry.value[i];
      Entry account_entry{node, IndexPath("accounts", i), node.Mark()};
      if (!node.IsMap()) {
        diag_.Add(node.IsNull() ? entry.value.Mark() : node.Mark(), account_entry.path,
                  "expected a mapping with name and credentials");
        continue;
      }
      AccountConfig account;
      if (LoadAccount(account_entry, &account)) {
        auto [it, inserted] = seen.emplace(ToLower(account.name), i);
        if (!inserted) {
          Fields f = ReadMapQuiet(node, account_entry.path);
          const Entry& name = f.at("name");
          diag_.Add(name.Mark(), name.path,
                    "duplicate account name " + Quote(account.name) + " (also accounts[" +
                        std::to_string(it->second) +
                        "]); expected names unique regardless of case");
          continue;
        }
        config_.accounts.push_back(std::move(account));
      }
    }
  }

  // The fields of a mapping already checked (no diagnostics).
  Fields ReadMapQuiet(const YAML::Node& node, const std::string& path) {
    Diagnostics ignored(path_);
    return ReadMap(ignored, Entry{node, path, node.Mark()}, {});
  }

  bool LoadAccount(const Entry& entry, AccountConfig* a) {
    size_t errors_before = diag_.count();
    const std::string& p = entry.path;
    Fields f = ReadMap(diag_, entry,
                       {"name", "zuliprc", "site", "email", "api_key", "api_key_file",
                        "systemd_credential", "tls", "event_types", "fetch_event_types", "narrow",
                        "all_public_streams", "apply_markdown", "client_gravatar", "slim_presence",
                        "client_capabilities", "queue_lifespan_secs", "backfill_from"});
    if (const Entry* e = Find(f, "name")) {
      if (ReadNonEmptyString(diag_, *e, &a->name) && !ValidAccountName(a->name)) {
        diag_.Add(e->Mark(), e->path,
                  "invalid account name " + Quote(a->name) +
                      "; expected 1 to 64 characters of A-Z a-z 0-9 . _ - (not . or ..), "
                      "since it names files and Kafka keys");
      }
    } else {
      diag_.Add(entry.Mark(), JoinPath(p, "name"), "missing; expected the account's name");
    }
    LoadCredentials(entry, f, a);

    if (const Entry* e = Find(f, "event_types")) {
      std::vector<std::string> types;
      if (ReadStringList(diag_, *e, &types)) {
        for (size_t i = 0; i < types.size(); ++i) {
          const auto& known = KnownEventTypes();
          if (std::find(known.begin(), known.end(), types[i]) == known.end()) {
            diag_.Add(e->value[i].Mark(), IndexPath(e->path, i),
                      "unknown event type " + Quote(types[i]) + "; " +
                          Suggest(types[i], EventTypeKeys()));
          }
        }
        a->event_types = std::move(types);
      }
    }
    if (const Entry* e = Find(f, "fetch_event_types")) {
      ReadStringList(diag_, *e, &a->fetch_event_types);
    }
    if (const Entry* e = Find(f, "narrow")) LoadNarrow(*e, a);
    for (auto [key, field] : {std::pair{"all_public_streams", &a->all_public_streams},
                              std::pair{"apply_markdown", &a->apply_markdown},
                              std::pair{"client_gravatar", &a->client_gravatar},
                              std::pair{"slim_presence", &a->slim_presence}}) {
      if (const Entry* e = Find(f, key)) ReadBool(diag_, *e, field);
    }
    a->client_capabilities = DefaultClientCapabilities();
    if (const Entry* e = Find(f, "client_capabilities")) {
      Fields caps = ReadMap(diag_, *e, kClientCapabilities);
      for (auto& [name, cap] : caps) {
        bool value = false;
        if (ReadBool(diag_, cap, &value)) a->client_capabilities[name] = value;
      }
    }
    if (const Entry* e = Find(f, "queue_lifespan_secs")) {
      ReadInt(diag_, *e, 600, 604800, &a->queue_lifespan_secs,
              "Zulip's default is 600 and it caps lifespans at 7 days");
    }
    if (const Entry* e = Find(f, "backfill_from")) LoadBackfillFrom(*e, a);
    a->backfill_from.text =
        a->backfill_from.kind == BackfillFrom::Kind::kNone ? "none" : a->backfill_from.text;
    return diag_.count() == errors_before;
  }

  void LoadNarrow(const Entry& e, AccountConfig* a) {
    static const char kExpected[] =
        "expected a list of [operator, operand] pairs, e.g. [[channel, general], [is, dm]]";
    if (!e.value.IsSequence()) {
      diag_.Add(e.Mark(), e.path, kExpected);
      return;
    }
    for (size_t i = 0; i < e.value.size(); ++i) {
      YAML::Node pair = e.value[i];
      std::string path = IndexPath(e.path, i);
      YAML::Mark mark = pair.IsNull() ? e.value.Mark() : pair.Mark();
      if (!pair.IsSequence() || pair.size() != 2 || !pair[0].IsScalar() || !pair[1].IsScalar()) {
        diag_.Add(mark, path, std::string("not an [operator, operand] pair; ") + kExpected);
        continue;
      }
      std::string op = pair[0].Scalar();
      std::string operand = pair[1].Scalar();
      if (std::find(kNarrowOperators.begin(), kNarrowOperators.end(), op) ==
          kNarrowOperators.end()) {
        diag_.Add(pair[0].Mark(), path,
                  "unknown narrow operator " + Quote(op) + "; " + Suggest(op, kNarrowOperators) +
                      " (the operators Zulip applies to event queues)");
        continue;
      }
      if (operand.empty()) {
        diag_.Add(pair[1].Mark(), path, "empty operand; expected a non-empty string");
        continue;
      }
      if (op == "is" && std::find(kNarrowIsOperands.begin(), kNarrowIsOperands.end(), operand) ==
                            kNarrowIsOperands.end()) {
        diag_.Add(pair[1].Mark(), path,
                  "unsupported operand " + Quote(operand) + " for is; " +
                      Suggest(operand, kNarrowIsOperands));
        continue;
      }
      a->narrow.emplace_back(std::move(op), std::move(operand));
    }
  }

  void LoadBackfillFrom(const Entry& e, AccountConfig* a) {
    BackfillFrom& b = a->backfill_from;
    if (e.value.IsScalar()) {
      const std::string& text = e.value.Scalar();
      int64_t id = 0;
      if (text == "none") {
        b.kind = BackfillFrom::Kind::kNone;
        return;
      }
      if (ParseInt(text, &id) && id >= 0) {
        b = {BackfillFrom::Kind::kMessageId, id, 0, text};
        return;
      }
      int64_t seconds = 0;
      if (ParseRfc3339(text, &seconds)) {
        b = {BackfillFrom::Kind::kTime, 0, seconds, text};
        return;
      }
    }
    diag_.Add(e.Mark(), e.path,
              "expected none, a message id, or an RFC 3339 time such as 2026-01-31T00:00:00Z");
  }

  void LoadCredentials(const Entry& entry, const Fields& f, AccountConfig* a) {
    const std::string& p = entry.path;
    static const Keys kSources = {"zuliprc", "api_key", "api_key_file", "systemd_credential"};
    std::vector<const Entry*> sources;
    std::string source_name;
    for (std::string_view s : kSources) {
      if (const Entry* e = Find(f, s)) {
        sources.push_back(e);
        if (sources.size() == 1) source_name = s;
      }
    }
    if (sources.empty()) {
      diag_.Add(entry.Mark(), p,
                "no credentials; expected one of zuliprc, api_key, api_key_file or "
                "systemd_credential");
      return;
    }
    if (sources.size() > 1) {
      diag_.Add(sources[1]->key_mark, sources[1]->path,
                "a second credential source; expected exactly one of zuliprc, api_key, "
                "api_key_file or systemd_credential");
      return;
    }
    const Entry& source = *sources[0];
    Zuliprc rc;
    const Entry* site = Find(f, "site");
    const Entry* email = Find(f, "email");
    std::string error;
    if (source_name == "zuliprc") {
      a->credential_source = CredentialSource::kZuliprc;
      for (const Entry* e : {site, email}) {
        if (e) {
          diag_.Add(e->key_mark, e->path,
                    "given together with zuliprc; expected it only in the zuliprc file");
        }
      }
      std::string path, text;
      if (!ReadNonEmptyString(diag_, source, &path)) return;
      a->credential_path = ExpandPath(path, base_dir_, env_);
      if (!ReadSmallFile(a->credential_path, &text, &error)) {
        diag_.Add(source.Mark(), source.path, error);
        return;
      }
      if (!ParseZuliprc(text, &rc, &error)) {
        diag_.Add(source.Mark(), source.path, a->credential_path + ": " + error);
        return;
      }
      if (!CleanApiKey(*rc.key, &a->api_key, &error)) {
        diag_.Add(source.Mark(), source.path, a->credential_path + ": [api] key: " + error);
        return;
      }
      a->email = *rc.email;
      a->site = NormalizeSite(*rc.site);
      if (!CheckSite(a->site)) {
        diag_.Add(source.Mark(), source.path,
                  a->credential_path + ": [api] site " + Quote(*rc.site) +
                      " is not a URL; expected e.g. https://chat.example.com");
      }
    } else {
      std::string site_text;
      if (!site) {
        diag_.Add(entry.Mark(), JoinPath(p, "site"),
                  "missing; expected the Zulip server URL, e.g. https://chat.example.com "
                  "(required with " +
                      source_name + ")");
      } else if (ReadNonEmptyString(diag_, *site, &site_text)) {
        a->site = NormalizeSite(site_text);
        if (!CheckSite(a->site)) {
          diag_.Add(site->Mark(), site->path,
                    "not a URL; expected the Zulip server URL, e.g. https://chat.example.com");
        }
      }
      if (!email) {
        diag_.Add(entry.Mark(), JoinPath(p, "email"),
                  "missing; expected the bot's email address (required with " + source_name + ")");
      } else if (ReadNonEmptyString(diag_, *email, &a->email)) {
        CheckEmail(*email, a->email);
      }
      std::string raw;
      if (source_name == "api_key") {
        a->credential_source = CredentialSource::kApiKey;
        if (!source.value.IsScalar()) {
          diag_.Add(source.Mark(), source.path, "expected a string, e.g. ${ZULIP_API_KEY}");
          return;
        }
        if (!SubstituteEnv(source.value.Scalar(), env_, &raw, &error) ||
            !CleanApiKey(raw, &a->api_key, &error)) {
          diag_.Add(source.Mark(), source.path, error);
          return;
        }
      } else {
        std::string path;
        if (!ReadNonEmptyString(diag_, source, &path)) return;
        if (source_name == "api_key_file") {
          a->credential_source = CredentialSource::kApiKeyFile;
          a->credential_path = ExpandPath(path, base_dir_, env_);
        } else {
          a->credential_source = CredentialSource::kSystemdCredential;
          if (path.find('/') != std::string::npos || path == "." || path == "..") {
            diag_.Add(source.Mark(), source.path,
                      "expected a credential name (as in LoadCredential=NAME:...), not a path");
            return;
          }
          std::optional<std::string> dir = env_("CREDENTIALS_DIRECTORY");
          if (!dir || dir->empty()) {
            diag_.Add(source.Mark(), source.path,
                      "$CREDENTIALS_DIRECTORY is not set; expected the daemon to run under "
                      "systemd with LoadCredential=" +
                          path + ":...");
            return;
          }
          a->credential_path = *dir + "/" + path;
        }
        if (!ReadSmallFile(a->credential_path, &raw, &error) ||
            !CleanApiKey(raw, &a->api_key, &error)) {
          diag_.Add(source.Mark(), source.path, error);
          return;
        }
      }
    }
    LoadTls(Find(f, "tls"), rc, entry, source, a);
  }

  bool CheckSite(const std::string& site) {
    static const std::regex kSite(R"(https?://[^/\s]+(/\S*)?)");
    return std::regex_match(site, kSite);
  }

  void CheckEmail(const Entry& e, const std::string& email) {
    if (email.find('@') == std::string::npos || std::any_of(email.begin(), email.end(), [](char c) {
          return std::isspace(static_cast<unsigned char>(c));
        })) {
      diag_.Add(e.Mark(), e.path, "not an email address; expected the bot's email");
    }
  }

  void LoadTls(const Entry* tls, const Zuliprc& rc, const Entry& account, const Entry& credential,
               AccountConfig* a) {
    TlsConfig& t = a->tls;
    const std::string rc_dir = std::filesystem::path(a->credential_path).parent_path().string();
    if (rc.cert_bundle) t.ca_bundle = ExpandPath(*rc.cert_bundle, rc_dir, env_);
    if (rc.client_cert) t.client_cert = ExpandPath(*rc.client_cert, rc_dir, env_);
    if (rc.client_cert_key) t.client_cert_key = ExpandPath(*rc.client_cert_key, rc_dir, env_);
    Fields f;
    Entry tls_entry{YAML::Node(), JoinPath(account.path, "tls"), account.Mark()};
    if (tls) {
      tls_entry = *tls;
      f = ReadMap(diag_, *tls,
                  {"ca_bundle", "client_cert", "client_cert_key", "insecure_skip_verify"});
    }
    for (auto [key, field] :
         {std::pair{"ca_bundle", &t.ca_bundle}, std::pair{"client_cert", &t.client_cert},
          std::pair{"client_cert_key", &t.client_cert_key}}) {
      std::string path;
      const Entry* e = Find(f, key);
      // An empty string means the default (system CAs, no client certificate).
      if (e && ReadString(diag_, *e, &path)) {
        *field = path.empty() ? std::string() : ExpandPath(path, base_dir_, env_);
      }
    }
    const Entry* insecure = Find(f, "insecure_skip_verify");
    if (insecure) ReadBool(diag_, *insecure, &t.insecure_skip_verify);
    if (rc.insecure.value_or(false) && !t.insecure_skip_verify) {
      diag_.Add(credential.Mark(), credential.path,
                a->credential_path +
                    " sets insecure=true; expected verification to be turned off only by "
                    "tls.insecure_skip_verify: true in the configuration");
    }
    if (!t.client_cert_key.empty() && t.client_cert.empty()) {
      diag_.Add(tls_entry.Mark(), tls_entry.path,
                "client_cert_key without client_cert; expected both or client_cert alone");
    }
    for (auto [key, field] :
         {std::pair{"ca_bundle", &t.ca_bundle}, std::pair{"client_cert", &t.client_cert},
          std::pair{"client_cert_key", &t.client_cert_key}}) {
      std::string error;
      if (!field->empty() && !CheckReadable(*field, &error)) {
        const Entry* e = Find(f, key);
        diag_.Add(e ? e->Mark() : account.Mark(), JoinPath(tls_entry.path, key), error);
      }
    }
  }

  std::string path_;
  std::string base_dir_;
  Diagnostics diag_;
  const EnvLookup& env_;
  Config config_;
};

const char* LevelName(LogLevel level) { return kLogLevels[static_cast<size_t>(level)].data(); }

const char* KeyName(KeyChoice key) {
  return key == KeyChoice::kAccount ? "account" : "conversation";
}

const char* SourceName(CredentialSource s) {
  switch (s) {
    case CredentialSource::kZuliprc:
      return "zuliprc";
    case CredentialSource::kApiKeyFile:
      return "api_key_file";
    case CredentialSource::kApiKey:
      return "api_key";
    case CredentialSource::kSystemdCredential:
      return "systemd_credential";
  }
  return "?";
}

void EmitStringList(YAML::Emitter& out, const std::vector<std::string>& items) {
  out << YAML::Flow << YAML::BeginSeq;
  for (const std::string& item : items) out << item;
  out << YAML::EndSeq;
}

}  // namespace

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (!value) return std::nullopt;
    return std::string(value);
  };
}

StatusOr<Config> LoadConfig(const std::string& path, const EnvLookup& env) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return Status::FromErrno(path, EISDIR);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::FromErrno(path, errno);
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return Status::FromErrno(path, errno);
  Loader loader(path, env);
  return loader.Load(buffer.str());
}

StatusOr<Config> LoadConfig(const std::string& path) { return LoadConfig(path, ProcessEnv()); }

std::string KafkaConfig::TopicFor(std::string_view type, std::string_view account) const {
  auto it = topics.find(type);
  return Expand(it == topics.end() ? topic_template : it->second, type, account);
}

KeyChoice KafkaConfig::KeyFor(std::string_view type) const {
  auto it = keys.find(type);
  return it == keys.end() ? default_key : it->second;
}

bool IsSensitiveKafkaProperty(std::string_view name) {
  // librdkafka 2.x marks these _RK_SENSITIVE (rdkafka_conf.c).
  static const Keys kSensitive = {"ssl.key.location",
                                  "ssl.key.password",
                                  "ssl.key.pem",
                                  "ssl_key",
                                  "ssl.ca.pem",
                                  "ssl.keystore.password",
                                  "sasl.username",
                                  "sasl.password",
                                  "sasl.oauthbearer.config",
                                  "sasl.oauthbearer.client.secret"};
  std::string lower = ToLower(name);
  if (std::find(kSensitive.begin(), kSensitive.end(), lower) != kSensitive.end()) return true;
  return lower.find("password") != std::string::npos || lower.find("secret") != std::string::npos;
}

Status CheckTopicName(std::string_view topic) {
  static constexpr char kRule[] =
      "not a valid Kafka topic name; expected 1 to 249 characters of a-z A-Z 0-9 . _ - "
      "(not . or ..)";
  if (topic.empty() || topic.size() > 249 || topic == "." || topic == "..") {
    return Status::InvalidArgument(kRule);
  }
  for (char c : topic) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return Status::InvalidArgument(kRule);
    }
  }
  return Status::Ok();
}

std::string NormalizeSite(std::string_view site) {
  std::string s(site);
  if (s.rfind("localhost", 0) == 0) {
    s = "http://" + s;
  } else if (s.rfind("http", 0) != 0) {
    s = "https://" + s;
  }
  while (!s.empty() && s.back() == '/') s.pop_back();
  if (s.size() >= 4 && s.compare(s.size() - 4, 4, "/api") == 0) s.resize(s.size() - 4);
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

const std::vector<std::string_view>& KnownEventTypes() {
  static const std::vector<std::string_view> kTypes = {
      "alert_words",
      "attachment",
      "custom_profile_fields",
      "default_stream_groups",
      "default_streams",
      "delete_message",
      "drafts",
      "has_zoom_token",
      "heartbeat",
      "invites_changed",
      "message",
      "muted_topics",
      "muted_users",
      "onboarding_steps",
      "presence",
      "reaction",
      "realm",
      "realm_bot",
      "realm_domains",
      "realm_emoji",
      "realm_export",
      "realm_export_consent",
      "realm_filters",
      "realm_linkifiers",
      "realm_playgrounds",
      "realm_user",
      "realm_user_settings_defaults",
      "restart",
      "saved_snippets",
      "scheduled_messages",
      "stream",
      "submessage",
      "subscription",
      "typing",
      "typing_edit_message",
      "update_display_settings",
      "update_global_notifications",
      "update_message",
      "update_message_flags",
      "user_group",
      "user_settings",
      "user_status",
      "user_topic",
      "web_reload_client",
  };
  return kTypes;
}

std::string RenderConfig(const Config& c) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "kafka" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "brokers" << YAML::Value;
  EmitStringList(out, c.kafka.brokers);
  out << YAML::Key << "topic_template" << YAML::Value << c.kafka.topic_template;
  out << YAML::Key << "topics" << YAML::Value << YAML::BeginMap;
  for (const auto& [type, topic] : c.kafka.topics) out << YAML::Key << type << YAML::Value << topic;
  out << YAML::EndMap;
  out << YAML::Key << "control_topic" << YAML::Value << c.kafka.control_topic;
  out << YAML::Key << "key" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "default" << YAML::Value << KeyName(c.kafka.default_key);
  for (const auto& [type, key] : c.kafka.keys)
    out << YAML::Key << type << YAML::Value << KeyName(key);
  out << YAML::EndMap;
  out << YAML::Key << "flush_timeout_secs" << YAML::Value << c.kafka.flush_timeout_secs;
  out << YAML::Key << "properties" << YAML::Value << YAML::BeginMap;
  for (const auto& [name, value] : c.kafka.properties) {
    out << YAML::Key << name << YAML::Value;
    if (IsSensitiveKafkaProperty(name)) {
      out << std::string(kRedacted);
    } else {
      out << YAML::DoubleQuoted << value;
    }
  }
  out << YAML::EndMap << YAML::EndMap;

  out << YAML::Key << "state_dir" << YAML::Value << c.state_dir;
  out << YAML::Key << "http" << YAML::Value << YAML::BeginMap << YAML::Key << "listen"
      << YAML::Value << c.http.listen << YAML::EndMap;
  out << YAML::Key << "log" << YAML::Value << YAML::BeginMap << YAML::Key << "level" << YAML::Value
      << LevelName(c.log.level) << YAML::Key << "format" << YAML::Value
      << (c.log.format == LogFormat::kLogfmt ? "logfmt" : "json") << YAML::EndMap;
  out << YAML::Key << "metrics" << YAML::Value << YAML::BeginMap << YAML::Key << "per_account_type"
      << YAML::Value << c.metrics.per_account_type << YAML::EndMap;
  out << YAML::Key << "retry" << YAML::Value << YAML::BeginMap << YAML::Key << "initial_backoff_ms"
      << YAML::Value << c.retry.initial_backoff_ms << YAML::Key << "max_backoff_ms" << YAML::Value
      << c.retry.max_backoff_ms << YAML::EndMap;
  out << YAML::Key << "dead_letter" << YAML::Value << YAML::BeginMap << YAML::Key << "max_bytes"
      << YAML::Value << c.dead_letter.max_bytes << YAML::EndMap;

  out << YAML::Key << "accounts" << YAML::Value << YAML::BeginSeq;
  for (const AccountConfig& a : c.accounts) {
    out << YAML::BeginMap;
    out << YAML::Key << "name" << YAML::Value << a.name;
    out << YAML::Key << "site" << YAML::Value << a.site;
    out << YAML::Key << "email" << YAML::Value << a.email;
    out << YAML::Key << "api_key" << YAML::Value << std::string(kRedacted);
    out << YAML::Key << "api_key_from" << YAML::Value
        << (a.credential_path.empty()
                ? std::string(SourceName(a.credential_source))
                : std::string(SourceName(a.credential_source)) + " " + a.credential_path);
    out << YAML::Key << "tls" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "ca_bundle" << YAML::Value << a.tls.ca_bundle;
    out << YAML::Key << "client_cert" << YAML::Value << a.tls.client_cert;
    out << YAML::Key << "client_cert_key" << YAML::Value << a.tls.client_cert_key;
    out << YAML::Key << "insecure_skip_verify" << YAML::Value << a.tls.insecure_skip_verify;
    out << YAML::EndMap;
    out << YAML::Key << "event_types" << YAML::Value;
    if (a.event_types) {
      EmitStringList(out, *a.event_types);
    } else {
      out << "all";
    }
    out << YAML::Key << "fetch_event_types" << YAML::Value;
    EmitStringList(out, a.fetch_event_types);
    out << YAML::Key << "narrow" << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const auto& [op, operand] : a.narrow) {
      out << YAML::Flow << YAML::BeginSeq << op << operand << YAML::EndSeq;
    }
    out << YAML::EndSeq;
    out << YAML::Key << "all_public_streams" << YAML::Value << a.all_public_streams;
    out << YAML::Key << "apply_markdown" << YAML::Value << a.apply_markdown;
    out << YAML::Key << "client_gravatar" << YAML::Value << a.client_gravatar;
    out << YAML::Key << "slim_presence" << YAML::Value << a.slim_presence;
    out << YAML::Key << "client_capabilities" << YAML::Value << YAML::BeginMap;
    for (const auto& [name, on] : a.client_capabilities) {
      out << YAML::Key << name << YAML::Value << on;
    }
    out << YAML::EndMap;
    out << YAML::Key << "queue_lifespan_secs" << YAML::Value << a.queue_lifespan_secs;
    out << YAML::Key << "backfill_from" << YAML::Value << a.backfill_from.text;
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace zb
