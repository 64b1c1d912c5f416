#include "daemon/pipeline/watermark.h"

#include <algorithm>
#include <string>

namespace zb {

Watermark::Watermark(int64_t start) : settled_(start), last_received_(start) {}

Status Watermark::Receive(int64_t id) {
  if (id <= last_received_) {
    return Status::InvalidArgument("event id " + std::to_string(id) + " received after id " +
                                   std::to_string(last_received_) + "; ids must increase");
  }
  last_received_ = id;
  pending_.push_back({id, false});
  ++outstanding_;
  return Status::Ok();
}

Status Watermark::ReceiveSettled(int64_t id) {
  ZB_RETURN_IF_ERROR(Receive(id));
  return Settle(id);
}

Status Watermark::Settle(int64_t id) {
  if (id <= settled_) return Status::Ok();  // a repeated report of an id already in the prefix
  // pending_ is sorted by id, so the entry is found by binary search.
  auto it = std::lower_bound(pending_.begin(), pending_.end(), id,
                             [](const Entry& e, int64_t value) { return e.id < value; });
  if (it == pending_.end() || it->id != id) {
    return Status::InvalidArgument("settled event id " + std::to_string(id) +
                                   " was never received");
  }
  if (it->settled) return Status::Ok();
  it->settled = true;
  --outstanding_;
  Advance();
  return Status::Ok();
}

void Watermark::Advance() {
  while (!pending_.empty() && pending_.front().settled) {
    settled_ = pending_.front().id;
    pending_.pop_front();
  }
}

}  // namespace zb
