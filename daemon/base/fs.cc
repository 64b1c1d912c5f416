#include "daemon/base/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

namespace zb {
namespace {

// Closes a descriptor when it goes out of scope; the result of close() on a read-only or
// already-synced descriptor carries nothing we act on.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // Closes now and reports the error: for a file just written, close can be the first place a
  // write error (NFS, quota) shows up.
  int Close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

int OpenRetrying(const std::string& path, int flags, mode_t mode = 0) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

Status ErrnoStatus(const std::string& what, int err) {
  if (err == ENOENT) return Status::NotFound(what + ": " + ErrnoText(err));
  return Status::FromErrno(what, err);
}

Status SyncPath(const std::string& path, int flags) {
  Fd fd(OpenRetrying(path, flags));
  if (fd.get() < 0) return ErrnoStatus(path, errno);
  if (::fsync(fd.get()) != 0) return Status::FromErrno("fsync " + path, errno);
  return Status::Ok();
}

}  // namespace

Status PosixFs::CreateDir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) == 0) return Status::Ok();
  const int err = errno;
  struct stat st;
  if (err == EEXIST && ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return Status::Ok();
  return Status::FromErrno("mkdir " + path, err);
}

StatusOr<std::string> PosixFs::ReadFile(const std::string& path) {
  Fd fd(OpenRetrying(path, O_RDONLY));
  if (fd.get() < 0) return ErrnoStatus(path, errno);
  std::string data;
  char buf[16384];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("read " + path, errno);
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  return data;
}

Status PosixFs::WriteFile(const std::string& path, std::string_view data, mode_t mode) {
  Fd fd(OpenRetrying(path, O_WRONLY | O_CREAT | O_TRUNC, mode));
  if (fd.get() < 0) return Status::FromErrno("open " + path, errno);
  // open() applies the mode only to a new file (and through the umask): set it explicitly,
  // checkpoints must be 0600 whatever was there before.
  if (::fchmod(fd.get(), mode) != 0) return Status::FromErrno("chmod " + path, errno);
  while (!data.empty()) {
    ssize_t n = ::write(fd.get(), data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("write " + path, errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  if (fd.Close() != 0) return Status::FromErrno("close " + path, errno);
  return Status::Ok();
}

Status PosixFs::SyncFile(const std::string& path) { return SyncPath(path, O_RDONLY); }

Status PosixFs::SyncFs(const std::string& path) {
  Fd fd(OpenRetrying(path, O_RDONLY));
  if (fd.get() < 0) return ErrnoStatus(path, errno);
  if (::syncfs(fd.get()) != 0) return Status::FromErrno("syncfs " + path, errno);
  return Status::Ok();
}

Status PosixFs::Rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return ErrnoStatus("rename " + from + " to " + to, errno);
  }
  return Status::Ok();
}

Status PosixFs::SyncDir(const std::string& path) { return SyncPath(path, O_RDONLY | O_DIRECTORY); }

Status PosixFs::RemoveFile(const std::string& path) {
  if (::unlink(path.c_str()) != 0) return ErrnoStatus("unlink " + path, errno);
  return Status::Ok();
}

StatusOr<std::vector<std::string>> PosixFs::ListDir(const std::string& path) {
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(path.c_str()), &::closedir);
  if (!dir) return ErrnoStatus("opendir " + path, errno);
  std::vector<std::string> names;
  while (true) {
    errno = 0;
    struct dirent* entry = ::readdir(dir.get());
    if (entry == nullptr) {
      if (errno != 0) return Status::FromErrno("readdir " + path, errno);
      break;
    }
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  return names;
}

}  // namespace zb
