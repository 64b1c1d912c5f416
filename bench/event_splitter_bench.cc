// Throughput of the pipeline's CPU-bound steps over a realistic GET /events response: splitting
// the body into events (bytes/s, events/s), and splitting plus ParseEventHeader on each event,
// which is what the account does before producing.
#include <benchmark/benchmark.h>

#include <fstream>
#include <string>
#include <vector>

#include "daemon/zulip/event_splitter.h"

namespace zb {
namespace {

// A body of `count` events cycling through Zulip's documented examples (every event type, from
// heartbeats to messages with rendered HTML), each given a fresh increasing id.
std::string RealisticBody(int count) {
  std::vector<std::string> examples;
  std::ifstream in(ZB_SOURCE_DIR "/tests/testdata/zulip/event-examples.jsonl");
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) examples.push_back(line);
  }
  if (examples.empty()) examples.push_back(R"({"type":"heartbeat"})");
  std::string body = R"({"result":"success","msg":"","events":[)";
  for (int i = 0; i < count; ++i) {
    if (i > 0) body += ',';
    const std::string& e = examples[static_cast<size_t>(i) % examples.size()];
    // Put our own id first; the example's own "id" (if any) comes later and is what a JSON
    // reader keeps, which does not matter for throughput.
    body += "{\"id\":" + std::to_string(i) + "," + e.substr(1);
  }
  body += "]}";
  return body;
}

void Run(benchmark::State& state, bool parse_headers) {
  const int events = static_cast<int>(state.range(0));
  const size_t chunk = static_cast<size_t>(state.range(1));
  const std::string body = RealisticBody(events);
  int64_t taken = 0;
  for (auto _ : state) {
    int64_t ids = 0;
    EventSplitter splitter([&](std::string_view e) {
      if (parse_headers) {
        StatusOr<EventHeader> header = ParseEventHeader(e);
        if (header.ok()) ids += header->id;
      }
      ++taken;
      return true;
    });
    for (size_t pos = 0; pos < body.size(); pos += chunk) {
      StatusOr<size_t> used = splitter.Feed(std::string_view(body).substr(pos, chunk));
      if (!used.ok()) state.SkipWithError(used.status().ToString().c_str());
    }
    if (!splitter.Finish().ok()) state.SkipWithError("finish failed");
    benchmark::DoNotOptimize(ids);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(body.size()));
  state.SetItemsProcessed(taken);
  state.counters["body_MB"] = static_cast<double>(body.size()) / 1e6;
}

void BM_Split(benchmark::State& state) { Run(state, false); }
void BM_SplitAndParseHeaders(benchmark::State& state) { Run(state, true); }

BENCHMARK(BM_Split)->Args({10000, 16384})->Args({10000, 1024})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SplitAndParseHeaders)->Args({10000, 16384})->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace zb
