#include "tests/test_support.h"

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>

#include "daemon/base/event_loop.h"

namespace zb::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base && *base ? base : "/tmp") + "/zb_test.XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) std::abort();
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string EnvOrEmpty(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

std::string KafkaBrokersFromEnv() { return EnvOrEmpty("ZB_KAFKA_BROKERS"); }
std::string KafkaCtlFromEnv() { return EnvOrEmpty("ZB_KAFKA_CTL"); }
std::string KafkaDirFromEnv() { return EnvOrEmpty("ZB_KAFKA_DIR"); }

bool RunningInCi() { return EnvOrEmpty("CI") == "true"; }

std::string MissingKafkaBrokers() {
  return KafkaBrokersFromEnv().empty() ? "ZB_KAFKA_BROKERS is not set" : "";
}

std::string MissingKafkaCtl() { return KafkaCtlFromEnv().empty() ? "ZB_KAFKA_CTL is not set" : ""; }

std::string MissingKafkaCtlAndDir() {
  if (KafkaCtlFromEnv().empty() || KafkaDirFromEnv().empty()) {
    return "ZB_KAFKA_CTL and ZB_KAFKA_DIR are not both set: the shared broker cannot be controlled";
  }
  return "";
}

std::string MissingKafka3Version() {
  return EnvOrEmpty("ZB_KAFKA3_VERSION").empty() ? "ZB_KAFKA3_VERSION is not set" : "";
}

std::string MissingSaslListener() {
  std::string dir = KafkaDirFromEnv();
  if (dir.empty()) return "ZB_KAFKA_DIR is not set: no test broker with a SASL_SSL listener";
  std::string ca = dir + "/tls/ca.pem";
  if (!std::filesystem::exists(ca)) {
    // A broker directory formatted before the SASL_SSL listener existed.
    return "the test broker in " + dir +
           " has no SASL_SSL listener (no tls/ca.pem: the directory " +
           "was formatted before the listener existed, and ./dev test starts a fresh one)";
  }
  return "";
}

std::string MissingNginx() {
  std::vector<std::string> missing;
  for (const char* tool : {"nginx", "openssl"}) {
    if (FindTool(tool).empty()) missing.push_back(tool);
  }
  if (missing.empty()) return "";
  std::string names = missing[0] + (missing.size() > 1 ? " and " + missing[1] : "");
  return names + " not installed (scripts/install-deps installs both)";
}

std::string FindExecutable(const std::string& name, const std::vector<std::string>& dirs) {
  for (const std::string& dir : dirs) {
    if (dir.empty()) continue;
    std::string path = dir + "/" + name;
    std::error_code ignored;
    if (std::filesystem::is_regular_file(path, ignored) && access(path.c_str(), X_OK) == 0) {
      return path;
    }
  }
  return "";
}

std::vector<std::string> ToolSearchPath() {
  std::vector<std::string> dirs;
  std::string path = EnvOrEmpty("PATH");
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    dirs.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  for (const char* sbin : {"/usr/local/sbin", "/usr/sbin", "/sbin"}) dirs.push_back(sbin);
  return dirs;
}

std::string FindTool(const std::string& name) { return FindExecutable(name, ToolSearchPath()); }

namespace {

// What RunOnLoop shares with the task it posts; owned by both, so whichever ends last frees it.
struct LoopTask {
  enum class Phase { kPosted, kRunning, kDone, kCancelled };
  std::mutex mu;
  std::condition_variable cv;
  Phase phase = Phase::kPosted;
  std::function<void()> fn;
};

}  // namespace

bool RunOnLoop(EventLoop& loop, std::function<void()> task, std::chrono::milliseconds timeout) {
  if (loop.IsLoopThread()) {
    ADD_FAILURE() << "RunOnLoop called on the loop thread: it would wait for itself";
    return false;
  }
  auto state = std::make_shared<LoopTask>();
  state->fn = std::move(task);
  loop.Post([state] {
    {
      std::lock_guard lock(state->mu);
      if (state->phase == LoopTask::Phase::kCancelled) return;  // the caller has gone
      state->phase = LoopTask::Phase::kRunning;
    }
    state->fn();
    std::lock_guard lock(state->mu);
    state->phase = LoopTask::Phase::kDone;
    state->cv.notify_all();
  });
  std::unique_lock lock(state->mu);
  if (state->cv.wait_for(lock, timeout, [&] { return state->phase == LoopTask::Phase::kDone; })) {
    return true;
  }
  if (state->phase == LoopTask::Phase::kRunning) {
    // The task is in the middle of using the caller's frame; returning would free it under it.
    std::cerr << "RunOnLoop: a task has run on the loop for more than " << timeout.count()
              << " ms and may hold references into its caller's stack frame; aborting the test "
                 "binary rather than return while it runs\n";
    std::abort();
  }
  state->phase = LoopTask::Phase::kCancelled;
  ADD_FAILURE() << "RunOnLoop: the loop did not run the task within " << timeout.count()
                << " ms (stuck, or not running); the task is cancelled";
  return false;
}

std::string UniqueTopic(const std::string& prefix) {
  static std::atomic<int> counter{0};
  return prefix + "." + std::to_string(getpid()) + "." + std::to_string(counter++);
}

}  // namespace zb::testing
