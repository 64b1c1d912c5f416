// The dead-letter spool (DESIGN.md "Kafka records"): where a record that Kafka will never take
// (too large, not authorised, invalid) is kept, durably, so that its account can go on and an
// operator can send it again once the cause is fixed (`zulip-bridge replay-dead-letters`).
//
// On disk, in the state directory:
//   dead-letters.jsonl            the spool: one JSON object per line, appended
//   dead-letters.replaying.jsonl  the records a replay took (renamed from the spool); a crashed
//                                 replay leaves it behind and the next replay takes it first
//   dead-letters.lock             flock(2)ed around each append and each rename, so that the
//                                 daemon can append while a replay runs in another process
// Every line is a version-1 record:
//   {"v":1,"account":"alice","event_id":42,"type":"message","topic":"zulip.message",
//    "key":"alice","headers":[{"name":"zulip-site","value":"https://..."},...],
//    "timestamp_ms":1764300000000,"error":"MSG_SIZE_TOO_LARGE: ...",
//    "spooled_at":"2026-11-28T06:30:00.123Z","value":"{\"type\":\"message\",...}"}
// "key" is null for a record without a key. Byte fields (value, key, header values) are JSON
// strings holding the exact bytes when those bytes are valid UTF-8 (an event as Zulip sent it
// always is), and otherwise "<field>_base64" holding them in base64: any byte sequence comes
// back exactly, and every line stays valid JSON for jq and friends. A reader refuses (keeps,
// untouched) lines with a newer "v".
//
// Durability: Append writes the line with O_APPEND, fsyncs the file (Fs::SyncFile) and, when the
// file is new, its directory (Fs::SyncDir); only then does it return OK, and only then may the
// caller settle the event in its watermark. A failed append is cut off again (ftruncate to the
// old size), so a retried append leaves one line, not a torn one and a whole one. The append
// itself is a plain write(2): Fs has no append operation, so FaultyFs can break the syncs, the
// renames, the reads and the removes of the spool, not the write.
//
// Size cap: an append that would take the spool (with a replaying file, if any) past max_bytes
// is refused (Unavailable, "dead-letter spool full"), counted in zb_dead_letter_refused_total,
// and nothing is written: the caller holds its account (never lose), and retries later.
//
// Metrics: zb_dead_letter_records_total{account} (records spooled), zb_dead_letter_bytes
// (bytes in the spool files, as this process last saw them), zb_dead_letter_refused_total.
// Each spooled record is logged once (account, event id, type, topic, error; never the value).
//
// Threads: every method may be called from any thread; calls are serialised by a mutex (and
// across processes by the lock file). Append blocks for a write and one or two fsyncs: the
// daemon calls it on its event loop, which is acceptable for records that should be rare.
#ifndef ZB_DAEMON_STATE_DEAD_LETTER_SPOOL_H_
#define ZB_DAEMON_STATE_DEAD_LETTER_SPOOL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/base/fs.h"
#include "daemon/base/metrics.h"
#include "daemon/base/mutex.h"
#include "daemon/base/status.h"
#include "daemon/base/time_format.h"  // spooled_at
#include "daemon/kafka/kafka_publisher.h"

namespace zb {

// One dead-lettered record: the Kafka record as it was produced, and why it was not taken.
struct DeadLetter {
  static constexpr int kFormatVersion = 1;

  std::string account;
  int64_t event_id = -1;
  std::string type;  // the event type ("" when unknown)
  std::string topic;
  std::optional<std::string> key;
  std::vector<KafkaHeader> headers;
  int64_t timestamp_ms = 0;  // the record's timestamp (when the daemon received the event)
  std::string error;         // the last reason Kafka refused it
  std::string spooled_at;    // RFC 3339, UTC, milliseconds: FormatUtcMillis (time_format.h)
  std::string value;         // the exact bytes

  friend bool operator==(const DeadLetter&, const DeadLetter&) = default;
};

// What a replay took out of the spool.
struct DeadLetterBatch {
  // True when these records come from a replaying file a crashed replay left behind.
  bool leftover = false;
  std::vector<DeadLetter> records;
  // Lines that did not parse, or have a newer version: kept as they are, never dropped.
  std::vector<std::string> unreadable_lines;
};

class DeadLetterSpool {
 public:
  static constexpr char kFileName[] = "dead-letters.jsonl";
  static constexpr char kReplayingFileName[] = "dead-letters.replaying.jsonl";
  static constexpr char kLockFileName[] = "dead-letters.lock";

  struct Options {
    // dead_letter.max_bytes: the most the spool files may hold together.
    int64_t max_bytes = int64_t{1} << 30;
  };

  // Opens the spool in `dir` (which must exist), creating the lock file (0600) if missing, and
  // measures the spool files. IOError with the path and strerror if the lock file cannot be
  // opened. `fs` and `metrics` must outlive the spool.
  static StatusOr<std::unique_ptr<DeadLetterSpool>> Open(std::string dir, Fs& fs,
                                                         MetricsRegistry& metrics, Options options);
  ~DeadLetterSpool();
  DeadLetterSpool(const DeadLetterSpool&) = delete;
  DeadLetterSpool& operator=(const DeadLetterSpool&) = delete;

  // Appends `letter` durably (see the class comment) and logs it. OK: durable; the caller may
  // settle the event. Unavailable: the cap would be passed; nothing written. IOError (path and
  // strerror): not durable, nothing left in the file. Either way the caller must not settle.
  Status Append(const DeadLetter& letter);

  // For a replay: takes the records to send again. If a replaying file exists (a replay
  // crashed), returns its records with leftover=true and leaves the spool alone; otherwise
  // renames the spool to the replaying file (under the lock, so no append is cut in two),
  // makes the rename durable, and returns its records. An empty batch when there is nothing.
  // IOError if the rename or the read fails (nothing moved then, or the file stays for the
  // next replay).
  StatusOr<DeadLetterBatch> TakeForReplay();

  // Ends a replay: appends `keep` (the records still failing, with their new error) and the
  // `unreadable_lines` back to the spool, durably and whatever the cap, then removes the
  // replaying file durably. A crash in between leaves both: the next replay sends the kept
  // records again (duplicates are possible, losses not).
  Status FinishReplay(const std::vector<DeadLetter>& keep,
                      const std::vector<std::string>& unreadable_lines);

  // Measures the spool files again and updates zb_dead_letter_bytes (a replay in another
  // process shrinks them). Returns the bytes.
  int64_t RefreshSize();

  // zb_dead_letter_records_total{account}: the records Append() took for `account`. Its one
  // home: the spool counts it, and an account creates its series at zero from the start
  // (account_metrics.cc), so that alerts see it before the first dead letter.
  static Counter& RecordsCounter(MetricsRegistry& metrics, std::string_view account);

  const std::string& path() const { return path_; }
  const std::string& replaying_path() const { return replaying_path_; }

  // One line (with its "\n") for `letter`, and back. Parse: Corruption naming `origin` for a
  // line that is not a version-1 record (a newer version says so).
  static std::string Serialize(const DeadLetter& letter);
  static StatusOr<DeadLetter> Parse(std::string_view line, std::string_view origin);

 private:
  DeadLetterSpool(std::string dir, Fs& fs, MetricsRegistry& metrics, Options options, int lock_fd);
  // Appends `data` (whole lines) to the spool and makes it durable. Caller holds mu_ and the
  // file lock.
  Status AppendLocked(std::string_view data) ZB_REQUIRES(mu_);
  int64_t SizeLocked() const ZB_REQUIRES(mu_);
  // Parses a whole spool file.
  static DeadLetterBatch ParseFile(std::string_view text, const std::string& origin);

  const std::string dir_;
  const std::string path_;
  const std::string replaying_path_;
  Fs& fs_;
  MetricsRegistry& metrics_;
  const Options options_;
  const int lock_fd_;
  Gauge& bytes_;
  Counter& refused_;

  Mutex mu_;
  // The spool was created but its directory entry is not known to be durable yet.
  bool dir_sync_pending_ ZB_GUARDED_BY(mu_) = false;
};

}  // namespace zb

#endif  // ZB_DAEMON_STATE_DEAD_LETTER_SPOOL_H_
