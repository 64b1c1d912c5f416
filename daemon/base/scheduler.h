// Scheduler: what the pipeline's state machines (accounts) need of the thread that owns them:
// timers and tasks run later on that same thread. The daemon's is the EventLoop; the
// deterministic simulation (tests/sim/) runs one on a simulated clock, so that a seed decides
// the order of everything.
//
// Threads: every method is called on the owning thread, and every callback runs there, one at a
// time, never re-entrantly from inside AddTimer/AddTimerAt/Post/CancelTimer. (EventLoop also
// takes Post() from any thread; callers of this interface must not rely on that.)
// ZB_DCHECK_ON_LOOP(scheduler) states that rule where a method depends on it: in debug builds
// (the ASan build the tests run) a call from another thread while the scheduler runs aborts
// with the file, line and function.
#ifndef ZB_DAEMON_BASE_SCHEDULER_H_
#define ZB_DAEMON_BASE_SCHEDULER_H_

#include <cstdint>
#include <functional>

#include "daemon/base/clock.h"

namespace zb {

class Scheduler {
 public:
  using TimerId = uint64_t;  // never 0; 0 means "no timer"

  virtual ~Scheduler() = default;

  // Runs `task` at the next turn, after what was posted before it.
  virtual void Post(std::function<void()> task) = 0;
  // Calls `callback` once when the clock reaches now + delay (or `deadline`). Timers due at the
  // same time fire in the order they were added.
  virtual TimerId AddTimer(Clock::Duration delay, std::function<void()> callback) = 0;
  virtual TimerId AddTimerAt(Clock::TimePoint deadline, std::function<void()> callback) = 0;
  // True if the timer was pending and will now never fire; false if it already fired, was
  // cancelled, or is 0. Safe from inside any callback, the timer's own included.
  virtual bool CancelTimer(TimerId id) = 0;

  // True on the thread that runs the callbacks, and on any thread while none runs them (setup
  // before the loop starts, teardown after it ends). A scheduler that is only ever driven by
  // one thread (the simulation's) keeps this default.
  virtual bool OnSchedulerThread() const { return true; }
};

namespace internal {
[[noreturn]] void DieOffSchedulerThread(const char* file, int line, const char* function);
}  // namespace internal

#ifdef NDEBUG
#define ZB_DCHECK_ON_LOOP(scheduler) static_cast<void>(0)
#else
#define ZB_DCHECK_ON_LOOP(scheduler) \
  ((scheduler).OnSchedulerThread()   \
       ? static_cast<void>(0)        \
       : ::zb::internal::DieOffSchedulerThread(__FILE__, __LINE__, __func__))
#endif

}  // namespace zb

#endif  // ZB_DAEMON_BASE_SCHEDULER_H_
