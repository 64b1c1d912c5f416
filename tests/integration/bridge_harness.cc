#include "tests/integration/bridge_harness.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <rapidjson/document.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <list>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>
#include <tuple>

#include <gtest/gtest.h>

#include "tests/test_support.h"

extern char** environ;

namespace zb::testing {

Subprocess::Subprocess(std::vector<std::string> argv, std::string log_path,
                       std::vector<std::string> extra_env)
    : log_path_(std::move(log_path)) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path_.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (std::string& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  for (std::string& e : extra_env) env_strings.push_back(e);
  std::vector<char*> env;
  for (std::string& e : env_strings) env.push_back(e.data());
  env.push_back(nullptr);
  // The test process may block signals; the child must not inherit that.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  int rc = posix_spawn(&pid_, args[0], &actions, &attr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    ADD_FAILURE() << "cannot start " << argv[0] << ": " << strerror(rc);
    pid_ = -1;
  }
}

Subprocess::~Subprocess() {
  if (pid_ > 0 && running()) {
    kill(pid_, SIGKILL);
    Wait(std::chrono::seconds(10));
  }
}

bool Subprocess::running() {
  if (pid_ <= 0 || exit_code_) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  if (r == pid_) {
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  return false;
}

void Subprocess::Signal(int signo) {
  if (pid_ > 0 && running()) kill(pid_, signo);
}

std::optional<int> Subprocess::Wait(std::chrono::milliseconds timeout) {
  WaitFor([this] { return !running(); }, timeout);
  return exit_code_;
}

std::string Subprocess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace {

size_t AppendBody(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

HttpAnswer Fetch(const std::string& url, const std::string* post_json) {
  HttpAnswer answer;
  CURL* curl = curl_easy_init();
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, AppendBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer.body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_slist* headers = nullptr;
  if (post_json != nullptr) {
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, post_json->c_str());
  }
  if (curl_easy_perform(curl) == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &answer.status);
  }
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return answer;
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

HttpAnswer HttpGet(const std::string& url) { return Fetch(url, nullptr); }
HttpAnswer HttpPostJson(const std::string& url, const std::string& json) {
  return Fetch(url, &json);
}

std::string BridgeBinary() { return ZB_BRIDGE_BIN; }
std::string FakeZulipBinary() { return ZB_FAKE_ZULIP_BIN; }

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  chmod(path.c_str(), 0600);
}

FakeZulip::FakeZulip(const std::string& dir, std::vector<User> users,
                     std::vector<std::string> extra_args) {
  std::string port_file = dir + "/fake-zulip.port";
  std::vector<std::string> argv = {FakeZulipBinary(), "--listen", "127.0.0.1:0", "--port-file",
                                   port_file};
  for (const User& user : users) {
    argv.push_back("--user");
    argv.push_back(user.email + ":" + user.api_key);
  }
  for (std::string& arg : extra_args) argv.push_back(std::move(arg));
  process_ = std::make_unique<Subprocess>(argv, dir + "/fake-zulip.log");
  bool up = WaitFor(
      [&] {
        std::string text = ReadWholeFile(port_file);
        if (text.empty() || text.back() != '\n') return false;
        port_ = std::stoi(text);
        return port_ > 0;
      },
      std::chrono::seconds(20));
  if (!up) ADD_FAILURE() << "fake-zulip did not start:\n" << process_->Log();
}

HttpAnswer FakeZulip::Control(const std::string& path, const std::string& json) {
  return HttpPostJson(site() + path, json);
}

HttpAnswer FakeZulip::ControlGet(const std::string& path) { return HttpGet(site() + path); }

std::vector<int64_t> FakeZulip::PushEvent(const std::string& email, const std::string& event_json) {
  HttpAnswer answer =
      Control("/_fake/events", R"({"email":")" + email + R"(","event":)" + event_json + "}");
  std::vector<int64_t> ids;
  rapidjson::Document doc;
  doc.Parse(answer.body.c_str());
  if (answer.status != 200 || !doc.IsObject() || !doc.HasMember("queues")) {
    ADD_FAILURE() << "push failed: " << answer.status << " " << answer.body;
    return ids;
  }
  for (const auto& q : doc["queues"].GetArray()) ids.push_back(q["id"].GetInt64());
  return ids;
}

int64_t FakeZulip::PushEventToQueue(const std::string& queue_id, const std::string& event_json) {
  HttpAnswer answer =
      Control("/_fake/events", R"({"queue_id":")" + queue_id + R"(","event":)" + event_json + "}");
  rapidjson::Document doc;
  doc.Parse(answer.body.c_str());
  if (answer.status != 200 || !doc.IsObject() || !doc.HasMember("queues") ||
      doc["queues"].Size() != 1) {
    ADD_FAILURE() << "push failed: " << answer.status << " " << answer.body;
    return -1;
  }
  return doc["queues"][0]["id"].GetInt64();
}

std::string FakeZulip::WaitForOneQueue(const std::string& email, const std::string& not_this,
                                       std::chrono::milliseconds timeout) {
  std::string queue;
  WaitFor(
      [&] {
        std::vector<std::string> queues = QueuesOf(email);
        if (queues.size() != 1 || queues[0] == not_this) return false;
        queue = queues[0];
        return true;
      },
      timeout);
  return queue;
}

std::vector<std::string> FakeZulip::QueuesOf(const std::string& email) {
  HttpAnswer answer = ControlGet("/_fake/queues");
  std::vector<std::string> ids;
  rapidjson::Document doc;
  doc.Parse(answer.body.c_str());
  if (!doc.IsObject() || !doc.HasMember("queues")) return ids;
  for (const auto& q : doc["queues"].GetArray()) {
    if (q.HasMember("email") && q["email"].GetString() == email) {
      ids.emplace_back(q["queue_id"].GetString());
    }
  }
  return ids;
}

std::map<int64_t, std::string> FakeZulip::GroundTruth(const std::string& queue_id) {
  HttpAnswer answer = ControlGet("/_fake/ground_truth?queue_id=" + queue_id);
  std::map<int64_t, std::string> events;
  std::istringstream lines(answer.body);
  std::string line;
  while (std::getline(lines, line)) {
    // {"queue_id":"…","id":N,"event":<exact bytes>}
    size_t id_at = line.find("\"id\":");
    size_t event_at = line.find(",\"event\":");
    if (id_at == std::string::npos || event_at == std::string::npos) continue;
    int64_t id = std::stoll(line.substr(id_at + 5, event_at - id_at - 5));
    events[id] = line.substr(event_at + 9, line.size() - (event_at + 9) - 1);
  }
  return events;
}

std::vector<ReadRecord> ReadTopics(const std::string& brokers, const std::set<std::string>& topics,
                                   const std::function<bool(const std::vector<ReadRecord>&)>& want,
                                   std::chrono::milliseconds timeout) {
  std::vector<ReadRecord> records;
  // A rebalance (new topics appearing) makes the group read a partition from the start again;
  // a record is kept once per (topic, partition, offset), so only real duplicates count.
  std::set<std::tuple<std::string, int32_t, int64_t>> seen;
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::string group = UniqueTopic("zb.test.reader");
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), errstr, sizeof errstr);
  rd_kafka_conf_set(conf, "group.id", group.c_str(), errstr, sizeof errstr);
  rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, sizeof errstr);
  rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr);
  rd_kafka_conf_set(conf, "topic.metadata.refresh.interval.ms", "1000", errstr, sizeof errstr);
  rd_kafka_conf_set(conf, "allow.auto.create.topics", "false", errstr, sizeof errstr);
  rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
  if (consumer == nullptr) {
    ADD_FAILURE() << errstr;
    return records;
  }
  rd_kafka_poll_set_consumer(consumer);
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(topics.size()));
  for (const std::string& t : topics) {
    rd_kafka_topic_partition_list_add(list, t.c_str(), RD_KAFKA_PARTITION_UA);
  }
  rd_kafka_subscribe(consumer, list);
  rd_kafka_topic_partition_list_destroy(list);
  auto take = [&](rd_kafka_message_t* msg) {
    if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR &&
        seen.emplace(rd_kafka_topic_name(msg->rkt), msg->partition, msg->offset).second) {
      ReadRecord r;
      r.topic = rd_kafka_topic_name(msg->rkt);
      r.partition = msg->partition;
      r.offset = msg->offset;
      if (msg->key) r.key = std::string(static_cast<const char*>(msg->key), msg->key_len);
      r.value.assign(static_cast<const char*>(msg->payload), msg->len);
      rd_kafka_timestamp_type_t type;
      r.timestamp_ms = rd_kafka_message_timestamp(msg, &type);
      rd_kafka_headers_t* headers = nullptr;
      if (rd_kafka_message_headers(msg, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name;
        const void* value;
        size_t size;
        for (size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) ==
                           RD_KAFKA_RESP_ERR_NO_ERROR;
             ++i) {
          r.headers[name] = std::string(static_cast<const char*>(value), size);
        }
      }
      records.push_back(std::move(r));
    }
    rd_kafka_message_destroy(msg);
  };
  WaitFor(
      [&] {
        rd_kafka_message_t* msg = rd_kafka_consumer_poll(consumer, 100);
        for (int taken = 0; msg != nullptr && taken < 10000; ++taken) {
          take(msg);
          msg = rd_kafka_consumer_poll(consumer, 0);
        }
        if (msg != nullptr) take(msg);
        return want(records);
      },
      timeout);
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  return records;
}

// One thread accepts; each connection gets one thread per direction with blocking reads, so a
// slow reader on one connection never holds up another.
struct RecordingProxy::Impl {
  struct Connection {
    int id = 0;
    int client = -1;
    int upstream = -1;
    std::atomic<bool> awaiting_request{true};
    std::atomic<bool> reset_client{false};
    std::thread to_upstream;
    std::thread to_client;
  };

  int listen_fd = -1;
  int upstream_port = 0;
  std::thread acceptor;
  mutable std::mutex mu;
  std::vector<Entry> entries;                          // guarded by mu
  std::list<std::unique_ptr<Connection>> connections;  // guarded by mu
  bool stopping = false;                               // guarded by mu

  void Note(Connection& c, bool is_request, const char* data, size_t n) {
    Entry e;
    e.at = std::chrono::steady_clock::now();
    e.connection = c.id;
    e.is_request = is_request;
    e.head.assign(data, std::min<size_t>(n, 4096));
    e.first_line = e.head.substr(0, e.head.find("\r\n"));
    std::lock_guard<std::mutex> lock(mu);
    entries.push_back(std::move(e));
  }

  static bool WriteAll(int fd, const char* data, size_t n) {
    while (n > 0) {
      ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      data += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }

  void Pump(Connection& c, bool from_client) {
    int from = from_client ? c.client : c.upstream;
    int to = from_client ? c.upstream : c.client;
    std::vector<char> buffer(64 * 1024);
    while (true) {
      ssize_t n = recv(from, buffer.data(), buffer.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) {
        shutdown(to, SHUT_WR);
        return;
      }
      if (n < 0) {
        // The fake's `reset` fault: pass a reset on to the bridge (SO_LINGER 0 at close).
        if (!from_client) c.reset_client = true;
        shutdown(to, SHUT_RDWR);
        shutdown(from, SHUT_RDWR);
        return;
      }
      if (from_client && c.awaiting_request.exchange(false)) {
        Note(c, true, buffer.data(), static_cast<size_t>(n));
      } else if (!from_client && !c.awaiting_request.load()) {
        Note(c, false, buffer.data(), static_cast<size_t>(n));
        c.awaiting_request = true;
      }
      if (!WriteAll(to, buffer.data(), static_cast<size_t>(n))) {
        shutdown(from, SHUT_RDWR);
        shutdown(to, SHUT_RDWR);
        return;
      }
    }
  }

  void Accept() {
    int next_id = 0;
    while (true) {
      int client = accept(listen_fd, nullptr, nullptr);
      if (client < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;  // the listening socket was shut down
      }
      int upstream = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(static_cast<uint16_t>(upstream_port));
      if (connect(upstream, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        close(upstream);
        close(client);
        continue;
      }
      int one = 1;
      setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      setsockopt(upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      std::lock_guard<std::mutex> lock(mu);
      if (stopping) {
        close(upstream);
        close(client);
        return;
      }
      auto c = std::make_unique<Connection>();
      c->id = ++next_id;
      c->client = client;
      c->upstream = upstream;
      Connection* raw = c.get();
      c->to_upstream = std::thread([this, raw] { Pump(*raw, true); });
      c->to_client = std::thread([this, raw] { Pump(*raw, false); });
      connections.push_back(std::move(c));
    }
  }
};

RecordingProxy::RecordingProxy(int upstream_port) : impl_(std::make_unique<Impl>()) {
  impl_->upstream_port = upstream_port;
  impl_->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (bind(impl_->listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(impl_->listen_fd, 64) != 0 ||
      getsockname(impl_->listen_fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ADD_FAILURE() << "proxy cannot listen: " << strerror(errno);
    return;
  }
  port_ = ntohs(addr.sin_port);
  impl_->acceptor = std::thread([this] { impl_->Accept(); });
}

RecordingProxy::~RecordingProxy() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopping = true;
    for (auto& c : impl_->connections) {
      shutdown(c->client, SHUT_RDWR);
      shutdown(c->upstream, SHUT_RDWR);
    }
  }
  shutdown(impl_->listen_fd, SHUT_RDWR);
  if (impl_->acceptor.joinable()) impl_->acceptor.join();
  close(impl_->listen_fd);
  for (auto& c : impl_->connections) {
    c->to_upstream.join();
    c->to_client.join();
    if (c->reset_client) {
      linger hard{1, 0};
      setsockopt(c->client, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    }
    close(c->client);
    close(c->upstream);
  }
}

std::vector<RecordingProxy::Entry> RecordingProxy::Entries() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->entries;
}

std::string BasicAuthorization(const std::string& email, const std::string& api_key) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string in = email + ":" + api_key;
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int shift = 18; shift >= 0; shift -= 6) out += kAlphabet[(v >> shift) & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return "Basic " + out;
}

std::string AccountYaml(const std::string& name, const std::string& site, const std::string& email,
                        const std::string& api_key_file, const std::string& extra) {
  return "  - name: " + name + "\n    site: " + site + "\n    email: " + email +
         "\n    api_key_file: " + api_key_file + "\n" + extra;
}

int KafkaCtl(const std::string& verb, std::chrono::milliseconds timeout) {
  if (!MissingKafkaCtlAndDir().empty()) return -1;
  std::string dir = KafkaDirFromEnv();
  TempDir logs;
  Subprocess ctl({KafkaCtlFromEnv(), verb, dir}, logs.Sub("ctl.log"));
  std::optional<int> code = ctl.Wait(timeout);
  if (!code || *code != 0) {
    ADD_FAILURE() << "broker " << verb << " " << dir << " failed:\n" << ctl.Log();
  }
  return code.value_or(-1);
}

int HealthPortFromLog(const std::string& log) {
  // The last start's: a log file can hold several runs.
  size_t at = log.rfind("HTTP listener up");
  if (at == std::string::npos) return 0;
  std::string line = log.substr(at, log.find('\n', at) - at);
  static const std::regex kPort(R"(\bport=(\d+))");
  std::smatch m;
  if (!std::regex_search(line, m, kPort)) return 0;
  return std::stoi(m[1].str());
}

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

PrivateBroker::PrivateBroker(std::string dir, std::string kafka_version)
    : dir_(std::move(dir)), kafka_version_(std::move(kafka_version)) {}

PrivateBroker::~PrivateBroker() {
  if (!KafkaCtlFromEnv().empty()) Run("stop");  // idempotent
}

std::string Shell(const std::string& command) {
  std::string output;
  FILE* pipe = popen(("(" + command + ") 2>&1").c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "cannot run: " << command;
    return "";
  }
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
  int status = pclose(pipe);
  if (status != 0) ADD_FAILURE() << "failed (" << status << "): " << command << "\n" << output;
  return output;
}

std::string PrivateBroker::Run(const std::string& verb) {
  std::string ctl = KafkaCtlFromEnv();
  if (ctl.empty()) {
    ADD_FAILURE() << "ZB_KAFKA_CTL is not set";
    return "";
  }
  std::string command = ctl + " " + verb + " " + dir_;
  if (!kafka_version_.empty()) command = "ZB_KAFKA_VERSION=" + kafka_version_ + " " + command;
  std::string output = Shell(command);
  while (!output.empty() && output.back() == '\n') output.pop_back();
  size_t last_line = output.rfind('\n');
  return last_line == std::string::npos ? output : output.substr(last_line + 1);
}

void BridgeTest::SetUp() {
  ZB_REQUIRE_KAFKA(brokers);
  brokers_ = brokers;
}

void BridgeTest::TearDown() {
  if (!HasFailure() || !bridge_) return;
  std::string log = bridge_->Log();
  if (log.size() > 20000) log = "...\n" + log.substr(log.size() - 20000);
  std::cerr << "---- bridge log (tail) ----\n" << log;
}

void BridgeTest::StartBridge(std::vector<std::string> extra_env) {
  bridge_ = std::make_unique<Subprocess>(
      std::vector<std::string>{BridgeBinary(), "--config", config_path()}, dir_.Sub("bridge.log"),
      std::move(extra_env));
}

void BridgeTest::StopBridge() {
  bridge_->Signal(SIGTERM);
  std::optional<int> code = bridge_->Wait(std::chrono::seconds(40));
  ASSERT_TRUE(code.has_value()) << "the bridge did not stop within 40 s of SIGTERM";
  EXPECT_EQ(*code, 0);
}

std::pair<int, std::string> BridgeTest::RunCommand(std::vector<std::string> args) {
  args.insert(args.begin(), BridgeBinary());
  args.push_back("--config");
  args.push_back(config_path());
  Subprocess command(args, dir_.Sub("command-" + std::to_string(++commands_) + ".out"));
  std::optional<int> code = command.Wait(std::chrono::seconds(90));
  EXPECT_TRUE(code.has_value()) << args[1] << " did not finish";
  return {code.value_or(-1), command.Log()};
}

}  // namespace zb::testing
