// The test helpers that the other tests lean on: finding a tool, the require-what-you-need rule
// and RunOnLoop's timeout, which must never leave the loop a task into a dead stack frame.
#include "tests/test_support.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <thread>

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include "daemon/base/clock.h"
#include "daemon/base/event_loop.h"

namespace zb::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

// Sets (or, with nullopt, unsets) an environment variable for the scope; restores it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      setenv(name, value->c_str(), 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

void WriteFileWithMode(const std::string& path, mode_t mode) {
  std::ofstream(path) << "#!/bin/sh\n";
  ASSERT_EQ(chmod(path.c_str(), mode), 0);
}

TEST(FindExecutableTest, FindsTheFirstExecutableFileInTheDirectoriesInOrder) {
  TempDir dir;
  std::filesystem::create_directories(dir.Sub("a"));
  std::filesystem::create_directories(dir.Sub("b"));
  std::filesystem::create_directories(dir.Sub("c/tool"));  // a directory is not a program
  WriteFileWithMode(dir.Sub("a/tool"), 0644);              // nor is a file that is not executable
  WriteFileWithMode(dir.Sub("b/tool"), 0755);
  EXPECT_EQ(FindExecutable("tool", {dir.Sub("c"), dir.Sub("a"), "", dir.Sub("b")}),
            dir.Sub("b/tool"));
  EXPECT_EQ(FindExecutable("tool", {dir.Sub("a"), dir.Sub("c")}), "");
  EXPECT_EQ(FindExecutable("other", {dir.Sub("b")}), "");
  EXPECT_EQ(FindExecutable("tool", {}), "");
}

TEST(ToolSearchPathTest, IsPathThenTheSbinDirectories) {
  ScopedEnv path("PATH", "/opt/x/bin::/usr/bin");
  EXPECT_EQ(ToolSearchPath(), (std::vector<std::string>{"/opt/x/bin", "", "/usr/bin",
                                                        "/usr/local/sbin", "/usr/sbin", "/sbin"}));
}

TEST(RequirementTest, SaysWhatIsMissing) {
  {
    ScopedEnv brokers("ZB_KAFKA_BROKERS", std::nullopt);
    EXPECT_EQ(MissingKafkaBrokers(), "ZB_KAFKA_BROKERS is not set");
  }
  {
    ScopedEnv brokers("ZB_KAFKA_BROKERS", "127.0.0.1:9092");
    EXPECT_EQ(MissingKafkaBrokers(), "");
  }
  {
    ScopedEnv ctl("ZB_KAFKA_CTL", "/x/broker");
    ScopedEnv dir("ZB_KAFKA_DIR", std::nullopt);
    EXPECT_EQ(MissingKafkaCtl(), "");
    EXPECT_THAT(MissingKafkaCtlAndDir(), HasSubstr("ZB_KAFKA_DIR"));
  }
  {
    ScopedEnv version("ZB_KAFKA3_VERSION", std::nullopt);
    EXPECT_EQ(MissingKafka3Version(), "ZB_KAFKA3_VERSION is not set");
  }
}

TEST(RequirementTest, TheSaslListenerIsTheTestCaInTheBrokerDirectory) {
  TempDir broker;
  ScopedEnv dir("ZB_KAFKA_DIR", broker.path());
  EXPECT_THAT(MissingSaslListener(), HasSubstr("no SASL_SSL listener"));
  std::filesystem::create_directories(broker.Sub("tls"));
  std::ofstream(broker.Sub("tls/ca.pem")) << "a CA\n";
  EXPECT_EQ(MissingSaslListener(), "");
}

TEST(RequirementTest, NginxIsMissingWhenNeitherPathNorSbinHasIt) {
  TempDir bin;
  WriteFileWithMode(bin.Sub("openssl"), 0755);
  ScopedEnv path("PATH", bin.path());
  if (!FindExecutable("nginx", {"/usr/local/sbin", "/usr/sbin", "/sbin"}).empty()) {
    EXPECT_EQ(MissingNginx(), "");  // found in an sbin directory whatever PATH says
  } else {
    EXPECT_EQ(MissingNginx(), "nginx not installed (scripts/install-deps installs both)");
  }
}

void RequireKafkaUnderCi() {
  ScopedEnv ci("CI", "true");
  ScopedEnv brokers("ZB_KAFKA_BROKERS", std::nullopt);
  ZB_REQUIRE_KAFKA(brokers_var);
  ADD_FAILURE() << "went on without a broker: " << brokers_var;
}

TEST(RequirementTest, FailsUnderCi) {
  EXPECT_FATAL_FAILURE(RequireKafkaUnderCi(),
                       "ZB_KAFKA_BROKERS is not set (CI=true: a test that cannot run fails)");
}

// A loop on a thread of its own for the test.
class RunOnLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create(RealClock::Instance());
    ASSERT_THAT(loop, IsOk());
    loop_ = std::move(*loop);
    thread_ = std::thread([this] { EXPECT_THAT(loop_->Run(), IsOk()); });
  }
  void TearDown() override {
    loop_->Stop();
    thread_.join();
  }
  std::unique_ptr<EventLoop> loop_;
  std::thread thread_;
};

TEST_F(RunOnLoopTest, RunsTheTaskOnTheLoopThreadAndWaitsForIt) {
  bool on_loop = false;
  EXPECT_TRUE(RunOnLoop(*loop_, [&] { on_loop = loop_->IsLoopThread(); }));
  EXPECT_TRUE(on_loop);
}

// The loop is busy past the timeout: RunOnLoop fails the test and returns, and the task, which
// captured the caller's frame, never runs once the loop is free.
TEST_F(RunOnLoopTest, ATimeoutCancelsTheTaskBeforeItRuns) {
  auto release = std::make_shared<std::atomic<bool>>(false);
  auto ran = std::make_shared<std::atomic<bool>>(false);
  loop_->Post([release] {
    while (!*release) std::this_thread::sleep_for(1ms);
  });
  {
    int in_this_frame = 0;
    bool returned = true;
    EXPECT_NONFATAL_FAILURE(returned = RunOnLoop(
                                *loop_,
                                [&in_this_frame, ran] {
                                  *ran = true;
                                  ++in_this_frame;
                                },
                                50ms),
                            "the loop did not run the task within 50 ms");
    EXPECT_FALSE(returned);
  }
  *release = true;
  // Anything posted after the cancelled task runs after it: once this has, it had its turn.
  EXPECT_TRUE(RunOnLoop(*loop_, [] {}));
  EXPECT_FALSE(*ran);
}

TEST_F(RunOnLoopTest, AbortsWhenTheTaskItselfOutlastsTheTimeout) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        std::atomic<bool> stuck{true};
        RunOnLoop(
            *loop_,
            [&] {
              while (stuck) std::this_thread::sleep_for(1ms);
            },
            50ms);
      },
      "may hold references into its caller's stack frame");
}

}  // namespace
}  // namespace zb::testing
