#include "daemon/base/log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <string>

#include "daemon/base/mutex.h"

#include "daemon/base/time_format.h"

namespace zb {
namespace {

struct Bucket {
  double tokens = 0;
  std::chrono::steady_clock::time_point refilled;
  uint64_t suppressed = 0;
};

struct LogState {
  Mutex mu;
  LogOptions options ZB_GUARDED_BY(mu);
  bool journal ZB_GUARDED_BY(mu) = false;
  std::function<void(std::string_view)> sink ZB_GUARDED_BY(mu);
  std::function<std::chrono::steady_clock::time_point()> now ZB_GUARDED_BY(mu);
  std::map<std::string, Bucket, std::less<>> buckets ZB_GUARDED_BY(mu);
};

LogState& State() {
  static LogState* state = new LogState();  // never destroyed: threads may log during exit
  return *state;
}

// journald sets JOURNAL_STREAM=<device>:<inode> for the stream it reads; when that is our
// stderr, the journal adds timestamps and reads "<N>" priority prefixes.
bool StderrIsJournal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  struct stat st;
  if (fstat(STDERR_FILENO, &st) != 0) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
  return dev == static_cast<unsigned long long>(st.st_dev) &&
         ino == static_cast<unsigned long long>(st.st_ino);
}

std::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
      return "trace";
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

int SyslogPriority(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
    case LogLevel::kDebug:
      return 7;
    case LogLevel::kInfo:
      return 6;
    case LogLevel::kWarn:
      return 4;
    case LogLevel::kError:
      return 3;
  }
  return 6;
}

std::string Timestamp() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return FormatUtcMillis(static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000);
}

// logfmt: bare when the value has no space, quote, '=' or control character; else quoted
// with Go-style escapes.
void AppendLogfmtValue(std::string& out, std::string_view value) {
  bool needs_quotes = value.empty();
  for (unsigned char c : value) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) {
      needs_quotes = true;
      break;
    }
  }
  if (!needs_quotes) {
    out += value;
    return;
  }
  out += '"';
  for (unsigned char c : value) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void AppendJsonString(std::string& out, std::string_view value) {
  out += '"';
  for (unsigned char c : value) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

std::string FormatLine(const LogOptions& options, bool journal, LogLevel level,
                       std::string_view message, std::string_view account, LogFields fields,
                       uint64_t suppressed) {
  std::string line;
  line.reserve(128);
  if (journal) {
    line += '<';
    line += static_cast<char>('0' + SyslogPriority(level));
    line += '>';
  }
  bool first = true;
  auto add = [&](std::string_view key, std::string_view value, bool bare) {
    bool separate = !first;
    first = false;
    if (options.format == LogFormat::kJson) {
      if (separate) line += ',';
      AppendJsonString(line, key);
      line += ':';
      if (bare) {
        line += value;
      } else {
        AppendJsonString(line, value);
      }
    } else {
      if (separate) line += ' ';
      line += key;
      line += '=';
      AppendLogfmtValue(line, value);
    }
  };
  if (options.format == LogFormat::kJson) line += '{';
  if (!journal) add("ts", Timestamp(), false);
  add("level", LevelName(level), false);
  add("msg", message, false);
  if (!account.empty()) add("account", account, false);
  for (const LogField& field : fields) add(field.key(), field.value(), field.bare());
  if (suppressed > 0) add("suppressed_before", std::to_string(suppressed), true);
  if (options.format == LogFormat::kJson) line += '}';
  line += '\n';
  return line;
}

void Emit(LogState& state, std::string_view line) ZB_REQUIRES(state.mu) {
  if (state.sink) {
    state.sink(line);
    return;
  }
  // One write(2) per line, so lines from threads never interleave.
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::write(STDERR_FILENO, line.data() + off, line.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

void LogImpl(LogLevel level, std::string_view account, std::string_view message, LogFields fields) {
  LogState& state = State();
  MutexLock lock(&state.mu);
  if (level < state.options.level) return;
  uint64_t suppressed = 0;
  if (!account.empty() && state.options.rate_burst > 0) {
    auto now = state.now ? state.now() : std::chrono::steady_clock::now();
    auto it = state.buckets.find(account);
    if (it == state.buckets.end()) {
      it = state.buckets.emplace(std::string(account), Bucket{}).first;
      it->second.tokens = state.options.rate_burst;
      it->second.refilled = now;
    }
    Bucket& bucket = it->second;
    double elapsed = std::chrono::duration<double>(now - bucket.refilled).count();
    bucket.tokens = std::min<double>(state.options.rate_burst,
                                     bucket.tokens + elapsed * state.options.rate_per_second);
    bucket.refilled = now;
    if (bucket.tokens < 1) {
      ++bucket.suppressed;
      return;
    }
    bucket.tokens -= 1;
    suppressed = bucket.suppressed;
    bucket.suppressed = 0;
  }
  Emit(state,
       FormatLine(state.options, state.journal, level, message, account, fields, suppressed));
}

}  // namespace

LogField::LogField(std::string_view key, double value) : key_(key), bare_(true) {
  if (!std::isfinite(value)) {
    value_ = "0";
    return;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", value);
  value_ = buf;
}

void ConfigureLog(const LogOptions& options) {
  LogState& state = State();
  MutexLock lock(&state.mu);
  state.options = options;
  if (!state.sink) state.journal = StderrIsJournal();
}

void Log(LogLevel level, std::string_view message, LogFields fields) {
  LogImpl(level, {}, message, fields);
}

void LogAccount(LogLevel level, std::string_view account, std::string_view message,
                LogFields fields) {
  LogImpl(level, account, message, fields);
}

bool ParseLogLevel(std::string_view text, LogLevel* level) {
  if (text == "trace") {
    *level = LogLevel::kTrace;
  } else if (text == "debug") {
    *level = LogLevel::kDebug;
  } else if (text == "info") {
    *level = LogLevel::kInfo;
  } else if (text == "warn" || text == "warning") {
    *level = LogLevel::kWarn;
  } else if (text == "error") {
    *level = LogLevel::kError;
  } else {
    return false;
  }
  return true;
}

void SetLogSinkForTest(std::function<void(std::string_view line)> sink,
                       std::function<std::chrono::steady_clock::time_point()> now, bool journal) {
  LogState& state = State();
  MutexLock lock(&state.mu);
  state.sink = std::move(sink);
  state.now = std::move(now);
  state.journal = state.sink ? journal : StderrIsJournal();
  state.buckets.clear();
}

}  // namespace zb
