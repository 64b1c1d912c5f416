// GroupCommit on a hand-turned scheduler: posted tasks run only when the test turns it, so a
// "loop turn" is exactly what the test puts between two turns.
#include "daemon/pipeline/group_commit.h"

#include <deque>
#include <functional>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace zb {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

class HandTurnedScheduler final : public Scheduler {
 public:
  void Post(std::function<void()> task) override { posted_.push_back(std::move(task)); }
  TimerId AddTimer(Clock::Duration, std::function<void()>) override { return 0; }
  TimerId AddTimerAt(Clock::TimePoint, std::function<void()>) override { return 0; }
  bool CancelTimer(TimerId) override { return false; }

  // Runs what was posted before this call; what those tasks post waits for the next turn.
  void Turn() {
    std::deque<std::function<void()>> now;
    now.swap(posted_);
    for (auto& task : now) task();
  }
  size_t posted() const { return posted_.size(); }

 private:
  std::deque<std::function<void()>> posted_;
};

class GroupCommitTest : public ::testing::Test {
 protected:
  GroupCommit::Done Record(uint16_t slot) {
    return [this, slot](const Status& committed) { answers_.push_back({slot, committed.ok()}); };
  }

  HandTurnedScheduler loop_;
  int commits_ = 0;
  Status next_result_;
  GroupCommit group_{loop_, [this] {
                       ++commits_;
                       return next_result_;
                     }};
  std::vector<std::pair<uint16_t, bool>> answers_;
  int answered_ = 0;
};

TEST_F(GroupCommitTest, EveryAccountAskingInOneTurnSharesOneCommit) {
  group_.Request(3, Record(3));
  group_.Request(1, Record(1));
  group_.Request(3, Record(3));  // asked twice: answered once
  EXPECT_EQ(loop_.posted(), 1u);
  EXPECT_EQ(commits_, 0);  // nothing is written before the turn ends

  loop_.Turn();
  EXPECT_EQ(commits_, 1);
  EXPECT_THAT(answers_,
              ElementsAre(std::pair<uint16_t, bool>{1, true}, std::pair<uint16_t, bool>{3, true}));
}

TEST_F(GroupCommitTest, AFailedCommitIsToldToEveryAccountThatAsked) {
  next_result_ = Status::IOError("disk full");
  group_.Request(0, Record(0));
  group_.Request(7, Record(7));
  loop_.Turn();
  EXPECT_THAT(answers_, ElementsAre(std::pair<uint16_t, bool>{0, false},
                                    std::pair<uint16_t, bool>{7, false}));
}

TEST_F(GroupCommitTest, AnAccountAskingFromItsAnswerWaitsForTheNextCommit) {
  group_.Request(2, [this](const Status&) {
    ++answered_;
    if (answered_ == 1) group_.Request(2, [this](const Status&) { ++answered_; });
  });
  loop_.Turn();
  EXPECT_EQ(commits_, 1);
  EXPECT_EQ(answered_, 1);
  loop_.Turn();
  EXPECT_EQ(commits_, 2);
  EXPECT_EQ(answered_, 2);
}

TEST_F(GroupCommitTest, AForgottenAccountIsNeverAnsweredButTheOthersAre) {
  group_.Request(4, Record(4));
  group_.Request(5, Record(5));
  group_.Forget(4);
  loop_.Turn();
  EXPECT_EQ(commits_, 1);
  EXPECT_THAT(answers_, ElementsAre(std::pair<uint16_t, bool>{5, true}));
}

TEST_F(GroupCommitTest, AfterStopNothingIsCommittedOrAnswered) {
  group_.Request(1, Record(1));
  group_.Stop();
  loop_.Turn();
  group_.Request(2, Record(2));
  loop_.Turn();
  EXPECT_EQ(commits_, 0);
  EXPECT_THAT(answers_, IsEmpty());
}

}  // namespace
}  // namespace zb
