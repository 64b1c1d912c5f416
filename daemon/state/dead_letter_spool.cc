#include "daemon/state/dead_letter_spool.h"

#include <fcntl.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <utility>

#include "daemon/base/log.h"

namespace zb {
namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string Base64Encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t n = (uint32_t{static_cast<uint8_t>(in[i])} << 16) |
                 (uint32_t{static_cast<uint8_t>(in[i + 1])} << 8) | static_cast<uint8_t>(in[i + 2]);
    out += kBase64Alphabet[(n >> 18) & 63];
    out += kBase64Alphabet[(n >> 12) & 63];
    out += kBase64Alphabet[(n >> 6) & 63];
    out += kBase64Alphabet[n & 63];
  }
  size_t rest = in.size() - i;
  if (rest > 0) {
    uint32_t n = uint32_t{static_cast<uint8_t>(in[i])} << 16;
    if (rest == 2) n |= uint32_t{static_cast<uint8_t>(in[i + 1])} << 8;
    out += kBase64Alphabet[(n >> 18) & 63];
    out += kBase64Alphabet[(n >> 12) & 63];
    out += rest == 2 ? kBase64Alphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> Base64Decode(std::string_view in) {
  if (in.size() % 4 != 0) return std::nullopt;
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    int pad = 0;
    uint32_t n = 0;
    for (size_t j = 0; j < 4; ++j) {
      char c = in[i + j];
      if (c == '=' && i + 4 == in.size() && j >= 2) {
        ++pad;
        n <<= 6;
        continue;
      }
      int v = value(c);
      if (v < 0 || pad > 0) return std::nullopt;
      n = (n << 6) | static_cast<uint32_t>(v);
    }
    out += static_cast<char>((n >> 16) & 0xff);
    if (pad < 2) out += static_cast<char>((n >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(n & 0xff);
  }
  return out;
}

// Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto b = static_cast<uint8_t>(s[i]);
    if (b < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((b & 0xe0) == 0xc0) {
      len = 2;
      cp = b & 0x1f;
    } else if ((b & 0xf0) == 0xe0) {
      len = 3;
      cp = b & 0x0f;
    } else if ((b & 0xf8) == 0xf0) {
      len = 4;
      cp = b & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t j = 1; j < len; ++j) {
      auto c = static_cast<uint8_t>(s[i + j]);
      if ((c & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += len;
  }
  return true;
}

void WriteString(JsonWriter& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

// `name` holding the bytes as a JSON string when they are UTF-8, else `name`_base64.
void WriteBytes(JsonWriter& w, std::string_view name, std::string_view bytes) {
  if (IsValidUtf8(bytes)) {
    WriteString(w, name);
    WriteString(w, bytes);
  } else {
    WriteString(w, std::string(name) + "_base64");
    WriteString(w, Base64Encode(bytes));
  }
}

// Reads what WriteBytes wrote: nullopt when neither field is there; an error text in `error`
// when one is there but malformed.
std::optional<std::string> ReadBytes(const rapidjson::Value& object, const std::string& name,
                                     std::string* error) {
  auto plain = object.FindMember(name.c_str());
  if (plain != object.MemberEnd()) {
    if (!plain->value.IsString()) {
      *error = "\"" + name + "\" is not a string";
      return std::nullopt;
    }
    return std::string(plain->value.GetString(), plain->value.GetStringLength());
  }
  const std::string encoded_name = name + "_base64";
  auto encoded = object.FindMember(encoded_name.c_str());
  if (encoded == object.MemberEnd()) return std::nullopt;
  std::optional<std::string> decoded;
  if (encoded->value.IsString()) {
    decoded = Base64Decode(
        std::string_view(encoded->value.GetString(), encoded->value.GetStringLength()));
  }
  if (!decoded) *error = "\"" + encoded_name + "\" is not base64";
  return decoded;
}

// Holds the spool's file lock for a scope. flock(2) on a separate file: the spool itself is
// renamed by a replay, and a lock on it would move with it.
class FileLock {
 public:
  explicit FileLock(int fd) : fd_(fd) {
    while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
    }
  }
  ~FileLock() { ::flock(fd_, LOCK_UN); }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_;
};

int64_t FileSize(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<int64_t>(st.st_size);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

Counter& DeadLetterSpool::RecordsCounter(MetricsRegistry& metrics, std::string_view account) {
  return metrics.GetCounter("zb_dead_letter_records_total",
                            "Records Kafka would never take, written to the dead-letter spool",
                            {{"account", std::string(account)}});
}

std::string DeadLetterSpool::Serialize(const DeadLetter& letter) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("v");
  w.Int(DeadLetter::kFormatVersion);
  w.Key("account");
  WriteString(w, letter.account);
  w.Key("event_id");
  w.Int64(letter.event_id);
  w.Key("type");
  WriteString(w, letter.type);
  w.Key("topic");
  WriteString(w, letter.topic);
  if (letter.key) {
    WriteBytes(w, "key", *letter.key);
  } else {
    w.Key("key");
    w.Null();
  }
  w.Key("headers");
  w.StartArray();
  for (const auto& [name, value] : letter.headers) {
    w.StartObject();
    w.Key("name");
    WriteString(w, name);
    WriteBytes(w, "value", value);
    w.EndObject();
  }
  w.EndArray();
  w.Key("timestamp_ms");
  w.Int64(letter.timestamp_ms);
  w.Key("error");
  WriteString(w, letter.error);
  w.Key("spooled_at");
  WriteString(w, letter.spooled_at);
  // Last, so that the metadata of a large record can be read at the start of its line.
  WriteBytes(w, "value", letter.value);
  w.EndObject();
  std::string line(buffer.GetString(), buffer.GetSize());
  line += '\n';
  return line;
}

StatusOr<DeadLetter> DeadLetterSpool::Parse(std::string_view line, std::string_view origin) {
  auto corrupt = [&](const std::string& what) {
    return Status::Corruption(std::string(origin) + ": " + what);
  };
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  rapidjson::Document doc;
  doc.Parse(line.data(), line.size());
  if (doc.HasParseError() || !doc.IsObject()) return corrupt("not a JSON object");
  auto v = doc.FindMember("v");
  if (v == doc.MemberEnd() || !v->value.IsInt()) return corrupt("no version (\"v\")");
  if (v->value.GetInt() != DeadLetter::kFormatVersion) {
    return corrupt("version " + std::to_string(v->value.GetInt()) + ", this build reads " +
                   std::to_string(DeadLetter::kFormatVersion));
  }
  DeadLetter letter;
  auto get_string = [&](const char* name, std::string* out) {
    auto it = doc.FindMember(name);
    if (it == doc.MemberEnd() || !it->value.IsString()) return false;
    out->assign(it->value.GetString(), it->value.GetStringLength());
    return true;
  };
  auto get_int = [&](const char* name, int64_t* out) {
    auto it = doc.FindMember(name);
    if (it == doc.MemberEnd() || !it->value.IsInt64()) return false;
    *out = it->value.GetInt64();
    return true;
  };
  if (!get_string("account", &letter.account)) return corrupt("no \"account\"");
  if (!get_int("event_id", &letter.event_id)) return corrupt("no \"event_id\"");
  if (!get_string("type", &letter.type)) return corrupt("no \"type\"");
  if (!get_string("topic", &letter.topic)) return corrupt("no \"topic\"");
  if (!get_int("timestamp_ms", &letter.timestamp_ms)) return corrupt("no \"timestamp_ms\"");
  if (!get_string("error", &letter.error)) return corrupt("no \"error\"");
  if (!get_string("spooled_at", &letter.spooled_at)) return corrupt("no \"spooled_at\"");
  std::string error;
  auto key = doc.FindMember("key");
  if (key == doc.MemberEnd() || !key->value.IsNull()) {
    letter.key = ReadBytes(doc, "key", &error);
    if (!letter.key) return corrupt(error.empty() ? "no \"key\"" : error);
  }
  auto headers = doc.FindMember("headers");
  if (headers == doc.MemberEnd() || !headers->value.IsArray()) return corrupt("no \"headers\"");
  for (const rapidjson::Value& header : headers->value.GetArray()) {
    if (!header.IsObject() || !header.HasMember("name") || !header["name"].IsString()) {
      return corrupt("a header without a name");
    }
    std::optional<std::string> value = ReadBytes(header, "value", &error);
    if (!value) return corrupt(error.empty() ? "a header without a value" : error);
    letter.headers.emplace_back(
        std::string(header["name"].GetString(), header["name"].GetStringLength()),
        std::move(*value));
  }
  std::optional<std::string> value = ReadBytes(doc, "value", &error);
  if (!value) return corrupt(error.empty() ? "no \"value\"" : error);
  letter.value = std::move(*value);
  return letter;
}

StatusOr<std::unique_ptr<DeadLetterSpool>> DeadLetterSpool::Open(std::string dir, Fs& fs,
                                                                 MetricsRegistry& metrics,
                                                                 Options options) {
  std::string lock_path = dir + "/" + kLockFileName;
  int fd;
  do {
    fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return Status::FromErrno("open " + lock_path, errno);
  auto spool = std::unique_ptr<DeadLetterSpool>(
      new DeadLetterSpool(std::move(dir), fs, metrics, options, fd));
  spool->RefreshSize();
  return spool;
}

DeadLetterSpool::DeadLetterSpool(std::string dir, Fs& fs, MetricsRegistry& metrics, Options options,
                                 int lock_fd)
    : dir_(std::move(dir)),
      path_(dir_ + "/" + kFileName),
      replaying_path_(dir_ + "/" + kReplayingFileName),
      fs_(fs),
      metrics_(metrics),
      options_(options),
      lock_fd_(lock_fd),
      bytes_(metrics.GetGauge("zb_dead_letter_bytes",
                              "Bytes in the dead-letter spool files (as last measured)")),
      refused_(metrics.GetCounter(
          "zb_dead_letter_refused_total",
          "Dead-letter appends refused because the spool was at dead_letter.max_bytes "
          "(the account holds; retries counted)")) {}

DeadLetterSpool::~DeadLetterSpool() { ::close(lock_fd_); }

int64_t DeadLetterSpool::SizeLocked() const { return FileSize(path_) + FileSize(replaying_path_); }

int64_t DeadLetterSpool::RefreshSize() {
  MutexLock lock(&mu_);
  int64_t size = SizeLocked();
  bytes_.Set(static_cast<double>(size));
  return size;
}

Status DeadLetterSpool::AppendLocked(std::string_view data) {
  const bool existed = Exists(path_);
  int fd;
  do {
    fd = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return Status::FromErrno("open " + path_, errno);
  if (!existed) dir_sync_pending_ = true;
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    Status status = Status::FromErrno("stat " + path_, errno);
    ::close(fd);
    return status;
  }
  off_t old_size = st.st_size;
  char last = '\n';
  if (old_size > 0 && ::pread(fd, &last, 1, old_size - 1) != 1) {
    Status status = Status::FromErrno("read " + path_, errno);
    ::close(fd);
    return status;
  }
  if (last != '\n') {
    // A crash cut an append short. That record was never synced, so its account never
    // settled it and Zulip sends it again: cut the fragment off rather than glue the next
    // line to it.
    StatusOr<std::string> text = fs_.ReadFile(path_);
    if (!text.ok()) {
      ::close(fd);
      return text.status();
    }
    size_t end = text->rfind('\n');
    old_size = end == std::string::npos ? 0 : static_cast<off_t>(end + 1);
    if (::ftruncate(fd, old_size) != 0) {
      Status status = Status::FromErrno("truncate " + path_, errno);
      ::close(fd);
      return status;
    }
    LogWarn("dead-letter spool ended in a torn line (a crash during an append); cut it off",
            {{"path", path_}});
  }
  // On any failure from here on, the file goes back to its old size: a retry then appends one
  // whole line, and no unsynced line stays to be replayed without its event having settled.
  auto undo = [&](Status status) {
    (void)::truncate(path_.c_str(), old_size);
    return status;
  };
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      Status status = Status::FromErrno("write " + path_, errno);
      ::close(fd);
      return undo(status);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  if (::close(fd) != 0) return undo(Status::FromErrno("close " + path_, errno));
  Status synced = fs_.SyncFile(path_);
  if (!synced.ok()) return undo(synced);
  if (dir_sync_pending_) {
    Status dir_synced = fs_.SyncDir(dir_);
    if (!dir_synced.ok()) return undo(dir_synced);
    dir_sync_pending_ = false;
  }
  return Status::Ok();
}

Status DeadLetterSpool::Append(const DeadLetter& letter) {
  const std::string line = Serialize(letter);
  MutexLock lock(&mu_);
  FileLock file_lock(lock_fd_);
  const int64_t size = SizeLocked();
  if (size + static_cast<int64_t>(line.size()) > options_.max_bytes) {
    refused_.Inc();
    bytes_.Set(static_cast<double>(size));
    return Status::Unavailable(
        "dead-letter spool full: " + std::to_string(size) + " bytes of dead_letter.max_bytes " +
        std::to_string(options_.max_bytes) + ", a record of " + std::to_string(line.size()) +
        " bytes does not fit (" + path_ +
        "); replay it with zulip-bridge replay-dead-letters or raise the cap");
  }
  Status appended = AppendLocked(line);
  bytes_.Set(static_cast<double>(SizeLocked()));
  if (!appended.ok()) return appended;
  RecordsCounter(metrics_, letter.account).Inc();
  // Every one, not rate-limited: each is a record an operator has to act on.
  Log(LogLevel::kError,
      "event dead-lettered: Kafka will never take it as it is; it is in the spool and its "
      "account goes on",
      {{"account", letter.account},
       {"event_id", letter.event_id},
       {"type", letter.type},
       {"topic", letter.topic},
       {"error", letter.error},
       {"bytes", letter.value.size()},
       {"spool", path_}});
  return Status::Ok();
}

DeadLetterBatch DeadLetterSpool::ParseFile(std::string_view text, const std::string& origin) {
  DeadLetterBatch batch;
  size_t line_number = 0;
  while (!text.empty()) {
    size_t end = text.find('\n');
    ++line_number;
    if (end == std::string_view::npos) {
      // A torn last line: an append a crash cut short, never synced and never settled.
      LogWarn("dead-letter spool ends in a torn line (a crash during an append); ignored",
              {{"path", origin}, {"line", line_number}});
      break;
    }
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end + 1);
    if (line.empty()) continue;
    StatusOr<DeadLetter> letter = Parse(line, origin + ":" + std::to_string(line_number));
    if (letter.ok()) {
      batch.records.push_back(std::move(*letter));
    } else {
      LogError("dead-letter spool line not readable; kept as it is",
               {{"error", letter.status().message()}});
      batch.unreadable_lines.emplace_back(line);
    }
  }
  return batch;
}

StatusOr<DeadLetterBatch> DeadLetterSpool::TakeForReplay() {
  bool leftover = false;
  {
    MutexLock lock(&mu_);
    FileLock file_lock(lock_fd_);
    if (Exists(replaying_path_)) {
      leftover = true;
    } else if (Exists(path_)) {
      ZB_RETURN_IF_ERROR(fs_.Rename(path_, replaying_path_));
      // Should this fail, the rename may not survive a crash; the replaying file is then
      // still there for the next replay, or the records are back in the spool: either way kept.
      ZB_RETURN_IF_ERROR(fs_.SyncDir(dir_));
    } else {
      return DeadLetterBatch{};
    }
  }
  // No lock needed to read: nobody appends to the replaying file.
  StatusOr<std::string> text = fs_.ReadFile(replaying_path_);
  if (!text.ok()) return text.status();
  DeadLetterBatch batch = ParseFile(*text, replaying_path_);
  batch.leftover = leftover;
  return batch;
}

Status DeadLetterSpool::FinishReplay(const std::vector<DeadLetter>& keep,
                                     const std::vector<std::string>& unreadable_lines) {
  std::string data;
  for (const DeadLetter& letter : keep) data += Serialize(letter);
  for (const std::string& line : unreadable_lines) {
    data += line;
    data += '\n';
  }
  MutexLock lock(&mu_);
  FileLock file_lock(lock_fd_);
  if (!data.empty()) ZB_RETURN_IF_ERROR(AppendLocked(data));
  Status removed = fs_.RemoveFile(replaying_path_);
  if (!removed.ok() && !removed.IsNotFound()) return removed;
  Status synced = fs_.SyncDir(dir_);
  bytes_.Set(static_cast<double>(SizeLocked()));
  return synced;
}

}  // namespace zb
