// The control topic's records: their JSON, as consumers read it.
#include "daemon/pipeline/control_record.h"

#include <rapidjson/document.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace zb {
namespace {

TEST(GapRecordTest, NamesWhatTheBackfillCannotReadBack) {
  GapRecord gap;
  gap.account = "analytics";
  gap.site = "https://chat.example.com";
  gap.lost_queue_id = "q1";
  gap.new_queue_id = "q2";
  gap.reason = "GET /events: HTTP 400: Bad event queue ID: q1";
  gap.limits = {"messages deleted since they were sent are not read back",
                "topic:\"deploys\": judged on each message's topic now"};
  std::string json = GapRecordJson(gap);
  rapidjson::Document doc;
  doc.Parse(json.c_str());
  ASSERT_TRUE(doc.IsObject()) << json;
  EXPECT_EQ(doc["version"].GetInt(), 1);
  EXPECT_STREQ(doc["type"].GetString(), "gap");
  ASSERT_TRUE(doc["limits"].IsArray()) << json;
  ASSERT_EQ(doc["limits"].Size(), 2u);
  EXPECT_EQ(doc["limits"][1].GetString(), gap.limits[1]);
  EXPECT_TRUE(doc["recovered"].IsString());
  EXPECT_TRUE(doc["not_recovered"].IsString());

  gap.backfill = false;
  gap.limits.clear();
  doc.Parse(GapRecordJson(gap).c_str());
  EXPECT_STREQ(doc["recovered"].GetString(), "nothing");
  EXPECT_EQ(doc["limits"].Size(), 0u);
}

}  // namespace
}  // namespace zb
