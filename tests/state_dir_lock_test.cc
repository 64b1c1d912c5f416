#include "daemon/state/state_dir_lock.h"

#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "tests/test_support.h"

namespace zb {
namespace {

using ::testing::HasSubstr;
using ::zb::testing::IsOk;
using ::zb::testing::TempDir;

// A child process that takes the lock, tells the parent through a pipe, and holds it until the
// parent closes the other pipe (or the child is killed).
class LockHoldingChild {
 public:
  explicit LockHoldingChild(const std::string& dir) {
    int ready[2], release[2];
    if (::pipe(ready) != 0 || ::pipe(release) != 0) std::abort();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(ready[0]);
      ::close(release[1]);
      auto lock = StateDirLock::Acquire(dir);
      char ok = lock.ok() ? '1' : '0';
      if (::write(ready[1], &ok, 1) != 1) ::_exit(2);
      char ignored;
      (void)!::read(release[0], &ignored, 1);  // returns when the parent closes its end
      ::_exit(0);
    }
    ::close(ready[1]);
    ::close(release[0]);
    release_fd_ = release[1];
    char ok = '0';
    locked_ = ::read(ready[0], &ok, 1) == 1 && ok == '1';
    ::close(ready[0]);
  }
  ~LockHoldingChild() {
    if (release_fd_ >= 0) Release();
  }
  bool locked() const { return locked_; }
  pid_t pid() const { return pid_; }
  // Lets the child exit and reaps it.
  void Release() {
    ::close(release_fd_);
    release_fd_ = -1;
    int status;
    ::waitpid(pid_, &status, 0);
  }
  void Kill() {
    ::kill(pid_, SIGKILL);
    Release();
  }

 private:
  pid_t pid_ = -1;
  int release_fd_ = -1;
  bool locked_ = false;
};

TEST(StateDirLockTest, SecondProcessIsRefusedAndToldTheHoldersPid) {
  TempDir dir;
  LockHoldingChild child(dir.path());
  ASSERT_TRUE(child.locked());
  StatusOr<std::unique_ptr<StateDirLock>> second = StateDirLock::Acquire(dir.path());
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(second.status().IsUnavailable());
  EXPECT_EQ(second.status().message(), "state directory " + dir.path() +
                                           " is in use by another zulip-bridge (pid " +
                                           std::to_string(child.pid()) + ")");
}

TEST(StateDirLockTest, SecondLockInTheSameProcessIsRefused) {
  TempDir dir;
  StatusOr<std::unique_ptr<StateDirLock>> first = StateDirLock::Acquire(dir.path());
  ASSERT_THAT(first, IsOk());
  StatusOr<std::unique_ptr<StateDirLock>> second = StateDirLock::Acquire(dir.path());
  ASSERT_TRUE(second.status().IsUnavailable()) << second.status();
  EXPECT_THAT(second.status().message(), HasSubstr("(pid " + std::to_string(::getpid()) + ")"));
}

TEST(StateDirLockTest, ReleasedLockCanBeTakenAgain) {
  TempDir dir;
  {
    StatusOr<std::unique_ptr<StateDirLock>> first = StateDirLock::Acquire(dir.path());
    ASSERT_THAT(first, IsOk());
  }
  EXPECT_THAT(StateDirLock::Acquire(dir.path()), IsOk());
}

TEST(StateDirLockTest, LockOfAKilledProcessIsFreed) {
  TempDir dir;
  LockHoldingChild child(dir.path());
  ASSERT_TRUE(child.locked());
  child.Kill();
  // The kernel drops the lock when the process is gone; no stale lock to clean up by hand.
  StatusOr<std::unique_ptr<StateDirLock>> lock = StateDirLock::Acquire(dir.path());
  ASSERT_THAT(lock, IsOk());
  std::ifstream in(dir.Sub("lock"));
  std::string pid;
  in >> pid;
  EXPECT_EQ(pid, std::to_string(::getpid()));
}

TEST(StateDirLockTest, MissingDirectoryIsIOErrorWithThePath) {
  TempDir dir;
  StatusOr<std::unique_ptr<StateDirLock>> lock = StateDirLock::Acquire(dir.Sub("missing"));
  ASSERT_TRUE(lock.status().IsIOError()) << lock.status();
  EXPECT_THAT(lock.status().message(), HasSubstr(dir.Sub("missing/lock")));
}

}  // namespace
}  // namespace zb
