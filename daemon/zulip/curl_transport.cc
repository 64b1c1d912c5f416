#include "daemon/zulip/curl_transport.h"

#include <curl/curl.h>
#include <sys/epoll.h>

#include <strings.h>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "daemon/base/version.h"

namespace zb {

namespace {

struct CurlEasyDeleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
struct CurlMultiDeleter {
  void operator()(CURLM* multi) const { curl_multi_cleanup(multi); }
};
struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;
using CurlMulti = std::unique_ptr<CURLM, CurlMultiDeleter>;
using CurlSlist = std::unique_ptr<curl_slist, CurlSlistDeleter>;

// A setopt that "can't fail" failed: the build links a libcurl without a feature we rely on.
// Say which option, and stop: there is nothing sensible to recover to.
template <typename T>
void SetOpt(CURL* easy, CURLoption option, T value, const char* name) {
  CURLcode rc = curl_easy_setopt(easy, option, value);
  if (rc != CURLE_OK) {
    std::fprintf(stderr, "curl_easy_setopt(%s): %s\n", name, curl_easy_strerror(rc));
    std::abort();
  }
}
#define ZB_SETOPT(easy, option, value) SetOpt(easy, option, value, #option)

TransportError ClassifyCurlError(CURLcode code) {
  switch (code) {
    case CURLE_OK:
      return TransportError::kNone;
    case CURLE_OPERATION_TIMEDOUT:
      return TransportError::kTimeout;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
      return TransportError::kConnect;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
      return TransportError::kTls;
    case CURLE_PARTIAL_FILE:
      return TransportError::kTruncated;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return TransportError::kReset;
    default:
      return TransportError::kOther;
  }
}

bool HeaderNameIs(std::string_view line, std::string_view name) {
  return line.size() > name.size() && line[name.size()] == ':' &&
         strncasecmp(line.data(), name.data(), name.size()) == 0;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

class CurlTransport::Impl {
 public:
  Impl(EventLoop& loop, CurlTransportOptions options, CurlMulti multi)
      : loop_(loop), options_(std::move(options)), multi_(std::move(multi)) {
    if (options_.user_agent.empty()) {
      options_.user_agent = std::string("zulip-bridge/") + kBridgeVersion;
    }
    curl_multi_setopt(multi_.get(), CURLMOPT_SOCKETFUNCTION, &Impl::SocketTrampoline);
    curl_multi_setopt(multi_.get(), CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_.get(), CURLMOPT_TIMERFUNCTION, &Impl::TimerTrampoline);
    curl_multi_setopt(multi_.get(), CURLMOPT_TIMERDATA, this);
    curl_multi_setopt(multi_.get(), CURLMOPT_PIPELINING, long{CURLPIPE_MULTIPLEX});
    curl_multi_setopt(multi_.get(), CURLMOPT_MAX_HOST_CONNECTIONS, options_.max_host_connections);
    if (options_.max_idle_connections > 0) {
      curl_multi_setopt(multi_.get(), CURLMOPT_MAXCONNECTS, options_.max_idle_connections);
    }
  }

  const EventLoop& loop() const { return loop_; }

  ~Impl() {
    // Abort everything without callbacks, then let curl close its connections while the
    // socket and timer callbacks still point at a live object.
    for (auto& [handle, transfer] : transfers_) {
      if (transfer->in_multi) curl_multi_remove_handle(multi_.get(), transfer->easy.get());
      if (transfer->idle_timer) loop_.CancelTimer(transfer->idle_timer);
    }
    transfers_.clear();
    multi_.reset();
    if (curl_timer_) loop_.CancelTimer(curl_timer_);
    if (deferred_timer_) loop_.CancelTimer(deferred_timer_);
    for (int fd : watched_fds_) loop_.UnwatchFd(fd);
  }

  Handle Start(const HttpRequest& request, HttpCallbacks callbacks);
  void Pause(Handle handle);
  void Resume(Handle handle);
  void Cancel(Handle handle);
  size_t ActiveTransfers() const { return transfers_.size(); }

 private:
  struct Transfer {
    Impl* owner = nullptr;
    Handle handle = 0;
    CurlEasy easy;
    CurlSlist headers;
    std::string url;
    std::string post_body;
    std::chrono::milliseconds idle_timeout{0};
    size_t max_buffered_body = 0;
    HttpCallbacks callbacks;
    HttpResult result;
    bool head_delivered = false;
    bool in_multi = false;
    bool pause_requested = false;  // Pause(): refuse the next chunk
    bool paused = false;           // curl holds a refused chunk until curl_easy_pause(CONT)
    bool cancelled = false;
    bool too_large = false;
    Clock::TimePoint last_activity;
    EventLoop::TimerId idle_timer = 0;
    char error_buffer[CURL_ERROR_SIZE] = {};
  };

  enum class Deferred { kAdd, kResume, kCancel };

  static int SocketTrampoline(CURL* easy, curl_socket_t fd, int what, void* userp, void*) {
    (void)easy;
    static_cast<Impl*>(userp)->OnCurlSocket(fd, what);
    return 0;
  }
  static int TimerTrampoline(CURLM*, long timeout_ms, void* userp) {
    static_cast<Impl*>(userp)->OnCurlTimerChange(timeout_ms);
    return 0;
  }
  static size_t WriteTrampoline(char* data, size_t size, size_t nmemb, void* userp) {
    return static_cast<Transfer*>(userp)->owner->OnWrite(*static_cast<Transfer*>(userp), data,
                                                         size * nmemb);
  }
  static size_t HeaderTrampoline(char* data, size_t size, size_t nmemb, void* userp) {
    return static_cast<Transfer*>(userp)->owner->OnHeader(*static_cast<Transfer*>(userp), data,
                                                          size * nmemb);
  }

  void OnCurlSocket(curl_socket_t fd, int what);
  void OnCurlTimerChange(long timeout_ms);
  size_t OnWrite(Transfer& t, char* data, size_t size);
  size_t OnHeader(Transfer& t, char* data, size_t size);
  void DeliverHead(Transfer& t);

  // Every entry into curl that may run our callbacks goes through these, so that Cancel()
  // knows whether it may remove a handle now or must wait until curl has returned.
  void SocketAction(curl_socket_t fd, int flags);
  void ProcessDone();
  void Finish(Handle handle, HttpResult result);
  void AddToMulti(Transfer& t);
  void ArmIdleTimer(Transfer& t);
  void OnIdleTimer(Handle handle);
  void Defer(Deferred what, Handle handle);
  void RunDeferred();
  Transfer* Find(Handle handle) {
    auto it = transfers_.find(handle);
    return it == transfers_.end() ? nullptr : it->second.get();
  }

  EventLoop& loop_;
  CurlTransportOptions options_;
  CurlMulti multi_;
  Handle next_handle_ = 1;
  std::unordered_map<Handle, std::unique_ptr<Transfer>> transfers_;
  std::unordered_set<int> watched_fds_;  // every socket curl asked us to watch
  EventLoop::TimerId curl_timer_ = 0;
  EventLoop::TimerId deferred_timer_ = 0;
  std::vector<std::pair<Deferred, Handle>> deferred_;
  int in_curl_ = 0;  // depth of calls into curl on the stack
};

HttpTransport::Handle CurlTransport::Impl::Start(const HttpRequest& request,
                                                 HttpCallbacks callbacks) {
  auto t = std::make_unique<Transfer>();
  t->owner = this;
  t->handle = next_handle_++;
  t->callbacks = std::move(callbacks);
  t->idle_timeout = request.idle_timeout;
  t->max_buffered_body = request.max_buffered_body;
  t->easy.reset(curl_easy_init());
  if (!t->easy) {
    std::fprintf(stderr, "curl_easy_init failed\n");
    std::abort();
  }
  CURL* easy = t->easy.get();

  auto encode = [easy](const std::vector<std::pair<std::string, std::string>>& fields) {
    std::string out;
    for (const auto& [name, value] : fields) {
      if (!out.empty()) out += '&';
      char* n = curl_easy_escape(easy, name.data(), static_cast<int>(name.size()));
      char* v = curl_easy_escape(easy, value.data(), static_cast<int>(value.size()));
      out += n;
      out += '=';
      out += v;
      curl_free(n);
      curl_free(v);
    }
    return out;
  };
  t->url = request.url;
  if (!request.query.empty()) {
    t->url += (t->url.find('?') == std::string::npos) ? '?' : '&';
    t->url += encode(request.query);
  }

  ZB_SETOPT(easy, CURLOPT_URL, t->url.c_str());
  ZB_SETOPT(easy, CURLOPT_PRIVATE, static_cast<void*>(t.get()));
  ZB_SETOPT(easy, CURLOPT_ERRORBUFFER, t->error_buffer);
  ZB_SETOPT(easy, CURLOPT_NOSIGNAL, 1L);
  ZB_SETOPT(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  // Never follow redirects: a redirect to another host would carry the credentials along.
  ZB_SETOPT(easy, CURLOPT_FOLLOWLOCATION, 0L);
  ZB_SETOPT(easy, CURLOPT_USERAGENT, options_.user_agent.c_str());
  ZB_SETOPT(easy, CURLOPT_ACCEPT_ENCODING, "");
  ZB_SETOPT(easy, CURLOPT_HTTP_VERSION, long{CURL_HTTP_VERSION_2TLS});
  // Over TLS, wait for a connection being set up to say (by ALPN) whether it multiplexes
  // rather than open one per request. Never for plain http://: there nothing says so until a
  // response arrives, and a pending long-poll would hold every other request back.
  if (request.url.starts_with("https://")) ZB_SETOPT(easy, CURLOPT_PIPEWAIT, 1L);
  ZB_SETOPT(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  ZB_SETOPT(easy, CURLOPT_TCP_KEEPIDLE, options_.tcp_keepalive_idle_seconds);
  ZB_SETOPT(easy, CURLOPT_TCP_KEEPINTVL, 15L);
  ZB_SETOPT(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(request.connect_timeout.count()));
  ZB_SETOPT(easy, CURLOPT_WRITEFUNCTION, &Impl::WriteTrampoline);
  ZB_SETOPT(easy, CURLOPT_WRITEDATA, static_cast<void*>(t.get()));
  ZB_SETOPT(easy, CURLOPT_HEADERFUNCTION, &Impl::HeaderTrampoline);
  ZB_SETOPT(easy, CURLOPT_HEADERDATA, static_cast<void*>(t.get()));

  if (!request.basic_auth_user.empty() || !request.basic_auth_password.empty()) {
    ZB_SETOPT(easy, CURLOPT_HTTPAUTH, long{CURLAUTH_BASIC});
    ZB_SETOPT(easy, CURLOPT_USERNAME, request.basic_auth_user.c_str());
    ZB_SETOPT(easy, CURLOPT_PASSWORD, request.basic_auth_password.c_str());
  }

  if (!request.tls.ca_bundle.empty()) {
    ZB_SETOPT(easy, CURLOPT_CAINFO, request.tls.ca_bundle.c_str());
  }
  if (!request.tls.client_cert.empty()) {
    ZB_SETOPT(easy, CURLOPT_SSLCERT, request.tls.client_cert.c_str());
  }
  if (!request.tls.client_key.empty()) {
    ZB_SETOPT(easy, CURLOPT_SSLKEY, request.tls.client_key.c_str());
  }
  ZB_SETOPT(easy, CURLOPT_SSL_VERIFYPEER, request.tls.verify ? 1L : 0L);
  ZB_SETOPT(easy, CURLOPT_SSL_VERIFYHOST, request.tls.verify ? 2L : 0L);

  curl_slist* headers = nullptr;
  // A large form body must not wait a second for a "100 Continue" that Zulip never sends.
  headers = curl_slist_append(headers, "Expect:");
  for (const std::string& h : request.headers) headers = curl_slist_append(headers, h.c_str());
  t->headers.reset(headers);
  ZB_SETOPT(easy, CURLOPT_HTTPHEADER, t->headers.get());

  switch (request.method) {
    case HttpMethod::kGet:
      ZB_SETOPT(easy, CURLOPT_HTTPGET, 1L);
      break;
    case HttpMethod::kPost:
    case HttpMethod::kDelete:
      t->post_body = encode(request.form);
      ZB_SETOPT(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(t->post_body.size()));
      ZB_SETOPT(easy, CURLOPT_POSTFIELDS, t->post_body.c_str());
      if (request.method == HttpMethod::kDelete) ZB_SETOPT(easy, CURLOPT_CUSTOMREQUEST, "DELETE");
      break;
  }

  Transfer& ref = *t;
  Handle handle = t->handle;
  transfers_.emplace(handle, std::move(t));
  ArmIdleTimer(ref);
  // curl refuses new handles from inside its callbacks (a transfer started from on_body_chunk
  // or on_head): add it once curl has returned.
  if (in_curl_ > 0) {
    Defer(Deferred::kAdd, handle);
  } else {
    AddToMulti(ref);
  }
  return handle;
}

void CurlTransport::Impl::AddToMulti(Transfer& t) {
  CURLMcode mc = curl_multi_add_handle(multi_.get(), t.easy.get());
  if (mc == CURLM_OK) {
    t.in_multi = true;
    return;
  }
  // Only possible when out of memory: report it as the transfer's failure, on a later turn, as
  // the interface promises.
  HttpResult result;
  result.error = TransportError::kOther;
  result.error_text = std::string("curl_multi_add_handle: ") + curl_multi_strerror(mc);
  Handle handle = t.handle;
  loop_.AddTimer(Clock::Duration::zero(),
                 [this, handle, result]() mutable { Finish(handle, std::move(result)); });
}

void CurlTransport::Impl::ArmIdleTimer(Transfer& t) {
  t.last_activity = loop_.clock().Now();
  if (t.idle_timer) return;  // it re-arms itself for the remainder when it fires
  Handle handle = t.handle;
  t.idle_timer = loop_.AddTimer(t.idle_timeout, [this, handle] { OnIdleTimer(handle); });
}

void CurlTransport::Impl::OnIdleTimer(Handle handle) {
  Transfer* t = Find(handle);
  if (!t) return;
  t->idle_timer = 0;
  if (t->paused || t->pause_requested || t->cancelled) return;  // Resume() re-arms it
  const Clock::TimePoint deadline = t->last_activity + t->idle_timeout;
  const Clock::TimePoint now = loop_.clock().Now();
  if (now < deadline) {
    t->idle_timer = loop_.AddTimerAt(deadline, [this, handle] { OnIdleTimer(handle); });
    return;
  }
  HttpResult result = std::move(t->result);
  result.error = TransportError::kTimeout;
  result.error_text = "no data for " + std::to_string(t->idle_timeout.count()) + " ms";
  Finish(handle, std::move(result));
}

void CurlTransport::Impl::Pause(Handle handle) {
  if (Transfer* t = Find(handle)) t->pause_requested = true;
}

void CurlTransport::Impl::Resume(Handle handle) {
  Transfer* t = Find(handle);
  if (!t) return;
  t->pause_requested = false;
  if (t->paused) Defer(Deferred::kResume, handle);
  ArmIdleTimer(*t);
}

void CurlTransport::Impl::Cancel(Handle handle) {
  Transfer* t = Find(handle);
  if (!t || t->cancelled) return;
  t->cancelled = true;
  if (in_curl_ > 0) {
    // curl forbids removing a handle from inside its own callbacks: do it once curl returned.
    Defer(Deferred::kCancel, handle);
    return;
  }
  if (t->idle_timer) loop_.CancelTimer(t->idle_timer);
  if (t->in_multi) curl_multi_remove_handle(multi_.get(), t->easy.get());
  transfers_.erase(handle);
}

void CurlTransport::Impl::Defer(Deferred what, Handle handle) {
  deferred_.emplace_back(what, handle);
  if (!deferred_timer_) {
    deferred_timer_ = loop_.AddTimer(Clock::Duration::zero(), [this] { RunDeferred(); });
  }
}

void CurlTransport::Impl::RunDeferred() {
  deferred_timer_ = 0;
  std::vector<std::pair<Deferred, Handle>> work;
  work.swap(deferred_);
  for (auto [what, handle] : work) {
    Transfer* t = Find(handle);
    if (!t) continue;
    if (what == Deferred::kAdd) {
      if (!t->in_multi && !t->cancelled) AddToMulti(*t);
      continue;
    }
    if (what == Deferred::kCancel) {
      t->cancelled = false;  // let Cancel() do the removal now that curl is not on the stack
      Cancel(handle);
      continue;
    }
    if (!t->paused || t->pause_requested || t->cancelled) continue;
    t->paused = false;
    ++in_curl_;
    // Unpausing hands the held chunk to the write callback before it returns.
    curl_easy_pause(t->easy.get(), CURLPAUSE_CONT);
    --in_curl_;
  }
  ProcessDone();
}

void CurlTransport::Impl::OnCurlSocket(curl_socket_t fd, int what) {
  if (what == CURL_POLL_REMOVE) {
    loop_.UnwatchFd(fd);
    watched_fds_.erase(fd);
    return;
  }
  uint32_t events = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= EPOLLIN;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= EPOLLOUT;
  Status status = loop_.WatchFd(fd, events, [this, fd](uint32_t ready) {
    int flags = 0;
    if (ready & EPOLLIN) flags |= CURL_CSELECT_IN;
    if (ready & EPOLLOUT) flags |= CURL_CSELECT_OUT;
    if (ready & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
    SocketAction(fd, flags);
    ProcessDone();
  });
  if (!status.ok()) {
    // epoll refusing a socket curl just opened "can't happen" (it is a fresh, valid fd).
    std::fprintf(stderr, "curl socket %d: %s\n", fd, status.ToString().c_str());
    std::abort();
  }
  watched_fds_.insert(fd);
}

void CurlTransport::Impl::OnCurlTimerChange(long timeout_ms) {
  if (curl_timer_) {
    loop_.CancelTimer(curl_timer_);
    curl_timer_ = 0;
  }
  if (timeout_ms < 0) return;
  curl_timer_ = loop_.AddTimer(std::chrono::milliseconds(timeout_ms), [this] {
    curl_timer_ = 0;
    SocketAction(CURL_SOCKET_TIMEOUT, 0);
    ProcessDone();
  });
}

void CurlTransport::Impl::SocketAction(curl_socket_t fd, int flags) {
  int running = 0;
  ++in_curl_;
  curl_multi_socket_action(multi_.get(), fd, flags, &running);
  --in_curl_;
}

void CurlTransport::Impl::ProcessDone() {
  int pending = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_.get(), &pending)) {
    if (msg->msg != CURLMSG_DONE) continue;
    void* priv = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
    Transfer* t = static_cast<Transfer*>(priv);
    const CURLcode code = msg->data.result;
    HttpResult result = std::move(t->result);
    if (t->too_large) {
      result.error = TransportError::kBodyTooLarge;
      result.error_text = "body larger than " + std::to_string(t->max_buffered_body) + " bytes";
    } else {
      result.error = ClassifyCurlError(code);
      if (code != CURLE_OK) {
        result.error_text = t->error_buffer[0] ? t->error_buffer : curl_easy_strerror(code);
      }
    }
    long status = 0;
    curl_easy_getinfo(t->easy.get(), CURLINFO_RESPONSE_CODE, &status);
    if (result.head.status == 0) result.head.status = static_cast<int>(status);
    curl_easy_getinfo(t->easy.get(), CURLINFO_NUM_CONNECTS, &result.new_connections);
    long version = 0;
    curl_easy_getinfo(t->easy.get(), CURLINFO_HTTP_VERSION, &version);
    switch (version) {
      case CURL_HTTP_VERSION_1_0:
        result.http_version = 10;
        break;
      case CURL_HTTP_VERSION_1_1:
        result.http_version = 11;
        break;
      case CURL_HTTP_VERSION_2_0:
        result.http_version = 20;
        break;
      case CURL_HTTP_VERSION_3:
        result.http_version = 30;
        break;
      default:
        result.http_version = 0;
    }
    Finish(t->handle, std::move(result));
  }
}

void CurlTransport::Impl::Finish(Handle handle, HttpResult result) {
  auto it = transfers_.find(handle);
  if (it == transfers_.end()) return;
  std::unique_ptr<Transfer> t = std::move(it->second);
  transfers_.erase(it);
  if (t->idle_timer) loop_.CancelTimer(t->idle_timer);
  if (t->in_multi) curl_multi_remove_handle(multi_.get(), t->easy.get());
  if (t->cancelled || !t->callbacks.on_done) return;
  if (result.error == TransportError::kNone && !t->head_delivered) DeliverHead(*t);
  t->callbacks.on_done(std::move(result));
}

void CurlTransport::Impl::DeliverHead(Transfer& t) {
  t.head_delivered = true;
  if (t.callbacks.on_head) t.callbacks.on_head(t.result.head);
}

size_t CurlTransport::Impl::OnHeader(Transfer& t, char* data, size_t size) {
  if (t.cancelled) return 0;
  t.last_activity = loop_.clock().Now();
  std::string_view line(data, size);
  if (line.starts_with("HTTP/")) {
    // A new status line: a 1xx before the final answer leaves nothing behind.
    t.result.head = HttpResponseHead{};
    size_t space = line.find(' ');
    if (space != std::string_view::npos) t.result.head.status = std::atoi(line.data() + space + 1);
    return size;
  }
  if (Trim(line).empty()) {
    if (t.result.head.status >= 200 && !t.head_delivered) DeliverHead(t);
    return t.cancelled ? 0 : size;
  }
  auto value = [&](std::string_view name) {
    return std::string(Trim(line.substr(name.size() + 1)));
  };
  HttpResponseHead& head = t.result.head;
  if (HeaderNameIs(line, "Retry-After")) {
    head.retry_after = value("Retry-After");
  } else if (HeaderNameIs(line, "X-RateLimit-Remaining")) {
    head.ratelimit_remaining = value("X-RateLimit-Remaining");
  } else if (HeaderNameIs(line, "X-RateLimit-Limit")) {
    head.ratelimit_limit = value("X-RateLimit-Limit");
  } else if (HeaderNameIs(line, "X-RateLimit-Reset")) {
    head.ratelimit_reset = value("X-RateLimit-Reset");
  } else if (HeaderNameIs(line, "Content-Type")) {
    head.content_type = value("Content-Type");
  }
  return size;
}

size_t CurlTransport::Impl::OnWrite(Transfer& t, char* data, size_t size) {
  if (t.cancelled) return 0;  // aborts the transfer; Finish() then drops it silently
  t.last_activity = loop_.clock().Now();
  if (!t.head_delivered) DeliverHead(t);
  if (t.cancelled) return 0;
  if (!t.callbacks.on_body_chunk) {
    if (t.result.body.size() + size > t.max_buffered_body) {
      t.too_large = true;
      return 0;
    }
    t.result.body.append(data, size);
    return size;
  }
  if (t.pause_requested) {
    t.paused = true;
    return CURL_WRITEFUNC_PAUSE;
  }
  bool taken = t.callbacks.on_body_chunk(std::string_view(data, size));
  if (t.cancelled) return 0;
  if (!taken) {
    t.paused = true;
    return CURL_WRITEFUNC_PAUSE;
  }
  return size;
}

StatusOr<std::unique_ptr<CurlTransport>> CurlTransport::Create(EventLoop& loop,
                                                               CurlTransportOptions options) {
  static std::once_flag once;
  static CURLcode global_rc = CURLE_OK;
  std::call_once(once, [] { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (global_rc != CURLE_OK) {
    return Status::Fatal(std::string("curl_global_init: ") + curl_easy_strerror(global_rc));
  }
  CurlMulti multi(curl_multi_init());
  if (!multi) return Status::Fatal("curl_multi_init failed");
  return std::unique_ptr<CurlTransport>(
      new CurlTransport(std::make_unique<Impl>(loop, std::move(options), std::move(multi))));
}

CurlTransport::CurlTransport(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CurlTransport::~CurlTransport() = default;

// libcurl's multi handle is not thread-safe: every entry point runs on the loop's thread.
HttpTransport::Handle CurlTransport::Start(HttpRequest request, HttpCallbacks callbacks) {
  ZB_DCHECK_ON_LOOP(impl_->loop());
  return impl_->Start(request, std::move(callbacks));
}
void CurlTransport::Pause(Handle handle) {
  ZB_DCHECK_ON_LOOP(impl_->loop());
  impl_->Pause(handle);
}
void CurlTransport::Resume(Handle handle) {
  ZB_DCHECK_ON_LOOP(impl_->loop());
  impl_->Resume(handle);
}
void CurlTransport::Cancel(Handle handle) {
  ZB_DCHECK_ON_LOOP(impl_->loop());
  impl_->Cancel(handle);
}
size_t CurlTransport::ActiveTransfers() const {
  ZB_DCHECK_ON_LOOP(impl_->loop());
  return impl_->ActiveTransfers();
}

}  // namespace zb
