// Messaging over NNG for the agent <-> coordinator protocol: request/reply
// and publish/subscribe. NNG's sockets, messages and error numbers stay in
// nng.cpp; callers see drover's types. URLs are NNG's ("tcp://127.0.0.1:0",
// "tls+tcp://…", "ipc:///run/drover.sock").
//
// Every receiving socket bounds message size (NNG_OPT_RECVMAXSZ, unlimited by
// default) to proto::kMaxMessageBytes. Dialers connect in the background and
// keep reconnecting, so a client can be made before its server is up.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/base/result.hpp"

namespace drover::nng {

// A REQ socket dialed to one server. request() sends and waits for the
// answer; calls from several threads are serialized.
class Client {
 public:
  static Result<std::unique_ptr<Client>> dial(const std::string& url);
  ~Client();
  // Fails with Errc::timeout when no answer came within timeout (the server is
  // down or slow), Errc::io on other transport errors.
  Result<std::string> request(std::string_view bytes, std::chrono::milliseconds timeout);

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
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
  ~Server();                // stops answering and waits for handlers in progress
  std::string url() const;  // with the bound TCP port (for "tcp://127.0.0.1:0")
  // Connections closed for a cap so far.
  std::uint64_t refused_connections() const;

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class Publisher {
 public:
  static Result<std::unique_ptr<Publisher>> listen(const std::string& url);
  ~Publisher();
  std::string url() const;  // with the bound TCP port
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
  static Result<std::unique_ptr<Subscriber>> dial(const std::string& url, std::string_view prefix);
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
