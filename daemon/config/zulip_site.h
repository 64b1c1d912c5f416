// The one home of Zulip's site normalisation, python-zulip-api's rule (FACTS.md §1.1): a site
// starting with "localhost" gets "http://", any other without "http" gets "https://",
// trailing slashes go, "/api" is appended unless the site already ends with it, then "/".
//
// Two forms of the same rule, for two callers:
//   ZulipApiBaseUrl  the rule itself: the prefix of every request URL ("...api/" + "v1/...");
//                    the Zulip client builds its URLs from it.
//   NormalizeSite    the site's root, i.e. ZulipApiBaseUrl without its final "/api/" (and
//                    without any slashes before that): what the configuration stores in
//                    AccountConfig::site and what records and checkpoints name the site by.
// Both are pure; any thread.
#ifndef ZB_DAEMON_CONFIG_ZULIP_SITE_H_
#define ZB_DAEMON_CONFIG_ZULIP_SITE_H_

#include <string>
#include <string_view>

namespace zb {

// "chat.example.com" -> "https://chat.example.com/api/"; "localhost:9991" ->
// "http://localhost:9991/api/"; "https://x.zulipchat.com/api" -> "https://x.zulipchat.com/api/".
std::string ZulipApiBaseUrl(std::string_view site);

// "chat.example.com/" -> "https://chat.example.com"; "https://example.com/zulip/api/" ->
// "https://example.com/zulip". For the sites operators write, ZulipApiBaseUrl(NormalizeSite(s))
// == ZulipApiBaseUrl(s); the exceptions (a root that itself ends in "/api", slashes doubled
// before "/api") are spelled out in tests/zulip_site_test.cc.
std::string NormalizeSite(std::string_view site);

}  // namespace zb

#endif  // ZB_DAEMON_CONFIG_ZULIP_SITE_H_
