// The daemon's log: one line per happening on stderr, as logfmt (default) or JSON, with the
// level and key=value fields. Under systemd-journald (JOURNAL_STREAM names our stderr) each
// line starts with the syslog priority ("<3>") and carries no timestamp, since the journal
// stamps it. Lines about one account can be rate-limited per account so that a flapping
// account cannot flood the journal.
//
// Secrets never go into a log line: callers pass names, ids, sizes and error texts that were
// built without credentials (Status messages never carry secrets).
//
// Thread-safe: any thread may log; a line is written with a single write(2).
#ifndef ZB_DAEMON_BASE_LOG_H_
#define ZB_DAEMON_BASE_LOG_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>

namespace zb {

// Ordered from the most verbose; the configuration's log.level names them in this order.
enum class LogLevel { kTrace = 0, kDebug, kInfo, kWarn, kError };
enum class LogFormat { kLogfmt, kJson };

// One key=value pair of a log line. The value is kept as text with a note of whether it is a
// number or a boolean, so JSON output can leave those unquoted.
class LogField {
 public:
  LogField(std::string_view key, std::string_view value) : key_(key), value_(value) {}
  LogField(std::string_view key, const std::string& value) : key_(key), value_(value) {}
  LogField(std::string_view key, const char* value) : key_(key), value_(value ? value : "") {}
  LogField(std::string_view key, bool value)
      : key_(key), value_(value ? "true" : "false"), bare_(true) {}
  template <typename Int, typename = std::enable_if_t<std::is_integral_v<Int>>>
  LogField(std::string_view key, Int value)
      : key_(key), value_(std::to_string(value)), bare_(true) {}
  LogField(std::string_view key, double value);

  std::string_view key() const { return key_; }
  const std::string& value() const { return value_; }
  bool bare() const { return bare_; }

 private:
  std::string_view key_;
  std::string value_;
  bool bare_ = false;
};

using LogFields = std::initializer_list<LogField>;

struct LogOptions {
  LogLevel level = LogLevel::kInfo;
  LogFormat format = LogFormat::kLogfmt;
  // Per account: at most `burst` lines, refilled at `per_second` lines a second; lines beyond
  // are dropped and counted, and the next line let through says how many were suppressed.
  double rate_per_second = 5;
  int rate_burst = 50;
};

// Sets level, format and rate limit for the process, and decides whether stderr is the
// journal. Call once at start (and again on reload); before it, defaults apply.
void ConfigureLog(const LogOptions& options);

// Writes a line if `level` is enabled.
void Log(LogLevel level, std::string_view message, LogFields fields = {});
// Writes a line about `account` (added as the field account=...), subject to the per-account
// rate limit.
void LogAccount(LogLevel level, std::string_view account, std::string_view message,
                LogFields fields = {});

inline void LogDebug(std::string_view m, LogFields f = {}) { Log(LogLevel::kDebug, m, f); }
inline void LogInfo(std::string_view m, LogFields f = {}) { Log(LogLevel::kInfo, m, f); }
inline void LogWarn(std::string_view m, LogFields f = {}) { Log(LogLevel::kWarn, m, f); }
inline void LogError(std::string_view m, LogFields f = {}) { Log(LogLevel::kError, m, f); }

// Parses "trace", "debug", "info", "warn"/"warning", "error"; false for anything else.
bool ParseLogLevel(std::string_view text, LogLevel* level);

// Hooks for tests: lines go to `sink` instead of stderr, time comes from `now`, and the
// journal decision is forced. Pass empty functions to restore the defaults.
void SetLogSinkForTest(std::function<void(std::string_view line)> sink,
                       std::function<std::chrono::steady_clock::time_point()> now, bool journal);

}  // namespace zb

#endif  // ZB_DAEMON_BASE_LOG_H_
