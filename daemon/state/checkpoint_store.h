// Durable per-account checkpoints: how far each account has safely got (DESIGN.md
// "Checkpoints"). The watermark stored here is the `last_event_id` the account may send to Zulip;
// it is sent only after the Commit that made it durable returned OK, so the disk is never behind
// what Zulip was told.
//
// On disk: one file per account, `<dir>/<encoded account>.checkpoint.json`, mode 0600, JSON with
// a "version" field. The account name is encoded so any name is a safe file name: bytes outside
// [A-Za-z0-9_-] become %XX.
//
// Group commit: Stage() records checkpoints in memory; Commit() makes every staged one durable
// at once, one durable write per loop turn for every account that advanced in it (DESIGN.md):
// write each to `<file>.tmp`, sync the temp files, rename each over its file, one fsync of the
// directory.
//
// How the temp files are synced (issue #15). syncfs(2) is one call whatever the number of
// files, but it flushes the whole file system, other programs' dirty data included (a broker, a
// database, a log shipper on the same disk), so its cost is set by the machine, not by the
// daemon, and it is paid on the event loop (watchdog included). So a commit fsyncs its own temp
// files, from Options::sync_threads threads at once: fsyncs waiting together share the file
// system's journal commits (ext4 and XFS batch them), so N files cost far fewer than N commits
// in a row. Only a commit of at least Options::syncfs_min_accounts accounts (4096: thousands of
// accounts advancing in one loop turn) uses one syncfs, where even batched fsyncs would be many
// journal commits on a slow disk and one flush shared by thousands of accounts is the cheaper
// bound. Measured with bench/checkpoint_store_bench.cc on the 2-core development VM (ext4,
// virtio; medians of 3, milliseconds, alone / beside 64 MiB of another program's dirty data):
//   accounts      syncfs              fsync each in turn    fsync from 8 threads
//   1             1.0 / 18            0.3 / 16              0.8 / 17
//   10            9.7 / 19            10 / 19               10 / 18
//   1000          792 / 821           958 / 1013            786 / 892
//   10000         3226 / 4327         3322 / 6768           4805 / 4134
// There the cost is the per-file work (write, rename), not the syncs: the three ways are within
// the noise of a shared machine, so the one whose cost the daemon alone decides is the default.
//
// Open makes what it reads durable (an fsync of each checkpoint and of the directory) before
// anyone acts on it: an earlier run's commit whose sync failed may have left a newer checkpoint
// in the page cache only, and sending its watermark to Zulip would put the disk behind what
// Zulip was told (found by the simulation, #15).
//
// Failure: a failed Commit reports the error (path and strerror) and leaves the staged
// checkpoints pending for the next Commit. Before any rename, nothing on disk changed. If a
// rename or the directory fsync fails, the accounts already renamed are put back to their
// previous checkpoint (best effort, itself synced). A file is never torn: it is replaced only by
// rename of a synced temp file. Should even the restore fail, a file may hold the new checkpoint:
// it is complete and only ever ahead of what Zulip was told (Commit failed, so the new watermark
// was not sent), which is safe. A `.tmp` left by a crash is removed at Open.
//
// Not thread-safe: owned by the event loop thread (Commit blocks that thread for the syncs,
// once per loop turn; the fsync threads live only inside Commit and call only the Fs, which is
// thread-safe).
#ifndef ZB_DAEMON_STATE_CHECKPOINT_STORE_H_
#define ZB_DAEMON_STATE_CHECKPOINT_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/base/fs.h"
#include "daemon/base/status.h"

namespace zb {

struct Checkpoint {
  // The version this build writes. Files with a newer version are refused (Corruption), so a
  // downgrade cannot misread them.
  static constexpr int kFormatVersion = 1;

  std::string site;     // the Zulip server's URL
  std::string account;  // the configured account name (set by Stage)
  std::string queue_id;
  // The last_event_id to send on the next GET /events: -1 for a fresh queue.
  int64_t watermark = -1;
  // The highest message id published to Kafka for this account (live or backfill); -1 if none.
  int64_t last_published_message_id = -1;
  // Backfill progress after a gap: while active, messages after `backfill_anchor_message_id`
  // are still to be fetched through GET /messages before the new queue is polled.
  bool backfill_active = false;
  int64_t backfill_anchor_message_id = -1;
  // The newest message the backfill reads (the new queue's max_message_id: it has every later
  // one); -1 when unknown (no bound).
  int64_t backfill_until_message_id = -1;
  // When the queue was registered (Unix time, milliseconds); 0 if unknown.
  int64_t registered_at_unix_ms = 0;
  // The server's zulip_feature_level when the queue was registered (the zulip-feature-level
  // header of a resumed queue's records); 0 if unknown (written by an older version).
  int64_t feature_level = 0;
  // When the last poll whose every event is settled returned (Unix time, milliseconds): every
  // event that reached the queue before it is in Kafka. The registration time for a queue not
  // polled yet; 0 if unknown. After a loss, the backfill reads back from messages sent a margin
  // before it (kBackfillRewindSeconds in gap_recovery.h), since a message's event can reach the
  // queue after a message with a higher id. Also the gap record's last_good_poll after a restart.
  int64_t settled_poll_unix_ms = 0;
  // While a backfill has not yet made its first batch durable: where its narrows are read back
  // from (messages sent at or after this, Unix seconds); 0 for none.
  int64_t backfill_rewind_to_unix_seconds = 0;
  // Where the account's stream starts: the newest message when its first queue was registered
  // (or where backfill_from began). A backfill never reads back below it a message sent before
  // history_floor_unix_seconds: older messages are history the operator did not ask for. -1 if
  // unknown (no floor).
  int64_t history_floor_message_id = -1;
  // The time side of the floor: the first registration's time less the read-back margin (Unix
  // seconds). A message below the floor's id sent after it may have committed after that
  // registration and reached the first queue as an event (FACTS §3), so a read-back reads it.
  // 0 if unknown (written by an older version): the floor is by id alone.
  int64_t history_floor_unix_seconds = 0;
  // Gap records (control-topic JSON) not yet acknowledged by Kafka: published at start and kept
  // until Kafka takes them, so that a stop before then does not lose the report of a gap.
  std::vector<std::string> pending_gap_records;
  // What the queue was registered with (RegisterFingerprint of the account's configuration);
  // empty if unknown (written by an older version). A different one on start means the
  // register arguments changed since: the queue is replaced (a gap record, then a backfill).
  std::string register_fingerprint;

  friend bool operator==(const Checkpoint&, const Checkpoint&) = default;
};

class CheckpointStore {
 public:
  struct Options {
    // Commits of at least this many accounts use one syncfs(2); smaller ones fsync each temp
    // file (see the class comment).
    size_t syncfs_min_accounts = 4096;
    // How many threads fsync the temp files of one commit at once (1: one after the other).
    size_t sync_threads = 8;
  };

  // Creates `dir` (mode 0700) if missing, removes `.tmp` files a crash left, and reads every
  // checkpoint. IOError (path and errno text) if the directory cannot be created or read;
  // Corruption naming the file if a checkpoint does not parse, has a newer version, or names
  // another account than its file name.
  static StatusOr<std::unique_ptr<CheckpointStore>> Open(std::string dir, Fs& fs, Options options);
  static StatusOr<std::unique_ptr<CheckpointStore>> Open(std::string dir, Fs& fs) {
    return Open(std::move(dir), fs, Options());
  }
  CheckpointStore(const CheckpointStore&) = delete;
  CheckpointStore& operator=(const CheckpointStore&) = delete;

  // The last durable checkpoint of `account` (staged ones are not returned until committed).
  // NotFound if it has none.
  StatusOr<Checkpoint> Load(std::string_view account) const;
  // Every durable checkpoint, ordered by account name.
  std::vector<Checkpoint> LoadAll() const;

  // Records `checkpoint` as the next one for `account` (its `account` field is set to it). Not
  // durable, and not to be acted on (sent to Zulip), until Commit returns OK. A later Stage for
  // the same account before Commit replaces this one.
  void Stage(std::string_view account, Checkpoint checkpoint);
  // Makes every staged checkpoint durable (see the class comment). OK: they are durable and
  // Load returns them. IOError (path and strerror): none of them may be acted on; they stay
  // staged and the next Commit tries again.
  Status Commit();
  // True when something is staged and not yet committed.
  bool has_staged() const { return !staged_.empty(); }
  // The accounts whose staged checkpoints are waiting for a Commit.
  std::vector<std::string> StagedAccounts() const;

  // Deletes the checkpoint of `account` durably (file removed, directory synced), and anything
  // staged for it. OK if it had none. IOError with path and strerror otherwise.
  Status Remove(std::string_view account);

  const std::string& dir() const { return dir_; }
  // The checkpoint file of `account`.
  std::string PathFor(std::string_view account) const;

  // The JSON text of a checkpoint, and back (Corruption mentioning `origin` on failure).
  static std::string Serialize(const Checkpoint& checkpoint);
  static StatusOr<Checkpoint> Parse(std::string_view json, std::string_view origin);

 private:
  CheckpointStore(std::string dir, Fs& fs, Options options)
      : dir_(std::move(dir)), fs_(fs), options_(options) {}
  // Makes the temp files of `accounts` durable: one syncfs, or an fsync each for a few.
  Status SyncTemps(const std::vector<std::string>& accounts);
  // Makes `paths` (files in dir_) durable: one syncfs for many, else an fsync each, from
  // several threads.
  Status SyncFiles(const std::vector<std::string>& paths);
  Status ReadAll();
  // Puts the files of `accounts` back to their committed checkpoint (or removes them if they had
  // none). Returns the first error.
  Status Restore(const std::vector<std::string>& accounts);
  // Removes the temp files of `accounts`, ignoring errors (they are cleaned at Open anyway).
  void RemoveTemps(const std::vector<std::string>& accounts);

  const std::string dir_;
  Fs& fs_;
  const Options options_;
  std::map<std::string, Checkpoint, std::less<>> committed_;
  std::map<std::string, Checkpoint, std::less<>> staged_;
};

}  // namespace zb

#endif  // ZB_DAEMON_STATE_CHECKPOINT_STORE_H_
