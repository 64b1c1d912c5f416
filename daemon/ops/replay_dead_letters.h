// `zulip-bridge replay-dead-letters --config FILE`: sends the records of the dead-letter spool
// (dead_letter_spool.h) to Kafka again, once an operator has fixed what made Kafka refuse them
// (raised a topic's max.message.bytes, granted an ACL...).
//
// Each record goes out with its topic, key, headers and timestamp as they were, through a
// KafkaPublisher built from the configuration's kafka section (the same producer settings as
// the daemon's). The replay waits for every delivery report; the delivered records leave the
// spool, the others stay in it with their new error. A replaying file that a crashed replay
// left behind is replayed first, then the spool as it is now.
//
// Safe while the daemon runs on the same state directory: it does not take the daemon's state
// directory lock, only the spool's file lock, around the rename of the spool and around the
// write-back, so the daemon's appends go on meanwhile (into a new spool file).
//
// Memory: a replay holds one spool file's records at once (and the producer a copy of each in
// flight): about twice dead_letter.max_bytes at worst.
#ifndef ZB_DAEMON_OPS_REPLAY_DEAD_LETTERS_H_
#define ZB_DAEMON_OPS_REPLAY_DEAD_LETTERS_H_

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <map>
#include <optional>
#include <string>

#include "daemon/base/fs.h"
#include "daemon/base/status.h"
#include "daemon/config/config.h"

namespace zb {

struct ReplayOptions {
  // How long to wait for the delivery reports after the last record was produced. Default:
  // the producer's message.timeout.ms plus 30 s (librdkafka reports every record by then).
  std::optional<std::chrono::milliseconds> report_timeout;
};

struct ReplaySummary {
  size_t replayed = 0;                    // delivered and removed from the spool
  size_t still_failing = 0;               // kept in the spool with their new error
  std::map<std::string, size_t> reasons;  // still failing: error -> how many
  size_t unreadable = 0;                  // lines that did not parse: kept as they are
  std::string spool_path;

  bool all_delivered() const { return still_failing == 0 && unreadable == 0; }
};

// Replays the spool in config.state_dir as described above. An error only when the replay
// could not run (the producer refused its configuration, the spool could not be renamed, read
// or written back); records that fail again are not an error but counted in the summary.
StatusOr<ReplaySummary> ReplayDeadLetters(const Config& config, Fs& fs,
                                          const ReplayOptions& options = {});

// The human summary: "replayed N, still failing M" and one line per reason.
std::string FormatReplaySummary(const ReplaySummary& summary);

// The command: runs the replay, prints the summary to `out` (errors to stderr), and returns the
// exit code: 0 when every record was delivered (or there was none), 1 when some are still in
// the spool or the replay could not run.
int RunReplayDeadLetters(const Config& config, std::FILE* out);

}  // namespace zb

#endif  // ZB_DAEMON_OPS_REPLAY_DEAD_LETTERS_H_
