// SimRuntime: simulated time for the deterministic simulation. It is the Clock and the
// Scheduler of everything in a simulated world (the account, the model Zulip, the model Kafka,
// the fault injector), so that one ordered queue of callbacks decides what happens when, and a
// seed replays it exactly.
//
// Threads: one. Nothing here is thread-safe, and nothing needs to be.
#ifndef ZB_TESTS_SIM_SIM_RUNTIME_H_
#define ZB_TESTS_SIM_SIM_RUNTIME_H_

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "daemon/base/clock.h"
#include "daemon/base/scheduler.h"

namespace zb::sim {

class SimRuntime final : public Clock, public Scheduler {
 public:
  // Simulated wall time starts at `wall_start`.
  explicit SimRuntime(WallTimePoint wall_start) : wall_start_(wall_start) {}
  SimRuntime(const SimRuntime&) = delete;
  SimRuntime& operator=(const SimRuntime&) = delete;

  TimePoint Now() const override { return now_; }
  WallTimePoint WallNow() const override {
    return wall_start_ + std::chrono::duration_cast<WallTimePoint::duration>(now_ - TimePoint{});
  }

  // Posted tasks are callbacks due now: they run after what is already due now, in order.
  void Post(std::function<void()> task) override { AddTimerAt(now_, std::move(task)); }
  TimerId AddTimer(Duration delay, std::function<void()> callback) override {
    return AddTimerAt(now_ + std::max(delay, Duration::zero()), std::move(callback));
  }
  TimerId AddTimerAt(TimePoint deadline, std::function<void()> callback) override {
    TimerId id = next_id_++;
    deadline = std::max(deadline, now_);
    queue_.emplace(std::make_pair(deadline, id), std::move(callback));
    deadlines_.emplace(id, deadline);
    return id;
  }
  bool CancelTimer(TimerId id) override {
    auto it = deadlines_.find(id);
    if (it == deadlines_.end()) return false;
    queue_.erase({it->second, id});
    deadlines_.erase(it);
    return true;
  }

  // Runs the next callback, moving the clock to its time. False when nothing is scheduled at
  // or before `until`.
  bool Step(TimePoint until) {
    if (queue_.empty() || queue_.begin()->first.first > until) return false;
    auto it = queue_.begin();
    now_ = it->first.first;
    std::function<void()> callback = std::move(it->second);
    deadlines_.erase(it->first.second);
    queue_.erase(it);
    callback();
    ++steps_;
    return true;
  }
  // Moves the clock to `t` when nothing is due before it.
  void AdvanceTo(TimePoint t) {
    if (t > now_ && (queue_.empty() || queue_.begin()->first.first >= t)) now_ = t;
  }
  size_t pending() const { return queue_.size(); }
  // The id the next AddTimerAt will return.
  TimerId next_id() const { return next_id_; }
  uint64_t steps() const { return steps_; }

 private:
  const WallTimePoint wall_start_;
  TimePoint now_{};
  TimerId next_id_ = 1;
  uint64_t steps_ = 0;
  std::map<std::pair<TimePoint, TimerId>, std::function<void()>> queue_;
  std::unordered_map<TimerId, TimePoint> deadlines_;
};

// One run of the bridge process as the runtime sees it: its timers and posted tasks die with it
// (kill -9, or the exit after a SIGTERM), as a real process's do, while the model Zulip and
// Kafka keep theirs on the runtime itself.
class SimProcess final : public Scheduler {
 public:
  explicit SimProcess(SimRuntime& runtime) : runtime_(runtime) {}
  // The process is gone: nothing it scheduled runs.
  ~SimProcess() override {
    for (TimerId id : pending_) runtime_.CancelTimer(id);
  }
  SimProcess(const SimProcess&) = delete;
  SimProcess& operator=(const SimProcess&) = delete;

  void Post(std::function<void()> task) override { AddTimerAt(runtime_.Now(), std::move(task)); }
  TimerId AddTimer(Clock::Duration delay, std::function<void()> callback) override {
    return AddTimerAt(runtime_.Now() + std::max(delay, Clock::Duration::zero()),
                      std::move(callback));
  }
  TimerId AddTimerAt(Clock::TimePoint deadline, std::function<void()> callback) override {
    const TimerId id = runtime_.next_id();
    pending_.insert(id);
    runtime_.AddTimerAt(deadline, [this, id, callback = std::move(callback)] {
      pending_.erase(id);
      callback();
    });
    return id;
  }
  bool CancelTimer(TimerId id) override {
    if (pending_.erase(id) == 0) return false;
    return runtime_.CancelTimer(id);
  }

 private:
  SimRuntime& runtime_;
  std::unordered_set<TimerId> pending_;
};

}  // namespace zb::sim

#endif  // ZB_TESTS_SIM_SIM_RUNTIME_H_
