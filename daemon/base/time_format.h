// RFC 3339 times as the bridge writes them everywhere a person or a consumer reads one: log
// lines (ts=), the dead-letter spool's spooled_at and the control topic's gap records. One
// format, so that they sort and compare as text: UTC, milliseconds, "Z".
//
// Threads: pure functions, safe from any thread.
#ifndef ZB_DAEMON_BASE_TIME_FORMAT_H_
#define ZB_DAEMON_BASE_TIME_FORMAT_H_

#include <cstdint>
#include <string>

namespace zb {

// "2026-11-28T06:30:00.123Z" for a Unix time in milliseconds. The milliseconds are those of
// `unix_ms` as given (nothing is rounded); a time before 1970 counts down from the next second,
// as the calendar does: -1 is "1969-12-31T23:59:59.999Z".
std::string FormatUtcMillis(int64_t unix_ms);

}  // namespace zb

#endif  // ZB_DAEMON_BASE_TIME_FORMAT_H_
