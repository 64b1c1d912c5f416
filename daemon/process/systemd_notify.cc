#include "daemon/process/systemd_notify.h"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <cstdlib>
#include <string>

namespace zb {

namespace {

bool HasNotifySocket() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  return socket != nullptr && *socket != '\0';
}

void Send(std::string_view state) {
  if (!HasNotifySocket()) return;
  std::string message(state);
  // sd_notify returns <= 0 when it could not send; there is nothing useful to do about it
  // (systemd will notice a missing READY or watchdog ping itself).
  (void)sd_notify(/*unset_environment=*/0, message.c_str());
}

}  // namespace

bool SystemdNotifier::enabled() const { return HasNotifySocket(); }

void SystemdNotifier::Ready() { Send("READY=1"); }

void SystemdNotifier::Reloading() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  unsigned long long usec =
      static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL + ts.tv_nsec / 1000;
  Send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

void SystemdNotifier::Stopping() { Send("STOPPING=1"); }

void SystemdNotifier::WatchdogPing() { Send("WATCHDOG=1"); }

void SystemdNotifier::Status(std::string_view line) {
  std::string message = "STATUS=";
  for (char c : line) message += (c == '\n' || c == '\r') ? ' ' : c;
  Send(message);
}

std::optional<std::chrono::microseconds> SystemdNotifier::WatchdogPingInterval() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(/*unset_environment=*/0, &usec) <= 0 || usec == 0) return std::nullopt;
  return std::chrono::microseconds(usec / 2);
}

}  // namespace zb
