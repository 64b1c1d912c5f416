#include "daemon/state/checkpoint_store.h"

#include <algorithm>
#include <thread>
#include <utility>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "daemon/base/mutex.h"

namespace zb {
namespace {

constexpr std::string_view kSuffix = ".checkpoint.json";
constexpr std::string_view kTempSuffix = ".tmp";
constexpr mode_t kFileMode = 0600;
constexpr mode_t kDirMode = 0700;

bool IsPlain(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

std::string EncodeName(std::string_view account) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : account) {
    if (IsPlain(c)) {
      out += c;
    } else {
      const auto b = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[b >> 4];
      out += kHex[b & 15];
    }
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The account a file name encodes; false if it is not one EncodeName produces.
bool DecodeName(std::string_view encoded, std::string& account) {
  account.clear();
  for (size_t i = 0; i < encoded.size(); ++i) {
    if (IsPlain(encoded[i])) {
      account += encoded[i];
      continue;
    }
    if (encoded[i] != '%' || i + 2 >= encoded.size()) return false;
    const int hi = HexValue(encoded[i + 1]);
    const int lo = HexValue(encoded[i + 2]);
    if (hi < 0 || lo < 0) return false;
    account += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return !account.empty();
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

Status WithRestoreFailure(const Status& cause, const Status& restored) {
  if (restored.ok()) return cause;
  return Status::IOError(cause.message() +
                         "; restoring the previous checkpoints also failed: " + restored.message());
}

}  // namespace

std::string CheckpointStore::PathFor(std::string_view account) const {
  return dir_ + "/" + EncodeName(account) + std::string(kSuffix);
}

std::string CheckpointStore::Serialize(const Checkpoint& c) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartObject();
  w.Key("version");
  w.Int(Checkpoint::kFormatVersion);
  w.Key("site");
  w.String(c.site.data(), static_cast<rapidjson::SizeType>(c.site.size()));
  w.Key("account");
  w.String(c.account.data(), static_cast<rapidjson::SizeType>(c.account.size()));
  w.Key("queue_id");
  w.String(c.queue_id.data(), static_cast<rapidjson::SizeType>(c.queue_id.size()));
  w.Key("watermark");
  w.Int64(c.watermark);
  w.Key("last_published_message_id");
  w.Int64(c.last_published_message_id);
  w.Key("backfill");
  w.StartObject();
  w.Key("active");
  w.Bool(c.backfill_active);
  w.Key("anchor_message_id");
  w.Int64(c.backfill_anchor_message_id);
  w.Key("until_message_id");
  w.Int64(c.backfill_until_message_id);
  if (c.backfill_rewind_to_unix_seconds != 0) {
    w.Key("rewind_to_unix_seconds");
    w.Int64(c.backfill_rewind_to_unix_seconds);
  }
  w.EndObject();
  w.Key("feature_level");
  w.Int64(c.feature_level);
  w.Key("history_floor_message_id");
  w.Int64(c.history_floor_message_id);
  if (c.history_floor_unix_seconds != 0) {
    w.Key("history_floor_unix_seconds");
    w.Int64(c.history_floor_unix_seconds);
  }
  w.Key("settled_poll_unix_ms");
  w.Int64(c.settled_poll_unix_ms);
  if (!c.pending_gap_records.empty()) {
    w.Key("pending_gap_records");
    w.StartArray();
    for (const std::string& gap : c.pending_gap_records) {
      w.String(gap.data(), static_cast<rapidjson::SizeType>(gap.size()));
    }
    w.EndArray();
  }
  w.Key("registered_at_unix_ms");
  w.Int64(c.registered_at_unix_ms);
  if (!c.register_fingerprint.empty()) {
    w.Key("register_fingerprint");
    w.String(c.register_fingerprint.data(),
             static_cast<rapidjson::SizeType>(c.register_fingerprint.size()));
  }
  w.EndObject();
  std::string out(buffer.GetString(), buffer.GetSize());
  out += '\n';
  return out;
}

StatusOr<Checkpoint> CheckpointStore::Parse(std::string_view json, std::string_view origin) {
  const std::string where(origin);
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError()) {
    return Status::Corruption(where + ": not valid JSON (" +
                              rapidjson::GetParseError_En(doc.GetParseError()) + " at byte " +
                              std::to_string(doc.GetErrorOffset()) + ")");
  }
  if (!doc.IsObject()) return Status::Corruption(where + ": not a JSON object");
  auto version = doc.FindMember("version");
  if (version == doc.MemberEnd() || !version->value.IsInt()) {
    return Status::Corruption(where + ": no integer \"version\"");
  }
  const int v = version->value.GetInt();
  if (v > Checkpoint::kFormatVersion) {
    return Status::Corruption(where + ": checkpoint format version " + std::to_string(v) +
                              " is newer than this zulip-bridge understands (" +
                              std::to_string(Checkpoint::kFormatVersion) + ")");
  }
  if (v < 1) {
    return Status::Corruption(where + ": bad checkpoint format version " + std::to_string(v));
  }

  Checkpoint c;
  Status missing;
  auto str = [&](const rapidjson::Value& obj, const char* name, std::string& out) {
    auto it = obj.FindMember(name);
    if (it == obj.MemberEnd() || !it->value.IsString()) {
      if (missing.ok()) missing = Status::Corruption(where + ": no string \"" + name + "\"");
      return;
    }
    out.assign(it->value.GetString(), it->value.GetStringLength());
  };
  auto int64 = [&](const rapidjson::Value& obj, const char* name, int64_t& out) {
    auto it = obj.FindMember(name);
    if (it == obj.MemberEnd() || !it->value.IsInt64()) {
      if (missing.ok()) missing = Status::Corruption(where + ": no integer \"" + name + "\"");
      return;
    }
    out = it->value.GetInt64();
  };
  str(doc, "site", c.site);
  str(doc, "account", c.account);
  str(doc, "queue_id", c.queue_id);
  int64(doc, "watermark", c.watermark);
  int64(doc, "last_published_message_id", c.last_published_message_id);
  int64(doc, "registered_at_unix_ms", c.registered_at_unix_ms);
  // Optional: checkpoints written before it existed have none.
  if (auto fingerprint = doc.FindMember("register_fingerprint"); fingerprint != doc.MemberEnd()) {
    if (!fingerprint->value.IsString()) {
      return Status::Corruption(where + ": \"register_fingerprint\" is not a string");
    }
    c.register_fingerprint.assign(fingerprint->value.GetString(),
                                  fingerprint->value.GetStringLength());
  }
  // Optional: checkpoints written before they existed have none.
  auto optional_int64 = [&](const rapidjson::Value& obj, const char* name, int64_t& out) {
    auto it = obj.FindMember(name);
    if (it == obj.MemberEnd()) return Status::Ok();
    if (!it->value.IsInt64()) {
      return Status::Corruption(where + ": \"" + name + "\" is not an integer");
    }
    out = it->value.GetInt64();
    return Status::Ok();
  };
  ZB_RETURN_IF_ERROR(optional_int64(doc, "feature_level", c.feature_level));
  ZB_RETURN_IF_ERROR(optional_int64(doc, "settled_poll_unix_ms", c.settled_poll_unix_ms));
  ZB_RETURN_IF_ERROR(optional_int64(doc, "history_floor_message_id", c.history_floor_message_id));
  ZB_RETURN_IF_ERROR(
      optional_int64(doc, "history_floor_unix_seconds", c.history_floor_unix_seconds));
  if (auto gaps = doc.FindMember("pending_gap_records"); gaps != doc.MemberEnd()) {
    if (!gaps->value.IsArray()) {
      return Status::Corruption(where + ": \"pending_gap_records\" is not an array");
    }
    for (const rapidjson::Value& gap : gaps->value.GetArray()) {
      if (!gap.IsString()) {
        return Status::Corruption(where + ": \"pending_gap_records\" holds a non-string");
      }
      c.pending_gap_records.emplace_back(gap.GetString(), gap.GetStringLength());
    }
  }
  auto backfill = doc.FindMember("backfill");
  if (backfill == doc.MemberEnd() || !backfill->value.IsObject()) {
    if (missing.ok()) missing = Status::Corruption(where + ": no object \"backfill\"");
  } else {
    auto active = backfill->value.FindMember("active");
    if (active == backfill->value.MemberEnd() || !active->value.IsBool()) {
      if (missing.ok()) missing = Status::Corruption(where + ": no boolean \"backfill.active\"");
    } else {
      c.backfill_active = active->value.GetBool();
    }
    int64(backfill->value, "anchor_message_id", c.backfill_anchor_message_id);
    // Optional: checkpoints written before it existed have none (no bound).
    if (auto until = backfill->value.FindMember("until_message_id");
        until != backfill->value.MemberEnd() && until->value.IsInt64()) {
      c.backfill_until_message_id = until->value.GetInt64();
    }
    ZB_RETURN_IF_ERROR(optional_int64(backfill->value, "rewind_to_unix_seconds",
                                      c.backfill_rewind_to_unix_seconds));
  }
  if (!missing.ok()) return missing;
  return c;
}

StatusOr<std::unique_ptr<CheckpointStore>> CheckpointStore::Open(std::string dir, Fs& fs,
                                                                 Options options) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  ZB_RETURN_IF_ERROR(fs.CreateDir(dir, kDirMode));
  std::unique_ptr<CheckpointStore> store(new CheckpointStore(std::move(dir), fs, options));
  ZB_RETURN_IF_ERROR(store->ReadAll());
  return store;
}

Status CheckpointStore::ReadAll() {
  StatusOr<std::vector<std::string>> names = fs_.ListDir(dir_);
  if (!names.ok()) return names.status();
  std::vector<std::string> read;  // the checkpoint files read
  for (const std::string& name : *names) {
    const std::string path = dir_ + "/" + name;
    if (EndsWith(name, std::string(kSuffix) + std::string(kTempSuffix))) {
      // A commit that did not finish (a crash or an error): the file it was to replace is
      // intact, so the temp file is only litter.
      Status removed = fs_.RemoveFile(path);
      if (!removed.ok() && !removed.IsNotFound()) return removed;
      continue;
    }
    if (!EndsWith(name, kSuffix)) continue;  // the lock, the dead-letter spool, ...
    std::string account;
    if (!DecodeName(std::string_view(name).substr(0, name.size() - kSuffix.size()), account)) {
      return Status::Corruption(path + ": not a checkpoint file name this zulip-bridge writes");
    }
    StatusOr<std::string> data = fs_.ReadFile(path);
    if (!data.ok()) return data.status();
    StatusOr<Checkpoint> checkpoint = Parse(*data, path);
    if (!checkpoint.ok()) return checkpoint.status();
    if (checkpoint->account != account) {
      return Status::Corruption(path + ": holds the checkpoint of account \"" +
                                checkpoint->account + "\"");
    }
    committed_[account] = std::move(*checkpoint);
    read.push_back(path);
  }
  // What is read here is acted on (sent to Zulip as last_event_id), so it must be durable, not
  // merely in the page cache: a commit whose file or directory sync failed in an earlier run
  // may have left a newer checkpoint that a power loss would still take back. The same syncs
  // as a commit, then the directory (the renames and removals of earlier runs, and the temp
  // files removed above).
  ZB_RETURN_IF_ERROR(SyncFiles(read));
  return fs_.SyncDir(dir_);
}

StatusOr<Checkpoint> CheckpointStore::Load(std::string_view account) const {
  auto it = committed_.find(account);
  if (it == committed_.end()) {
    return Status::NotFound("no checkpoint for account \"" + std::string(account) + "\" in " +
                            dir_);
  }
  return it->second;
}

std::vector<Checkpoint> CheckpointStore::LoadAll() const {
  std::vector<Checkpoint> all;
  all.reserve(committed_.size());
  for (const auto& [account, checkpoint] : committed_) all.push_back(checkpoint);
  return all;
}

void CheckpointStore::Stage(std::string_view account, Checkpoint checkpoint) {
  checkpoint.account = std::string(account);
  staged_.insert_or_assign(std::string(account), std::move(checkpoint));
}

std::vector<std::string> CheckpointStore::StagedAccounts() const {
  std::vector<std::string> accounts;
  accounts.reserve(staged_.size());
  for (const auto& entry : staged_) accounts.push_back(entry.first);
  return accounts;
}

Status CheckpointStore::SyncTemps(const std::vector<std::string>& accounts) {
  std::vector<std::string> paths;
  paths.reserve(accounts.size());
  for (const std::string& account : accounts) {
    paths.push_back(PathFor(account) + std::string(kTempSuffix));
  }
  return SyncFiles(paths);
}

Status CheckpointStore::SyncFiles(const std::vector<std::string>& paths) {
  if (paths.empty()) return Status::Ok();
  if (paths.size() >= options_.syncfs_min_accounts) return fs_.SyncFs(dir_);
  const size_t threads = std::min(options_.sync_threads, paths.size());
  if (threads <= 1) {
    for (const std::string& path : paths) ZB_RETURN_IF_ERROR(fs_.SyncFile(path));
    return Status::Ok();
  }
  // fsyncs issued together share the file system's journal commits (ext4 and XFS batch what is
  // waiting), so N files cost far less than N commits in a row; each thread takes every
  // threads-th file. The first error wins; the others still finish (nothing is left half done).
  Mutex mu;
  Status first;  // under `mu` until the workers are joined
  std::vector<std::thread> workers;
  workers.reserve(threads);
  for (size_t t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (size_t i = t; i < paths.size(); i += threads) {
        Status synced = fs_.SyncFile(paths[i]);
        if (synced.ok()) continue;
        MutexLock lock(&mu);
        if (first.ok()) first = std::move(synced);
        return;
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  return first;
}

void CheckpointStore::RemoveTemps(const std::vector<std::string>& accounts) {
  for (const std::string& account : accounts) {
    (void)fs_.RemoveFile(PathFor(account) + std::string(kTempSuffix));
  }
}

Status CheckpointStore::Restore(const std::vector<std::string>& accounts) {
  if (accounts.empty()) return Status::Ok();
  // The same protocol as Commit, with the committed checkpoints: the restored files must not be
  // torn either.
  std::vector<std::string> rewrite;
  Status first;
  auto note = [&first](Status s) {
    if (first.ok() && !s.ok() && !s.IsNotFound()) first = std::move(s);
  };
  for (const std::string& account : accounts) {
    auto it = committed_.find(account);
    if (it == committed_.end()) {
      note(fs_.RemoveFile(PathFor(account)));
      continue;
    }
    Status written = fs_.WriteFile(PathFor(account) + std::string(kTempSuffix),
                                   Serialize(it->second), kFileMode);
    note(written);
    if (written.ok()) rewrite.push_back(account);
  }
  if (!rewrite.empty()) {
    Status synced = SyncTemps(rewrite);
    note(synced);
    if (synced.ok()) {
      for (const std::string& account : rewrite) {
        const std::string path = PathFor(account);
        note(fs_.Rename(path + std::string(kTempSuffix), path));
      }
    }
  }
  note(fs_.SyncDir(dir_));
  RemoveTemps(accounts);
  return first;
}

Status CheckpointStore::Commit() {
  if (staged_.empty()) return Status::Ok();
  std::vector<std::string> accounts = StagedAccounts();
  auto fail = [this](const Status& cause, const char* step) {
    return cause.WithContext(std::string("checkpoint commit of ") + std::to_string(staged_.size()) +
                             " account(s) in " + dir_ + " (" + step + ")");
  };

  // 1. Every new checkpoint into its temp file; nothing visible changes yet.
  for (const std::string& account : accounts) {
    Status written = fs_.WriteFile(PathFor(account) + std::string(kTempSuffix),
                                   Serialize(staged_.at(account)), kFileMode);
    if (!written.ok()) {
      RemoveTemps(accounts);
      return fail(written, "write");
    }
  }
  // 2. One sync makes all the temp files durable before any of them replaces a checkpoint, so
  // a crash after a rename can never expose an unwritten file.
  Status synced = SyncTemps(accounts);
  if (!synced.ok()) {
    RemoveTemps(accounts);
    return fail(synced, "sync");
  }
  // 3. Atomic replacement, one account at a time.
  std::vector<std::string> renamed;
  for (const std::string& account : accounts) {
    const std::string path = PathFor(account);
    Status moved = fs_.Rename(path + std::string(kTempSuffix), path);
    if (!moved.ok()) {
      Status restored = Restore(renamed);
      RemoveTemps(accounts);
      return WithRestoreFailure(fail(moved, "rename"), restored);
    }
    renamed.push_back(account);
  }
  // 4. One directory sync makes all the renames durable.
  Status dir_synced = fs_.SyncDir(dir_);
  if (!dir_synced.ok()) {
    Status restored = Restore(renamed);
    return WithRestoreFailure(fail(dir_synced, "directory sync"), restored);
  }
  for (auto& [account, checkpoint] : staged_) committed_[account] = std::move(checkpoint);
  staged_.clear();
  return Status::Ok();
}

Status CheckpointStore::Remove(std::string_view account) {
  staged_.erase(std::string(account));
  Status removed = fs_.RemoveFile(PathFor(account));
  if (!removed.ok() && !removed.IsNotFound()) return removed;
  if (removed.ok()) ZB_RETURN_IF_ERROR(fs_.SyncDir(dir_));
  committed_.erase(std::string(account));
  return Status::Ok();
}

}  // namespace zb
