#include "tests/sim/sim_fs.h"

#include <cerrno>

namespace zb::sim {

std::string SimFs::DirOf(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

Status SimFs::MaybeFail(const char* what, const std::string& path) {
  if (fault_rate_ > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < fault_rate_) {
    return Status::FromErrno(std::string(what) + " " + path, EIO);
  }
  return Status::Ok();
}

void SimFs::Crash() {
  names_.clear();
  for (auto& [name, inode] : durable_) {
    // A file rewritten in place since its last sync may come back with either content, or
    // none at all.
    if (inode->data != inode->synced.value_or("") && std::bernoulli_distribution(0.5)(rng_)) {
      inode->data.clear();
    } else {
      inode->data = inode->synced.value_or("");
    }
    inode->synced = inode->data;
    names_[name] = inode;
  }
}

std::optional<std::string> SimFs::DurableContent(const std::string& path) const {
  auto it = durable_.find(path);
  if (it == durable_.end()) return std::nullopt;
  return it->second->synced.value_or("");
}

Status SimFs::CreateDir(const std::string& path, mode_t) {
  dirs_[path] = true;
  return Status::Ok();
}

StatusOr<std::string> SimFs::ReadFile(const std::string& path) {
  auto it = names_.find(path);
  if (it == names_.end()) return Status::NotFound("open " + path + ": No such file or directory");
  return it->second->data;
}

Status SimFs::WriteFile(const std::string& path, std::string_view data, mode_t) {
  ZB_RETURN_IF_ERROR(MaybeFail("write", path));
  // Truncating and writing an existing file changes that file (its durable name keeps it).
  auto it = names_.find(path);
  if (it != names_.end()) {
    it->second->data.assign(data);
  } else {
    auto inode = std::make_shared<Inode>();
    inode->data.assign(data);
    names_[path] = std::move(inode);
  }
  return Status::Ok();
}

Status SimFs::SyncFile(const std::string& path) {
  ZB_RETURN_IF_ERROR(MaybeFail("fsync", path));
  auto it = names_.find(path);
  if (it == names_.end()) return Status::NotFound("open " + path + ": No such file or directory");
  it->second->synced = it->second->data;
  return Status::Ok();
}

Status SimFs::SyncFs(const std::string& path) {
  ZB_RETURN_IF_ERROR(MaybeFail("syncfs", path));
  for (auto& [name, inode] : names_) inode->synced = inode->data;
  durable_ = names_;
  return Status::Ok();
}

Status SimFs::Rename(const std::string& from, const std::string& to) {
  ZB_RETURN_IF_ERROR(MaybeFail("rename", from));
  auto it = names_.find(from);
  if (it == names_.end()) return Status::NotFound("rename " + from + ": No such file or directory");
  names_[to] = it->second;
  names_.erase(from);
  return Status::Ok();
}

Status SimFs::SyncDir(const std::string& path) {
  ZB_RETURN_IF_ERROR(MaybeFail("fsync", path));
  for (auto it = durable_.begin(); it != durable_.end();) {
    it = DirOf(it->first) == path ? durable_.erase(it) : std::next(it);
  }
  for (const auto& [name, inode] : names_) {
    if (DirOf(name) == path) durable_[name] = inode;
  }
  return Status::Ok();
}

Status SimFs::RemoveFile(const std::string& path) {
  if (names_.erase(path) == 0) {
    return Status::NotFound("unlink " + path + ": No such file or directory");
  }
  return Status::Ok();
}

StatusOr<std::vector<std::string>> SimFs::ListDir(const std::string& path) {
  std::vector<std::string> out;
  for (const auto& [name, inode] : names_) {
    if (DirOf(name) == path) out.push_back(name.substr(path.size() + 1));
  }
  return out;
}

}  // namespace zb::sim
