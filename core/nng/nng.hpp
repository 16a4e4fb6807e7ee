// Messaging over NNG for the agent <-> coordinator protocol: request/reply
// and publish/subscribe. NNG's sockets, messages and error numbers stay in
// nng.cpp; callers see drover's types. URLs are NNG's ("tcp://127.0.0.1:0",
// "tls+tcp://…", "ipc:///run/drover.sock").
//
// Every receiving socket bounds message size (NNG_OPT_RECVMAXSZ, unlimited by
// default) to proto::kMaxMessageBytes; a server may bound each listener lower.
// Dialers connect in the background and keep reconnecting, so a client can be
// made before its server is up.
//
// TLS (tls+tcp://, NNG over mbedtls): a listener presents a certificate chain
// and key; a dialer requires the server's certificate to chain to the CA it
// pins and to carry the expected name. Settings are PEM text, not paths: the
// caller reads the files (and refuses a key file others may read).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.hpp"

namespace drover::nng {

struct TlsServer {
  std::string cert_pem;  // the certificate, then any intermediates
  std::string key_pem;   // its private key, unencrypted
};
struct TlsClient {
  std::string ca_pem;       // the CA (or the server's own self-signed certificate) pinned
  std::string server_name;  // the name the certificate must carry; "": the URL's host
};

// Whether a daemon may use url: tls+tcp://, ipc:// and inproc:// always;
// tcp:// only on a loopback host (127.0.0.0/8, ::1, localhost) unless
// allow_plaintext. The error names the URL and the way out.
Status check_transport(const std::string& url, bool allow_plaintext);

// The host of a tcp:// or tls+tcp:// URL ("" for others).
std::string url_host(const std::string& url);

// A REQ socket dialed to one server. request() sends and waits for the
// answer; calls from several threads are serialized.
class Client {
 public:
  // tls is required for a tls+tcp:// URL and ignored otherwise.
  static Result<std::unique_ptr<Client>> dial(const std::string& url,
                                              const std::optional<TlsClient>& tls = std::nullopt);
  ~Client();
  // Fails with Errc::timeout when no answer came within timeout (the server is
  // down or slow), Errc::io on other transport errors.
  // After three sends in a row found no connection (each waiting the whole
  // timeout), the next request closes the socket and dials again: a dialer
  // of NNG 1.5.2 can stop reconnecting (docs/NOTES.md).
  Result<std::string> request(std::string_view bytes, std::chrono::milliseconds timeout);
  // How often the socket was dialed afresh.
  std::uint64_t redials() const { return redials_.load(); }

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::atomic<std::uint64_t> redials_{0};
};

// What a server takes in: a message larger than max_message_bytes is
// dropped by NNG; a connection beyond max_connections, or beyond
// max_connections_per_address from one address (IPv4, or an IPv6 /64;
// loopback not counted: tests and benchmarks share it), is closed as it is
// made. 0: no bound.
struct ServerLimits {
  std::size_t max_message_bytes = 16ull << 20;
  std::size_t max_connections = 0;
  std::size_t max_connections_per_address = 0;
};

// A REP socket listening on url; each request is handed to handler on one of
// `workers` NNG contexts (so up to that many are handled at once, on NNG's
// threads). The handler returns the reply bytes.
class Server {
 public:
  using Handler = std::function<std::string(std::string_view request)>;
  static Result<std::unique_ptr<Server>> listen(const std::string& url, Handler handler,
                                                int workers = 4);
  // The asynchronous form: the handler returns at once and answers later by
  // calling reply exactly once, from any thread (the request's bytes stay
  // valid until then). A context waiting for its reply takes no thread, so
  // many requests can wait together (for one group commit, say). A reply
  // after the server is gone is dropped.
  using Reply = std::function<void(std::string answer)>;
  using AsyncHandler = std::function<void(std::string_view request, Reply reply)>;
  static Result<std::unique_ptr<Server>> listen_async(const std::string& url, AsyncHandler handler,
                                                      int workers = 64,
                                                      const ServerLimits& limits = {});
  // Several listeners on one socket, each with its own message bound (at
  // most limits.max_message_bytes); the handler learns which one a request
  // came through (its index in endpoints; SIZE_MAX when its connection closed
  // before the handler ran). tls is required when any URL is
  // tls+tcp://.
  struct Endpoint {
    std::string url;
    std::size_t max_message_bytes = 16ull << 20;
  };
  using EndpointHandler =
      std::function<void(std::string_view request, std::size_t endpoint, Reply reply)>;
  static Result<std::unique_ptr<Server>> listen_endpoints(
      const std::vector<Endpoint>& endpoints, EndpointHandler handler, int workers,
      const ServerLimits& limits, const std::optional<TlsServer>& tls = std::nullopt);
  ~Server();                // stops answering and waits for handlers in progress
  std::string url() const;  // the first endpoint, with its bound TCP port (for "tcp://127.0.0.1:0")
  std::vector<std::string> urls() const;  // every endpoint's, in order
  // Connections closed for a cap so far.
  std::uint64_t refused_connections() const;

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class Publisher {
 public:
  static Result<std::unique_ptr<Publisher>> listen(
      const std::vector<std::string>& urls, const std::optional<TlsServer>& tls = std::nullopt);
  static Result<std::unique_ptr<Publisher>> listen(const std::string& url) {
    return listen(std::vector<std::string>{url});
  }
  ~Publisher();
  std::string url() const;  // the first URL, with its bound TCP port
  std::vector<std::string> urls() const;
  // Best effort: never blocks; a slow or absent subscriber misses messages.
  Status publish(std::string_view bytes);

 private:
  struct Impl;
  explicit Publisher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class Subscriber {
 public:
  // Dials url in the background and receives messages starting with prefix.
  static Result<std::unique_ptr<Subscriber>> dial(
      const std::string& url, std::string_view prefix,
      const std::optional<TlsClient>& tls = std::nullopt);
  ~Subscriber();
  // The next message, or nullopt when none arrived within timeout.
  Result<std::optional<std::string>> receive(std::chrono::milliseconds timeout);
  // Closes the socket: a receive() blocked in another thread returns an
  // error at once, and so does every later one. Destroy only after that
  // thread has left receive().
  void close();

 private:
  struct Impl;
  explicit Subscriber(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace drover::nng
