// The delivered watermark of one Zulip event queue: the highest event id W such that W and every
// id received before it are settled. W is what the account may send as `last_event_id` (once it
// is durable), because Zulip prunes every event <= last_event_id (DESIGN.md "The one invariant").
//
// The watermark follows the ids actually received, in the order received, never "last + 1":
// Zulip's ids increase but skip (FACTS.md §2.3/§3), and acknowledging an id the queue never held
// breaks the queue for good. An id is settled when Kafka acknowledged it, when it was deliberately
// not published (heartbeats: see ReceiveSettled), or when it was durably dead-lettered.
//
// Pure and single-threaded: owned by the account's state machine on the event loop. Memory is
// proportional to the ids between the oldest unsettled id and the newest received id.
#ifndef ZB_DAEMON_PIPELINE_WATERMARK_H_
#define ZB_DAEMON_PIPELINE_WATERMARK_H_

#include <cstddef>
#include <cstdint>
#include <deque>

#include "daemon/base/status.h"

namespace zb {

class Watermark {
 public:
  // `start` is the watermark before any id is received: -1 for a new queue (Zulip's ids start
  // at 0), or the checkpointed watermark of a resumed queue.
  explicit Watermark(int64_t start = -1);

  // Records that event `id` was received and is outstanding. Ids must be strictly increasing
  // (Zulip sends them in ascending order and the watermark itself is a received id); a
  // non-increasing id is InvalidArgument and changes nothing.
  Status Receive(int64_t id);

  // Receive(id) and Settle(id) at once: for heartbeats and anything else not published.
  Status ReceiveSettled(int64_t id);

  // Records that event `id` is settled (Kafka acknowledged it, or it was dead-lettered).
  // Reports may come in any order. Settling an id twice is OK and changes nothing: a delivery
  // report may be repeated when records are re-produced after a producer rebuild, and a repeat
  // must not be mistaken for a lost event. An id at or below settled() is therefore accepted
  // silently. An id above settled() that was never received is InvalidArgument (a bug in the
  // caller: the id would otherwise be acknowledged without having been received).
  Status Settle(int64_t id);

  // The highest received id such that it and every id received before it are settled; the
  // start value until the first received id settles.
  int64_t settled() const { return settled_; }
  // The newest id received, or the start value before any.
  int64_t last_received() const { return last_received_; }
  // How many received ids are not settled yet.
  size_t outstanding() const { return outstanding_; }
  // True when every received id is settled (settled() == last_received()).
  bool all_settled() const { return outstanding_ == 0; }

 private:
  struct Entry {
    int64_t id;
    bool settled;
  };

  // Pops settled entries off the front and moves settled_ to the last one popped.
  void Advance();

  int64_t settled_;
  int64_t last_received_;
  size_t outstanding_ = 0;
  // Received ids above settled_, ascending; the front one is never settled after Advance().
  std::deque<Entry> pending_;
};

}  // namespace zb

#endif  // ZB_DAEMON_PIPELINE_WATERMARK_H_
