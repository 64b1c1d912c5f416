// The file-system seam (in the manner of LevelDB's Env): the operations the checkpoint store
// needs, behind an interface so that tests can make a chosen write, sync or rename fail
// (tests/fakes/faulty_fs.h). PosixFs is the real one.
//
// Every error is an IOError whose message names the path and the strerror text
// (Status::FromErrno). Implementations are safe to call from several threads at once.
#ifndef ZB_DAEMON_BASE_FS_H_
#define ZB_DAEMON_BASE_FS_H_

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "daemon/base/status.h"

namespace zb {

class Fs {
 public:
  virtual ~Fs() = default;

  // Creates directory `path` with `mode` (parents must exist). OK if it already is a directory.
  virtual Status CreateDir(const std::string& path, mode_t mode) = 0;
  // The whole content of `path`. NotFound if it does not exist.
  virtual StatusOr<std::string> ReadFile(const std::string& path) = 0;
  // Creates or truncates `path` with permission bits `mode` (applied even when the file
  // existed), writes `data` and closes it. Not durable until SyncFile or SyncFs.
  virtual Status WriteFile(const std::string& path, std::string_view data, mode_t mode) = 0;
  // fsync(2) of the file at `path`: its data and metadata are durable when OK.
  virtual Status SyncFile(const std::string& path) = 0;
  // syncfs(2) of the file system holding `path`: every file written there is durable when OK.
  // One call makes many files durable, which is what a group commit wants.
  virtual Status SyncFs(const std::string& path) = 0;
  // rename(2): atomically replaces `to`. Not durable until SyncDir of the directory.
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  // fsync(2) of directory `path`, making the renames, creations and removals in it durable.
  virtual Status SyncDir(const std::string& path) = 0;
  // Removes the file `path`. NotFound if it does not exist.
  virtual Status RemoveFile(const std::string& path) = 0;
  // The names (not paths) in directory `path`, without "." and "..", in no particular order.
  virtual StatusOr<std::vector<std::string>> ListDir(const std::string& path) = 0;
};

// The real file system through POSIX calls. EINTR is retried.
class PosixFs : public Fs {
 public:
  Status CreateDir(const std::string& path, mode_t mode) override;
  StatusOr<std::string> ReadFile(const std::string& path) override;
  Status WriteFile(const std::string& path, std::string_view data, mode_t mode) override;
  Status SyncFile(const std::string& path) override;
  Status SyncFs(const std::string& path) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status SyncDir(const std::string& path) override;
  Status RemoveFile(const std::string& path) override;
  StatusOr<std::vector<std::string>> ListDir(const std::string& path) override;
};

}  // namespace zb

#endif  // ZB_DAEMON_BASE_FS_H_
