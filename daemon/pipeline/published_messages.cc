#include "daemon/pipeline/published_messages.h"

#include <algorithm>

namespace zb {

PublishedMessages::PublishedMessages(size_t capacity) : capacity_(std::max<size_t>(capacity, 1)) {}

void PublishedMessages::Add(int64_t message_id) {
  if (!ids_.insert(message_id).second) return;
  order_.push_back(message_id);
  if (order_.size() > capacity_) {
    ids_.erase(order_.front());
    order_.pop_front();
  }
}

}  // namespace zb
