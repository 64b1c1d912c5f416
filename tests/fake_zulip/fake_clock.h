// The fake Zulip server's notion of time: Unix seconds that run `scale` times as fast as real
// time and that a test can push forward at will. Everything in the fake that Zulip measures in
// seconds (queue lifespans, heartbeats, the GC sweep, rate-limit windows) reads this clock, so a
// test can make ten minutes pass in a moment without sleeping.
//
// Thread-safe: the server's loop thread reads it while a test thread may advance it.
#ifndef ZB_TESTS_FAKE_ZULIP_FAKE_CLOCK_H_
#define ZB_TESTS_FAKE_ZULIP_FAKE_CLOCK_H_

#include <chrono>
#include <mutex>

namespace zb::fake_zulip {

class FakeClock {
 public:
  // Starts at `start_unix_seconds` of fake time, running at `scale` (0 = frozen, only Advance
  // moves it; 1 = real time; 60 = a fake minute per real second).
  FakeClock(double start_unix_seconds, double scale);
  FakeClock(const FakeClock&) = delete;
  FakeClock& operator=(const FakeClock&) = delete;

  // Fake Unix time in seconds.
  double Now() const;
  double scale() const;
  // Changes the rate from now on; fake time does not jump.
  void SetScale(double scale);
  // Moves fake time forward by `seconds` (negative values are ignored: time never goes back).
  void Advance(double seconds);
  // Moves fake time forward to `unix_seconds` if that is in the future.
  void AdvanceTo(double unix_seconds);
  // Real seconds until fake time reaches `unix_seconds` at the current scale: 0 if already
  // there, a negative number if it never will (scale 0).
  double RealSecondsUntil(double unix_seconds) const;

 private:
  using Steady = std::chrono::steady_clock;
  double NowLocked() const;

  mutable std::mutex mu_;
  Steady::time_point base_real_;  // guarded by mu_
  double base_fake_;              // guarded by mu_
  double scale_;                  // guarded by mu_
};

}  // namespace zb::fake_zulip

#endif  // ZB_TESTS_FAKE_ZULIP_FAKE_CLOCK_H_
