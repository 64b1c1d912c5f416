#include "daemon/pipeline/control_record.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "daemon/base/time_format.h"

namespace zb {
namespace {

// "2026-11-28T07:41:02.123Z", or null for 0 (never happened).
void WriteTime(rapidjson::Writer<rapidjson::StringBuffer>& w, int64_t unix_ms) {
  if (unix_ms <= 0) {
    w.Null();
    return;
  }
  w.String(FormatUtcMillis(unix_ms));
}

}  // namespace

std::string GapRecordJson(const GapRecord& gap) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartObject();
  w.Key("version");
  w.Int(1);
  w.Key("type");
  w.String("gap");
  w.Key("account");
  w.String(gap.account.c_str());
  w.Key("site");
  w.String(gap.site.c_str());
  w.Key("lost_queue_id");
  w.String(gap.lost_queue_id.c_str());
  w.Key("last_event_id");
  w.Int64(gap.last_event_id);
  w.Key("last_message_id");
  w.Int64(gap.last_message_id);
  w.Key("new_queue_id");
  w.String(gap.new_queue_id.c_str());
  w.Key("last_good_poll");
  WriteTime(w, gap.last_good_poll_unix_ms);
  w.Key("detected_at");
  WriteTime(w, gap.detected_at_unix_ms);
  w.Key("reason");
  w.String(gap.reason.c_str());
  w.Key("recovered");
  w.String(gap.backfill ? "messages after last_message_id, re-read through GET /messages and "
                          "published with the zulip-backfill header"
                        : "nothing");
  w.Key("limits");
  w.StartArray();
  for (const std::string& limit : gap.limits) {
    w.String(limit.data(), static_cast<rapidjson::SizeType>(limit.size()));
  }
  w.EndArray();
  w.Key("not_recovered");
  w.String(
      "every event type other than message between last_event_id on the lost queue and "
      "the start of the new queue");
  w.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace zb
