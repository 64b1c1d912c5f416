#include "daemon/base/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/fakes/fake_clock.h"
#include "tests/test_support.h"

namespace zb {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::zb::testing::IsOk;
using ::zb::testing::WaitFor;

// Runs a loop on its own thread for the duration of a test.
class LoopThread {
 public:
  explicit LoopThread(Clock& clock) {
    auto loop = EventLoop::Create(clock);
    EXPECT_THAT(loop, IsOk());
    loop_ = std::move(loop).value();
    thread_ = std::thread([this] { run_status_ = loop_->Run(); });
  }
  ~LoopThread() { Join(); }
  void Join() {
    if (!thread_.joinable()) return;
    loop_->Stop();
    thread_.join();
  }
  EventLoop& loop() { return *loop_; }
  // Runs `f` on the loop thread and waits for it.
  void RunOnLoop(std::function<void()> f) {
    ::zb::testing::RunOnLoop(*loop_, std::move(f), seconds(10));
  }
  Status run_status_;

 private:
  std::unique_ptr<EventLoop> loop_;
  std::thread thread_;
};

TEST(EventLoopTest, PostedTasksRunOnTheLoopThreadInOrder) {
  LoopThread t(RealClock::Instance());
  std::vector<int> order;
  std::atomic<int> count{0};
  std::atomic<bool> on_loop{true};
  for (int i = 0; i < 100; ++i) {
    t.loop().Post([&, i] {
      if (!t.loop().IsLoopThread()) on_loop = false;
      order.push_back(i);
      ++count;
    });
  }
  ASSERT_TRUE(WaitFor([&] { return count == 100; }, seconds(10)));
  EXPECT_TRUE(on_loop);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
}

TEST(EventLoopTest, PostFromManyThreadsRunsEveryTask) {
  LoopThread t(RealClock::Instance());
  std::atomic<int> count{0};
  std::vector<std::thread> posters;
  for (int p = 0; p < 4; ++p) {
    posters.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) t.loop().Post([&] { ++count; });
    });
  }
  for (auto& th : posters) th.join();
  EXPECT_TRUE(WaitFor([&] { return count == 4000; }, seconds(10)));
}

TEST(EventLoopTest, TimersFireInDeadlineOrderWhenTheFakeClockPassesThem) {
  testing::FakeClock clock;
  LoopThread t(clock);
  std::vector<int> fired;
  std::atomic<int> count{0};
  t.RunOnLoop([&] {
    t.loop().AddTimer(seconds(3), [&] {
      fired.push_back(3);
      ++count;
    });
    t.loop().AddTimer(seconds(1), [&] {
      fired.push_back(1);
      ++count;
    });
    t.loop().AddTimer(seconds(2), [&] {
      fired.push_back(2);
      ++count;
    });
    t.loop().AddTimer(seconds(1), [&] {
      fired.push_back(10);
      ++count;
    });
  });
  clock.Advance(milliseconds(1500));
  t.loop().Wakeup();
  ASSERT_TRUE(WaitFor([&] { return count == 2; }, seconds(10)));
  t.RunOnLoop([&] { EXPECT_EQ(fired, (std::vector<int>{1, 10})); });
  clock.Advance(seconds(5));
  t.loop().Wakeup();
  ASSERT_TRUE(WaitFor([&] { return count == 4; }, seconds(10)));
  t.RunOnLoop([&] { EXPECT_EQ(fired, (std::vector<int>{1, 10, 2, 3})); });
}

TEST(EventLoopTest, TimerDoesNotFireBeforeItsDeadline) {
  testing::FakeClock clock;
  LoopThread t(clock);
  std::atomic<bool> fired{false};
  t.RunOnLoop([&] { t.loop().AddTimer(seconds(10), [&] { fired = true; }); });
  clock.Advance(seconds(9));
  t.RunOnLoop([] {});  // a full turn after the advance
  t.RunOnLoop([] {});
  EXPECT_FALSE(fired);
  clock.Advance(seconds(1));
  t.loop().Wakeup();
  EXPECT_TRUE(WaitFor([&] { return fired.load(); }, seconds(10)));
}

TEST(EventLoopTest, CancelledTimerNeverFires) {
  testing::FakeClock clock;
  LoopThread t(clock);
  std::atomic<bool> fired{false};
  std::atomic<bool> other{false};
  t.RunOnLoop([&] {
    EventLoop::TimerId id = t.loop().AddTimer(seconds(1), [&] { fired = true; });
    t.loop().AddTimer(seconds(2), [&] { other = true; });
    EXPECT_TRUE(t.loop().CancelTimer(id));
    EXPECT_FALSE(t.loop().CancelTimer(id));
    EXPECT_FALSE(t.loop().CancelTimer(0));
  });
  clock.Advance(seconds(3));
  t.loop().Wakeup();
  ASSERT_TRUE(WaitFor([&] { return other.load(); }, seconds(10)));
  EXPECT_FALSE(fired);
}

TEST(EventLoopTest, TimerCancelledByAnEarlierTimerInTheSameTurnDoesNotFire) {
  testing::FakeClock clock;
  LoopThread t(clock);
  std::atomic<bool> second_fired{false};
  std::atomic<bool> first_fired{false};
  t.RunOnLoop([&] {
    auto second = std::make_shared<EventLoop::TimerId>(0);
    t.loop().AddTimer(seconds(1), [&, second] {
      first_fired = true;
      t.loop().CancelTimer(*second);
    });
    *second = t.loop().AddTimer(seconds(1), [&] { second_fired = true; });
  });
  clock.Advance(seconds(1));
  t.loop().Wakeup();
  ASSERT_TRUE(WaitFor([&] { return first_fired.load(); }, seconds(10)));
  t.RunOnLoop([] {});
  EXPECT_FALSE(second_fired);
}

TEST(EventLoopTest, RealTimeTimerFires) {
  LoopThread t(RealClock::Instance());
  std::atomic<bool> fired{false};
  t.RunOnLoop([&] { t.loop().AddTimer(milliseconds(20), [&] { fired = true; }); });
  EXPECT_TRUE(WaitFor([&] { return fired.load(); }, seconds(10)));
}

TEST(EventLoopTest, WatchedFdCallsBackWhenReadableAndStopsAfterUnwatch) {
  LoopThread t(RealClock::Instance());
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::atomic<int> reads{0};
  t.RunOnLoop([&] {
    EXPECT_THAT(t.loop().WatchFd(fd, EPOLLIN,
                                 [&](uint32_t events) {
                                   EXPECT_TRUE(events & EPOLLIN);
                                   uint64_t v;
                                   ASSERT_EQ(read(fd, &v, sizeof v), 8);
                                   ++reads;
                                 }),
                IsOk());
  });
  uint64_t one = 1;
  ASSERT_EQ(write(fd, &one, sizeof one), 8);
  ASSERT_TRUE(WaitFor([&] { return reads == 1; }, seconds(10)));
  t.RunOnLoop([&] {
    t.loop().UnwatchFd(fd);
    EXPECT_EQ(t.loop().WatchedFdsForTest(), 0u);
  });
  ASSERT_EQ(write(fd, &one, sizeof one), 8);
  t.RunOnLoop([] {});
  t.RunOnLoop([] {});
  EXPECT_EQ(reads, 1);
  close(fd);
}

TEST(EventLoopTest, CallbackMayUnwatchItsOwnFd) {
  LoopThread t(RealClock::Instance());
  int fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);  // readable at once, and stays readable
  ASSERT_GE(fd, 0);
  std::atomic<int> calls{0};
  t.RunOnLoop([&] {
    EXPECT_THAT(t.loop().WatchFd(fd, EPOLLIN,
                                 [&](uint32_t) {
                                   ++calls;
                                   t.loop().UnwatchFd(fd);
                                 }),
                IsOk());
  });
  ASSERT_TRUE(WaitFor([&] { return calls == 1; }, seconds(10)));
  t.RunOnLoop([] {});
  EXPECT_EQ(calls, 1);
  close(fd);
}

TEST(EventLoopTest, WatchingABadFdIsAnError) {
  LoopThread t(RealClock::Instance());
  t.RunOnLoop([&] {
    Status s = t.loop().WatchFd(-1, EPOLLIN, [](uint32_t) {});
    EXPECT_TRUE(s.IsIOError()) << s;
  });
}

TEST(EventLoopTest, StopRunsTasksPostedBeforeItAndReturnsOk) {
  auto created = EventLoop::Create(RealClock::Instance());
  ASSERT_THAT(created, IsOk());
  std::unique_ptr<EventLoop> loop = std::move(created).value();
  bool ran = false;
  loop->Post([&] { ran = true; });
  loop->Stop();
  EXPECT_THAT(loop->Run(), IsOk());  // Stop before Run: returns at once
  EXPECT_TRUE(ran);
}

TEST(EventLoopTest, StopFromATaskEndsRun) {
  LoopThread t(RealClock::Instance());
  t.loop().Post([&] { t.loop().Stop(); });
  t.Join();
  EXPECT_THAT(t.run_status_, IsOk());
}

}  // namespace
}  // namespace zb
