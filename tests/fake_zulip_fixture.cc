#include "tests/fake_zulip_fixture.h"

#include <utility>

namespace zb::testing {

Status InProcessZulip::Start(std::string email, std::string api_key) {
  StatusOr<std::unique_ptr<fake_zulip::FakeZulipServer>> server =
      fake_zulip::FakeZulipServer::Start({});
  if (!server.ok()) return server.status();
  fake_zulip::FakeUser bot;
  bot.email = email;
  bot.api_key = api_key;
  if (StatusOr<int64_t> added = (*server)->AddUser(bot); !added.ok()) return added.status();
  server_ = std::move(*server);
  email_ = std::move(email);
  api_key_ = std::move(api_key);
  return Status::Ok();
}

AccountConfig InProcessZulip::Account(const std::string& name) const {
  AccountConfig account;
  account.name = name;
  account.site = site();
  account.email = email_;
  account.api_key = Secret(api_key_);
  return account;
}

ZulipClientOptions InProcessZulip::ClientOptions() const {
  ZulipClientOptions options;
  options.site = site();
  options.email = email_;
  options.api_key = api_key_;
  return options;
}

}  // namespace zb::testing
