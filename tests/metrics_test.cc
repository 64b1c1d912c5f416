#include "daemon/base/metrics.h"

#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace zb {
namespace {

TEST(MetricsTest, RendersCountersAndGaugesWithHelpTypeAndLabels) {
  MetricsRegistry registry;
  registry
      .GetCounter("zb_events_received_total", "Events received from Zulip", {{"account", "alice"}})
      .Inc(3);
  registry.GetGauge("zb_watermark_lag", "Received minus settled", {{"account", "alice"}}).Set(7);
  std::string text = registry.RenderPrometheus();
  EXPECT_NE(text.find("# HELP zb_events_received_total Events received from Zulip\n"
                      "# TYPE zb_events_received_total counter\n"
                      "zb_events_received_total{account=\"alice\"} 3\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE zb_watermark_lag gauge\nzb_watermark_lag{account=\"alice\"} 7\n"),
            std::string::npos)
      << text;
}

TEST(MetricsTest, TimestampGaugesKeepTheirMilliseconds) {
  MetricsRegistry registry;
  registry.GetGauge("zb_last_event_timestamp_seconds", "h").Set(1795859340.123);
  EXPECT_NE(registry.RenderPrometheus().find("\nzb_last_event_timestamp_seconds 1795859340.123\n"),
            std::string::npos)
      << registry.RenderPrometheus();
}

TEST(MetricsTest, SameNameAndLabelsIsTheSameSeries) {
  MetricsRegistry registry;
  Counter& a = registry.GetCounter("c_total", "h", {{"account", "a"}});
  Counter& b = registry.GetCounter("c_total", "h", {{"account", "a"}});
  EXPECT_EQ(&a, &b);
  Counter& other = registry.GetCounter("c_total", "h", {{"account", "b"}});
  EXPECT_NE(&a, &other);
}

TEST(MetricsTest, LabelValuesAreEscaped) {
  MetricsRegistry registry;
  registry.GetCounter("c_total", "h", {{"reason", "say \"hi\"\\\n"}}).Inc();
  EXPECT_NE(registry.RenderPrometheus().find(R"(c_total{reason="say \"hi\"\\\n"} 1)"),
            std::string::npos);
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  MetricsRegistry registry;
  Histogram& h = registry.GetHistogram("lat_seconds", "Latency", {0.01, 0.1, 1});
  h.Observe(0.005);
  h.Observe(0.05);
  h.Observe(0.05);
  h.Observe(5);
  std::string text = registry.RenderPrometheus();
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"0.01\"} 1\n"
                      "lat_seconds_bucket{le=\"0.1\"} 3\n"
                      "lat_seconds_bucket{le=\"1\"} 3\n"
                      "lat_seconds_bucket{le=\"+Inf\"} 4\n"
                      "lat_seconds_sum 5.105\n"
                      "lat_seconds_count 4\n"),
            std::string::npos)
      << text;
}

TEST(MetricsTest, RemovingAnAccountDropsOnlyItsSeries) {
  MetricsRegistry registry;
  registry.GetCounter("c_total", "h", {{"account", "alice"}}).Inc();
  registry.GetCounter("c_total", "h", {{"account", "bob"}}).Inc();
  registry.RemoveSeriesWithLabel("account", "alice");
  std::string text = registry.RenderPrometheus();
  EXPECT_EQ(text.find("alice"), std::string::npos);
  EXPECT_NE(text.find("c_total{account=\"bob\"} 1"), std::string::npos);
}

TEST(MetricsTest, ConcurrentIncrementsAreAllCounted) {
  MetricsRegistry registry;
  Counter& c = registry.GetCounter("c_total", "h");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) c.Inc();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.value(), 40000u);
}

}  // namespace
}  // namespace zb
