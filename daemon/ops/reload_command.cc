#include "daemon/ops/reload_command.h"

#include <signal.h>

#include <cerrno>
#include <thread>

#include <rapidjson/document.h>

#include "daemon/base/json_parse.h"
#include "daemon/ops/status_command.h"

namespace zb {

StatusOr<ReloadState> ParseReloadState(std::string_view readyz_json) {
  rapidjson::Document doc;
  if (!ParseJson(readyz_json, doc).ok() || !doc.IsObject()) {
    return Status::InvalidArgument("the /readyz answer is not a JSON object");
  }
  ReloadState state;
  auto pid = doc.FindMember("pid");
  if (pid == doc.MemberEnd() || !pid->value.IsInt64() || pid->value.GetInt64() <= 0) {
    return Status::InvalidArgument(
        "the /readyz answer has no \"pid\" (a zulip-bridge too old "
        "to reload?)");
  }
  state.pid = pid->value.GetInt64();
  auto reload = doc.FindMember("reload");
  if (reload == doc.MemberEnd() || !reload->value.IsObject()) {
    return Status::InvalidArgument("the /readyz answer has no \"reload\" object");
  }
  const rapidjson::Value& r = reload->value;
  auto generation = r.FindMember("generation");
  if (generation == r.MemberEnd() || !generation->value.IsUint64()) {
    return Status::InvalidArgument("the /readyz answer has no \"reload.generation\"");
  }
  state.generation = generation->value.GetUint64();
  if (auto applied = r.FindMember("applied"); applied != r.MemberEnd() && applied->value.IsBool()) {
    state.applied = applied->value.GetBool();
  }
  if (auto message = r.FindMember("message");
      message != r.MemberEnd() && message->value.IsString()) {
    state.message.assign(message->value.GetString(), message->value.GetStringLength());
  }
  return state;
}

namespace {

StatusOr<ReloadState> AskDaemon(const Config& config) {
  StatusOr<std::string> body = FetchReadyz(config);
  ZB_RETURN_IF_ERROR(body.status());
  return ParseReloadState(*body);
}

}  // namespace

StatusOr<std::string> RequestReload(const Config& config, std::chrono::milliseconds timeout) {
  StatusOr<ReloadState> before = AskDaemon(config);
  ZB_RETURN_IF_ERROR(before.status());
  if (kill(static_cast<pid_t>(before->pid), SIGHUP) != 0) {
    return Status::FromErrno("sending SIGHUP to zulip-bridge (pid " + std::to_string(before->pid) +
                                 "); run reload as the daemon's user or root",
                             errno);
  }
  // The outcome comes within a loop turn or two plus the time to read the file; poll for it.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    StatusOr<ReloadState> now = AskDaemon(config);
    if (!now.ok()) continue;  // a busy listener is no answer yet
    if (now->generation <= before->generation) continue;
    if (!now->applied) return Status::InvalidArgument("not reloaded: " + now->message);
    return "reloaded: " + now->message;
  }
  return Status::Unavailable("zulip-bridge (pid " + std::to_string(before->pid) +
                             ") gave no reload outcome within " +
                             std::to_string(timeout.count() / 1000) + " s");
}

}  // namespace zb
