#include "daemon/base/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace zb {

namespace {

// The wakeup eventfd's token in epoll_event.data; fd watch tokens start at 1.
constexpr uint64_t kWakeToken = 0;
constexpr int kMaxEventsPerTurn = 256;

}  // namespace

StatusOr<std::unique_ptr<EventLoop>> EventLoop::Create(Clock& clock) {
  int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) return Status::FromErrno("epoll_create1", errno);
  int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    Status status = Status::FromErrno("eventfd", errno);
    close(epoll_fd);
    return status;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeToken;
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &ev) != 0) {
    Status status = Status::FromErrno("epoll_ctl(eventfd)", errno);
    close(wake_fd);
    close(epoll_fd);
    return status;
  }
  return std::unique_ptr<EventLoop>(new EventLoop(clock, epoll_fd, wake_fd));
}

EventLoop::EventLoop(Clock& clock, int epoll_fd, int wake_fd)
    : clock_(clock), epoll_fd_(epoll_fd), wake_fd_(wake_fd) {}

EventLoop::~EventLoop() {
  close(wake_fd_);
  close(epoll_fd_);
}

void EventLoop::Stop() {
  stop_.store(true);
  Wakeup();
}

void EventLoop::Wakeup() const {
  uint64_t one = 1;
  // EAGAIN means the counter is already non-zero: the loop will wake anyway.
  ssize_t n = write(wake_fd_, &one, sizeof one);
  (void)n;
}

void EventLoop::Post(std::function<void()> task) {
  {
    MutexLock lock(&posted_mu_);
    posted_.push_back(std::move(task));
  }
  Wakeup();
}

EventLoop::TimerId EventLoop::AddTimer(Clock::Duration delay, std::function<void()> callback) {
  return AddTimerAt(clock_.Now() + delay, std::move(callback));
}

EventLoop::TimerId EventLoop::AddTimerAt(Clock::TimePoint deadline,
                                         std::function<void()> callback) {
  ZB_DCHECK_ON_LOOP(*this);
  TimerId id = next_timer_id_++;
  timers_.emplace(std::make_pair(deadline, id), std::move(callback));
  timer_deadlines_.emplace(id, deadline);
  return id;
}

bool EventLoop::CancelTimer(TimerId id) {
  ZB_DCHECK_ON_LOOP(*this);
  auto it = timer_deadlines_.find(id);
  if (it == timer_deadlines_.end()) return false;
  timers_.erase(std::make_pair(it->second, id));
  timer_deadlines_.erase(it);
  return true;
}

Status EventLoop::WatchFd(int fd, uint32_t events, FdCallback callback) {
  ZB_DCHECK_ON_LOOP(*this);
  auto it = fds_.find(fd);
  uint64_t token = next_fd_token_++;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = token;
  if (it == fds_.end()) {
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      return Status::FromErrno("epoll_ctl(ADD fd " + std::to_string(fd) + ")", errno);
    }
    fds_.emplace(fd, FdWatch{token, events, std::make_shared<FdCallback>(std::move(callback))});
  } else {
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) != 0) {
      return Status::FromErrno("epoll_ctl(MOD fd " + std::to_string(fd) + ")", errno);
    }
    fd_by_token_.erase(it->second.token);
    it->second = FdWatch{token, events, std::make_shared<FdCallback>(std::move(callback))};
  }
  fd_by_token_.emplace(token, fd);
  return Status::Ok();
}

void EventLoop::UnwatchFd(int fd) {
  ZB_DCHECK_ON_LOOP(*this);
  auto it = fds_.find(fd);
  if (it == fds_.end()) return;
  // The fd may already be closed (the kernel then dropped it from the set): nothing to undo.
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  fd_by_token_.erase(it->second.token);
  fds_.erase(it);
}

void EventLoop::RunPosted() {
  std::vector<std::function<void()>> tasks;
  {
    MutexLock lock(&posted_mu_);
    tasks.swap(posted_);
  }
  for (auto& task : tasks) task();
}

void EventLoop::RunDueTimers() {
  // Only timers already due when this turn started fire now; a timer added with delay 0 by a
  // callback waits for the next turn, so a timer that re-arms itself cannot starve the fds.
  const Clock::TimePoint now = clock_.Now();
  std::vector<TimerId> due;
  for (auto it = timers_.begin(); it != timers_.end() && it->first.first <= now; ++it) {
    due.push_back(it->first.second);
  }
  for (TimerId id : due) {
    if (stop_.load()) return;
    auto deadline = timer_deadlines_.find(id);
    if (deadline == timer_deadlines_.end()) continue;  // cancelled by an earlier callback
    auto it = timers_.find(std::make_pair(deadline->second, id));
    std::function<void()> callback = std::move(it->second);
    timers_.erase(it);
    timer_deadlines_.erase(deadline);
    callback();
  }
}

int EventLoop::NextTimeoutMs() const {
  {
    // Tasks posted by a callback of this turn: don't sleep.
    MutexLock lock(&posted_mu_);
    if (!posted_.empty()) return 0;
  }
  if (timers_.empty()) return -1;
  auto wait = timers_.begin()->first.first - clock_.Now();
  if (wait <= Clock::Duration::zero()) return 0;
  // Round up: waking a millisecond early would spin until the deadline.
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(wait).count();
  return ms > std::numeric_limits<int>::max() ? std::numeric_limits<int>::max()
                                              : static_cast<int>(ms);
}

Status EventLoop::Run() {
  loop_thread_.store(std::this_thread::get_id());
  epoll_event events[kMaxEventsPerTurn];
  Status result;
  while (!stop_.load()) {
    int n = epoll_wait(epoll_fd_, events, kMaxEventsPerTurn, NextTimeoutMs());
    if (n < 0) {
      if (errno == EINTR) continue;
      result = Status::FromErrno("epoll_wait", errno);
      break;
    }
    for (int i = 0; i < n && !stop_.load(); ++i) {
      const uint64_t token = events[i].data.u64;
      if (token == kWakeToken) {
        uint64_t count;
        ssize_t r = read(wake_fd_, &count, sizeof count);
        (void)r;
        continue;
      }
      auto by_token = fd_by_token_.find(token);
      if (by_token == fd_by_token_.end()) continue;  // unwatched earlier in this turn
      auto watch = fds_.find(by_token->second);
      // Keep the callback alive even if it unwatches its own fd.
      std::shared_ptr<FdCallback> callback = watch->second.callback;
      (*callback)(events[i].events);
    }
    if (stop_.load()) break;
    RunDueTimers();
    RunPosted();
  }
  RunPosted();
  loop_thread_.store(std::thread::id());
  return result;
}

}  // namespace zb
