// The section reader of the configuration's `accounts:` list: each account's name, its one
// credential source (zuliprc, api_key, api_key_file or systemd_credential, with the site and
// email that go with it), TLS, the register arguments (event types, narrow, flags, client
// capabilities with our defaults, queue lifespan) and where backfill starts. Account names
// must be unique regardless of case.
//
// Private to daemon/config/. Depends on diagnostics.h (reading, reporting), credentials.h (the
// credential sources), zulip_site.h and event_types.h; config.cc's loader calls it, never the
// reverse. Threads: the main thread, during a load (at start and on each reload).
#ifndef ZB_DAEMON_CONFIG_ACCOUNT_SECTION_H_
#define ZB_DAEMON_CONFIG_ACCOUNT_SECTION_H_

#include <vector>

#include "daemon/config/config.h"
#include "daemon/config/diagnostics.h"

namespace zb::config_internal {

// Reads `entry` (the accounts list) and appends each account without a problem to *out; each
// problem goes to ctx.diag and that account is left out. Reads every credential file.
void ReadAccountsSection(const LoadContext& ctx, const Entry& entry,
                         std::vector<AccountConfig>* out);

}  // namespace zb::config_internal

#endif  // ZB_DAEMON_CONFIG_ACCOUNT_SECTION_H_
