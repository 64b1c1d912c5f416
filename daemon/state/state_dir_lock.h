// One zulip-bridge per state directory (DESIGN.md "Process shape"): two daemons sharing
// checkpoints would acknowledge each other's events. The lock is flock(2) on `<dir>/lock`, which
// the kernel releases when the process dies however it dies, so a crash never leaves a stale
// lock. The holder writes its pid into the file so that a second instance can say who holds it.
//
// The lock file is never deleted: deleting it would let two processes lock two different files
// under the same name.
#ifndef ZB_DAEMON_STATE_STATE_DIR_LOCK_H_
#define ZB_DAEMON_STATE_STATE_DIR_LOCK_H_

#include <memory>
#include <string>

#include "daemon/base/status.h"

namespace zb {

class StateDirLock {
 public:
  // Takes the lock on `dir` (which must exist) without waiting. Unavailable when another
  // process, or another StateDirLock in this process, holds it: "state directory /x is in use
  // by another zulip-bridge (pid 1234)" (or "(pid unknown)" if the holder has not written it
  // yet). IOError with the path and strerror if the lock file cannot be opened or written.
  static StatusOr<std::unique_ptr<StateDirLock>> Acquire(const std::string& dir);

  // Releases the lock.
  ~StateDirLock();
  StateDirLock(const StateDirLock&) = delete;
  StateDirLock& operator=(const StateDirLock&) = delete;

  const std::string& path() const { return path_; }

 private:
  StateDirLock(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

  std::string path_;
  int fd_;
};

}  // namespace zb

#endif  // ZB_DAEMON_STATE_STATE_DIR_LOCK_H_
