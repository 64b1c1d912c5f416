// Clock: where every component asks the time, so that tests can drive time by hand.
//
// Now() is monotonic (steady_clock): deadlines, timers and backoff are measured with it, and it
// never jumps when the wall clock is set. WallNow() is the calendar time, used only for
// timestamps that leave the process (Kafka record timestamps, gap records, logs).
#ifndef ZB_DAEMON_BASE_CLOCK_H_
#define ZB_DAEMON_BASE_CLOCK_H_

#include <chrono>

namespace zb {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Duration = std::chrono::steady_clock::duration;
  using WallTimePoint = std::chrono::system_clock::time_point;

  virtual ~Clock() = default;

  // Monotonic time. Safe to call from any thread.
  virtual TimePoint Now() const = 0;
  // Calendar time. Safe to call from any thread.
  virtual WallTimePoint WallNow() const = 0;
};

// The machine's clocks. Stateless: one instance may be shared by every component.
class RealClock final : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::steady_clock::now(); }
  WallTimePoint WallNow() const override { return std::chrono::system_clock::now(); }

  // A process-wide instance, for code that has no reason to own one.
  static RealClock& Instance() {
    static RealClock clock;
    return clock;
  }
};

}  // namespace zb

#endif  // ZB_DAEMON_BASE_CLOCK_H_
