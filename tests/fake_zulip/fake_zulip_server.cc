#include "tests/fake_zulip/fake_zulip_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <future>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace zb::fake_zulip {
namespace {

std::string Quote(std::string_view s) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string Serialize(const rapidjson::Value& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

const char* MethodName(evhttp_cmd_type cmd) {
  switch (cmd) {
    case EVHTTP_REQ_GET:
      return "GET";
    case EVHTTP_REQ_POST:
      return "POST";
    case EVHTTP_REQ_DELETE:
      return "DELETE";
    case EVHTTP_REQ_PUT:
      return "PUT";
    case EVHTTP_REQ_PATCH:
      return "PATCH";
    case EVHTTP_REQ_HEAD:
      return "HEAD";
    default:
      return "OTHER";
  }
}

void ParseQueryInto(const char* text, std::map<std::string, std::string>* out) {
  if (text == nullptr || *text == '\0') return;
  evkeyvalq pairs;
  pairs.tqh_first = nullptr;
  pairs.tqh_last = &pairs.tqh_first;
  if (evhttp_parse_query_str(text, &pairs) == 0) {
    for (evkeyval* kv = pairs.tqh_first; kv != nullptr; kv = kv->next.tqe_next) {
      (*out)[kv->key] = kv->value;
    }
  }
  evhttp_clear_headers(&pairs);
}

std::string QueueInfoJson(const QueueInfo& q) {
  std::string out = R"({"queue_id":)" + Quote(q.queue_id) + R"(,"email":)" + Quote(q.email) +
                    R"(,"event_types":)";
  if (q.event_types) {
    out += "[";
    for (size_t i = 0; i < q.event_types->size(); ++i) {
      out += (i ? "," : "") + Quote((*q.event_types)[i]);
    }
    out += "]";
  } else {
    out += "null";
  }
  char numbers[256];
  std::snprintf(numbers, sizeof numbers,
                R"(,"lifespan_secs":%.17g,"created":%.17g,"last_connection_time":%.17g)",
                q.lifespan_secs, q.created, q.last_connection_time);
  out += R"(,"narrow":)" + q.narrow_json + R"(,"all_public_streams":)" +
         (q.all_public_streams ? "true" : "false") + R"(,"apply_markdown":)" +
         (q.apply_markdown ? "true" : "false") + R"(,"client_gravatar":)" +
         (q.client_gravatar ? "true" : "false") + numbers + R"(,"polling":)" +
         (q.polling ? "true" : "false") + R"(,"next_event_id":)" + std::to_string(q.next_event_id) +
         R"(,"newest_pruned_id":)" + std::to_string(q.newest_pruned_id) + R"(,"queued":)" +
         std::to_string(q.queued) + "}";
  return out;
}

}  // namespace

namespace {
constexpr std::pair<FaultRule::Kind, const char*> kFaultNames[] = {
    {FaultRule::Kind::k500, "500"},
    {FaultRule::Kind::k502, "502"},
    {FaultRule::Kind::k429, "429"},
    {FaultRule::Kind::kSlow, "slow"},
    {FaultRule::Kind::kTruncatedJson, "truncated_json"},
    {FaultRule::Kind::kReset, "reset"},
    {FaultRule::Kind::kCloseMidBody, "close_mid_body"},
};
}  // namespace

StatusOr<FaultRule::Kind> ParseFaultKind(std::string_view name) {
  for (const auto& [kind, text] : kFaultNames) {
    if (name == text) return kind;
  }
  return Status::InvalidArgument("unknown fault kind \"" + std::string(name) + "\"");
}

std::string FaultKindName(FaultRule::Kind kind) {
  for (const auto& [k, text] : kFaultNames) {
    if (k == kind) return text;
  }
  return "?";
}

struct FakeZulipServer::Impl {
  FakeZulipServer* owner = nullptr;
  event_base* base = nullptr;
  evhttp* http = nullptr;
  event* task_event = nullptr;
  event* timer_event = nullptr;
  std::thread thread;
  std::thread::id loop_thread;
  std::unique_ptr<ZulipCore> core;

  std::mutex tasks_mu;
  std::deque<std::function<void()>> tasks;  // guarded by tasks_mu

  // Loop thread only.
  bool stopping = false;
  uint64_t next_handler = 1;
  std::unordered_map<uint64_t, evhttp_request*> parked;
  std::unordered_map<evhttp_connection*, uint64_t> parked_by_connection;
  // evhttp stops reading a connection once it has a request, so it would not notice a client
  // that gives up on a long-poll until it writes the answer. Tornado notices at once
  // (on_connection_close), which matters: a parked GET keeps its queue from being collected.
  // So each parked GET's socket is watched for EOF here.
  struct CloseWatch {
    Impl* impl;
    uint64_t handler_id;
    event* ev;
  };
  std::unordered_map<uint64_t, std::unique_ptr<CloseWatch>> close_watches;

  // Fault injection.
  std::vector<FaultRule> faults;
  std::mt19937_64 fault_rng{1};
  // Parked GETs whose answer, when it comes, must be spoilt this way.
  std::unordered_map<uint64_t, FaultRule::Kind> response_faults;
  // Connections to break on the next loop turn, never inside their own request callback
  // (libevent still uses the connection after the callback returns). Each is kept in `parked`
  // meanwhile, so that a client that goes away first is forgotten cleanly.
  enum class Break { kClose, kReset, kCloseMidBody };
  struct PendingBreak {
    uint64_t handler_id;
    Break how;
    std::string body;
  };
  std::vector<PendingBreak> breaks;
  event* break_event = nullptr;
  // Requests held back by a kSlow fault.
  struct SlowRequest {
    Impl* impl;
    evhttp_request* req;
    event* ev;
  };
  std::unordered_map<SlowRequest*, std::unique_ptr<SlowRequest>> slow;
  // Emissions at a steady rate: every tick pushes the events due by then.
  struct SteadyEmission {
    Impl* impl;
    EmitRequest request;  // count: the total
    double rate;          // events per real second
    int64_t done = 0;
    std::chrono::steady_clock::time_point start;
    event* ev = nullptr;
  };
  std::vector<std::unique_ptr<SteadyEmission>> emissions;

  void StartEmission(EmitRequest request, double rate) {
    auto emission = std::make_unique<SteadyEmission>();
    emission->impl = this;
    emission->request = std::move(request);
    emission->rate = rate;
    emission->start = std::chrono::steady_clock::now();
    emission->ev = event_new(base, -1, EV_PERSIST, &Impl::OnEmissionTick, emission.get());
    timeval tick{0, 10'000};
    event_add(emission->ev, &tick);
    emissions.push_back(std::move(emission));
  }

  void StopEmissions() {
    for (auto& emission : emissions) event_free(emission->ev);
    emissions.clear();
  }

  static void OnEmissionTick(evutil_socket_t, short, void* arg) {
    auto* emission = static_cast<SteadyEmission*>(arg);
    Impl* self = emission->impl;
    double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - emission->start).count();
    int64_t due =
        std::min(emission->request.count, static_cast<int64_t>(elapsed * emission->rate)) -
        emission->done;
    bool failed = false;
    if (due > 0) {
      EmitRequest batch = emission->request;
      batch.count = due;
      failed = !self->core->Emit(batch).ok();  // e.g. the queue is gone
      emission->done += due;
    }
    if (failed || emission->done >= emission->request.count) {
      for (auto it = self->emissions.begin(); it != self->emissions.end(); ++it) {
        if (it->get() != emission) continue;
        event_free(emission->ev);
        self->emissions.erase(it);  // frees `emission`
        break;
      }
    }
    self->Reschedule();
  }

  ~Impl() {
    for (auto& [id, watch] : close_watches) event_free(watch->ev);
    close_watches.clear();
    for (auto& [raw, request] : slow) event_free(request->ev);
    slow.clear();
    StopEmissions();
    if (break_event) event_free(break_event);
    if (http) evhttp_free(http);
    if (task_event) event_free(task_event);
    if (timer_event) event_free(timer_event);
    if (base) event_base_free(base);
  }

  static void OnTasks(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    std::deque<std::function<void()>> batch;
    {
      std::lock_guard lock(self->tasks_mu);
      batch.swap(self->tasks);
    }
    for (auto& task : batch) task();
  }

  static void OnTimer(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    self->core->RunDueTimers();
    self->Reschedule();
  }

  static void OnRequest(evhttp_request* req, void* arg) { static_cast<Impl*>(arg)->Handle(req); }

  static void OnConnectionClose(evhttp_connection* connection, void* arg) {
    static_cast<Impl*>(arg)->ConnectionClosed(connection);
  }

  void WatchForClose(uint64_t handler_id, evhttp_connection* connection) {
    evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(connection));
    if (fd < 0) return;
    auto watch = std::make_unique<CloseWatch>(CloseWatch{this, handler_id, nullptr});
    watch->ev = event_new(base, fd, EV_READ, &Impl::OnParkedReadable, watch.get());
    event_add(watch->ev, nullptr);
    close_watches[handler_id] = std::move(watch);
  }

  void StopWatching(uint64_t handler_id) {
    auto it = close_watches.find(handler_id);
    if (it == close_watches.end()) return;
    event_free(it->second->ev);
    close_watches.erase(it);
  }

  static void OnParkedReadable(evutil_socket_t fd, short, void* arg) {
    auto* watch = static_cast<CloseWatch*>(arg);
    Impl* self = watch->impl;
    uint64_t handler_id = watch->handler_id;
    char byte;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    bool gone = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    self->StopWatching(handler_id);  // frees `watch`
    if (!gone) return;               // a client that pipelines; evhttp will deal with it
    auto it = self->parked.find(handler_id);
    if (it == self->parked.end()) return;
    evhttp_request* req = it->second;
    self->parked.erase(it);
    self->response_faults.erase(handler_id);
    evhttp_connection* connection = evhttp_request_get_connection(req);
    if (connection) self->parked_by_connection.erase(connection);
    self->core->HandlerClosed(handler_id);
    self->Reschedule();
    // Frees the parked request with it.
    if (connection) evhttp_connection_free(connection);
  }

  void Reschedule() {
    std::optional<double> deadline = core->NextDeadline();
    double real = deadline ? owner->clock_.RealSecondsUntil(*deadline) : -1;
    if (real < 0) {
      evtimer_del(timer_event);
      return;
    }
    // A little late rather than early, so that the timer is due when it runs.
    real += 0.0005;
    timeval tv;
    tv.tv_sec = static_cast<time_t>(real);
    tv.tv_usec = static_cast<suseconds_t>((real - std::floor(real)) * 1e6);
    evtimer_add(timer_event, &tv);
  }

  void Send(evhttp_request* req, const HttpResponse& response,
            const char* content_type = "application/json") {
    evkeyvalq* headers = evhttp_request_get_output_headers(req);
    evhttp_add_header(headers, "Content-Type", content_type);
    for (const auto& [name, value] : response.headers) {
      evhttp_add_header(headers, name.c_str(), value.c_str());
    }
    evbuffer* body = evbuffer_new();
    evbuffer_add(body, response.body.data(), response.body.size());
    const char* reason = response.status == 200   ? "OK"
                         : response.status == 400 ? "Bad Request"
                         : response.status == 401 ? "Unauthorized"
                         : response.status == 404 ? "Not Found"
                         : response.status == 429 ? "Too Many Requests"
                         : response.status == 500 ? "Internal Server Error"
                         : response.status == 502 ? "Bad Gateway"
                                                  : "Error";
    evhttp_send_reply(req, response.status, reason, body);
    evbuffer_free(body);
  }

  // ZulipCore::FinishFn.
  void Finish(uint64_t handler_id, HttpResponse response) {
    auto it = parked.find(handler_id);
    if (it == parked.end()) return;
    evhttp_request* req = it->second;
    StopWatching(handler_id);
    std::optional<FaultRule::Kind> fault;
    if (auto f = response_faults.find(handler_id); f != response_faults.end()) {
      fault = f->second;
      response_faults.erase(f);
    }
    if (fault == FaultRule::Kind::kReset || fault == FaultRule::Kind::kCloseMidBody) {
      // Stays in `parked` until the break.
      ScheduleBreak(handler_id,
                    fault == FaultRule::Kind::kReset ? Break::kReset : Break::kCloseMidBody,
                    std::move(response.body));
      return;
    }
    parked.erase(it);
    if (evhttp_connection* connection = evhttp_request_get_connection(req)) {
      parked_by_connection.erase(connection);
    }
    if (fault == FaultRule::Kind::kTruncatedJson) response.body.resize(response.body.size() / 2);
    Send(req, response);
  }

  void ScheduleBreak(uint64_t handler_id, Break how, std::string body) {
    breaks.push_back({handler_id, how, std::move(body)});
    event_active(break_event, EV_READ, 0);
  }

  // Keeps `req` (not parked in the core) where ConnectionClosed finds it, until its break.
  void HoldForBreak(evhttp_request* req, uint64_t handler_id, Break how, std::string body) {
    parked[handler_id] = req;
    evhttp_connection* connection = evhttp_request_get_connection(req);
    parked_by_connection[connection] = handler_id;
    evhttp_connection_set_closecb(connection, &Impl::OnConnectionClose, this);
    ScheduleBreak(handler_id, how, std::move(body));
  }

  static void OnBreaks(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    std::vector<PendingBreak> batch;
    batch.swap(self->breaks);
    for (auto& pending : batch) self->BreakConnection(pending);
  }

  void BreakConnection(const PendingBreak& pending) {
    auto it = parked.find(pending.handler_id);
    if (it == parked.end()) return;  // the client went away first
    evhttp_request* req = it->second;
    parked.erase(it);
    response_faults.erase(pending.handler_id);
    StopWatching(pending.handler_id);
    evhttp_connection* connection = evhttp_request_get_connection(req);
    if (connection == nullptr) return;
    parked_by_connection.erase(connection);
    evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(connection));
    if (fd >= 0 && pending.how == Break::kCloseMidBody) {
      std::string out = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                        std::to_string(pending.body.size()) + "\r\n\r\n" +
                        pending.body.substr(0, pending.body.size() / 2);
      WriteAll(fd, out);
    }
    if (fd >= 0 && pending.how == Break::kReset) {
      // libevent shuts the socket down (a FIN) before closing it, and a client would read
      // that as a clean end. So the socket is moved off libevent's descriptor, which gets a
      // fresh unconnected socket to close, and closed here with SO_LINGER 0: an RST alone.
      int socket_copy = dup(fd);
      int dummy = socket(AF_INET, SOCK_STREAM, 0);
      if (socket_copy >= 0 && dummy >= 0) {
        dup2(dummy, fd);
        linger hard{1, 0};
        setsockopt(socket_copy, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
      }
      if (dummy >= 0) close(dummy);
      if (socket_copy >= 0) close(socket_copy);
    }
    evhttp_connection_free(connection);  // frees `req` with it
  }

  // Blocking write of a small answer on a non-blocking socket (a fault, so not a hot path).
  static void WriteAll(int fd, std::string_view data) {
    while (!data.empty()) {
      ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        pollfd p{fd, POLLOUT, 0};
        if (poll(&p, 1, 5000) <= 0) return;
      } else {
        return;
      }
    }
  }

  std::optional<FaultRule> PickFault(const std::string& path) {
    for (size_t i = 0; i < faults.size(); ++i) {
      FaultRule& rule = faults[i];
      if (!path.starts_with(rule.path_prefix)) continue;
      if (rule.probability < 1 &&
          std::uniform_real_distribution<double>(0, 1)(fault_rng) >= rule.probability) {
        continue;
      }
      FaultRule fired = rule;
      if (rule.count > 0 && --rule.count == 0) faults.erase(faults.begin() + static_cast<long>(i));
      return fired;
    }
    return std::nullopt;
  }

  static void OnSlow(evutil_socket_t, short, void* arg) {
    auto* request = static_cast<SlowRequest*>(arg);
    Impl* self = request->impl;
    evhttp_request* req = request->req;
    event_free(request->ev);
    self->slow.erase(request);  // frees `request`
    self->HandleApi(req, std::nullopt);
  }

  void ConnectionClosed(evhttp_connection* connection) {
    auto it = parked_by_connection.find(connection);
    if (it == parked_by_connection.end()) return;
    uint64_t handler_id = it->second;
    parked_by_connection.erase(it);
    auto req = parked.find(handler_id);
    if (req == parked.end()) return;
    evhttp_request* request = req->second;
    parked.erase(req);
    response_faults.erase(handler_id);
    StopWatching(handler_id);
    if (!stopping) core->HandlerClosed(handler_id);
    // libevent detaches a request whose client went away and leaves it to us; answering a
    // detached request frees it. An attached one is freed with its connection.
    if (!stopping && evhttp_request_get_connection(request) == nullptr) {
      evhttp_send_reply(request, 200, "OK", nullptr);
    }
  }

  // The method, path and query parameters of `req`, and its body.
  static ApiRequest ReadRequest(evhttp_request* req, std::string* body) {
    const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
    const char* path = uri ? evhttp_uri_get_path(uri) : nullptr;
    ApiRequest request;
    request.method = MethodName(evhttp_request_get_command(req));
    request.path = path ? path : "/";
    ParseQueryInto(uri ? evhttp_uri_get_query(uri) : nullptr, &request.params);
    evbuffer* input = evhttp_request_get_input_buffer(req);
    size_t length = evbuffer_get_length(input);
    body->assign(length, '\0');
    if (length) evbuffer_copyout(input, body->data(), length);
    return request;
  }

  void Handle(evhttp_request* req) {
    std::string body;
    ApiRequest request = ReadRequest(req, &body);

    if (request.path.starts_with("/_fake/")) {
      if (!owner->options_.control_interface) {
        Send(req, {404, R"({"result":"error","msg":"Not Found","code":"BAD_REQUEST"})", {}});
        return;
      }
      HttpResponse response;
      const char* type = "application/json";
      Control(request, body, &response, &type);
      Send(req, response, type);
      Reschedule();
      return;
    }

    if (std::optional<FaultRule> fault = PickFault(request.path)) {
      switch (fault->kind) {
        case FaultRule::Kind::k500:
          Send(req, {500,
                     R"({"result":"error","msg":"Internal server error","code":"BAD_REQUEST"})",
                     {}});
          return;
        case FaultRule::Kind::k502:
          Send(req,
               {502,
                "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
                "</body>\r\n</html>\r\n",
                {}},
               "text/html");
          return;
        case FaultRule::Kind::k429: {
          char secs[64];
          std::snprintf(secs, sizeof secs, "%.17g",
                        fault->delay_secs > 0 ? fault->delay_secs : 1.0);
          Send(req, {429,
                     std::string(R"({"result":"error","msg":"API usage exceeded rate limit",)"
                                 R"("code":"RATE_LIMIT_HIT","retry-after":)") +
                         secs + "}",
                     {{"Retry-After", secs}}});
          return;
        }
        case FaultRule::Kind::kSlow: {
          auto request = std::make_unique<SlowRequest>(SlowRequest{this, req, nullptr});
          request->ev = evtimer_new(base, &Impl::OnSlow, request.get());
          double delay = fault->delay_secs > 0 ? fault->delay_secs : 0;
          timeval tv;
          tv.tv_sec = static_cast<time_t>(delay);
          tv.tv_usec = static_cast<suseconds_t>((delay - std::floor(delay)) * 1e6);
          evtimer_add(request->ev, &tv);
          SlowRequest* key = request.get();
          slow[key] = std::move(request);
          return;
        }
        default:
          return HandleApi(req, fault->kind);
      }
    }
    HandleApi(req, std::nullopt);
  }

  // An API request, answered (or parked) by the core; `fault` spoils the answer.
  void HandleApi(evhttp_request* req, std::optional<FaultRule::Kind> fault) {
    std::string body;
    ApiRequest request = ReadRequest(req, &body);
    evkeyvalq* in_headers = evhttp_request_get_input_headers(req);
    const char* content_type = evhttp_find_header(in_headers, "Content-Type");
    if (!body.empty() &&
        (content_type == nullptr ||
         std::string_view(content_type).starts_with("application/x-www-form-urlencoded"))) {
      ParseQueryInto(body.c_str(), &request.params);
    }
    if (const char* auth = evhttp_find_header(in_headers, "Authorization")) {
      request.authorization = auth;
    }
    uint64_t handler_id = next_handler++;
    ApiOutcome outcome = core->Handle(request, handler_id);
    if (outcome.parked) {
      parked[handler_id] = req;
      evhttp_connection* connection = evhttp_request_get_connection(req);
      parked_by_connection[connection] = handler_id;
      evhttp_connection_set_closecb(connection, &Impl::OnConnectionClose, this);
      WatchForClose(handler_id, connection);
      if (fault) response_faults[handler_id] = *fault;
    } else if (fault == FaultRule::Kind::kReset || fault == FaultRule::Kind::kCloseMidBody) {
      HoldForBreak(req, handler_id,
                   fault == FaultRule::Kind::kReset ? Break::kReset : Break::kCloseMidBody,
                   std::move(outcome.response.body));
    } else {
      if (fault == FaultRule::Kind::kTruncatedJson) {
        outcome.response.body.resize(outcome.response.body.size() / 2);
      }
      Send(req, outcome.response);
    }
    Reschedule();
  }

  size_t Restart(bool keep_queues) {
    std::vector<uint64_t> handlers = core->Restart(keep_queues);
    for (uint64_t handler_id : handlers) {
      if (parked.count(handler_id)) ScheduleBreak(handler_id, Break::kClose, "");
    }
    Reschedule();
    return handlers.size();
  }

  void AdvanceTime(double seconds) {
    FakeClock& clock = owner->clock_;
    double target = clock.Now() + (seconds > 0 ? seconds : 0);
    // Step from timer to timer so that each one sees its own fake time.
    for (std::optional<double> next = core->NextDeadline(); next && *next <= target;
         next = core->NextDeadline()) {
      clock.AdvanceTo(*next);
      core->RunDueTimers();
    }
    clock.AdvanceTo(target);
    core->RunDueTimers();
    Reschedule();
  }

  void Control(const ApiRequest& request, const std::string& body, HttpResponse* response,
               const char** content_type);
};

void FakeZulipServer::Impl::Control(const ApiRequest& request, const std::string& body,
                                    HttpResponse* response, const char** content_type) {
  auto error = [&](int status, std::string_view msg) {
    response->status = status;
    response->body = R"({"result":"error","msg":)" + Quote(msg) + "}";
  };
  auto ok = [&](std::string extra = "") {
    response->status = 200;
    response->body = R"({"result":"success")" + (extra.empty() ? "" : "," + extra) + "}";
  };
  auto from_status = [&](const Status& status, std::string extra = "") {
    if (status.ok()) return ok(std::move(extra));
    error(status.IsNotFound() ? 404 : 400, status.message());
  };
  rapidjson::Document doc;
  if (request.method == "POST") {
    doc.Parse(body.empty() ? "{}" : body.c_str());
    if (doc.HasParseError() || !doc.IsObject()) return error(400, "body is not a JSON object");
  } else {
    doc.SetObject();
  }
  auto str = [&](const char* name) -> std::string {
    auto it = doc.FindMember(name);
    if (it != doc.MemberEnd() && it->value.IsString()) return it->value.GetString();
    auto p = request.params.find(name);
    return p == request.params.end() ? "" : p->second;
  };
  auto boolean = [&](const char* name, bool fallback) {
    auto it = doc.FindMember(name);
    return it != doc.MemberEnd() && it->value.IsBool() ? it->value.GetBool() : fallback;
  };
  auto number = [&](const char* name) -> std::optional<double> {
    auto it = doc.FindMember(name);
    if (it == doc.MemberEnd() || !it->value.IsNumber()) return std::nullopt;
    return it->value.GetDouble();
  };
  const std::string& path = request.path;
  const std::string& method = request.method;

  if (path == "/_fake/users" && method == "POST") {
    FakeUser user;
    user.email = str("email");
    user.api_key = str("api_key");
    user.full_name = str("full_name");
    user.id = static_cast<int64_t>(number("id").value_or(0));
    user.is_bot = boolean("is_bot", true);
    user.is_guest = boolean("is_guest", false);
    user.default_all_public_streams = boolean("default_all_public_streams", false);
    user.default_events_register_stream = str("default_events_register_stream");
    StatusOr<int64_t> id = core->AddUser(std::move(user));
    if (!id.ok()) return from_status(id.status());
    return ok(R"("user_id":)" + std::to_string(*id));
  }
  if ((path == "/_fake/users/deactivate" || path == "/_fake/users/reactivate") &&
      method == "POST") {
    return from_status(core->SetUserActive(str("email"), path.ends_with("/reactivate")));
  }
  if ((path == "/_fake/realm/deactivate" || path == "/_fake/realm/reactivate") &&
      method == "POST") {
    core->SetRealmActive(path.ends_with("/reactivate"));
    return ok();
  }
  if (path == "/_fake/rate_limit" && method == "POST") {
    std::string rules_text = str("rules");
    std::vector<RateRule> rules;
    if (!rules_text.empty()) {
      StatusOr<std::vector<RateRule>> parsed = ParseRateRules(rules_text);
      if (!parsed.ok()) return from_status(parsed.status());
      rules = std::move(*parsed);
    }
    if (str("email").empty()) {
      core->SetDefaultRateLimit(std::move(rules));
      return ok();
    }
    return from_status(core->SetRateLimit(str("email"), std::move(rules)));
  }
  if (path == "/_fake/max_message_id" && method == "POST") {
    return from_status(core->SetMaxMessageId(
        str("email"), static_cast<int64_t>(number("max_message_id").value_or(-1))));
  }
  if (path == "/_fake/events" && method == "POST") {
    auto event = doc.FindMember("event");
    if (event == doc.MemberEnd()) return error(400, "body needs \"event\"");
    std::string json = Serialize(event->value);
    std::vector<std::pair<std::string, int64_t>> ids;
    if (!str("queue_id").empty()) {
      StatusOr<int64_t> id = core->PushEventToQueue(str("queue_id"), json);
      if (!id.ok()) return from_status(id.status());
      ids.emplace_back(str("queue_id"), *id);
    } else {
      auto pushed = core->PushEvent(str("email"), json);
      if (!pushed.ok()) return from_status(pushed.status());
      ids = std::move(*pushed);
    }
    std::string list = R"("queues":[)";
    for (size_t i = 0; i < ids.size(); ++i) {
      list += std::string(i ? "," : "") + R"({"queue_id":)" + Quote(ids[i].first) + R"(,"id":)" +
              std::to_string(ids[i].second) + "}";
    }
    return ok(list + "]");
  }
  if (path == "/_fake/emit" && method == "POST") {
    EmitRequest emit;
    emit.email = str("email");
    emit.queue_id = str("queue_id");
    emit.type = str("type");
    if (auto event = doc.FindMember("event"); event != doc.MemberEnd()) {
      emit.event_json = Serialize(event->value);
    }
    emit.count = static_cast<int64_t>(number("count").value_or(1));
    emit.options.content_bytes = static_cast<size_t>(number("content_bytes").value_or(0));
    emit.options.unicode = boolean("unicode", false);
    if (!str("sender_email").empty()) emit.options.sender_email = str("sender_email");
    if (!str("stream").empty()) emit.options.stream = str("stream");
    if (std::optional<double> rate = number("rate")) {
      if (!(*rate > 0)) return error(400, "rate must be positive");
      // Checks the target and the event now, so that a mistake is answered here.
      EmitRequest check = emit;
      check.count = 0;
      StatusOr<EmitResult> checked = core->Emit(check);
      if (!checked.ok()) return from_status(checked.status());
      int64_t count = emit.count;
      StartEmission(std::move(emit), *rate);
      return ok(R"("started":true,"count":)" + std::to_string(count));
    }
    auto start = std::chrono::steady_clock::now();
    StatusOr<EmitResult> result = core->Emit(emit);
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!result.ok()) return from_status(result.status());
    char text[256];
    std::snprintf(text, sizeof text,
                  R"("events":%lld,"deliveries":%lld,"seconds":%.6f,"events_per_second":%.0f)",
                  static_cast<long long>(result->events),
                  static_cast<long long>(result->deliveries), seconds,
                  seconds > 0 ? static_cast<double>(result->events) / seconds : 0.0);
    return ok(text);
  }
  auto strings = [&](const char* name, std::vector<std::string>* out) {
    auto list = doc.FindMember(name);
    if (list == doc.MemberEnd()) return true;
    if (!list->value.IsArray()) return false;
    for (const auto& v : list->value.GetArray()) {
      if (!v.IsString()) return false;
      out->emplace_back(v.GetString(), v.GetStringLength());
    }
    return true;
  };
  if (path == "/_fake/channels" && method == "POST") {
    std::vector<std::string> subscribers;
    if (!strings("subscribers", &subscribers)) return error(400, "subscribers: a list of emails");
    StatusOr<int64_t> id =
        core->AddChannel(str("name"), boolean("invite_only", false), subscribers);
    if (!id.ok()) return from_status(id.status());
    return ok(R"("stream_id":)" + std::to_string(*id));
  }
  if (path == "/_fake/channels" && method == "GET") {
    const Organisation& org = core->organisation();
    std::string list = R"("channels":[)";
    bool first = true;
    for (const auto& [id, channel] : org.channels()) {
      list += std::string(first ? "" : ",") + R"({"stream_id":)" + std::to_string(id) +
              R"(,"name":)" + Quote(channel.name) + R"(,"invite_only":)" +
              (channel.invite_only ? "true" : "false") + R"(,"subscribers":[)";
      bool first_member = true;
      for (int64_t user_id : channel.subscribers) {
        const Member* member = org.FindMember(user_id);
        list += (first_member ? "" : ",") + Quote(member ? member->email : "");
        first_member = false;
      }
      list += "]}";
      first = false;
    }
    return ok(list + "]");
  }
  if (path == "/_fake/subscriptions" && method == "POST") {
    return from_status(
        core->SetSubscribed(str("email"), str("channel"), boolean("subscribe", true)));
  }
  if (path == "/_fake/messages" && method == "POST") {
    SendMessageRequest send;
    send.sender_email = str("sender_email");
    send.channel = str("channel");
    send.topic = str("topic");
    if (!strings("to", &send.to)) return error(400, "to: a list of emails");
    send.content = str("content");
    send.content_bytes = static_cast<size_t>(number("content_bytes").value_or(0));
    send.unicode = boolean("unicode", false);
    send.count = static_cast<int64_t>(number("count").value_or(1));
    StatusOr<SendMessageResult> sent = core->SendMessages(send);
    if (!sent.ok()) return from_status(sent.status());
    return ok(R"("first_id":)" + std::to_string(sent->first_id) + R"(,"last_id":)" +
              std::to_string(sent->last_id) + R"(,"deliveries":)" +
              std::to_string(sent->deliveries));
  }
  if (path == "/_fake/messages/ground_truth" && method == "GET") {
    response->body = core->MessageGroundTruth();
    response->status = 200;
    *content_type = "application/x-ndjson";
    return;
  }
  if (path == "/_fake/queues/drop_older" && method == "POST") {
    return ok(R"("dropped":)" +
              std::to_string(core->DropQueuesOlderThan(number("seconds").value_or(0))));
  }
  if (path == "/_fake/emit/stop" && method == "POST") {
    size_t stopped = emissions.size();
    StopEmissions();
    return ok(R"("stopped":)" + std::to_string(stopped));
  }
  if ((path == "/_fake/restart" || path == "/_fake/crash") && method == "POST") {
    size_t broken = Restart(path == "/_fake/restart");
    return ok(R"("broken_polls":)" + std::to_string(broken) + R"(,"server_generation":)" +
              std::to_string(core->server_generation()));
  }
  if (path == "/_fake/faults" && method == "POST") {
    FaultRule rule;
    StatusOr<FaultRule::Kind> kind = ParseFaultKind(str("kind"));
    if (!kind.ok()) return from_status(kind.status());
    rule.kind = *kind;
    rule.probability = number("probability").value_or(1.0);
    rule.count = static_cast<int64_t>(number("count").value_or(-1));
    if (!str("path").empty()) rule.path_prefix = str("path");
    rule.delay_secs = number("delay_secs").value_or(0);
    if (rule.probability < 0 || rule.probability > 1 || rule.count == 0) {
      return error(400, "probability must be 0 to 1 and count positive (or -1)");
    }
    faults.push_back(std::move(rule));
    return ok();
  }
  if (path == "/_fake/faults/clear" && method == "POST") {
    faults.clear();
    return ok();
  }
  if (path == "/_fake/faults" && method == "GET") {
    std::string list = R"("faults":[)";
    for (size_t i = 0; i < faults.size(); ++i) {
      char numbers[160];
      std::snprintf(
          numbers, sizeof numbers, R"(,"probability":%.17g,"count":%lld,"delay_secs":%.17g)",
          faults[i].probability, static_cast<long long>(faults[i].count), faults[i].delay_secs);
      list += std::string(i ? "," : "") + R"({"kind":)" + Quote(FaultKindName(faults[i].kind)) +
              R"(,"path":)" + Quote(faults[i].path_prefix) + numbers + "}";
    }
    return ok(list + "]");
  }
  if (path == "/_fake/register_window" && method == "POST") {
    std::vector<std::string> events;
    auto list = doc.FindMember("events");
    if (list != doc.MemberEnd() && list->value.IsArray()) {
      for (const auto& e : list->value.GetArray()) events.push_back(Serialize(e));
    }
    return from_status(core->SetRegisterWindowEvents(str("email"), std::move(events)));
  }
  if (path == "/_fake/unsupported_register_params" && method == "POST") {
    std::set<std::string> names;
    auto list = doc.FindMember("names");
    if (list != doc.MemberEnd() && list->value.IsArray()) {
      for (const auto& n : list->value.GetArray()) {
        if (n.IsString()) names.insert(n.GetString());
      }
    }
    core->SetUnsupportedRegisterParameters(std::move(names));
    return ok();
  }
  if (path == "/_fake/queues" && method == "GET") {
    std::string list = R"("queues":[)";
    bool first = true;
    for (const auto& q : core->Queues()) {
      list += (first ? "" : ",") + QueueInfoJson(q);
      first = false;
    }
    return ok(list + "]");
  }
  if (path == "/_fake/queues/drop" && method == "POST") {
    return from_status(core->DropQueue(str("queue_id")));
  }
  if (path == "/_fake/queues/drop_all" && method == "POST") {
    return ok(R"("dropped":)" + std::to_string(core->DropAllQueues()));
  }
  if (path == "/_fake/queues/drop_idle" && method == "POST") {
    return ok(R"("dropped":)" +
              std::to_string(core->DropQueuesIdleFor(number("seconds").value_or(0))));
  }
  if (path == "/_fake/time/advance" && method == "POST") {
    AdvanceTime(number("seconds").value_or(0));
    return ok();
  }
  if (path == "/_fake/time/scale" && method == "POST") {
    owner->clock_.SetScale(number("scale").value_or(1));
    return ok();
  }
  if (path == "/_fake/time" && method == "GET") {
    char text[128];
    std::snprintf(text, sizeof text, R"("now":%.17g,"scale":%.17g)", owner->clock_.Now(),
                  owner->clock_.scale());
    return ok(text);
  }
  if (path == "/_fake/ground_truth" && method == "GET") {
    std::string queue_id = str("queue_id");
    if (queue_id.empty() && !str("email").empty()) {
      response->body = core->GroundTruthForUser(str("email"));
    } else if (queue_id.empty()) {
      response->body = core->GroundTruthAll();
    } else {
      StatusOr<std::string> lines = core->GroundTruth(queue_id);
      if (!lines.ok()) return from_status(lines.status());
      response->body = std::move(*lines);
    }
    response->status = 200;
    *content_type = "application/x-ndjson";
    return;
  }
  if (path == "/_fake/stats" && method == "GET") {
    std::string counts = R"("register_count":{)";
    bool first = true;
    std::set<std::string> emails;
    for (const auto& q : core->Queues()) emails.insert(q.email);
    std::string email = str("email");
    if (!email.empty()) emails.insert(email);
    for (const auto& e : emails) {
      counts += (first ? "" : ",") + Quote(e) + ":" + std::to_string(core->RegisterCount(e));
      first = false;
    }
    return ok(counts + R"(},"parked_polls":)" + std::to_string(core->parked_polls()) +
              R"(,"queues":)" + std::to_string(core->Queues().size()));
  }
  error(404, "no control endpoint " + method + " " + path);
}

FakeZulipServer::FakeZulipServer(FakeZulipOptions options)
    : options_(std::move(options)),
      clock_(options_.start_time > 0 ? options_.start_time
                                     : std::chrono::duration<double>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count(),
             options_.time_scale) {}

StatusOr<std::unique_ptr<FakeZulipServer>> FakeZulipServer::Start(FakeZulipOptions options) {
  static std::once_flag threads_once;
  std::call_once(threads_once, [] { evthread_use_pthreads(); });

  std::unique_ptr<FakeZulipServer> server(new FakeZulipServer(std::move(options)));
  auto impl = std::make_unique<Impl>();
  Impl* raw = impl.get();
  raw->owner = server.get();
  raw->base = event_base_new();
  if (!raw->base) return Status::IOError("event_base_new failed");
  raw->http = evhttp_new(raw->base);
  evhttp_set_allowed_methods(raw->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD);
  // Parked long-polls last up to 55 fake seconds, much longer when time runs slow; libevent's
  // default 50 s timeout would cut them.
  evhttp_set_timeout(raw->http, 24 * 3600);
  evhttp_set_gencb(raw->http, &Impl::OnRequest, raw);
  evhttp_bound_socket* bound = evhttp_bind_socket_with_handle(
      raw->http, server->options_.host.c_str(), static_cast<uint16_t>(server->options_.port));
  if (!bound) {
    return Status::IOError("cannot listen on " + server->options_.host + ":" +
                           std::to_string(server->options_.port));
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  getsockname(evhttp_bound_socket_get_fd(bound), reinterpret_cast<sockaddr*>(&addr), &len);
  server->port_ = addr.ss_family == AF_INET6
                      ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                      : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  raw->task_event = event_new(raw->base, -1, EV_PERSIST, &Impl::OnTasks, raw);
  event_add(raw->task_event, nullptr);
  raw->timer_event = evtimer_new(raw->base, &Impl::OnTimer, raw);
  raw->break_event = event_new(raw->base, -1, EV_PERSIST, &Impl::OnBreaks, raw);
  event_add(raw->break_event, nullptr);
  raw->fault_rng.seed(server->options_.seed);
  raw->core = std::make_unique<ZulipCore>(server->clock_, server->options_.seed,
                                          [raw](uint64_t handler, HttpResponse response) {
                                            raw->Finish(handler, std::move(response));
                                          });
  raw->core->identity().realm_url = server->url();
  raw->Reschedule();
  server->impl_ = std::move(impl);
  raw->thread = std::thread([raw] { event_base_loop(raw->base, EVLOOP_NO_EXIT_ON_EMPTY); });
  // Read only by RunOnLoop, which the loop thread itself never calls before this is set.
  raw->loop_thread = raw->thread.get_id();
  return server;
}

FakeZulipServer::~FakeZulipServer() {
  if (!impl_) return;
  Impl* raw = impl_.get();
  RunOnLoop([raw](ZulipCore&) {
    raw->stopping = true;
    event_base_loopbreak(raw->base);
  });
  raw->thread.join();
  raw->parked.clear();
  impl_.reset();  // evhttp_free closes every connection and frees parked requests
}

std::string FakeZulipServer::url() const {
  return "http://" + options_.host + ":" + std::to_string(port_);
}

void FakeZulipServer::RunOnLoop(const std::function<void(ZulipCore&)>& fn) {
  Impl* raw = impl_.get();
  if (std::this_thread::get_id() == raw->loop_thread) {
    fn(*raw->core);
    raw->Reschedule();
    return;
  }
  std::promise<void> done;
  {
    std::lock_guard lock(raw->tasks_mu);
    raw->tasks.push_back([&] {
      fn(*raw->core);
      if (!raw->stopping) raw->Reschedule();
      done.set_value();
    });
  }
  event_active(raw->task_event, EV_READ, 0);
  done.get_future().wait();
}

StatusOr<int64_t> FakeZulipServer::AddUser(FakeUser user) {
  return WithCore([&](ZulipCore& core) { return core.AddUser(std::move(user)); });
}

StatusOr<std::vector<std::pair<std::string, int64_t>>> FakeZulipServer::PushEvent(
    std::string_view email, std::string_view json) {
  return WithCore([&](ZulipCore& core) { return core.PushEvent(email, json); });
}

StatusOr<int64_t> FakeZulipServer::PushEventToQueue(std::string_view queue_id,
                                                    std::string_view json) {
  return WithCore([&](ZulipCore& core) { return core.PushEventToQueue(queue_id, json); });
}

Status FakeZulipServer::DropQueue(std::string_view queue_id) {
  return WithCore([&](ZulipCore& core) { return core.DropQueue(queue_id); });
}

size_t FakeZulipServer::DropAllQueues() {
  return WithCore([](ZulipCore& core) { return core.DropAllQueues(); });
}

Status FakeZulipServer::SetUserActive(std::string_view email, bool active) {
  return WithCore([&](ZulipCore& core) { return core.SetUserActive(email, active); });
}

void FakeZulipServer::SetRealmActive(bool active) {
  WithCore([&](ZulipCore& core) { core.SetRealmActive(active); });
}

Status FakeZulipServer::SetRateLimit(std::string_view email, std::string_view rules) {
  std::vector<RateRule> parsed;
  if (!rules.empty()) {
    StatusOr<std::vector<RateRule>> r = ParseRateRules(rules);
    if (!r.ok()) return r.status();
    parsed = std::move(*r);
  }
  return WithCore([&](ZulipCore& core) { return core.SetRateLimit(email, std::move(parsed)); });
}

Status FakeZulipServer::SetRegisterWindowEvents(std::string_view email,
                                                std::vector<std::string> events) {
  return WithCore(
      [&](ZulipCore& core) { return core.SetRegisterWindowEvents(email, std::move(events)); });
}

StatusOr<EmitResult> FakeZulipServer::Emit(EmitRequest request) {
  return WithCore([&](ZulipCore& core) { return core.Emit(request); });
}

StatusOr<int64_t> FakeZulipServer::AddChannel(std::string_view name, bool invite_only,
                                              const std::vector<std::string>& subscriber_emails) {
  return WithCore(
      [&](ZulipCore& core) { return core.AddChannel(name, invite_only, subscriber_emails); });
}

Status FakeZulipServer::SetSubscribed(std::string_view email, std::string_view channel,
                                      bool subscribed) {
  return WithCore([&](ZulipCore& core) { return core.SetSubscribed(email, channel, subscribed); });
}

StatusOr<SendMessageResult> FakeZulipServer::SendMessages(SendMessageRequest request) {
  return WithCore([&](ZulipCore& core) { return core.SendMessages(request); });
}

std::string FakeZulipServer::MessageGroundTruth() {
  return WithCore([](ZulipCore& core) { return core.MessageGroundTruth(); });
}

size_t FakeZulipServer::DropQueuesOlderThan(double secs) {
  return WithCore([&](ZulipCore& core) { return core.DropQueuesOlderThan(secs); });
}

size_t FakeZulipServer::Restart(bool keep_queues) {
  Impl* raw = impl_.get();
  return WithCore([&](ZulipCore&) { return raw->Restart(keep_queues); });
}

void FakeZulipServer::AddFault(FaultRule rule) {
  Impl* raw = impl_.get();
  WithCore([&](ZulipCore&) { raw->faults.push_back(std::move(rule)); });
}

void FakeZulipServer::ClearFaults() {
  Impl* raw = impl_.get();
  WithCore([&](ZulipCore&) { raw->faults.clear(); });
}

std::vector<QueueInfo> FakeZulipServer::Queues() {
  return WithCore([](ZulipCore& core) { return core.Queues(); });
}

std::optional<QueueInfo> FakeZulipServer::Queue(std::string_view queue_id) {
  return WithCore([&](ZulipCore& core) { return core.Queue(queue_id); });
}

StatusOr<std::string> FakeZulipServer::GroundTruth(std::string_view queue_id) {
  return WithCore([&](ZulipCore& core) { return core.GroundTruth(queue_id); });
}

int FakeZulipServer::RegisterCount(std::string_view email) {
  return WithCore([&](ZulipCore& core) { return core.RegisterCount(email); });
}

size_t FakeZulipServer::parked_polls() {
  return WithCore([](ZulipCore& core) { return core.parked_polls(); });
}

void FakeZulipServer::AdvanceTime(double seconds) {
  Impl* raw = impl_.get();
  WithCore([&](ZulipCore&) { raw->AdvanceTime(seconds); });
}

void FakeZulipServer::SetTimeScale(double scale) {
  clock_.SetScale(scale);
  WithCore([](ZulipCore&) {});  // reschedules the timer at the new rate
}

}  // namespace zb::fake_zulip
