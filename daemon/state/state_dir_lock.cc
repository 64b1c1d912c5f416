#include "daemon/state/state_dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace zb {
namespace {

// The pid written in the lock file, or "unknown" if it holds none (the holder may be between
// taking the lock and writing it).
std::string HolderPid(int fd) {
  char buf[32];
  ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return "unknown";
  std::string text(buf, static_cast<size_t>(n));
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) {
    return "unknown";
  }
  return text;
}

}  // namespace

StatusOr<std::unique_ptr<StateDirLock>> StateDirLock::Acquire(const std::string& dir) {
  std::string path = dir + "/lock";
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return Status::FromErrno("open " + path, errno);
  // flock locks belong to the open file description: a second open in this process conflicts
  // too, which is what a second Acquire should see.
  int rc;
  do {
    rc = ::flock(fd, LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK) {
      std::string pid = HolderPid(fd);
      ::close(fd);
      return Status::Unavailable("state directory " + dir +
                                 " is in use by another zulip-bridge (pid " + pid + ")");
    }
    ::close(fd);
    return Status::FromErrno("flock " + path, err);
  }
  std::unique_ptr<StateDirLock> lock(new StateDirLock(path, fd));
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0) return Status::FromErrno("truncate " + path, errno);
  if (::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    return Status::FromErrno("write " + path, errno);
  }
  return lock;
}

StateDirLock::~StateDirLock() {
  // Closing the only descriptor releases the flock. The pid stays in the file; the next
  // holder overwrites it and a reader only trusts it while the lock is held.
  ::close(fd_);
}

}  // namespace zb
