// HTTP/1.1 for drover's small servers and clients (the tracker, the origin's
// artifact feed, later the coordinator's API), on Boost.Beast. Beast and Asio
// stay inside this library's .cpp files: they are slow to compile, and the
// rest of drover sees only these types.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/result.hpp"
#include "core/log/log.hpp"

namespace drover::http {

struct Request {
  std::string method;                                      // "GET", "POST", ...
  std::string target;                                      // path and query as sent
  std::string path;                                        // target before '?', percent-decoded
  std::vector<std::pair<std::string, std::string>> query;  // decoded bytes, in order
  std::map<std::string, std::string> headers;              // names lowercased
  std::string body;
  std::string remote_address;  // "127.0.0.1", "::1"
  std::uint16_t remote_port = 0;

  // The first value of a query parameter, if present.
  const std::string* param(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  // Extra headers a handler sends; a client's answer carries every header
  // the server sent, names as it spelled them.
  std::vector<std::pair<std::string, std::string>> headers;
};

// Called exactly once per request, from any thread.
using Responder = std::function<void(Response)>;
// Runs on the server's thread; must not block. Answers now or later.
using Handler = std::function<void(const Request&, Responder)>;

struct ServerOptions {
  std::string bind = "127.0.0.1";
  std::uint16_t port = 0;  // 0: any free port (see Server::port())
  std::size_t max_body_bytes = 1 << 20;
  std::size_t max_header_bytes = 16 << 10;
  std::chrono::seconds idle_timeout{60};
  // PEM files; with both set the server speaks only HTTPS (TLS 1.2 and up).
  std::string tls_cert_file, tls_key_file;
  // Connections open at once, in total and per client (an IPv4 address, an
  // IPv6 /64, or all of loopback as one); one beyond either is closed as
  // soon as it is accepted.
  std::size_t max_connections = 1024;
  std::size_t max_connections_per_client = 64;
  // Called on the server's thread with a request whose headers are read and
  // whose body is not (Request::body empty). An answer it returns is sent and
  // the connection closed, the body never read: a request that cannot be
  // authorized costs no upload. Must not block.
  std::function<std::optional<Response>(const Request&)> check_headers;
};

// A server on one thread of its own. Requests larger than the limits get
// 413; malformed ones 400; every connection is closed after idle_timeout.
// When accepting fails (EMFILE: out of descriptors), it waits before trying
// again, from 50 ms doubling to 1 s, so the thread never spins.
class Server {
 public:
  static Result<std::unique_ptr<Server>> start(const ServerOptions& options, Handler handler,
                                               Logger& log);
  ~Server();  // stops and joins
  std::uint16_t port() const;
  // Runs fn on the server's thread after delay (for long polls and sweeps).
  void post_after(std::chrono::milliseconds delay, std::function<void()> fn);
  // Accepts that failed, and connections closed at once for a cap, so far.
  std::uint64_t accept_failures() const;
  std::uint64_t refused_connections() const;
  void stop();

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Parses one request from raw bytes as the server does (its limits, its
// percent-decoding of the path): for tests and the fuzzer. Refuses what the
// server would answer 400 or 413, and bytes that hold no whole request.
Result<Request> parse_request(std::string_view raw, const ServerOptions& limits);

struct Url {
  bool tls = false;  // https
  std::string host;
  std::uint16_t port = 80;   // 443 for https unless given
  std::string target = "/";  // path and query
};
// A listen address, "127.0.0.1:0" or "[::1]:7000": host (without brackets) and port.
Result<std::pair<std::string, std::uint16_t>> parse_listen(const std::string& text);

// Parses "http[s]://host[:port][/path][?query]".
Result<Url> parse_url(std::string_view text);

struct ClientOptions {
  std::chrono::milliseconds timeout{10'000};
  std::string content_type = "application/json";
  std::uint64_t max_body_bytes = 64ull << 20;
  std::vector<std::pair<std::string, std::string>> headers;
  // https: the CA certificates (PEM) that may vouch for the server; "" for
  // the system's. The server's name is always checked against its certificate.
  std::string ca_file;
};
Result<Response> request(std::string_view method, std::string_view url, std::string_view body,
                         const ClientOptions& options);

// One request on a fresh connection; fails on a network error or timeout
// (not on an HTTP error status: the caller reads Response::status), and on an
// answer whose body exceeds max_body_bytes.
Result<Response> request(std::string_view method, std::string_view url, std::string_view body,
                         std::chrono::milliseconds timeout,
                         std::string_view content_type = "application/json",
                         std::uint64_t max_body_bytes = 64ull << 20);

// Query strings: application/x-www-form-urlencoded, any bytes.
std::vector<std::pair<std::string, std::string>> parse_query(std::string_view query);
std::string percent_encode(std::string_view bytes);
Result<std::string> percent_decode(std::string_view text);

}  // namespace drover::http
