// The section readers of the daemon-wide settings: state_dir (created with mode 0700 when
// missing, and checked writable), http (the health server's address), log, metrics, retry
// (the backoff bounds) and dead_letter. Each fills its part of Config, whose member
// initialisers (config.h) are the defaults, and checks the rules between keys of its own
// section (retry.max_backoff_ms >= retry.initial_backoff_ms).
//
// Private to daemon/config/. Depends on diagnostics.h and credentials.h (paths); config.cc's
// loader calls it, never the reverse. Threads: the main thread, during a load (at start and on
// each reload).
#ifndef ZB_DAEMON_CONFIG_DAEMON_SECTION_H_
#define ZB_DAEMON_CONFIG_DAEMON_SECTION_H_

#include <string>
#include <string_view>

#include "daemon/config/config.h"
#include "daemon/config/diagnostics.h"

namespace zb::config_internal {

// `entry` is the state_dir key, or nullptr when the file has none (then *state_dir, the
// default, is checked and problems are reported at `root_mark`). Resolves the path against
// ctx.base_dir, creates missing directories and checks that the daemon can write there.
void ReadStateDir(const LoadContext& ctx, const Entry* entry, const YAML::Mark& root_mark,
                  std::string* state_dir);

// Each reads its mapping into *out, which holds the defaults; each problem goes to ctx.diag
// and leaves that key's default.
void ReadHttpSection(const LoadContext& ctx, const Entry& entry, HttpConfig* out);
void ReadLogSection(const LoadContext& ctx, const Entry& entry, LogConfig* out);
void ReadMetricsSection(const LoadContext& ctx, const Entry& entry, MetricsConfig* out);
void ReadRetrySection(const LoadContext& ctx, const Entry& entry, RetryConfig* out);
void ReadDeadLetterSection(const LoadContext& ctx, const Entry& entry, DeadLetterConfig* out);

// The names log.level and log.format take.
std::string_view LogLevelName(LogLevel level);
std::string_view LogFormatName(LogFormat format);

}  // namespace zb::config_internal

#endif  // ZB_DAEMON_CONFIG_DAEMON_SECTION_H_
