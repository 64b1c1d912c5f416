// The fake Zulip server in-process with one bot user, and the settings that point a daemon
// component at that bot: for unit tests that need a real Zulip API over loopback but no
// subprocess (the integration tests run the fake as a process: bridge_harness.h's FakeZulip).
//
// Threads: as FakeZulipServer, every method may be called from any thread.
#ifndef ZB_TESTS_FAKE_ZULIP_FIXTURE_H_
#define ZB_TESTS_FAKE_ZULIP_FIXTURE_H_

#include <memory>
#include <string>

#include "daemon/base/status.h"
#include "daemon/config/config.h"
#include "daemon/zulip/zulip_client.h"
#include "tests/fake_zulip/fake_zulip_server.h"

namespace zb::testing {

// Usage, in a fixture: `InProcessZulip zulip_;`, then in SetUp
// `ASSERT_THAT(zulip_.Start(kEmail, kKey), IsOk());` and `zulip_->AddChannel(...)` for the rest
// of the fake's API.
class InProcessZulip {
 public:
  InProcessZulip() = default;
  InProcessZulip(const InProcessZulip&) = delete;
  InProcessZulip& operator=(const InProcessZulip&) = delete;

  // Starts the fake on a free loopback port with the bot `email` (api key `api_key`) in it.
  // IOError when the server cannot bind; AddUser's error when the user is refused.
  Status Start(std::string email, std::string api_key);

  // The running server (after an OK Start()).
  fake_zulip::FakeZulipServer& server() { return *server_; }
  fake_zulip::FakeZulipServer* operator->() { return server_.get(); }
  // "http://127.0.0.1:<port>".
  std::string site() const { return server_->url(); }
  const std::string& email() const { return email_; }
  const std::string& api_key() const { return api_key_; }

  // An account of the bridge named `name` for the bot: the fake's site, the bot's email and key.
  AccountConfig Account(const std::string& name) const;
  // What a ZulipClient needs to act as the bot.
  ZulipClientOptions ClientOptions() const;

 private:
  std::unique_ptr<fake_zulip::FakeZulipServer> server_;
  std::string email_;
  std::string api_key_;
};

}  // namespace zb::testing

#endif  // ZB_TESTS_FAKE_ZULIP_FIXTURE_H_
