// FakeHttpTransport: an HttpTransport that answers with what the test scripted, for the tests
// of the Zulip client, the accounts and the supervisor. No sockets, no threads.
//
// Every Start() is recorded as a Call. A test answers a call with Reply() (or queues answers
// with Script() for the next calls), then Pump() delivers: head, body chunks (honouring
// pause and resume exactly as the real transport does: a refused chunk is offered again), and
// on_done. Nothing is delivered from inside Start/Pause/Resume/Cancel, as the interface
// promises; deliveries happen only inside Pump(), on the test's thread.
#ifndef ZB_TESTS_FAKES_FAKE_HTTP_TRANSPORT_H_
#define ZB_TESTS_FAKES_FAKE_HTTP_TRANSPORT_H_

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "daemon/zulip/http_transport.h"

namespace zb::testing {

// A scripted answer.
struct FakeResponse {
  int status = 200;
  HttpResponseHead head;                         // status is taken from `status`
  std::vector<std::string> chunks;               // the body, in the chunks it is delivered in
  TransportError error = TransportError::kNone;  // set to fail the call after the chunks
  std::string error_text;

  static FakeResponse Json(int status, std::string body) {
    FakeResponse r;
    r.status = status;
    r.chunks.push_back(std::move(body));
    r.head.content_type = "application/json";
    return r;
  }
  static FakeResponse Failure(TransportError error, std::string text = "scripted failure") {
    FakeResponse r;
    r.status = 0;
    r.error = error;
    r.error_text = std::move(text);
    return r;
  }
};

class FakeHttpTransport final : public HttpTransport {
 public:
  struct Call {
    Handle handle = 0;
    HttpRequest request;
    HttpCallbacks callbacks;
    std::optional<FakeResponse> response;
    size_t next_chunk = 0;
    bool head_sent = false;
    bool paused = false;
    bool cancelled = false;
    bool done = false;
    std::string buffered_body;

    // The value of a query or form field, or nullopt.
    std::optional<std::string> Param(const std::string& name) const {
      for (const auto& [k, v] : request.query) {
        if (k == name) return v;
      }
      for (const auto& [k, v] : request.form) {
        if (k == name) return v;
      }
      return std::nullopt;
    }
  };

  Handle Start(HttpRequest request, HttpCallbacks callbacks) override {
    Call& call = calls_[next_handle_];
    call.handle = next_handle_++;
    call.request = std::move(request);
    call.callbacks = std::move(callbacks);
    if (!scripted_.empty()) {
      call.response = std::move(scripted_.front());
      scripted_.pop_front();
    }
    order_.push_back(call.handle);
    return call.handle;
  }
  void Pause(Handle handle) override {
    if (Call* c = Find(handle)) c->paused = true;
  }
  void Resume(Handle handle) override {
    if (Call* c = Find(handle)) c->paused = false;
  }
  void Cancel(Handle handle) override {
    if (Call* c = Find(handle)) c->cancelled = true;
  }

  // Answers the next calls, in order, with these responses (delivered by Pump()).
  void Script(FakeResponse response) { scripted_.push_back(std::move(response)); }
  // Answers one call already made.
  void Reply(Handle handle, FakeResponse response) { Find(handle)->response = std::move(response); }

  // Delivers whatever can be delivered; returns how many callbacks ran.
  int Pump() {
    int ran = 0;
    for (bool progress = true; progress;) {
      progress = false;
      for (Handle h : std::vector<Handle>(order_)) {
        Call* c = Find(h);
        if (!c || c->done || c->cancelled || !c->response || c->paused) continue;
        FakeResponse& r = *c->response;
        if (!c->head_sent && r.status != 0) {
          c->head_sent = true;
          HttpResponseHead head = r.head;
          head.status = r.status;
          if (c->callbacks.on_head) c->callbacks.on_head(head);
          ++ran;
          progress = true;
          c = Find(h);
          if (c->cancelled) continue;
        }
        while (c->next_chunk < r.chunks.size() && !c->paused && !c->cancelled) {
          const std::string& chunk = r.chunks[c->next_chunk];
          if (c->callbacks.on_body_chunk) {
            ++ran;
            progress = true;
            if (!c->callbacks.on_body_chunk(chunk)) {
              c->paused = true;  // offered again after Resume()
              break;
            }
          } else {
            c->buffered_body += chunk;
          }
          ++c->next_chunk;
        }
        if (c->paused || c->cancelled || c->next_chunk < r.chunks.size()) continue;
        c->done = true;
        HttpResult result;
        result.error = r.error;
        result.error_text = r.error_text;
        result.head = r.head;
        result.head.status = r.status;
        result.body = std::move(c->buffered_body);
        if (c->callbacks.on_done) c->callbacks.on_done(std::move(result));
        ++ran;
        progress = true;
      }
    }
    return ran;
  }

  // Calls in the order they were started.
  std::vector<const Call*> calls() const {
    std::vector<const Call*> out;
    for (Handle h : order_) out.push_back(&calls_.at(h));
    return out;
  }
  Call& call(Handle handle) { return *Find(handle); }
  const Call& last() const { return calls_.at(order_.back()); }
  size_t size() const { return order_.size(); }
  // Calls started and neither finished nor cancelled.
  size_t pending() const {
    size_t n = 0;
    for (const auto& [h, c] : calls_) n += (!c.done && !c.cancelled);
    return n;
  }

 private:
  Call* Find(Handle handle) {
    auto it = calls_.find(handle);
    return it == calls_.end() ? nullptr : &it->second;
  }

  Handle next_handle_ = 1;
  std::map<Handle, Call> calls_;
  std::vector<Handle> order_;
  std::deque<FakeResponse> scripted_;
};

}  // namespace zb::testing

#endif  // ZB_TESTS_FAKES_FAKE_HTTP_TRANSPORT_H_
