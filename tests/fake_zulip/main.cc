// fake-zulip: the fake Zulip server as a program, for tests that run it as a separate process,
// demos and benchmarks. See README.md for the command line and the control interface.
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "tests/fake_zulip/fake_zulip_server.h"

namespace {

// One "email:api_key" per --user, or per line of --users FILE (blank lines and # comments
// skipped).
bool ParseUser(const std::string& text, zb::fake_zulip::FakeUser* user) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) return false;
  user->email = text.substr(0, colon);
  user->api_key = text.substr(colon + 1);
  return true;
}

void RaiseFileLimit() {
  // Each parked long-poll holds a socket; 10,000 of them need more than the usual 1024.
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fake-zulip: a fake Zulip server for testing zulip-bridge"};
  std::string listen = "127.0.0.1:0";
  std::string port_file;
  std::vector<std::string> user_flags;
  std::string users_file;
  double time_scale = 1.0;
  double start_time = 0;
  uint64_t seed = 1;
  std::string rate_limit;
  std::vector<std::string> unsupported;
  bool no_control = false;
  app.add_option("--listen", listen, "HOST:PORT to listen on (port 0: any free port)");
  app.add_option("--port-file", port_file, "write the bound port to this file once listening");
  app.add_option("--user", user_flags, "a user, EMAIL:API_KEY (repeatable)");
  app.add_option("--users", users_file, "a file of EMAIL:API_KEY lines");
  app.add_option("--time-scale", time_scale, "fake seconds per real second (0: frozen)");
  app.add_option("--start-time", start_time,
                 "fake Unix time to start at, in seconds (0: now); with /_fake/time/advance, "
                 "messages can be sent in the past");
  app.add_option("--seed", seed, "seed for queue ids and heartbeat jitter");
  app.add_option("--rate-limit", rate_limit, "default per-user rules, e.g. 60:200");
  app.add_option("--unsupported-register-param", unsupported,
                 "a /register parameter to ignore, as an older server does (repeatable)");
  app.add_flag("--no-control", no_control, "do not serve the /_fake/ control interface");
  CLI11_PARSE(app, argc, argv);

  zb::fake_zulip::FakeZulipOptions options;
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    std::cerr << "fake-zulip: --listen wants HOST:PORT, got " << listen << "\n";
    return 2;
  }
  options.host = listen.substr(0, colon);
  std::string port_text = listen.substr(colon + 1);
  char* end = nullptr;
  long port = std::strtol(port_text.c_str(), &end, 10);
  if (port_text.empty() || *end != '\0' || port < 0 || port > 65535) {
    std::cerr << "fake-zulip: --listen wants HOST:PORT, got " << listen << "\n";
    return 2;
  }
  options.port = static_cast<int>(port);
  options.time_scale = time_scale;
  options.start_time = start_time;
  options.seed = seed;
  options.control_interface = !no_control;

  std::vector<zb::fake_zulip::FakeUser> users;
  std::vector<std::string> lines = user_flags;
  if (!users_file.empty()) {
    std::ifstream in(users_file);
    if (!in) {
      std::cerr << "fake-zulip: cannot read " << users_file << "\n";
      return 2;
    }
    for (std::string line; std::getline(in, line);) {
      if (line.empty() || line[0] == '#') continue;
      lines.push_back(line);
    }
  }
  for (const auto& line : lines) {
    zb::fake_zulip::FakeUser user;
    if (!ParseUser(line, &user)) {
      std::cerr << "fake-zulip: a user is EMAIL:API_KEY, got a line without one\n";
      return 2;
    }
    users.push_back(std::move(user));
  }

  RaiseFileLimit();
  // Block the stop signals before the loop thread starts, so that only sigwait sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto server = zb::fake_zulip::FakeZulipServer::Start(options);
  if (!server.ok()) {
    std::cerr << "fake-zulip: " << server.status().ToString() << "\n";
    return 1;
  }
  for (auto& user : users) {
    std::string email = user.email;
    auto added = (*server)->AddUser(std::move(user));
    if (!added.ok()) {
      std::cerr << "fake-zulip: user " << email << ": " << added.status().message() << "\n";
      return 2;
    }
  }
  if (!rate_limit.empty()) {
    auto rules = zb::fake_zulip::ParseRateRules(rate_limit);
    if (!rules.ok()) {
      std::cerr << "fake-zulip: --rate-limit: " << rules.status().message() << "\n";
      return 2;
    }
    (*server)->WithCore([&](zb::fake_zulip::ZulipCore& core) { core.SetDefaultRateLimit(*rules); });
  }
  if (!unsupported.empty()) {
    std::set<std::string> names(unsupported.begin(), unsupported.end());
    (*server)->WithCore(
        [&](zb::fake_zulip::ZulipCore& core) { core.SetUnsupportedRegisterParameters(names); });
  }
  if (!port_file.empty()) {
    // Written whole under a temporary name, so a reader never sees half a number.
    std::string tmp = port_file + ".tmp";
    {
      std::ofstream out(tmp);
      out << (*server)->port() << "\n";
    }
    std::rename(tmp.c_str(), port_file.c_str());
  }
  std::fprintf(stderr, "fake-zulip: listening on %s (%zu users, time scale %g)\n",
               (*server)->url().c_str(), lines.size(), time_scale);

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  std::fprintf(stderr, "fake-zulip: stopping on signal %d\n", signal_number);
  return 0;
}
