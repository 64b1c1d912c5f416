// Latency of a group commit of N accounts' checkpoints on a real file system. The directory is
// $ZB_BENCH_DIR (so it can be put on the disk the daemon will use) or a fresh one under /tmp.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "daemon/checkpoint_store.h"
#include "daemon/fs.h"

namespace zb {
namespace {

void BM_Commit(benchmark::State& state) {
  const int accounts = static_cast<int>(state.range(0));
  const char* base = std::getenv("ZB_BENCH_DIR");
  std::string pattern = std::string(base && *base ? base : "/tmp") + "/zb_bench.XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    state.SkipWithError("mkdtemp failed");
    return;
  }
  PosixFs fs;
  auto store = CheckpointStore::Open(pattern, fs);
  if (!store.ok()) {
    state.SkipWithError(store.status().ToString().c_str());
    return;
  }
  int64_t watermark = 0;
  for (auto _ : state) {
    ++watermark;
    for (int i = 0; i < accounts; ++i) {
      Checkpoint c;
      c.site = "https://chat.example.com";
      c.queue_id = "1517975029:" + std::to_string(i);
      c.watermark = watermark;
      (*store)->Stage("account-" + std::to_string(i), c);
    }
    Status committed = (*store)->Commit();
    if (!committed.ok()) state.SkipWithError(committed.ToString().c_str());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * accounts);
  std::error_code ignored;
  std::filesystem::remove_all(pattern, ignored);
}

BENCHMARK(BM_Commit)->Arg(1)->Arg(10)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace zb
