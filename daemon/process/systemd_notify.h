// Tells systemd how the daemon is doing (sd_notify): READY=1 once config, state and producer
// are up; WATCHDOG=1 while the event loop turns; STATUS= a one-line summary; RELOADING=1 and
// READY=1 around a reload; STOPPING=1 at shutdown. Without NOTIFY_SOCKET (not under systemd,
// or Type= is not notify) every call does nothing.
//
// The watchdog is fed from the event loop's own timer and nothing else: it says "the loop
// turns", never "Zulip and Kafka are healthy", so an outage cannot become a restart loop.
//
// Thread-safe (each call is one datagram).
#ifndef ZB_DAEMON_PROCESS_SYSTEMD_NOTIFY_H_
#define ZB_DAEMON_PROCESS_SYSTEMD_NOTIFY_H_

#include <chrono>
#include <optional>
#include <string_view>

namespace zb {

class SystemdNotifier {
 public:
  SystemdNotifier() = default;
  SystemdNotifier(const SystemdNotifier&) = delete;
  SystemdNotifier& operator=(const SystemdNotifier&) = delete;

  // True when NOTIFY_SOCKET is set.
  bool enabled() const;

  void Ready();
  // RELOADING=1 with MONOTONIC_USEC, as systemd 253+ wants for Type=notify-reload.
  void Reloading();
  void Stopping();
  void WatchdogPing();
  // STATUS=<line>; newlines in `line` are replaced by spaces.
  void Status(std::string_view line);

  // How often to ping: half the WatchdogSec= systemd asked for (WATCHDOG_USEC for this pid),
  // or nullopt when no watchdog is set up.
  static std::optional<std::chrono::microseconds> WatchdogPingInterval();
};

}  // namespace zb

#endif  // ZB_DAEMON_PROCESS_SYSTEMD_NOTIFY_H_
