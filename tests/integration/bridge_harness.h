// What the integration tests need to run the real thing: the fake Zulip server and the bridge
// as subprocesses over loopback sockets, and a Kafka reader on the real broker that
// `./dev test` started. Every wait is a condition with a deadline.
#ifndef ZB_TESTS_INTEGRATION_BRIDGE_HARNESS_H_
#define ZB_TESTS_INTEGRATION_BRIDGE_HARNESS_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/test_support.h"

namespace zb::testing {

// A child process with its stdout and stderr in `log_path`. Killed (SIGKILL) when destroyed
// if still running.
class Subprocess {
 public:
  Subprocess(std::vector<std::string> argv, std::string log_path,
             std::vector<std::string> extra_env = {});
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  void Signal(int signo);
  // Waits for exit; the exit code (128+signal when killed), or nullopt after `timeout`.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::string log_path_;
};

struct HttpAnswer {
  long status = 0;  // 0: no answer
  std::string body;
};
HttpAnswer HttpGet(const std::string& url);
HttpAnswer HttpPostJson(const std::string& url, const std::string& json);

// The fake Zulip server as a process (tests/fake_zulip, `fake-zulip`), with its users.
class FakeZulip {
 public:
  struct User {
    std::string email;
    std::string api_key;
  };
  FakeZulip(const std::string& dir, std::vector<User> users,
            std::vector<std::string> extra_args = {});
  std::string site() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  HttpAnswer Control(const std::string& path, const std::string& json = "{}");
  HttpAnswer ControlGet(const std::string& path);
  // Pushes `event_json` to every queue of `email`; returns the ids it got, one per queue.
  std::vector<int64_t> PushEvent(const std::string& email, const std::string& event_json);
  // Pushes `event_json` to one queue whatever its filters say; returns its id, or -1.
  int64_t PushEventToQueue(const std::string& queue_id, const std::string& event_json);
  // Queue ids currently registered for `email`.
  std::vector<std::string> QueuesOf(const std::string& email);
  // Waits until `email` has exactly one queue, other than `not_this`; its id, or "" when that
  // did not happen within `timeout`.
  std::string WaitForOneQueue(const std::string& email, const std::string& not_this = "",
                              std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Every event the server made for `queue_id`: id -> exact event bytes.
  std::map<int64_t, std::string> GroundTruth(const std::string& queue_id);
  Subprocess& process() { return *process_; }

 private:
  int port_ = 0;
  std::unique_ptr<Subprocess> process_;
};

// A Kafka record as the tests see it.
struct ReadRecord {
  std::string topic;
  int32_t partition = -1;
  int64_t offset = -1;
  std::optional<std::string> key;
  std::string value;
  std::map<std::string, std::string> headers;
  int64_t timestamp_ms = 0;
};

// Reads every record of `topics` from the beginning until `want(records so far)` says enough
// or `timeout` passes. Topics that do not exist yet are waited for. Takes every record
// librdkafka has ready (up to 10,000) before it asks `want` again, so tens of thousands of
// records read in seconds; `want` should be cheap in the number of records.
std::vector<ReadRecord> ReadTopics(const std::string& brokers, const std::set<std::string>& topics,
                                   const std::function<bool(const std::vector<ReadRecord>&)>& want,
                                   std::chrono::milliseconds timeout);

// Path of a built program (ZB_BRIDGE_BIN, ZB_FAKE_ZULIP_BIN).
std::string BridgeBinary();
std::string FakeZulipBinary();

// Writes `text` to `path` with mode 0600.
void WriteFile(const std::string& path, const std::string& text);

// One item of the `accounts:` list of the bridge's configuration: the account `name`, acting as
// the user `email` of the Zulip (fake) at `site`, its key read from `api_key_file`; `extra`
// (YAML lines indented by four, "    key: value\n") follows its four keys. The way every test
// points an account at the fake Zulip.
std::string AccountYaml(const std::string& name, const std::string& site, const std::string& email,
                        const std::string& api_key_file, const std::string& extra = "");

// A TCP proxy on 127.0.0.1:0 in front of `upstream_port` that notes, with the steady clock,
// when each HTTP request starts and when each response starts, as seen on the wire between
// the bridge and the fake Zulip: the measure of how long the bridge waited between a refusal
// and its next attempt. No pipelining is assumed (curl does not pipeline): on a connection, the
// first bytes after a response began start the next request. An upstream reset is passed on as
// a reset, an upstream FIN as a FIN.
class RecordingProxy {
 public:
  struct Entry {
    std::chrono::steady_clock::time_point at;
    int connection = 0;
    bool is_request = false;  // false: the start of a response
    std::string first_line;   // "GET /api/v1/events?... HTTP/1.1" or "HTTP/1.1 429 ..."
    std::string head;         // the bytes of the chunk that started it (headers, at most 4 KiB)
  };
  explicit RecordingProxy(int upstream_port);
  ~RecordingProxy();
  RecordingProxy(const RecordingProxy&) = delete;
  RecordingProxy& operator=(const RecordingProxy&) = delete;
  int port() const { return port_; }
  std::string site() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<Entry> Entries() const;

  struct Impl;

 private:
  int port_ = 0;
  std::unique_ptr<Impl> impl_;
};

// "Basic <base64(email:api_key)>" as the bridge sends it, to tell accounts apart in the proxy's
// entries.
std::string BasicAuthorization(const std::string& email, const std::string& api_key);

// The test broker's control script (ZB_KAFKA_CTL, tests/kafka/broker) on its directory
// (ZB_KAFKA_DIR): `verb` is stop, start, kill or restart. Returns the script's exit code (-1 when
// the variables are unset or it did not finish within `timeout`). A test that calls it starts
// with ZB_REQUIRE_KAFKA_CTL_AND_DIR().
int KafkaCtl(const std::string& verb, std::chrono::milliseconds timeout);

// Runs `command` with sh, stderr with stdout; its output, and a test failure (naming the
// command, its status and output) when it fails.
std::string Shell(const std::string& command);

// A broker of a test's own (tests/kafka/broker on a directory of the test's), for tests that
// stop it or need another Kafka release (`kafka_version`, empty: the script's own), so that no
// other test is disturbed. Stopped when destroyed.
class PrivateBroker {
 public:
  explicit PrivateBroker(std::string dir, std::string kafka_version = "");
  ~PrivateBroker();
  PrivateBroker(const PrivateBroker&) = delete;
  PrivateBroker& operator=(const PrivateBroker&) = delete;
  // Runs `broker <verb> DIR` (start, stop, secure-address...) and returns its last output line
  // (the address, for start); a test failure when it fails or ZB_KAFKA_CTL is unset.
  std::string Run(const std::string& verb);
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::string kafka_version_;
};

// The port the bridge's health server bound, read from its log line "HTTP listener up"; 0 when
// it is not there yet.
int HealthPortFromLog(const std::string& log);

// A loopback TCP port that was free a moment ago (bound, then closed), for a listener whose
// address must be known before it starts (the bridge's http.listen for `status`, nginx).
int FreeLoopbackPort();

// The base of the fixtures that run the bridge as a subprocess against the real broker: the
// broker's address (without it a test fails under CI and is skipped on a developer's machine
// outside ./dev test), a temporary directory, the bridge, and the tail of its log on failure.
// A derived SetUp calls BridgeTest::SetUp() first and returns when IsSkipped() or
// HasFatalFailure().
class BridgeTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  std::string config_path() const { return dir_.Sub("zulip-bridge.yaml"); }
  // Starts `zulip-bridge --config config_path()` with `extra_env`; its log is dir/bridge.log.
  void StartBridge(std::vector<std::string> extra_env = {});
  // SIGTERM, then expects a clean exit (0) within 40 s.
  void StopBridge();
  // Runs `zulip-bridge <args> --config config_path()` to the end (90 s at most): its exit code
  // (-1 when it did not finish) and its output.
  std::pair<int, std::string> RunCommand(std::vector<std::string> args);

  TempDir dir_;
  std::string brokers_;
  std::unique_ptr<Subprocess> bridge_;

 private:
  int commands_ = 0;
};

}  // namespace zb::testing

#endif  // ZB_TESTS_INTEGRATION_BRIDGE_HARNESS_H_
