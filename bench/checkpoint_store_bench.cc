// Latency of a group commit of N accounts' checkpoints on a real file system, alone and beside
// another program's dirty data. The directory is $ZB_BENCH_DIR (so it can be put on the disk the
// daemon will use) or a fresh one under /tmp.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "daemon/base/fs.h"
#include "daemon/state/checkpoint_store.h"

namespace zb {
namespace {

// Stages `accounts` checkpoints and commits them once per iteration. With `dirty_mib` > 0,
// another program's unsynced data is written to the same file system before each commit (not
// timed): what a machine-wide flush such as syncfs(2) has to write out too.
// How the temp files are synced: the store's defaults, or one way for every size.
enum Mode { kDefault = 0, kSyncfs = 1, kFsyncEach = 2, kFsyncParallel = 3 };

CheckpointStore::Options OptionsFor(int mode) {
  CheckpointStore::Options options;
  if (mode == kSyncfs) options.syncfs_min_accounts = 1;
  if (mode == kFsyncEach || mode == kFsyncParallel) options.syncfs_min_accounts = SIZE_MAX;
  if (mode == kFsyncEach) options.sync_threads = 1;
  return options;
}

void RunCommits(benchmark::State& state, int accounts, int dirty_mib) {
  const char* base = std::getenv("ZB_BENCH_DIR");
  std::string pattern = std::string(base && *base ? base : "/tmp") + "/zb_bench.XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    state.SkipWithError("mkdtemp failed");
    return;
  }
  PosixFs fs;
  auto store =
      CheckpointStore::Open(pattern + "/state", fs, OptionsFor(static_cast<int>(state.range(1))));
  if (!store.ok()) {
    state.SkipWithError(store.status().ToString().c_str());
    return;
  }
  const std::string neighbour(static_cast<size_t>(dirty_mib) << 20, 'n');
  int64_t watermark = 0;
  for (auto _ : state) {
    if (dirty_mib > 0) {
      state.PauseTiming();
      std::ofstream(pattern + "/neighbour", std::ios::binary | std::ios::trunc) << neighbour;
      state.ResumeTiming();
    }
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

void BM_Commit(benchmark::State& state) { RunCommits(state, static_cast<int>(state.range(0)), 0); }

// The same beside a program that leaves 64 MiB dirty before each commit.
void BM_CommitBesideDirtyData(benchmark::State& state) {
  RunCommits(state, static_cast<int>(state.range(0)), 64);
}

// Arguments: accounts, and Mode (0: the store's defaults, 1: syncfs, 2: fsync each file in turn,
// 3: fsync the files from several threads).
BENCHMARK(BM_Commit)
    ->ArgsProduct({{1, 10, 1000, 10000}, {kDefault, kSyncfs, kFsyncEach, kFsyncParallel}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_CommitBesideDirtyData)
    ->ArgsProduct({{1, 10, 1000, 10000}, {kDefault, kSyncfs, kFsyncEach, kFsyncParallel}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace zb
