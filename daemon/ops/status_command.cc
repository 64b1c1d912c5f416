#include "daemon/ops/status_command.h"

#include <httplib.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "daemon/base/json_parse.h"

namespace zb {
namespace {

constexpr auto kQueryTimeout = std::chrono::seconds(5);

std::string StringMember(const rapidjson::Value& object, const char* name) {
  auto it = object.FindMember(name);
  return it != object.MemberEnd() && it->value.IsString() ? it->value.GetString() : "";
}

// An integer member as text, or "-" when absent (an older daemon) or negative (none yet).
std::string IntMember(const rapidjson::Value& object, const char* name) {
  auto it = object.FindMember(name);
  if (it == object.MemberEnd() || !it->value.IsInt64() || it->value.GetInt64() < 0) return "-";
  return std::to_string(it->value.GetInt64());
}

// "42s", "5m07s", "3h12m": how long ago, for a terminal.
std::string Age(double seconds) {
  auto s = static_cast<int64_t>(seconds);
  char buffer[32];
  if (s < 60) {
    std::snprintf(buffer, sizeof(buffer), "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(buffer, sizeof(buffer), "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else {
    std::snprintf(buffer, sizeof(buffer), "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60));
  }
  return buffer;
}

}  // namespace

StatusOr<std::string> FormatStatusTable(std::string_view readyz_json) {
  rapidjson::Document doc;
  if (!ParseJson(readyz_json, doc).ok() || !doc.IsObject()) {
    return Status::InvalidArgument("the answer is not a JSON object");
  }
  auto accounts = doc.FindMember("accounts");
  if (accounts == doc.MemberEnd() || !accounts->value.IsArray()) {
    return Status::InvalidArgument("the answer has no \"accounts\" array");
  }
  std::vector<std::vector<std::string>> rows = {
      {"ACCOUNT", "STATE", "QUEUE", "WATERMARK", "LAG", "LAST EVENT", "DETAIL"}};
  for (const rapidjson::Value& a : accounts->value.GetArray()) {
    if (!a.IsObject()) return Status::InvalidArgument("an account is not a JSON object");
    std::string watermark = IntMember(a, "watermark");
    std::string received = IntMember(a, "last_received");
    // Lag as the metrics define it: events received and not yet settled.
    std::string lag = "-";
    if (watermark != "-" && received != "-") {
      lag = std::to_string(std::max<int64_t>(0, std::stoll(received) - std::stoll(watermark)));
    } else if (received == "-") {
      lag = "0";
    }
    std::string last_event = "-";
    if (auto age = a.FindMember("last_event_age_secs");
        age != a.MemberEnd() && age->value.IsNumber() && age->value.GetDouble() >= 0) {
      last_event = Age(age->value.GetDouble()) + " ago";
    }
    std::string detail = StringMember(a, "parked_reason");
    if (!detail.empty()) {
      detail.insert(0, "parked: ");
    } else {
      detail = StringMember(a, "last_error");
      if (!detail.empty()) detail.insert(0, "last error: ");
    }
    std::string queue = StringMember(a, "queue_id");
    rows.push_back({StringMember(a, "name"), StringMember(a, "state"), queue.empty() ? "-" : queue,
                    watermark, lag, last_event, detail});
  }
  std::vector<size_t> widths(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  auto ready = doc.FindMember("ready");
  bool is_ready = ready != doc.MemberEnd() && ready->value.IsBool() && ready->value.GetBool();
  out += is_ready ? "ready\n" : "not ready\n";
  return out;
}

StatusOr<std::string> ReadyzUrl(const HttpConfig& http) {
  if (http.port == 0) {
    return Status::InvalidArgument("http.listen " + http.listen +
                                   ": the daemon picks a free port; set a fixed one to use status");
  }
  std::string host = http.host;
  if (host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
  if (host == "::") host = "::1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(http.port) + "/readyz";
}

StatusOr<std::string> FetchReadyz(const Config& config) {
  StatusOr<std::string> url = ReadyzUrl(config.http);
  ZB_RETURN_IF_ERROR(url.status());
  // "http://HOST:PORT/readyz" -> scheme+authority for the client, path for the request.
  std::string base = url->substr(0, url->size() - std::string("/readyz").size());
  httplib::Client client(base);
  client.set_connection_timeout(kQueryTimeout);
  client.set_read_timeout(kQueryTimeout);
  httplib::Result result = client.Get("/readyz");
  if (!result) {
    return Status::Unavailable("no zulip-bridge answers at " + *url + " (" +
                               httplib::to_string(result.error()) + "); is it running?");
  }
  // /readyz answers 503 while not ready, with the same body.
  if (result->status != 200 && result->status != 503) {
    return Status::Unavailable(*url + " answered HTTP " + std::to_string(result->status));
  }
  return std::move(result->body);
}

StatusOr<std::string> QueryStatus(const Config& config) {
  StatusOr<std::string> body = FetchReadyz(config);
  ZB_RETURN_IF_ERROR(body.status());
  StatusOr<std::string> table = FormatStatusTable(*body);
  if (!table.ok()) {
    return Status::Unavailable(*ReadyzUrl(config.http) +
                               " is not a zulip-bridge: " + table.status().message());
  }
  return table;
}

}  // namespace zb
