// An Fs that passes every call to another Fs, except the ones a test tells it to fail (in the
// manner of LevelDB's ErrorEnv / FaultInjectionTestEnv). A failed call returns IOError naming
// the path and "Input/output error", like a disk that went bad.
#ifndef ZB_TESTS_FAKES_FAULTY_FS_H_
#define ZB_TESTS_FAKES_FAULTY_FS_H_

#include <array>
#include <mutex>
#include <string>

#include "daemon/base/fs.h"

namespace zb::testing {

class FaultyFs : public Fs {
 public:
  enum class Op {
    kCreateDir,
    kRead,
    kWrite,
    kSyncFile,
    kSyncFs,
    kRename,
    kSyncDir,
    kRemove,
    kList
  };

  explicit FaultyFs(Fs& base) : base_(base) {}

  // The `n`th call of `op` from now on (1 = the next one) fails; with `sticky`, so does every
  // later one until Heal().
  void FailNth(Op op, int n, bool sticky = false);
  // Stops failing anything.
  void Heal();
  // A failed WriteFile first writes half of the data, leaving a torn file as a crash or a full
  // disk would. Off by default (the file is then left untouched).
  void set_tear_failed_writes(bool tear);
  // How many calls of `op` were made (failed ones included).
  int calls(Op op) const;
  // How many calls failed because of this fake.
  int failures() const;

  Status CreateDir(const std::string& path, mode_t mode) override;
  StatusOr<std::string> ReadFile(const std::string& path) override;
  Status WriteFile(const std::string& path, std::string_view data, mode_t mode) override;
  Status SyncFile(const std::string& path) override;
  Status SyncFs(const std::string& path) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status SyncDir(const std::string& path) override;
  Status RemoveFile(const std::string& path) override;
  StatusOr<std::vector<std::string>> ListDir(const std::string& path) override;

 private:
  static constexpr size_t kOps = 9;
  struct Plan {
    int countdown = 0;  // fail when it reaches 0 from 1; 0 means no plan
    bool sticky = false;
    bool failing = false;
  };

  // Counts the call and says whether it must fail.
  bool ShouldFail(Op op);

  Fs& base_;
  mutable std::mutex mu_;
  std::array<Plan, kOps> plans_{};
  std::array<int, kOps> calls_{};
  int failures_ = 0;
  bool tear_ = false;
};

}  // namespace zb::testing

#endif  // ZB_TESTS_FAKES_FAULTY_FS_H_
