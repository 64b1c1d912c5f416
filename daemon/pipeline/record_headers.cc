#include "daemon/pipeline/record_headers.h"

#include <charconv>
#include <string>

namespace zb {
namespace {

void AppendInt(std::string& out, int64_t value) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, end);
}

// Sets the headers of `out` one after the other, reusing the strings already there; Finish()
// drops what a longer earlier record left behind.
class HeaderWriter {
 public:
  explicit HeaderWriter(std::vector<KafkaHeader>& out) : out_(out) {}

  // The next header's value, empty, to be filled.
  std::string& Add(std::string_view name) {
    if (out_.size() <= n_) out_.resize(n_ + 1);
    KafkaHeader& header = out_[n_++];
    header.first.assign(name);
    header.second.clear();
    return header.second;
  }
  void Add(std::string_view name, std::string_view value) { Add(name).assign(value); }
  void Finish() { out_.resize(n_); }

 private:
  std::vector<KafkaHeader>& out_;
  size_t n_ = 0;
};

// The headers every record starts with: where it comes from.
void AddSourceHeaders(HeaderWriter& w, const RecordSource& source) {
  w.Add(kSiteHeader, source.site);
  w.Add(kAccountHeader, source.account);
}

// The headers every record carries after those of its kind: the bridge's own facts.
void AddBridgeHeaders(HeaderWriter& w, const RecordSource& source) {
  w.Add(kBridgeVersionHeader, source.bridge_version);
}

}  // namespace

void BuildEventHeaders(const RecordSource& source, const EventHeader& event,
                       std::string_view queue_id, int64_t feature_level,
                       std::vector<KafkaHeader>& out) {
  const bool backfilled = event.id < 0;
  HeaderWriter w(out);
  AddSourceHeaders(w, source);
  w.Add(kEventTypeHeader, event.type);
  if (backfilled) {
    w.Add(kBackfillHeader, "true");
  } else {
    w.Add(kQueueIdHeader, queue_id);
    AppendInt(w.Add(kEventIdHeader), event.id);
  }
  AppendInt(w.Add(kFeatureLevelHeader), feature_level);
  AddBridgeHeaders(w, source);
  std::string& dedup = w.Add(kDedupKeyHeader);
  if (event.type == "message" && event.message_id) {
    dedup += "msg:";
    dedup += source.site;
    dedup += ':';
    AppendInt(dedup, *event.message_id);
  } else {
    dedup += source.site;
    dedup += ':';
    dedup.append(queue_id);
    dedup += ':';
    AppendInt(dedup, event.id);
  }
  w.Finish();
}

void BuildControlHeaders(const RecordSource& source, std::string_view record_type,
                         std::vector<KafkaHeader>& out) {
  HeaderWriter w(out);
  AddSourceHeaders(w, source);
  w.Add(kRecordTypeHeader, record_type);
  AddBridgeHeaders(w, source);
  w.Finish();
}

}  // namespace zb
