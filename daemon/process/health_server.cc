#include "daemon/process/health_server.h"

#include <unistd.h>

#include <httplib.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "daemon/base/clock.h"
#include "daemon/base/log.h"
#include "daemon/process/health_source.h"

namespace zb {

struct HealthServer::Impl {
  httplib::Server server;
  std::thread thread;
};

namespace {

std::string ReadyBody(const HealthSource& source) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartObject();
  w.Key("ready");
  w.Bool(source.ready());
  // For `zulip-bridge reload`: whom to signal, and how the last reload went.
  w.Key("pid");
  w.Int64(getpid());
  ReloadOutcome reload = source.LastReload();
  w.Key("reload");
  w.StartObject();
  w.Key("generation");
  w.Uint64(reload.generation);
  w.Key("applied");
  w.Bool(reload.applied);
  w.Key("message");
  w.String(reload.message);
  w.EndObject();
  w.Key("accounts");
  w.StartArray();
  std::vector<std::string> parked;
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             RealClock::Instance().WallNow().time_since_epoch())
                             .count();
  for (const AccountSnapshot& a : source.AccountSnapshots()) {
    w.StartObject();
    w.Key("name");
    w.String(a.name);
    w.Key("state");
    std::string state(AccountStateName(a.state));
    w.String(state);
    w.Key("queue_id");
    w.String(a.queue_id);
    w.Key("watermark");
    w.Int64(a.durable_watermark);
    w.Key("last_received");
    w.Int64(a.last_received);
    w.Key("in_flight");
    w.Uint64(a.in_flight);
    w.Key("last_event_age_secs");
    if (a.last_event_unix_ms) {
      w.Double(static_cast<double>(std::max<int64_t>(now_ms - *a.last_event_unix_ms, 0)) / 1000.0);
    } else {
      w.Null();
    }
    if (!a.parked_reason.empty()) {
      w.Key("parked_reason");
      w.String(a.parked_reason);
      parked.push_back(a.name);
    }
    if (!a.last_error.empty()) {
      w.Key("last_error");
      w.String(a.last_error);
    }
    w.EndObject();
  }
  w.EndArray();
  w.Key("parked");
  w.StartArray();
  for (const std::string& name : parked) w.String(name);
  w.EndArray();
  w.EndObject();
  return buffer.GetString();
}

// Series derived from the accounts' snapshots at scrape time rather than updated by the
// accounts: one 0/1 gauge per account and state (so a dashboard can count accounts by state
// and alert on "parked"), and the records each account has in the producer's hands.
void UpdateSnapshotMetrics(HealthSource& source) {
  MetricsRegistry& registry = source.metrics();
  for (const AccountSnapshot& a : source.AccountSnapshots()) {
    for (int s = static_cast<int>(AccountState::kIdle);
         s <= static_cast<int>(AccountState::kStopped); ++s) {
      auto state = static_cast<AccountState>(s);
      registry
          .GetGauge("zb_account_state", "1 for the state the account is in, 0 for the others",
                    {{"account", a.name}, {"state", std::string(AccountStateName(state))}})
          .Set(a.state == state ? 1 : 0);
    }
    registry
        .GetGauge("zb_kafka_records_in_flight",
                  "Records given to the Kafka producer and not yet acknowledged",
                  {{"account", a.name}})
        .Set(static_cast<double>(a.in_flight));
  }
}

}  // namespace

StatusOr<std::unique_ptr<HealthServer>> HealthServer::Start(const HttpConfig& config,
                                                            HealthSource& source) {
  auto impl = std::make_unique<Impl>();
  httplib::Server& server = impl->server;
  server.Get("/healthz", [&source](const httplib::Request&, httplib::Response& res) {
    bool alive = source.LoopAliveWithin(std::chrono::seconds(30));
    res.status = alive ? 200 : 503;
    res.set_content(alive ? "ok\n" : "event loop stalled\n", "text/plain");
  });
  server.Get("/readyz", [&source](const httplib::Request&, httplib::Response& res) {
    res.status = source.ready() ? 200 : 503;
    res.set_content(ReadyBody(source), "application/json");
  });
  server.Get("/metrics", [&source](const httplib::Request&, httplib::Response& res) {
    UpdateSnapshotMetrics(source);
    res.set_content(source.metrics().RenderPrometheus(), "text/plain; version=0.0.4");
  });
  int port = config.port;
  if (port == 0) {
    port = server.bind_to_any_port(config.host);
    if (port < 0) port = 0;
  } else if (!server.bind_to_port(config.host, port)) {
    port = 0;
  }
  if (port == 0) {
    return Status::IOError("http.listen " + config.listen + ": cannot listen there (in use?)");
  }
  Impl* raw = impl.get();
  raw->thread = std::thread([raw] { raw->server.listen_after_bind(); });
  // cpp-httplib's stop() does nothing until the accept loop runs, so a server stopped before
  // its thread got there would never return and the destructor's join would hang. Wait for
  // the loop (it starts at once; the bound is only against a thread never scheduled).
  for (int i = 0; i < 5000 && !raw->server.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  LogInfo("HTTP listener up", {{"address", config.host}, {"port", port}});
  return std::unique_ptr<HealthServer>(new HealthServer(std::move(impl), port));
}

HealthServer::HealthServer(std::unique_ptr<Impl> impl, int port)
    : impl_(std::move(impl)), port_(port) {}

HealthServer::~HealthServer() {
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace zb
