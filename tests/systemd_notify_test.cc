#include "daemon/process/systemd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "tests/test_support.h"

namespace zb {
namespace {

// A datagram socket standing in for systemd's notification socket.
class FakeNotifySocket {
 public:
  explicit FakeNotifySocket(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path_.copy(addr.sun_path, sizeof addr.sun_path - 1);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    timeval tv{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~FakeNotifySocket() { close(fd_); }

  // The next datagram, or "" after 5 s.
  std::string Receive() {
    char buf[4096];
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, n) : std::string();
  }

 private:
  std::string path_;
  int fd_ = -1;
};

class SystemdNotifyTest : public ::testing::Test {
 protected:
  void TearDown() override {
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
  }
  testing::TempDir dir_;
};

TEST_F(SystemdNotifyTest, SendsEachStateAsOneDatagram) {
  FakeNotifySocket socket(dir_.Sub("notify"));
  setenv("NOTIFY_SOCKET", dir_.Sub("notify").c_str(), 1);
  SystemdNotifier notifier;
  ASSERT_TRUE(notifier.enabled());
  notifier.Ready();
  EXPECT_EQ(socket.Receive(), "READY=1");
  notifier.Status("3 accounts polling\n1 parked");
  EXPECT_EQ(socket.Receive(), "STATUS=3 accounts polling 1 parked");
  notifier.WatchdogPing();
  EXPECT_EQ(socket.Receive(), "WATCHDOG=1");
  notifier.Reloading();
  std::string reloading = socket.Receive();
  EXPECT_EQ(reloading.rfind("RELOADING=1\nMONOTONIC_USEC=", 0), 0u) << reloading;
  notifier.Stopping();
  EXPECT_EQ(socket.Receive(), "STOPPING=1");
}

TEST_F(SystemdNotifyTest, DoesNothingWithoutNotifySocket) {
  unsetenv("NOTIFY_SOCKET");
  SystemdNotifier notifier;
  EXPECT_FALSE(notifier.enabled());
  notifier.Ready();  // must neither crash nor block
  notifier.WatchdogPing();
}

TEST_F(SystemdNotifyTest, WatchdogIntervalIsHalfOfWatchdogUsec) {
  setenv("WATCHDOG_USEC", "20000000", 1);
  setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
  auto interval = SystemdNotifier::WatchdogPingInterval();
  ASSERT_TRUE(interval.has_value());
  EXPECT_EQ(interval->count(), 10000000);
  setenv("WATCHDOG_PID", std::to_string(getpid() + 1).c_str(), 1);  // meant for another process
  EXPECT_FALSE(SystemdNotifier::WatchdogPingInterval().has_value());
}

}  // namespace
}  // namespace zb
