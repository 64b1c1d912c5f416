#include "tests/fake_zulip/fake_clock.h"

namespace zb::fake_zulip {

FakeClock::FakeClock(double start_unix_seconds, double scale)
    : base_real_(Steady::now()), base_fake_(start_unix_seconds), scale_(scale < 0 ? 0 : scale) {}

double FakeClock::NowLocked() const {
  std::chrono::duration<double> real = Steady::now() - base_real_;
  return base_fake_ + real.count() * scale_;
}

double FakeClock::Now() const {
  std::lock_guard lock(mu_);
  return NowLocked();
}

double FakeClock::scale() const {
  std::lock_guard lock(mu_);
  return scale_;
}

void FakeClock::SetScale(double scale) {
  std::lock_guard lock(mu_);
  // Rebase so that the change of rate does not move the current fake time.
  base_fake_ = NowLocked();
  base_real_ = Steady::now();
  scale_ = scale < 0 ? 0 : scale;
}

void FakeClock::Advance(double seconds) {
  if (!(seconds > 0)) return;
  std::lock_guard lock(mu_);
  base_fake_ += seconds;
}

void FakeClock::AdvanceTo(double unix_seconds) {
  std::lock_guard lock(mu_);
  double now = NowLocked();
  if (unix_seconds > now) base_fake_ += unix_seconds - now;
}

double FakeClock::RealSecondsUntil(double unix_seconds) const {
  std::lock_guard lock(mu_);
  double now = NowLocked();
  if (unix_seconds <= now) return 0;
  if (scale_ <= 0) return -1;
  return (unix_seconds - now) / scale_;
}

}  // namespace zb::fake_zulip
