// SimFs: an in-memory file system with the crash semantics of a real one, for the simulation.
// A write is not durable until its file is synced; a rename, creation or removal is not durable
// until its directory is synced (or syncfs). Crash() throws away everything that was not
// durable: names go back to the last synced directory, and each file's content to its last
// synced bytes. A seeded fault rate fails writes and syncs with an IOError, as a full or
// failing disk would.
//
// Threads: one (the simulation's).
#ifndef ZB_TESTS_SIM_SIM_FS_H_
#define ZB_TESTS_SIM_SIM_FS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "daemon/base/fs.h"

namespace zb::sim {

class SimFs final : public Fs {
 public:
  explicit SimFs(std::mt19937_64& rng) : rng_(rng) {}

  // The probability that a WriteFile, SyncFile, SyncFs, Rename or SyncDir fails.
  void set_fault_rate(double rate) { fault_rate_ = rate; }
  // Loses everything not durable.
  void Crash();
  // The durable content of `path` (what a crash now would leave), if any.
  std::optional<std::string> DurableContent(const std::string& path) const;

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
  struct Inode {
    std::string data;
    std::optional<std::string> synced;  // nullopt: never synced (empty after a crash)
  };
  Status MaybeFail(const char* what, const std::string& path);
  static std::string DirOf(const std::string& path);

  std::mt19937_64& rng_;
  double fault_rate_ = 0;
  std::map<std::string, std::shared_ptr<Inode>> names_;    // what a reader sees now
  std::map<std::string, std::shared_ptr<Inode>> durable_;  // what a crash leaves
  std::map<std::string, bool> dirs_;
};

}  // namespace zb::sim

#endif  // ZB_TESTS_SIM_SIM_FS_H_
