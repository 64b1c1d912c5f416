// zb_simulate: runs the deterministic simulation (tests/sim/simulation.h) over many seeds and
// says how fast, or replays one seed with its trace. `./dev simulate` calls it.
//
//   zb_simulate [--seeds N] [--first S]   N seeds from S (default: 1000 from a random start)
//   zb_simulate --seed S                  one seed; prints its trace
//   --trace-lines N                       keep the last N lines of a trace (default 400)
//   --config-changes                      restarts sometimes change a register argument
//   --long-outages                        half of Kafka's outages last 310-700 s
//
// Exit status: 0 when every seed kept every promise, 1 at the first that did not (its seed,
// the violation and the trace are printed).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "tests/sim/simulation.h"

int main(int argc, char** argv) {
  uint64_t seeds = 1000;
  uint64_t first = std::random_device{}() % 1000000000;
  bool one = false;
  uint64_t trace_lines = 400;
  bool config_changes = false;
  bool long_outages = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if ((arg == "--seeds" || arg == "--first" || arg == "--seed" || arg == "--trace-lines") &&
        i + 1 < argc) {
      uint64_t value = std::stoull(argv[++i]);
      if (arg == "--seeds") seeds = value;
      if (arg == "--trace-lines") trace_lines = value;
      if (arg == "--first") first = value;
      if (arg == "--seed") {
        first = value;
        seeds = 1;
        one = true;
      }
    } else if (arg == "--long-outages") {
      long_outages = true;
    } else if (arg == "--config-changes") {
      config_changes = true;
    } else {
      std::fprintf(stderr, "usage: zb_simulate [--seeds N] [--first S] | --seed S\n");
      return 64;
    }
  }
  auto start = std::chrono::steady_clock::now();
  uint64_t messages = 0, crashes = 0, lost = 0, steps = 0;
  for (uint64_t seed = first; seed < first + seeds; ++seed) {
    zb::sim::SimulationOptions options;
    options.seed = seed;
    options.trace_lines = trace_lines;
    options.config_changes = config_changes;
    options.long_outages = long_outages;
    zb::sim::SimulationResult result = zb::sim::RunSimulation(options);
    messages += result.messages;
    crashes += result.crashes;
    lost += result.queues_lost;
    steps += result.steps;
    if (one || !result.ok) std::fputs(result.trace.c_str(), stdout);
    if (!result.ok) {
      std::printf("seed %llu FAILED: %s\nreplay: ./dev simulate --seed %llu\n",
                  static_cast<unsigned long long>(seed), result.failure.c_str(),
                  static_cast<unsigned long long>(seed));
      return 1;
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "%llu seeds from %llu passed in %.1f s (%.1f seeds/s): %llu steps, %llu messages, %llu "
      "bridge stops, %llu queues lost\n",
      static_cast<unsigned long long>(seeds), static_cast<unsigned long long>(first), secs,
      static_cast<double>(seeds) / secs, static_cast<unsigned long long>(steps),
      static_cast<unsigned long long>(messages), static_cast<unsigned long long>(crashes),
      static_cast<unsigned long long>(lost));
  return 0;
}
