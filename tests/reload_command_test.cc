// What `zulip-bridge reload` reads from /readyz: whom to signal and how the last reload went.
// Fails when a field is misread or a body without them is taken for a daemon that can reload.
#include "daemon/ops/reload_command.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/test_support.h"

namespace zb {
namespace {

using ::testing::HasSubstr;
using ::zb::testing::IsOk;

TEST(ReloadCommandTest, ReadsThePidAndTheLastOutcome) {
  StatusOr<ReloadState> state = ParseReloadState(
      R"({"ready":true,"pid":4242,"reload":{"generation":3,"applied":false,)"
      R"("message":"changed: kafka.brokers; restart"},"accounts":[],"parked":[]})");
  ASSERT_THAT(state.status(), IsOk());
  EXPECT_EQ(state->pid, 4242);
  EXPECT_EQ(state->generation, 3u);
  EXPECT_FALSE(state->applied);
  EXPECT_EQ(state->message, "changed: kafka.brokers; restart");

  state = ParseReloadState(R"({"pid":7,"reload":{"generation":0,"applied":false,"message":""}})");
  ASSERT_THAT(state.status(), IsOk());
  EXPECT_EQ(state->generation, 0u);
}

TEST(ReloadCommandTest, RefusesAnAnswerWithoutPidOrReload) {
  struct Case {
    const char* body;
    const char* names;
  };
  for (const Case& c :
       {Case{R"({"ready":true,"accounts":[]})", "pid"},
        Case{R"({"pid":0,"reload":{"generation":1}})", "pid"}, Case{R"({"pid":12})", "reload"},
        Case{R"({"pid":12,"reload":{"applied":true}})", "reload.generation"},
        Case{"not json", "JSON"}}) {
    StatusOr<ReloadState> state = ParseReloadState(c.body);
    ASSERT_FALSE(state.ok()) << c.body;
    EXPECT_TRUE(state.status().IsInvalidArgument()) << c.body;
    EXPECT_THAT(state.status().message(), HasSubstr(c.names)) << c.body;
  }
}

}  // namespace
}  // namespace zb
