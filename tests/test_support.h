// Helpers shared by the unit and integration tests: temp directories, waiting on a condition
// with a deadline (never a bare sleep), and the environment the test command sets up.
#ifndef ZB_TESTS_TEST_SUPPORT_H_
#define ZB_TESTS_TEST_SUPPORT_H_

#include <chrono>
#include <functional>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon/base/status.h"

namespace zb::testing {

// A fresh directory under $TMPDIR, removed with everything in it when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  // path() + "/" + name
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Polls `condition` every few milliseconds until it is true (returns true) or `timeout`
// passes (returns false). The way tests wait for something to happen.
bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

// The Kafka bootstrap address of the broker the test command started (ZB_KAFKA_BROKERS).
// When it is unset, the calling test is skipped on a developer's machine and fails under
// CI=true, where a test that cannot reach Kafka must not pass silently.
#define ZB_REQUIRE_KAFKA(brokers_var)                                                   \
  std::string brokers_var = ::zb::testing::KafkaBrokersFromEnv();                       \
  if (brokers_var.empty()) {                                                            \
    if (::zb::testing::RunningInCi()) FAIL() << "ZB_KAFKA_BROKERS is not set under CI"; \
    GTEST_SKIP() << "ZB_KAFKA_BROKERS is not set; run the tests through ./dev test";    \
  }

std::string KafkaBrokersFromEnv();
bool RunningInCi();

// A topic name no other test uses: "<prefix>.<pid>.<counter>".
std::string UniqueTopic(const std::string& prefix);

// gmock matchers for Status and StatusOr.
MATCHER(IsOk, "is OK") {
  (void)result_listener;
  if constexpr (requires { arg.status(); }) {
    *result_listener << arg.status().ToString();
    return arg.ok();
  } else {
    *result_listener << arg.ToString();
    return arg.ok();
  }
}

}  // namespace zb::testing

#endif  // ZB_TESTS_TEST_SUPPORT_H_
