// ParseJson: the one way a JSON text that came from outside the process (a Zulip response
// body, an event, a /readyz answer) is turned into a RapidJSON document.
//
// RapidJSON's default parser recurses once per nesting level, and so do Accept() (re-writing a
// value) and comparisons, so a body nested a few hundred thousand levels deep (a broken proxy,
// a hostile site) would overflow the stack and take every account of the process down. This
// parser never recurses (RapidJSON's iterative mode) and refuses nesting deeper than
// kMaxJsonDepth, so every document it hands out is safe to walk, write and compare. Zulip's
// answers are a few levels deep; a message's content is a string, not nested JSON.
//
// Threads: any; no shared state.
#ifndef ZB_DAEMON_BASE_JSON_PARSE_H_
#define ZB_DAEMON_BASE_JSON_PARSE_H_

#include <rapidjson/fwd.h>

#include <cstddef>
#include <string_view>

#include "daemon/base/status.h"

namespace zb {

// The deepest nesting (objects and arrays open at once) accepted from the network. The GET
// /events splitter (EventSplitter::kMaxDepth) uses the same bound.
inline constexpr size_t kMaxJsonDepth = 512;

// Parses `text` into `doc` (whose allocator it uses). OK: `doc` holds the value, of any type
// (the caller checks the shape it expects). Corruption, with the byte offset, when `text` is
// not one JSON value or nests deeper than kMaxJsonDepth ("nesting deeper than 512 at byte
// offset 512"); `doc` is then left as it was.
Status ParseJson(std::string_view text, rapidjson::Document& doc);

}  // namespace zb

#endif  // ZB_DAEMON_BASE_JSON_PARSE_H_
