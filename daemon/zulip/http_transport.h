// HttpTransport: the seam between the Zulip client and the network.
//
// The daemon's implementation is CurlTransport (libcurl's multi socket interface on the
// EventLoop); tests use FakeHttpTransport (tests/fakes/fake_http_transport.h), which replays
// scripted answers. A transfer's body can be streamed to the caller chunk by chunk, and paused
// while the caller cannot take more (librdkafka's queue is full), so a response of any size
// needs bounded memory.
//
// Threads: every method is called on the event loop thread, and every callback runs there.
// No callback runs from inside Start(), Pause(), Resume() or Cancel().
#ifndef ZB_DAEMON_ZULIP_HTTP_TRANSPORT_H_
#define ZB_DAEMON_ZULIP_HTTP_TRANSPORT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zb {

enum class HttpMethod { kGet, kPost, kDelete };

struct TlsOptions {
  // PEM file of trusted CAs; empty = the system's bundle.
  std::string ca_bundle;
  // PEM client certificate and its key, for servers that ask for one; empty = none.
  std::string client_cert;
  std::string client_key;
  // Checks the server's certificate and name. Only an explicit `insecure: true` turns it off.
  bool verify = true;
};

struct HttpRequest {
  HttpMethod method = HttpMethod::kGet;
  // Absolute URL without the query string.
  std::string url;
  // Appended to the URL, URL-encoded by the transport.
  std::vector<std::pair<std::string, std::string>> query;
  // Sent as application/x-www-form-urlencoded, encoded by the transport (POST and DELETE).
  std::vector<std::pair<std::string, std::string>> form;
  // Extra request headers, "Name: value". Never an Authorization header: use basic_auth.
  std::vector<std::string> headers;
  // HTTP Basic credentials. The password never reaches a log, an error text or a header dump.
  std::string basic_auth_user;
  std::string basic_auth_password;
  // The longest the transfer may go without receiving a byte while it is not paused, from the
  // start (so: the wait for the answer) and between chunks. A long-poll sets it a little above
  // the server's long-poll timeout. Time spent paused by the caller does not count.
  std::chrono::milliseconds idle_timeout{30'000};
  // The longest the TCP and TLS handshakes may take.
  std::chrono::milliseconds connect_timeout{10'000};
  // When on_body_chunk is not set, the body is kept in HttpResult::body up to this many bytes;
  // a longer body fails the transfer with kBodyTooLarge.
  size_t max_buffered_body = 64u << 20;
  TlsOptions tls;
};

// How a transfer ended, as far as the transport can tell. Anything but kNone means there is no
// complete HTTP response; all of these are transient from the caller's point of view, except
// kTls and kBodyTooLarge, which may be configuration problems.
enum class TransportError {
  kNone = 0,      // a complete response arrived (whatever its HTTP status)
  kTimeout,       // connect_timeout or idle_timeout passed
  kConnect,       // could not resolve or connect (refused, unreachable)
  kTls,           // TLS handshake or certificate verification failed
  kReset,         // the connection broke while sending or receiving
  kTruncated,     // the server closed the connection before the body was complete
  kBodyTooLarge,  // the body passed max_buffered_body
  kOther,         // anything else libcurl reports
};
std::string_view TransportErrorName(TransportError error);

// The response headers that the client reasons about, as the server sent them. Empty when
// absent.
struct HttpResponseHead {
  int status = 0;                   // 0 when no status line arrived
  std::string retry_after;          // Retry-After: a decimal number of seconds from Zulip
  std::string ratelimit_remaining;  // X-RateLimit-Remaining
  std::string ratelimit_limit;      // X-RateLimit-Limit
  std::string ratelimit_reset;      // X-RateLimit-Reset: Unix time, seconds
  std::string content_type;
};

struct HttpResult {
  TransportError error = TransportError::kNone;
  // libcurl's error text when error != kNone. Never contains credentials.
  std::string error_text;
  HttpResponseHead head;
  // The body, when the request had no on_body_chunk.
  std::string body;
  // Connections this transfer had to open (0 = it reused a kept-alive one), for metrics.
  long new_connections = 0;
  // The HTTP version the response came in: 10, 11, 20 (h2); 0 when unknown.
  int http_version = 0;
};

struct HttpCallbacks {
  // Called once, when the status line and all headers of the final response have arrived.
  // Optional.
  std::function<void(const HttpResponseHead&)> on_head;
  // Optional. When set, the body is streamed here instead of being kept in HttpResult::body.
  // Return true when the chunk was taken. Return false to pause the transfer: the chunk was NOT
  // taken, and the same bytes are offered again after Resume().
  std::function<bool(std::string_view chunk)> on_body_chunk;
  // Called exactly once when the transfer ends, unless it was cancelled with Cancel().
  std::function<void(HttpResult result)> on_done;
};

class HttpTransport {
 public:
  using Handle = uint64_t;  // never 0

  virtual ~HttpTransport() = default;

  // Starts a transfer; callbacks follow on later loop turns. The handle stays valid until
  // on_done has run or Cancel() was called.
  virtual Handle Start(HttpRequest request, HttpCallbacks callbacks) = 0;
  // Stops body delivery until Resume(). Pausing a paused or finished transfer does nothing.
  virtual void Pause(Handle handle) = 0;
  // Resumes a paused transfer: delivery (the refused chunk first) continues on a later turn.
  virtual void Resume(Handle handle) = 0;
  // Aborts the transfer and frees it; no callback of it runs afterwards, on_done included.
  // Unknown or finished handles are ignored. Safe from inside the transfer's own callbacks.
  virtual void Cancel(Handle handle) = 0;
};

inline std::string_view TransportErrorName(TransportError error) {
  switch (error) {
    case TransportError::kNone:
      return "none";
    case TransportError::kTimeout:
      return "timeout";
    case TransportError::kConnect:
      return "connect";
    case TransportError::kTls:
      return "tls";
    case TransportError::kReset:
      return "reset";
    case TransportError::kTruncated:
      return "truncated";
    case TransportError::kBodyTooLarge:
      return "body_too_large";
    case TransportError::kOther:
      return "other";
  }
  return "unknown";
}

}  // namespace zb

#endif  // ZB_DAEMON_ZULIP_HTTP_TRANSPORT_H_
