// The deterministic simulation (DESIGN.md "How delivery is tested"): the daemon's AccountFleet
// (its accounts, slots, group commit, reload and stop sequence) with a real Account,
// CheckpointStore, DeadLetterSpool and ProducerRebuilder, against a model Zulip, a model Kafka
// and a simulated file system, on simulated time, all driven by one seed. A chaos phase sends
// messages and other events while it loses queues, crashes Zulip, takes Kafka down, fails
// deliveries and disk writes, kills the producer (a fatal error, some rebuilds refused), reloads
// the configuration (a register argument or the retry settings changed, the account removed
// or added back, nothing changed), and stops the bridge (kill -9, or SIGTERM through the
// fleet's stop sequence) and starts it again from what is durable; then the faults stop and the
// world settles. Each run of the bridge is a SimProcess: its timers die with it.
//
// The oracle checks, at every step where it matters and at the end:
//  - the one invariant: every event Zulip prunes (its last_event_id) is in Kafka, in the
//    dead-letter spool, or a heartbeat (or a message Kafka has by another path), and the disk
//    holds that watermark for that queue; no last_event_id is older than one already sent, or
//    one the queue never had;
//  - a stopped bridge makes no request;
//  - the producer never holds more records than its limit;
//  - every live event in Kafka carries the server's feature level;
//  - once the faults stop, within the settle time: every message the account could see since
//    its first queue (since it was last added, after a removal) is in Kafka (or the spool),
//    every queue Zulip said was lost has a gap record in Kafka, an account whose backfill is
//    refused for good is parked, a removed account's removal has finished, and no slot still
//    waits for reports.
//
// Threads: one. RunSimulation is reentrant across threads (each run owns its world), except
// that it routes the process's log lines into the run's trace.
#ifndef ZB_TESTS_SIM_SIMULATION_H_
#define ZB_TESTS_SIM_SIMULATION_H_

#include <chrono>
#include <cstdint>
#include <string>

namespace zb::sim {

struct SimulationOptions {
  uint64_t seed = 1;
  std::chrono::seconds chaos{std::chrono::minutes(20)};   // simulated
  std::chrono::seconds settle{std::chrono::minutes(60)};  // simulated, at most
  // Keep the last this many lines of the trace (log lines and the world's actions).
  size_t trace_lines = 400;
  // Restarts sometimes come with a changed register argument (a configuration change: the
  // queue is replaced, with a gap record and a backfill).
  bool config_changes = false;
  // Half of Kafka's outages last 310-700 s (a paused transfer outlives the read-back margin).
  bool long_outages = false;
};

struct SimulationResult {
  bool ok = true;
  std::string failure;  // the first violation, when !ok
  std::string trace;    // the last lines before the end (or the failure)
  uint64_t steps = 0;
  uint64_t messages = 0;     // messages committed
  uint64_t records = 0;      // records in Kafka's log
  uint64_t crashes = 0;      // kill -9 and SIGTERM restarts
  uint64_t queues_lost = 0;  // queues Zulip reported lost
};

SimulationResult RunSimulation(const SimulationOptions& options);

}  // namespace zb::sim

#endif  // ZB_TESTS_SIM_SIMULATION_H_
