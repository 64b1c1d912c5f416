// The daemon-wide sections. See daemon_section.h.
#include "daemon/config/daemon_section.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <regex>
#include <system_error>

#include "daemon/base/status.h"
#include "daemon/config/credentials.h"

namespace zb::config_internal {
namespace {

const Keys kLogLevels = {"trace", "debug", "info", "warn", "error"};
const Keys kLogFormats = {"logfmt", "json"};

void CheckStateDir(Diagnostics& diag, const Entry& e, const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    // Create each missing component with mode 0700: checkpoints are nobody else's business.
    std::filesystem::path partial;
    for (const auto& part : std::filesystem::path(dir)) {
      partial /= part;
      if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST) {
        diag.Add(e.Mark(), e.path,
                 "cannot create " + Quote(partial.string()) + ": " + ErrnoText(errno) +
                     "; expected a directory the daemon can create and write");
        return;
      }
    }
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    diag.Add(e.Mark(), e.path, Quote(dir) + " is not a directory; expected a directory");
    return;
  }
  std::string probe = dir + "/.zulip-bridge-probe-" + std::to_string(::getpid());
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    diag.Add(e.Mark(), e.path,
             "cannot write in " + Quote(dir) + ": " + ErrnoText(errno) +
                 "; expected a directory the daemon can write");
    return;
  }
  ::close(fd);
  ::unlink(probe.c_str());
}

}  // namespace

void ReadStateDir(const LoadContext& ctx, const Entry* entry, const YAML::Mark& root_mark,
                  std::string* state_dir) {
  if (entry) {
    std::string dir;
    if (ReadNonEmptyString(ctx.diag, *entry, &dir)) {
      *state_dir = ExpandPath(dir, ctx.base_dir, ctx.env);
      CheckStateDir(ctx.diag, *entry, *state_dir);
    }
  } else {
    CheckStateDir(ctx.diag, Entry{YAML::Node(), "state_dir", root_mark}, *state_dir);
  }
}

void ReadHttpSection(const LoadContext& ctx, const Entry& entry, HttpConfig* out) {
  Diagnostics& diag = ctx.diag;
  Fields f = ReadMap(diag, entry, {"listen"});
  const Entry* e = Find(f, "listen");
  if (!e) return;
  std::string listen;
  if (!ReadNonEmptyString(diag, *e, &listen)) return;
  static const std::regex kListen(R"((\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5}))");
  std::smatch m;
  int64_t port = -1;
  if (!std::regex_match(listen, m, kListen) || !ParseInt(m[2].str(), &port) || port > 65535) {
    diag.Add(e->Mark(), e->path,
             "invalid address " + Quote(listen) +
                 "; expected host:port, e.g. 127.0.0.1:9187 or [::1]:9187");
    return;
  }
  std::string host = m[1].str();
  if (host.front() == '[') host = host.substr(1, host.size() - 2);
  *out = HttpConfig{listen, host, static_cast<uint16_t>(port)};
}

void ReadLogSection(const LoadContext& ctx, const Entry& entry, LogConfig* out) {
  Diagnostics& diag = ctx.diag;
  Fields f = ReadMap(diag, entry, {"level", "format"});
  size_t choice = 0;
  if (const Entry* e = Find(f, "level")) {
    if (ReadChoice(diag, *e, kLogLevels, &choice)) out->level = static_cast<LogLevel>(choice);
  }
  if (const Entry* e = Find(f, "format")) {
    if (ReadChoice(diag, *e, kLogFormats, &choice)) out->format = static_cast<LogFormat>(choice);
  }
}

void ReadMetricsSection(const LoadContext& ctx, const Entry& entry, MetricsConfig* out) {
  Fields m = ReadMap(ctx.diag, entry, {"per_account_type"});
  if (const Entry* f = Find(m, "per_account_type")) {
    ReadBool(ctx.diag, *f, &out->per_account_type);
  }
}

void ReadRetrySection(const LoadContext& ctx, const Entry& entry, RetryConfig* out) {
  Diagnostics& diag = ctx.diag;
  Fields f = ReadMap(diag, entry, {"initial_backoff_ms", "max_backoff_ms"});
  RetryConfig& r = *out;
  bool initial_ok = true;
  if (const Entry* e = Find(f, "initial_backoff_ms")) {
    initial_ok = ReadInt(diag, *e, 1, 3600000, &r.initial_backoff_ms);
  }
  if (const Entry* e = Find(f, "max_backoff_ms")) {
    if (ReadInt(diag, *e, 1, 86400000, &r.max_backoff_ms) && initial_ok &&
        r.max_backoff_ms < r.initial_backoff_ms) {
      diag.Add(e->Mark(), e->path,
               "smaller than retry.initial_backoff_ms (" + std::to_string(r.initial_backoff_ms) +
                   "); expected at least that");
    }
  } else if (initial_ok && r.max_backoff_ms < r.initial_backoff_ms) {
    r.max_backoff_ms = r.initial_backoff_ms;
  }
}

void ReadDeadLetterSection(const LoadContext& ctx, const Entry& entry, DeadLetterConfig* out) {
  Fields m = ReadMap(ctx.diag, entry, {"max_bytes"});
  if (const Entry* f = Find(m, "max_bytes")) {
    ReadInt(ctx.diag, *f, int64_t{1} << 20, int64_t{1} << 50, &out->max_bytes, "at least 1 MiB");
  }
}

std::string_view LogLevelName(LogLevel level) { return kLogLevels[static_cast<size_t>(level)]; }

std::string_view LogFormatName(LogFormat format) {
  return kLogFormats[format == LogFormat::kLogfmt ? 0 : 1];
}

}  // namespace zb::config_internal
