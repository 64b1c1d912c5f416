// What an account asks Zulip for when it registers a queue: the register form (every argument
// sent explicitly), its fingerprint kept in the checkpoint, and the client options (site,
// credentials, TLS) of the account's ZulipClient. Pure functions of the configuration.
#ifndef ZB_DAEMON_ZULIP_REGISTER_REQUEST_H_
#define ZB_DAEMON_ZULIP_REGISTER_REQUEST_H_

#include <string>
#include <utility>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/zulip/zulip_client.h"

namespace zb {

// Every register argument of `config`, as the form fields POST /register is sent: explicitly,
// since the server's defaults depend on the bot's own settings (FACTS §7 points 8-9).
std::vector<std::pair<std::string, std::string>> RegisterFields(const AccountConfig& config);

// The ZulipClient options of an account: its site, credentials and TLS settings.
ZulipClientOptions ZulipClientOptionsFor(const AccountConfig& config);

// A stable digest of what an account's queue is registered with (the user and every register
// argument), kept in its checkpoint. When an account starts from a checkpoint with another
// digest (the configuration changed, by reload or between runs), the old queue no longer
// delivers what the configuration asks for: the account registers a new one, publishes a gap
// record ("configuration changed"), backfills messages, and deletes the old queue.
std::string RegisterFingerprint(const AccountConfig& config);

}  // namespace zb

#endif  // ZB_DAEMON_ZULIP_REGISTER_REQUEST_H_
