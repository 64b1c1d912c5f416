// EventLoop: the one thread that owns every account's state.
//
// It multiplexes three things over one epoll instance:
//  - file descriptors (libcurl's sockets, through CurlTransport's CURLMOPT_SOCKETFUNCTION),
//  - timers (backoff waits, curl's CURLMOPT_TIMERFUNCTION, request deadlines),
//  - tasks posted from other threads (Kafka delivery reports, the signal thread), woken through
//    an eventfd.
// So thousands of long-polls cost a socket each, not a thread each.
//
// Threads: Run() is called by one thread, the loop thread. Post(), Wakeup() and Stop() may be
// called from any thread. Everything else (timers, fd watches) must be called on the loop
// thread, usually from inside a callback; callbacks always run on the loop thread, one at a
// time, never re-entrantly from inside AddTimer/WatchFd/Post.
#ifndef ZB_DAEMON_BASE_EVENT_LOOP_H_
#define ZB_DAEMON_BASE_EVENT_LOOP_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "daemon/base/clock.h"
#include "daemon/base/mutex.h"
#include "daemon/base/scheduler.h"
#include "daemon/base/status.h"

namespace zb {

class EventLoop final : public Scheduler {
 public:
  using FdCallback = std::function<void(uint32_t epoll_events)>;

  // Builds the epoll instance and the wakeup eventfd. IOError with strerror if either fails
  // (out of descriptors). Timers are measured with `clock`, which must outlive the loop; with a
  // FakeClock, a test advances the clock and then calls Wakeup() so due timers fire.
  static StatusOr<std::unique_ptr<EventLoop>> Create(Clock& clock);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Turns the loop on the calling thread until Stop(). Returns OK after Stop(); IOError if
  // epoll_wait fails for a reason other than EINTR. Tasks posted before Stop() are run before
  // Run() returns; timers still pending do not fire.
  Status Run();

  // Makes Run() return after the current callback. Any thread, even before Run() starts;
  // final: a stopped loop's Run() only runs the posted tasks and returns.
  void Stop();

  // Runs `task` on the loop thread at the next turn, in the order posted. Any thread. Tasks
  // posted after Run() returned are destroyed with the loop, not run.
  void Post(std::function<void()> task) override;

  // Makes the loop re-check its timers and posted tasks now. Any thread.
  void Wakeup() const;

  // Calls `callback` once, on the loop thread, when Now() >= now + delay (or `deadline`).
  // Timers due at the same time fire in the order they were added. Loop thread only.
  TimerId AddTimer(Clock::Duration delay, std::function<void()> callback) override;
  TimerId AddTimerAt(Clock::TimePoint deadline, std::function<void()> callback) override;
  // Returns true if the timer was pending and will now never fire; false if it already fired,
  // was cancelled, or is 0. Loop thread only; safe from inside any callback, the timer's own
  // included.
  bool CancelTimer(TimerId id) override;

  // Calls `callback(epoll events)` whenever `fd` is ready for `events` (EPOLLIN, EPOLLOUT;
  // level-triggered). One watch per fd: watching an fd again replaces its events and callback.
  // IOError if epoll_ctl refuses the fd. Loop thread only.
  Status WatchFd(int fd, uint32_t events, FdCallback callback);
  // Stops watching `fd`; its callback is not called again, even for readiness already
  // collected in the current turn. Call it before closing the fd. Loop thread only.
  void UnwatchFd(int fd);

  // True on the thread inside Run().
  bool IsLoopThread() const { return loop_thread_.load() == std::this_thread::get_id(); }
  // True on the thread inside Run(), and on any thread while Run() is not running.
  bool OnSchedulerThread() const override {
    const std::thread::id runner = loop_thread_.load();
    return runner == std::thread::id() || runner == std::this_thread::get_id();
  }

  Clock& clock() const { return clock_; }

  // Number of timers and fd watches pending, for tests and metrics. Loop thread only.
  size_t PendingTimersForTest() const { return timers_.size(); }
  size_t WatchedFdsForTest() const { return fds_.size(); }

 private:
  EventLoop(Clock& clock, int epoll_fd, int wake_fd);

  struct FdWatch {
    uint64_t token;  // in epoll_event.data: tells a stale readiness from the current watch
    uint32_t events;
    std::shared_ptr<FdCallback> callback;
  };

  void RunPosted();
  void RunDueTimers();
  int NextTimeoutMs() const;

  Clock& clock_;
  const int epoll_fd_;
  const int wake_fd_;
  std::atomic<bool> stop_{false};
  std::atomic<std::thread::id> loop_thread_{};

  mutable Mutex posted_mu_;
  std::vector<std::function<void()>> posted_ ZB_GUARDED_BY(posted_mu_);

  // Loop thread only.
  TimerId next_timer_id_ = 1;
  std::map<std::pair<Clock::TimePoint, TimerId>, std::function<void()>> timers_;
  std::unordered_map<TimerId, Clock::TimePoint> timer_deadlines_;
  uint64_t next_fd_token_ = 1;
  std::unordered_map<int, FdWatch> fds_;
  std::unordered_map<uint64_t, int> fd_by_token_;
};

}  // namespace zb

#endif  // ZB_DAEMON_BASE_EVENT_LOOP_H_
