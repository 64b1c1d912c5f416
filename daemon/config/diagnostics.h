// The configuration loader's reading machinery: walks the YAML document and reports each
// problem as "<file>:<line>:<column>: <key.path>: <what is wrong; what was expected>", with a
// did-you-mean for misspelt keys and values, collecting every problem (up to kMaxErrors)
// instead of stopping at the first, so that one --check-config run shows an operator all of
// them.
//
// Private to daemon/config/: only the loader's files (config.cc and the section readers
// kafka_section, account_section, daemon_section) include this header, and with it yaml-cpp;
// nothing outside daemon/config/ sees a YAML type. The bottom of the loader: it depends on
// nothing else in daemon/config/ but config.h's EnvLookup.
//
// Threads: the configuration is loaded on the main thread, at start and on each reload. A
// Diagnostics and the Entries read through it belong to one load and are not shared.
#ifndef ZB_DAEMON_CONFIG_DIAGNOSTICS_H_
#define ZB_DAEMON_CONFIG_DIAGNOSTICS_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "daemon/config/config.h"  // EnvLookup

namespace zb::config_internal {

// At most this many problems are reported; the rest are dropped.
inline constexpr size_t kMaxErrors = 50;

using Keys = std::vector<std::string_view>;

// ---- text of the messages ----

std::string Quote(std::string_view s);                                // 'x'
std::string JoinPath(std::string_view parent, std::string_view key);  // parent.key
std::string IndexPath(std::string_view parent, size_t index);         // parent[3]
std::string JoinList(const Keys& items);                              // a, b, c
std::string ToLower(std::string_view s);
// "did you mean 'x'?" when `word` is a likely typo of one of `candidates`, else
// "expected one of: a, b".
std::string Suggest(std::string_view word, const Keys& candidates);
// A decimal integer, an optional leading '+', nothing else.
bool ParseInt(std::string_view text, int64_t* out);

// ---- collecting problems ----

// Collects "<file>:<line>:<column>: <path>: <message>" lines. Joined() gives them in the
// order of the file, whatever order the loader visited the keys in.
class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}

  // A null `mark` leaves out line and column; an empty `path` leaves out the key path.
  void Add(const YAML::Mark& mark, std::string_view path, std::string_view message);

  bool empty() const { return lines_.empty(); }
  size_t count() const { return lines_.size(); }

  // The problems in the order of the file, one per line.
  std::string Joined() const;

 private:
  struct Line {
    int line;
    int column;
    std::string text;
  };
  std::string file_;
  std::vector<Line> lines_;
};

// What every section reader needs of one load: where problems go, where ${NAME} and
// $CREDENTIALS_DIRECTORY are looked up, and the absolute directory relative paths start from.
// Borrowed from the loader for the duration of one LoadConfig call.
struct LoadContext {
  Diagnostics& diag;
  const EnvLookup& env;
  const std::string& base_dir;
};

// ---- reading values ----

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
               std::vector<std::string>* order = nullptr);

// The entry for `key`, or nullptr when the mapping does not have it.
const Entry* Find(const Fields& fields, std::string_view key);

// Each Read* stores the value in *out and returns true, or reports the problem at `e` and
// returns false leaving *out as it was (ReadStringList: possibly partly filled).
bool ReadString(Diagnostics& diag, const Entry& e, std::string* out);
bool ReadNonEmptyString(Diagnostics& diag, const Entry& e, std::string* out);
bool ReadBool(Diagnostics& diag, const Entry& e, bool* out);
// `why`, when given, is added to the message in parentheses.
bool ReadInt(Diagnostics& diag, const Entry& e, int64_t min, int64_t max, int64_t* out,
             std::string_view why = {});
// *out is the index of the value in `choices`.
bool ReadChoice(Diagnostics& diag, const Entry& e, const Keys& choices, size_t* out);
bool ReadStringList(Diagnostics& diag, const Entry& e, std::vector<std::string>* out);

}  // namespace zb::config_internal

#endif  // ZB_DAEMON_CONFIG_DIAGNOSTICS_H_
