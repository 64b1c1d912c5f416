// CurlTransport: HttpTransport over libcurl's multi socket interface, on the EventLoop.
//
// One CURLM handle serves every transfer, so kept-alive connections are reused across requests
// (and across accounts on the same server), and HTTP/2 streams are multiplexed on one
// connection when TLS negotiates h2. Sockets and timers are the EventLoop's: no thread per
// transfer. This is the only translation unit that includes curl.h.
//
// Threads: create, use and destroy it on the loop thread (or while the loop is not running).
// Destroying it aborts the transfers in flight without calling their callbacks; never destroy
// it from inside one of its own callbacks (post the destruction to the loop instead).
//
// Timeouts: a transfer fails with kTimeout when it receives nothing for
// HttpRequest::idle_timeout while not paused. libcurl's own CURLOPT_TIMEOUT and low-speed
// limits are not used: they would also count the time a transfer spends paused while Kafka is
// full, and kill a long-poll whose events are merely waiting for room.
#ifndef ZB_DAEMON_ZULIP_CURL_TRANSPORT_H_
#define ZB_DAEMON_ZULIP_CURL_TRANSPORT_H_

#include <memory>
#include <string>

#include "daemon/base/event_loop.h"
#include "daemon/base/status.h"
#include "daemon/zulip/http_transport.h"

namespace zb {

struct CurlTransportOptions {
  // Connections open at once to one host. 0 = no limit, the default: under HTTP/1.1 every
  // pending long-poll holds a connection for up to 90 s, so a limit below the number of
  // accounts on a server would queue polls behind each other. HTTP/2 needs only one.
  long max_host_connections = 0;
  // Idle connections kept for reuse. 0 = libcurl's default (4 x the transfers added).
  long max_idle_connections = 0;
  // Sent as User-Agent; empty = "zulip-bridge/<version>". Zulip records the client name from it.
  std::string user_agent;
  // TCP keepalive probes after this long idle, so a silently dead peer is noticed during a long
  // poll.
  long tcp_keepalive_idle_seconds = 60;
};

class CurlTransport final : public HttpTransport {
 public:
  // `loop` must outlive the transport. Fatal if libcurl cannot initialise.
  static StatusOr<std::unique_ptr<CurlTransport>> Create(EventLoop& loop,
                                                         CurlTransportOptions options = {});
  ~CurlTransport() override;
  CurlTransport(const CurlTransport&) = delete;
  CurlTransport& operator=(const CurlTransport&) = delete;

  Handle Start(HttpRequest request, HttpCallbacks callbacks) override;
  void Pause(Handle handle) override;
  void Resume(Handle handle) override;
  void Cancel(Handle handle) override;

  // Transfers started and not yet finished or cancelled.
  size_t ActiveTransfers() const;

 private:
  class Impl;
  explicit CurlTransport(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace zb

#endif  // ZB_DAEMON_ZULIP_CURL_TRANSPORT_H_
