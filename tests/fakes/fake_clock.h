// FakeClock: a Clock that moves only when a test says so. Thread-safe, so a test thread may
// advance it while the event loop thread reads it. After advancing a clock that an EventLoop
// uses, Post() any task (or call EventLoop::Wakeup()) so the loop re-checks its timers.
#ifndef ZB_TESTS_FAKES_FAKE_CLOCK_H_
#define ZB_TESTS_FAKES_FAKE_CLOCK_H_

#include <mutex>

#include "daemon/base/clock.h"

namespace zb::testing {

class FakeClock final : public Clock {
 public:
  // Starts at an arbitrary, fixed point: one hour after the steady epoch, and the wall clock
  // at 2025-01-01T00:00:00Z, so that tests never depend on when they run.
  FakeClock()
      : now_(TimePoint(std::chrono::hours(1))),
        wall_(WallTimePoint(std::chrono::seconds(1735689600))) {}

  TimePoint Now() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }
  WallTimePoint WallNow() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return wall_;
  }

  // Moves both clocks forward by `d` (which must not be negative).
  void Advance(Duration d) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += d;
    wall_ += std::chrono::duration_cast<WallTimePoint::duration>(d);
  }

  // Sets the wall clock alone, as an operator or NTP would; Now() does not move.
  void SetWall(WallTimePoint wall) {
    std::lock_guard<std::mutex> lock(mu_);
    wall_ = wall;
  }

 private:
  mutable std::mutex mu_;
  TimePoint now_;
  WallTimePoint wall_;
};

}  // namespace zb::testing

#endif  // ZB_TESTS_FAKES_FAKE_CLOCK_H_
