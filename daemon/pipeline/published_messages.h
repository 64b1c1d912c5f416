// PublishedMessages: the ids of the messages whose records Kafka acknowledged for one account in
// this run, the newest `capacity` of them. It is the proof behind every "already published" skip
// (issue #15): a message event, or a backfilled message, is left out only when its id is here,
// that is when Kafka holds the message. Anything not here is published, so forgetting (the
// capacity, a restart) costs duplicates, never a loss; the zulip-dedup-key header lets
// consumers drop them.
//
// Threads: the owner's (the account's event loop). Not copyable.
#ifndef ZB_DAEMON_PIPELINE_PUBLISHED_MESSAGES_H_
#define ZB_DAEMON_PIPELINE_PUBLISHED_MESSAGES_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <unordered_set>

namespace zb {

class PublishedMessages {
 public:
  // Keeps at most `capacity` ids (at least one); the oldest added is forgotten first.
  explicit PublishedMessages(size_t capacity);
  PublishedMessages(const PublishedMessages&) = delete;
  PublishedMessages& operator=(const PublishedMessages&) = delete;

  // Kafka acknowledged a record of message `message_id`.
  void Add(int64_t message_id);
  // True when Kafka acknowledged a record of `message_id` and it was not forgotten since.
  bool Contains(int64_t message_id) const { return ids_.count(message_id) > 0; }
  size_t size() const { return ids_.size(); }

 private:
  const size_t capacity_;
  std::deque<int64_t> order_;  // oldest first
  std::unordered_set<int64_t> ids_;
};

}  // namespace zb

#endif  // ZB_DAEMON_PIPELINE_PUBLISHED_MESSAGES_H_
