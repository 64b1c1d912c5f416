#include "daemon/pipeline/group_commit.h"

#include <utility>

#include "daemon/base/log.h"

namespace zb {

GroupCommit::GroupCommit(Scheduler& loop, std::function<Status()> commit)
    : loop_(loop), commit_(std::move(commit)) {}

void GroupCommit::Request(uint16_t slot, Done done) {
  ZB_DCHECK_ON_LOOP(loop_);
  waiters_[slot] = std::move(done);
  if (scheduled_) return;
  scheduled_ = true;
  // Posted tasks run after the events of this turn: every account that advanced in it shares
  // one durable write.
  loop_.Post([this] { CommitNow(); });
}

void GroupCommit::Forget(uint16_t slot) { waiters_.erase(slot); }

void GroupCommit::Stop() {
  stopped_ = true;
  waiters_.clear();
}

void GroupCommit::CommitNow() {
  scheduled_ = false;
  std::map<uint16_t, Done> waiters;
  waiters.swap(waiters_);  // an answer may ask again: that request waits for the next commit
  if (stopped_) return;
  Status committed = commit_();
  if (!committed.ok()) {
    LogError("checkpoint commit failed; the affected accounts stop acknowledging",
             {{"error", committed.message()}, {"accounts", waiters.size()}});
  }
  for (auto& [slot, done] : waiters) done(committed);
}

}  // namespace zb
