// The fake Zulip server: ZulipCore behind libevent's evhttp on a thread of its own, so that one
// process holds thousands of parked long-polls. Tests use it in-process (Start on port 0, then
// the methods below); the fake-zulip program wraps it for tests that need a separate process,
// which drive it through the control interface under /_fake/ on the same port (README.md).
//
// Thread-safety: every public method may be called from any thread. Each one runs on the
// server's loop thread and waits for it, so a method returns after the effect happened (a
// pushed event has already been written to a parked long-poll's connection).
#ifndef ZB_TESTS_FAKE_ZULIP_FAKE_ZULIP_SERVER_H_
#define ZB_TESTS_FAKE_ZULIP_FAKE_ZULIP_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "daemon/base/status.h"
#include "tests/fake_zulip/fake_clock.h"
#include "tests/fake_zulip/zulip_core.h"

namespace zb::fake_zulip {

struct FakeZulipOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port; see port()
  // Fake seconds per real second (0: time stands still unless AdvanceTime moves it).
  double time_scale = 1.0;
  // Fake Unix time at start; 0: the real time now.
  double start_time = 0;
  // Drives queue ids and heartbeat jitter.
  uint64_t seed = 1;
  // Serve the control interface under /_fake/.
  bool control_interface = true;
};

// A fault the server injects into API requests (not into /_fake/). The first rule whose path
// prefix matches and whose dice roll comes up fires; a rule with a count is spent after that
// many firings.
struct FaultRule {
  enum class Kind {
    k500,            // 500 with Django's JSON error body
    k502,            // 502 with nginx's HTML page, as during a restart
    k429,            // 429 RATE_LIMIT_HIT with retry-after (delay_secs, default 1)
    kSlow,           // handled normally after delay_secs of real time
    kTruncatedJson,  // the normal answer, its body cut in half (Content-Length matches)
    kReset,          // no answer: the connection is reset (SO_LINGER 0, an RST)
    kCloseMidBody,   // the headers and half the body, then the connection closes
  };
  Kind kind = Kind::k500;
  double probability = 1.0;  // chance per matching request
  int64_t count = -1;        // fires at most this many times; -1: no limit
  std::string path_prefix = "/api/v1/";
  double delay_secs = 0;
};
// "500", "502", "429", "slow", "truncated_json", "reset", "close_mid_body".
StatusOr<FaultRule::Kind> ParseFaultKind(std::string_view name);
std::string FaultKindName(FaultRule::Kind kind);

class FakeZulipServer {
 public:
  // Binds, starts the loop thread. IOError if the address cannot be bound.
  static StatusOr<std::unique_ptr<FakeZulipServer>> Start(FakeZulipOptions options);
  // Stops the loop; parked long-polls are dropped without an answer.
  ~FakeZulipServer();
  FakeZulipServer(const FakeZulipServer&) = delete;
  FakeZulipServer& operator=(const FakeZulipServer&) = delete;

  int port() const { return port_; }
  // "http://127.0.0.1:<port>", the site a client is given.
  std::string url() const;

  // Runs `fn` on the loop thread with the core and returns its result. The way to reach any
  // ZulipCore method the conveniences below leave out. Must not be called from `fn` itself.
  template <typename F>
  auto WithCore(F fn) -> std::invoke_result_t<F, ZulipCore&> {
    using R = std::invoke_result_t<F, ZulipCore&>;
    if constexpr (std::is_void_v<R>) {
      RunOnLoop([&](ZulipCore& core) { fn(core); });
    } else {
      std::optional<R> result;
      RunOnLoop([&](ZulipCore& core) { result.emplace(fn(core)); });
      return std::move(*result);
    }
  }

  StatusOr<int64_t> AddUser(FakeUser user);
  // See ZulipCore::PushEvent: (queue id, event id) for each queue that took the event.
  StatusOr<std::vector<std::pair<std::string, int64_t>>> PushEvent(std::string_view email,
                                                                   std::string_view json);
  StatusOr<int64_t> PushEventToQueue(std::string_view queue_id, std::string_view json);
  Status DropQueue(std::string_view queue_id);
  size_t DropAllQueues();
  Status SetUserActive(std::string_view email, bool active);
  void SetRealmActive(bool active);
  // "secs:requests,..." for one user, as an administrator sets UserProfile.rate_limits.
  Status SetRateLimit(std::string_view email, std::string_view rules);
  Status SetRegisterWindowEvents(std::string_view email, std::vector<std::string> events);
  // See ZulipCore::Emit.
  StatusOr<EmitResult> Emit(EmitRequest request);
  // The organisation: see ZulipCore::AddChannel, SetSubscribed, SendMessages and
  // MessageGroundTruth (one JSON line per message).
  StatusOr<int64_t> AddChannel(std::string_view name, bool invite_only,
                               const std::vector<std::string>& subscriber_emails);
  Status SetSubscribed(std::string_view email, std::string_view channel, bool subscribed);
  StatusOr<SendMessageResult> SendMessages(SendMessageRequest request);
  std::string MessageGroundTruth();
  // Queues created more than `secs` fake seconds ago; returns how many were dropped.
  size_t DropQueuesOlderThan(double secs);
  // See ZulipCore::Restart; the parked GETs' connections are closed without an answer.
  // Returns how many were.
  size_t Restart(bool keep_queues);
  void AddFault(FaultRule rule);
  void ClearFaults();
  std::vector<QueueInfo> Queues();
  std::optional<QueueInfo> Queue(std::string_view queue_id);
  StatusOr<std::string> GroundTruth(std::string_view queue_id);
  int RegisterCount(std::string_view email);
  size_t parked_polls();

  // Time. AdvanceTime steps through every timer due on the way (heartbeats fire, GC sweeps
  // run, each at its own fake time) and returns when they have.
  void AdvanceTime(double seconds);
  void SetTimeScale(double scale);
  double Now() const { return clock_.Now(); }

 private:
  struct Impl;
  explicit FakeZulipServer(FakeZulipOptions options);
  void RunOnLoop(const std::function<void(ZulipCore&)>& fn);

  FakeZulipOptions options_;
  FakeClock clock_;
  int port_ = 0;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zb::fake_zulip

#endif  // ZB_TESTS_FAKE_ZULIP_FAKE_ZULIP_SERVER_H_
