#include "tests/fakes/faulty_fs.h"

#include <cerrno>

namespace zb::testing {
namespace {

Status Injected(const std::string& what) { return Status::FromErrno(what, EIO); }

}  // namespace

void FaultyFs::FailNth(Op op, int n, bool sticky) {
  std::lock_guard<std::mutex> lock(mu_);
  plans_[static_cast<size_t>(op)] = Plan{n, sticky, false};
}

void FaultyFs::Heal() {
  std::lock_guard<std::mutex> lock(mu_);
  plans_.fill(Plan{});
}

void FaultyFs::set_tear_failed_writes(bool tear) {
  std::lock_guard<std::mutex> lock(mu_);
  tear_ = tear;
}

int FaultyFs::calls(Op op) const {
  std::lock_guard<std::mutex> lock(mu_);
  return calls_[static_cast<size_t>(op)];
}

int FaultyFs::failures() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failures_;
}

bool FaultyFs::ShouldFail(Op op) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto i = static_cast<size_t>(op);
  ++calls_[i];
  Plan& plan = plans_[i];
  bool fail = plan.failing;
  if (!fail && plan.countdown > 0 && --plan.countdown == 0) {
    fail = true;
    plan.failing = plan.sticky;
  }
  if (fail) ++failures_;
  return fail;
}

Status FaultyFs::CreateDir(const std::string& path, mode_t mode) {
  if (ShouldFail(Op::kCreateDir)) return Injected("mkdir " + path);
  return base_.CreateDir(path, mode);
}

StatusOr<std::string> FaultyFs::ReadFile(const std::string& path) {
  if (ShouldFail(Op::kRead)) return Injected("read " + path);
  return base_.ReadFile(path);
}

Status FaultyFs::WriteFile(const std::string& path, std::string_view data, mode_t mode) {
  if (ShouldFail(Op::kWrite)) {
    bool tear;
    {
      std::lock_guard<std::mutex> lock(mu_);
      tear = tear_;
    }
    if (tear) (void)base_.WriteFile(path, data.substr(0, data.size() / 2), mode);
    return Injected("write " + path);
  }
  return base_.WriteFile(path, data, mode);
}

Status FaultyFs::SyncFile(const std::string& path) {
  if (ShouldFail(Op::kSyncFile)) return Injected("fsync " + path);
  return base_.SyncFile(path);
}

Status FaultyFs::SyncFs(const std::string& path) {
  if (ShouldFail(Op::kSyncFs)) return Injected("syncfs " + path);
  return base_.SyncFs(path);
}

Status FaultyFs::Rename(const std::string& from, const std::string& to) {
  if (ShouldFail(Op::kRename)) return Injected("rename " + from + " to " + to);
  return base_.Rename(from, to);
}

Status FaultyFs::SyncDir(const std::string& path) {
  if (ShouldFail(Op::kSyncDir)) return Injected("fsync " + path);
  return base_.SyncDir(path);
}

Status FaultyFs::RemoveFile(const std::string& path) {
  if (ShouldFail(Op::kRemove)) return Injected("unlink " + path);
  return base_.RemoveFile(path);
}

StatusOr<std::vector<std::string>> FaultyFs::ListDir(const std::string& path) {
  if (ShouldFail(Op::kList)) return Injected("opendir " + path);
  return base_.ListDir(path);
}

}  // namespace zb::testing
