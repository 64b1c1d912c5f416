// Helpers shared by the unit and integration tests: temp directories, waiting on a condition
// with a deadline (never a bare sleep), and the environment the test command sets up.
#ifndef ZB_TESTS_TEST_SUPPORT_H_
#define ZB_TESTS_TEST_SUPPORT_H_

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon/base/status.h"

namespace zb {
class EventLoop;
}  // namespace zb

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

// What a test needs from the environment the test command (./dev test) sets up, and the one
// rule for when it is not there: under CI=true the test FAILS, since in CI everything is set up
// and a test that cannot run must not pass silently; on a developer's machine it is SKIPPED
// with a message that says how to run it. Each Missing*() returns what is missing ("" when
// it is there); each ZB_REQUIRE_* macro applies the rule to one of them and, like FAIL() and
// GTEST_SKIP(), returns from the calling function (a TEST body, SetUp or another void
// function), so a fixture's SetUp that calls one checks IsSkipped() || HasFatalFailure() after.
//
// The shared broker's bootstrap address, ZB_KAFKA_BROKERS.
std::string MissingKafkaBrokers();
// The broker control script, ZB_KAFKA_CTL (tests/kafka/broker): enough for a PrivateBroker.
std::string MissingKafkaCtl();
// The script and the shared broker's directory, ZB_KAFKA_CTL and ZB_KAFKA_DIR: to stop, start
// or read the files of the broker every test shares (KafkaCtl()).
std::string MissingKafkaCtlAndDir();
// The Kafka 3 release for a broker of a test's own, ZB_KAFKA3_VERSION.
std::string MissingKafka3Version();
// The shared broker's SASL_SSL listener: its test CA, ZB_KAFKA_DIR/tls/ca.pem. tests/kafka/broker
// makes it when it formats a directory, and ./dev test starts every run in a fresh one; only a
// directory formatted before the listener existed lacks it.
std::string MissingSaslListener();
// nginx and openssl, for TLS (and HTTP/2) in front of a test server (scripts/install-deps).
std::string MissingNginx();

// The rule itself, on a Missing*() value.
#define ZB_REQUIRE(missing_expr)                                             \
  do {                                                                       \
    const std::string zb_missing_ = (missing_expr);                          \
    if (!zb_missing_.empty()) {                                              \
      if (::zb::testing::RunningInCi()) {                                    \
        FAIL() << zb_missing_ << " (CI=true: a test that cannot run fails)"; \
      }                                                                      \
      GTEST_SKIP() << zb_missing_ << "; run the tests through ./dev test";   \
    }                                                                        \
  } while (false)

// Declares `std::string brokers_var`, the shared broker's address (ZB_KAFKA_BROKERS).
#define ZB_REQUIRE_KAFKA(brokers_var)               \
  ZB_REQUIRE(::zb::testing::MissingKafkaBrokers()); \
  const std::string brokers_var = ::zb::testing::KafkaBrokersFromEnv()
#define ZB_REQUIRE_KAFKA_CTL() ZB_REQUIRE(::zb::testing::MissingKafkaCtl())
#define ZB_REQUIRE_KAFKA_CTL_AND_DIR() ZB_REQUIRE(::zb::testing::MissingKafkaCtlAndDir())
// Declares `std::string version_var`, the Kafka 3 release (ZB_KAFKA3_VERSION).
#define ZB_REQUIRE_KAFKA3(version_var)               \
  ZB_REQUIRE(::zb::testing::MissingKafka3Version()); \
  const std::string version_var = ::zb::testing::EnvOrEmpty("ZB_KAFKA3_VERSION")
#define ZB_REQUIRE_SASL_LISTENER() ZB_REQUIRE(::zb::testing::MissingSaslListener())
#define ZB_REQUIRE_NGINX() ZB_REQUIRE(::zb::testing::MissingNginx())

// The value of environment variable `name`, "" when it is unset.
std::string EnvOrEmpty(const char* name);
// ZB_KAFKA_BROKERS, ZB_KAFKA_CTL, ZB_KAFKA_DIR ("" when unset).
std::string KafkaBrokersFromEnv();
std::string KafkaCtlFromEnv();
std::string KafkaDirFromEnv();
// CI=true in the environment.
bool RunningInCi();

// The first executable file called `name` in `dirs`, in order; "" when there is none. Pure but
// for the file system.
std::string FindExecutable(const std::string& name, const std::vector<std::string>& dirs);
// Where to look for a test tool: $PATH's directories, then /usr/local/sbin, /usr/sbin and /sbin,
// since Debian installs nginx in /usr/sbin, which a non-root user's PATH leaves out.
std::vector<std::string> ToolSearchPath();
// FindExecutable(name, ToolSearchPath()).
std::string FindTool(const std::string& name);

// Runs `task` on `loop`'s thread (the loop must be running, on another thread) and waits up
// to `timeout` for it to finish. True when it ran; on a timeout, a test failure and false.
//
// `task` may capture the caller's frame by reference: the helper never returns while the loop
// could still run it. Its state lives in a shared_ptr that the posted task holds, not on the
// caller's stack. On a timeout before the task started (the loop is stuck elsewhere, or
// stopped), the task is cancelled: when the loop reaches it, it runs nothing and touches
// nothing of the caller's, so the test can fail and go on. On a timeout while the task runs
// (the task itself is stuck, with references into the caller's frame in use), no safe return
// is possible: the test binary aborts with a message saying so. Returning would let the task
// write into a dead frame; stopping or joining the loop cannot interrupt a stuck task.
bool RunOnLoop(EventLoop& loop, std::function<void()> task,
               std::chrono::milliseconds timeout = std::chrono::seconds(30));

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
