// GroupCommit: one durable write shared by every account that staged a checkpoint in the same
// loop turn. An account asks (Request); the first request of a turn posts the commit, so it runs
// after every event of that turn, and each account that asked is told the one result. Ten
// thousand accounts advancing together cost one commit (one set of fsyncs), not ten thousand.
//
// Ownership: AccountFleet owns it and the accounts that ask; `commit` (the checkpoint store's
// Commit) is borrowed and outlives it. Like the fleet's own posted tasks, a posted commit
// assumes the loop runs no task after its owner is destroyed.
//
// Threads: the loop thread only, every method and callback.
#ifndef ZB_DAEMON_PIPELINE_GROUP_COMMIT_H_
#define ZB_DAEMON_PIPELINE_GROUP_COMMIT_H_

#include <cstdint>
#include <functional>
#include <map>

#include "daemon/base/scheduler.h"
#include "daemon/base/status.h"

namespace zb {

class GroupCommit {
 public:
  using Done = std::function<void(const Status& committed)>;

  GroupCommit(Scheduler& loop, std::function<Status()> commit);
  GroupCommit(const GroupCommit&) = delete;
  GroupCommit& operator=(const GroupCommit&) = delete;

  // The account in `slot` staged a checkpoint; `done` learns once whether the commit that
  // carries it worked. Asking again before that commit runs keeps one request (the newer
  // `done`): the commit writes whatever is staged when it runs.
  void Request(uint16_t slot, Done done);
  // The account in `slot` is gone: its request, if any, is dropped and never answered.
  void Forget(uint16_t slot);
  // No commit from now on (the fleet's own last commit has been made); requests are dropped.
  void Stop();

 private:
  void CommitNow();

  Scheduler& loop_;
  std::function<Status()> commit_;
  std::map<uint16_t, Done> waiters_;  // by slot: one request per account per commit
  bool scheduled_ = false;
  bool stopped_ = false;
};

}  // namespace zb

#endif  // ZB_DAEMON_PIPELINE_GROUP_COMMIT_H_
