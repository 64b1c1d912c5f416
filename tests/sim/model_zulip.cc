#include "tests/sim/model_zulip.h"

#include <rapidjson/document.h>

#include <algorithm>
#include <chrono>

namespace zb::sim {
namespace {

using namespace std::chrono_literals;

// The organisation: channel id -> (public, the bot subscribed).
struct Channel {
  const char* name;
  bool is_public;
  bool subscribed;
};
constexpr Channel kChannels[] = {
    {"", false, true},  // 0: a direct message to the bot
    {"general", true, true}, {"lonely", true, false},
    {"secret", false, true}, {"hidden", false, false},
};
constexpr const char* kSenders[] = {"iago@zulip.sim", "hamlet@zulip.sim"};

std::string ErrorBody(const std::string& code, const std::string& msg) {
  return R"({"result":"error","msg":")" + msg + R"(","code":")" + code + "\"}";
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

ModelZulip::ModelZulip(SimRuntime& runtime, std::mt19937_64& rng, Registration registration)
    : runtime_(runtime), rng_(rng), registration_(std::move(registration)) {}

bool ModelZulip::QueueSees(const Message& m) const {
  const Channel& channel = kChannels[m.channel];
  const bool narrowed = !registration_.narrow_sender.empty();
  bool sees =
      channel.subscribed || (channel.is_public && (registration_.all_public_streams || narrowed));
  if (narrowed && m.sender != registration_.narrow_sender) sees = false;
  return sees;
}

ModelZulip::Search ModelZulip::ParseSearch(const std::string& narrow_json) {
  Search search;
  rapidjson::Document doc;
  doc.Parse(narrow_json.c_str());
  if (!doc.IsArray()) return search;
  for (const auto& term : doc.GetArray()) {
    std::string op, operand;
    if (term.IsObject() && term.HasMember("operator") && term.HasMember("operand") &&
        term["operator"].IsString() && term["operand"].IsString()) {
      op = term["operator"].GetString();
      operand = term["operand"].GetString();
    } else if (term.IsArray() && term.Size() == 2 && term[0].IsString() && term[1].IsString()) {
      op = term[0].GetString();
      operand = term[1].GetString();
    }
    if ((op == "channels" || op == "streams") && operand == "public") search.public_channels = true;
    if (op == "sender") search.sender = operand;
  }
  return search;
}

bool ModelZulip::SearchMatches(const Message& m, const Search& search) const {
  const Channel& channel = kChannels[m.channel];
  // channels:public searches the public channels; otherwise the bot's own history.
  bool in = search.public_channels ? (m.channel != 0 && channel.is_public) : channel.subscribed;
  if (!search.sender.empty() && m.sender != search.sender) in = false;
  return in;
}

std::string ModelZulip::Param(const HttpRequest& request, const std::string& name) {
  for (const auto& [k, v] : request.query) {
    if (k == name) return v;
  }
  for (const auto& [k, v] : request.form) {
    if (k == name) return v;
  }
  return "";
}

std::string ModelZulip::MessageJson(const Message& m) const {
  std::string where =
      m.channel == 0
          ? R"("type":"private","display_recipient":[{"id":1,"email":"bot@zulip.sim"},)"
            R"({"id":2,"email":")" +
                m.sender + R"("}])"
          : R"("type":"stream","stream_id":)" + std::to_string(m.channel) +
                R"(,"display_recipient":")" + kChannels[m.channel].name + R"(","subject":"t")";
  return R"({"id":)" + std::to_string(m.id) + R"(,"timestamp":)" + std::to_string(m.timestamp) +
         "," + where + R"(,"sender_email":")" + m.sender + R"(","content":"message )" +
         std::to_string(m.id) + (m.big ? std::string(5000, '.') : std::string()) + "\"";
}

void ModelZulip::SendMessage(bool big) {
  Message m{next_message_id_++,
            std::chrono::duration_cast<std::chrono::seconds>(runtime_.WallNow().time_since_epoch())
                .count(),
            false, big};
  m.sent_at = runtime_.Now();
  m.channel = static_cast<int>(rng_() % 5);
  m.sender = kSenders[rng_() % 2];
  messages_.emplace(m.id, m);
  ++uncommitted_;
  // The sending transaction commits a little later; its event goes out on commit.
  std::uniform_int_distribution<int> delay_ms(0, 2000);
  int64_t id = m.id;
  runtime_.AddTimer(std::chrono::milliseconds(delay_ms(rng_)), [this, id] { Commit(id); });
}

void ModelZulip::Commit(int64_t message_id) {
  Message& m = messages_.at(message_id);
  m.committed = true;
  m.committed_at = runtime_.Now();
  --uncommitted_;
  if (!QueueSees(m)) return;
  for (auto& [queue_id, queue] : queues_) {
    QueueEvent event;
    event.json = R"({"type":"message","message":)" + MessageJson(m) + R"(},"flags":[])";
    event.message_id = m.id;
    Push(queue_id, std::move(event));
  }
}

void ModelZulip::SendTyping() {
  for (auto& [queue_id, queue] : queues_) {
    QueueEvent event;
    event.json = R"({"type":"typing","op":"start","sender":{"user_id":9,"email":"iago@zulip.sim"})";
    Push(queue_id, std::move(event));
  }
}

void ModelZulip::Push(const std::string& queue_id, QueueEvent event) {
  Queue& q = queues_.at(queue_id);
  // Merged flag events take the newest id: the queue's ids skip.
  if (std::bernoulli_distribution(0.1)(rng_)) ++q.next_event_id;
  event.id = q.next_event_id++;
  event.json += R"(,"id":)" + std::to_string(event.id) + "}";
  q.ids.insert(event.id);
  q.events.push_back(std::move(event));
  if (q.parked != 0) {
    Handle parked = q.parked;
    q.parked = 0;
    runtime_.CancelTimer(q.heartbeat_timer);
    q.heartbeat_timer = 0;
    Transfer& t = transfers_.at(parked);
    t.queue_id.clear();
    ServeEvents(parked, t);
  }
}

void ModelZulip::LoseQueue(const std::string& queue_id) {
  auto it = queues_.find(queue_id);
  if (it == queues_.end()) return;
  runtime_.CancelTimer(it->second.heartbeat_timer);
  Handle parked = it->second.parked;
  queues_.erase(it);
  if (parked != 0) {
    // The connection of a parked GET breaks with the queue.
    Transfer& t = transfers_.at(parked);
    t.queue_id.clear();
    t.error = TransportError::kReset;
    Finish(parked);
  }
}

void ModelZulip::LoseAllQueues() {
  std::vector<std::string> ids;
  for (const auto& [id, q] : queues_) ids.push_back(id);
  for (const std::string& id : ids) LoseQueue(id);
}

void ModelZulip::DropConnections() {
  for (auto& [handle, t] : transfers_) {
    runtime_.CancelTimer(t.timer);
    if (!t.queue_id.empty()) {
      auto q = queues_.find(t.queue_id);
      if (q != queues_.end() && q->second.parked == handle) {
        q->second.parked = 0;
        runtime_.CancelTimer(q->second.heartbeat_timer);
        q->second.heartbeat_timer = 0;
      }
    }
  }
  transfers_.clear();
}

bool ModelZulip::CommittedAtFirstRegistration(int64_t id) const {
  auto it = messages_.find(id);
  return first_max_message_id_ && it != messages_.end() && it->second.committed &&
         it->second.committed_at <= first_registered_at_;
}

bool ModelZulip::HistorySentLongBefore(int64_t id, Clock::Duration margin) const {
  auto it = messages_.find(id);
  return CommittedAtFirstRegistration(id) && it->second.sent_at + margin < first_registered_at_;
}

std::vector<int64_t> ModelZulip::CommittedMessageIds(bool visible_only) const {
  std::vector<int64_t> ids;
  for (const auto& [id, m] : messages_) {
    if (m.committed && (!visible_only || QueueSees(m))) ids.push_back(id);
  }
  return ids;
}

HttpTransport::Handle ModelZulip::Start(HttpRequest request, HttpCallbacks callbacks) {
  ++requests_;
  if (!bridge_running_) {
    violations_.push_back("a request while the bridge is stopped: " + request.url);
  }
  Handle handle = next_handle_++;
  Transfer& t = transfers_[handle];
  t.request = std::move(request);
  t.callbacks = std::move(callbacks);
  std::uniform_int_distribution<int> latency_ms(1, 50);
  t.timer = runtime_.AddTimer(std::chrono::milliseconds(latency_ms(rng_)),
                              [this, handle] { Serve(handle); });
  return handle;
}

void ModelZulip::Serve(Handle handle) {
  Transfer& t = transfers_.at(handle);
  t.timer = 0;
  if (fault_rate_ > 0 && std::bernoulli_distribution(fault_rate_)(rng_)) {
    switch (rng_() % 5) {
      case 0:
        Answer(handle, 502, "<html><body>502 Bad Gateway</body></html>");
        return;
      case 1:
        t.retry_after = "1.5";
        Answer(
            handle, 429,
            R"({"result":"error","msg":"API usage exceeded rate limit","code":"RATE_LIMIT_HIT","retry-after":1.5})");
        return;
      case 2:
        t.error = TransportError::kReset;
        Finish(handle);
        return;
      case 3:
        if (rng_() % 16 == 0) {
          // Deep enough to overflow the stack of a recursive parser (finding #10).
          Answer(handle, 200, std::string(200000, '['));
          return;
        }
        [[fallthrough]];
      default:
        t.cut_at = 1;  // a cut somewhere in the body, placed in Answer()
        break;
    }
  }
  const std::string& url = t.request.url;
  if (EndsWith(url, "/register") && t.request.method == HttpMethod::kPost) {
    std::string id = "q" + std::to_string(next_queue_++);
    newest_queue_ = id;
    std::vector<int64_t> committed = CommittedMessageIds();
    int64_t max_id = committed.empty() ? -1 : committed.back();
    queues_[id].registered_max_message_id = max_id;
    queues_[id].registered_at = runtime_.Now();
    registrations_[id] = {max_id, runtime_.Now()};
    std::string body = R"({"result":"success","msg":"","queue_id":")" + id +
                       R"(","last_event_id":-1,"zulip_version":"10.2","zulip_feature_level":)" +
                       std::to_string(kFeatureLevel) +
                       R"(,)"
                       R"("event_queue_longpoll_timeout_seconds":90)";
    if (max_id >= 0) body += R"(,"max_message_id":)" + std::to_string(max_id);
    Answer(handle, 200, body + "}");
  } else if (EndsWith(url, "/events") && t.request.method == HttpMethod::kGet) {
    ServeEvents(handle, t);
  } else if (EndsWith(url, "/events") && t.request.method == HttpMethod::kDelete) {
    std::string id = Param(t.request, "queue_id");
    if (queues_.count(id)) {
      LoseQueue(id);
      Answer(handle, 200, R"({"result":"success","msg":""})");
    } else {
      Answer(handle, 400, ErrorBody("BAD_EVENT_QUEUE_ID", "Bad event queue ID: " + id));
    }
  } else if (EndsWith(url, "/messages") && t.request.method == HttpMethod::kGet) {
    if (refuse_messages_) {
      Answer(handle, 400, ErrorBody("BAD_REQUEST", "Invalid channel name 'gone'"));
    } else {
      Answer(handle, 200, MessagesPage(t));
    }
  } else {
    Answer(handle, 404, ErrorBody("BAD_REQUEST", "Not found"));
  }
}

void ModelZulip::ServeEvents(Handle handle, Transfer& t) {
  const std::string queue_id = Param(t.request, "queue_id");
  auto it = queues_.find(queue_id);
  if (!first_max_message_id_) {
    // The first queue the bridge polls (it made it durable first), lost already or not.
    if (auto r = registrations_.find(queue_id); r != registrations_.end()) {
      first_max_message_id_ = r->second.first;
      first_registered_at_ = r->second.second;
    }
  }
  if (it == queues_.end()) {
    reported_lost_.insert(queue_id);
    Answer(handle, 400, ErrorBody("BAD_EVENT_QUEUE_ID", "Bad event queue ID: " + queue_id));
    return;
  }
  Queue& q = it->second;
  const int64_t last = std::stoll(Param(t.request, "last_event_id"));
  if (last < q.newest_pruned) {
    violations_.push_back("GET /events on " + queue_id + " with last_event_id " +
                          std::to_string(last) + " after " + std::to_string(q.newest_pruned) +
                          " was pruned (the disk was behind what Zulip was told)");
    Answer(handle, 400,
           ErrorBody("BAD_REQUEST",
                     "An event newer than " + std::to_string(last) + " has already been pruned!"));
    return;
  }
  if (last >= 0 && !q.ids.count(last)) {
    violations_.push_back("GET /events on " + queue_id + " with last_event_id " +
                          std::to_string(last) + ", an id the queue never had");
  }
  std::vector<QueueEvent> pruned;
  while (!q.events.empty() && q.events.front().id <= last) {
    pruned.push_back(std::move(q.events.front()));
    q.events.pop_front();
  }
  if (!pruned.empty() && prune_check_) {
    std::string wrong = prune_check_(queue_id, last, pruned);
    if (!wrong.empty()) violations_.push_back(wrong);
  }
  q.newest_pruned = std::max(q.newest_pruned, last);
  if (q.events.empty()) {
    // A blocking GET: parked until an event comes, or a heartbeat after 45-55 s.
    q.parked = handle;
    t.queue_id = queue_id;
    std::uniform_int_distribution<int> secs(45, 55);
    q.heartbeat_timer = runtime_.AddTimer(std::chrono::seconds(secs(rng_)), [this, queue_id] {
      Queue& queue = queues_.at(queue_id);
      queue.heartbeat_timer = 0;
      QueueEvent heartbeat;
      heartbeat.json = R"({"type":"heartbeat")";
      heartbeat.heartbeat = true;
      Push(queue_id, std::move(heartbeat));
    });
    return;
  }
  std::string body = R"({"result":"success","msg":"","events":[)";
  for (size_t i = 0; i < q.events.size(); ++i) {
    if (i > 0) body += ',';
    body += q.events[i].json;
  }
  Answer(handle, 200, body + R"(],"queue_id":")" + queue_id + "\"}");
}

std::string ModelZulip::MessagesPage(const Transfer& t) const {
  const Search search = ParseSearch(Param(t.request, "narrow"));
  auto matches = [&](const Message& m) { return m.committed && SearchMatches(m, search); };
  const std::string anchor_text = Param(t.request, "anchor");
  const int64_t anchor = anchor_text == "oldest"   ? 0
                         : anchor_text == "newest" ? INT64_MAX
                                                   : std::stoll(anchor_text);
  const bool include = Param(t.request, "include_anchor") != "false";
  const int before = std::stoi(Param(t.request, "num_before"));
  const int after = std::stoi(Param(t.request, "num_after"));
  // Walk out from the anchor both ways, over the matching committed messages only.
  const auto at = messages_.lower_bound(anchor);
  std::deque<const Message*> out;
  auto back = at;
  int taken_before = 0;
  while (taken_before < before && back != messages_.begin()) {
    --back;
    if (!matches(back->second)) continue;
    out.push_front(&back->second);
    ++taken_before;
  }
  bool found_oldest = true;  // no matching message before the first one taken
  for (auto it = back; it != messages_.begin();) {
    --it;
    if (matches(it->second)) {
      found_oldest = false;
      break;
    }
  }
  auto forward = at;
  bool found_anchor = false;
  if (forward != messages_.end() && forward->first == anchor && matches(forward->second)) {
    found_anchor = true;
    if (include) out.push_back(&forward->second);
    ++forward;
  }
  int taken_after = 0;
  for (; forward != messages_.end() && taken_after < after; ++forward) {
    if (!matches(forward->second)) continue;
    out.push_back(&forward->second);
    ++taken_after;
  }
  bool found_newest = true;
  for (auto it = forward; it != messages_.end(); ++it) {
    if (matches(it->second)) {
      found_newest = false;
      break;
    }
  }
  std::string body = R"({"result":"success","msg":"","messages":[)";
  for (size_t k = 0; k < out.size(); ++k) {
    if (k > 0) body += ',';
    body += MessageJson(*out[k]) + R"(,"flags":["read"]})";
  }
  auto b = [](bool v) { return v ? "true" : "false"; };
  return body + R"(],"found_anchor":)" + b(found_anchor) + R"(,"found_oldest":)" + b(found_oldest) +
         R"(,"found_newest":)" + b(found_newest) + R"(,"history_limited":false})";
}

void ModelZulip::Answer(Handle handle, int status, std::string body) {
  Transfer& t = transfers_.at(handle);
  t.status = status;
  t.body = std::move(body);
  if (t.cut_at != SIZE_MAX) {
    t.cut_at = t.body.size() <= 1 ? 0 : rng_() % t.body.size();
  }
  std::uniform_int_distribution<int> latency_ms(1, 30);
  t.timer = runtime_.AddTimer(std::chrono::milliseconds(latency_ms(rng_)),
                              [this, handle] { Deliver(handle); });
}

void ModelZulip::Deliver(Handle handle) {
  auto it = transfers_.find(handle);
  if (it == transfers_.end()) return;
  Transfer& t = it->second;
  t.timer = 0;
  if (!t.head_sent) {
    t.head_sent = true;
    if (t.callbacks.on_head) {
      HttpResponseHead head;
      head.status = t.status;
      head.retry_after = t.retry_after;
      head.content_type = t.status == 502 ? "text/html" : "application/json";
      t.callbacks.on_head(head);
      if (!transfers_.count(handle)) return;  // cancelled from the callback
    }
  }
  const size_t end = std::min(t.body.size(), t.cut_at);
  if (t.callbacks.on_body_chunk && t.sent < end) {
    // One chunk a step, of a random size: events are split anywhere.
    size_t n = 1 + rng_() % std::max<size_t>(1, std::min<size_t>(end - t.sent, 700));
    n = std::min(n, end - t.sent);
    std::string chunk = t.body.substr(t.sent, n);
    bool taken = t.callbacks.on_body_chunk(chunk);
    auto again = transfers_.find(handle);
    if (again == transfers_.end()) return;  // cancelled from the callback
    if (!taken) {
      again->second.paused = true;  // offered again after Resume()
      return;
    }
    again->second.sent += n;
    again->second.timer =
        runtime_.AddTimer(Clock::Duration::zero(), [this, handle] { Deliver(handle); });
    return;
  }
  if (t.cut_at != SIZE_MAX) t.error = TransportError::kTruncated;
  Finish(handle);
}

void ModelZulip::Finish(Handle handle) {
  auto it = transfers_.find(handle);
  if (it == transfers_.end()) return;
  Transfer t = std::move(it->second);
  transfers_.erase(it);
  runtime_.CancelTimer(t.timer);
  HttpResult result;
  result.error = t.error;
  if (t.error != TransportError::kNone) result.error_text = "simulated transfer failure";
  result.head.status = t.error == TransportError::kReset ? 0 : t.status;
  result.head.retry_after = t.retry_after;
  result.head.content_type = "application/json";
  if (!t.callbacks.on_body_chunk) {
    result.body = t.body.substr(0, std::min(t.body.size(), t.cut_at));
  }
  t.callbacks.on_done(std::move(result));
}

void ModelZulip::Pause(Handle handle) {
  auto it = transfers_.find(handle);
  if (it != transfers_.end()) it->second.paused = true;
}

void ModelZulip::Resume(Handle handle) {
  auto it = transfers_.find(handle);
  if (it == transfers_.end() || !it->second.paused) return;
  it->second.paused = false;
  if (it->second.timer == 0) {
    it->second.timer =
        runtime_.AddTimer(Clock::Duration::zero(), [this, handle] { Deliver(handle); });
  }
}

void ModelZulip::Cancel(Handle handle) {
  auto it = transfers_.find(handle);
  if (it == transfers_.end()) return;
  runtime_.CancelTimer(it->second.timer);
  if (!it->second.queue_id.empty()) {
    auto q = queues_.find(it->second.queue_id);
    if (q != queues_.end() && q->second.parked == handle) {
      q->second.parked = 0;
      runtime_.CancelTimer(q->second.heartbeat_timer);
      q->second.heartbeat_timer = 0;
    }
  }
  transfers_.erase(it);
}

}  // namespace zb::sim
