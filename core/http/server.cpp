#include <utility>  // before Asio: Boost 1.74 with GCC 12 needs std::exchange declared

#include <algorithm>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "core/base/thread_name.hpp"
#include "core/http/http.hpp"

namespace drover::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

template <class Message>
Request to_request(const Message& req, const tcp::endpoint& remote) {
  Request r;
  r.method = std::string(req.method_string());
  r.target = std::string(req.target());
  std::string_view target = r.target;
  std::size_t q = target.find('?');
  auto path = percent_decode(target.substr(0, q));
  r.path = path.ok() ? *path : std::string(target.substr(0, q));
  if (q != std::string_view::npos) r.query = parse_query(target.substr(q + 1));
  for (const auto& field : req) {
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers[name] = std::string(field.value());
  }
  if constexpr (std::is_same_v<Message, bhttp::request<bhttp::string_body>>) r.body = req.body();
  r.remote_address = remote.address().to_string();
  r.remote_port = remote.port();
  return r;
}

}  // namespace

// Named rather than anonymous: Server::Impl holds a Parking, and a member of
// a type with internal linkage is refused when this file is compiled inside a
// unity batch.
namespace server_detail {

class SessionBase;

// Connections whose request the handler has not answered yet. A Responder
// names its connection through this registry instead of owning it, so a
// Responder kept past the server's life neither touches a dead io_context
// nor keeps a socket open: once the server stops, answering is a no-op.
struct Parking {
  std::mutex mutex;
  bool stopped = false;
  std::uint64_t next_ticket = 0;  // tickets are never reused, so a late answer finds nothing
  std::unordered_map<std::uint64_t, std::shared_ptr<SessionBase>> waiting;
};

// Connections open, in total and per client address. A Slot holds one place
// for its connection's life.
struct Occupancy {
  std::mutex mutex;
  std::size_t total = 0;
  std::unordered_map<std::string, std::size_t> per_client;
};
class Slot {
 public:
  Slot(std::shared_ptr<Occupancy> o, std::string client)
      : occupancy_(std::move(o)), client_(std::move(client)) {}
  ~Slot() {
    std::lock_guard lock(occupancy_->mutex);
    --occupancy_->total;
    auto it = occupancy_->per_client.find(client_);
    if (it != occupancy_->per_client.end() && --it->second == 0) {
      occupancy_->per_client.erase(it);
    }
  }
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;

 private:
  std::shared_ptr<Occupancy> occupancy_;
  std::string client_;
};

// What a Responder needs of a connection, whatever its stream.
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // Writes the answer on the connection's own executor.
  virtual void answer(Response response) = 0;
};

}  // namespace server_detail

namespace {

using server_detail::Occupancy;
using server_detail::Parking;
using server_detail::SessionBase;
using server_detail::Slot;

// One connection: (for TLS, a handshake first) read a request, hand it to
// the handler, write the answer, repeat while the client keeps the
// connection alive. Stream is beast::tcp_stream or an ssl_stream over one.
template <class Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  template <class... StreamArgs>
  Session(const ServerOptions& options, const Handler& handler, std::shared_ptr<Parking> parking,
          Logger& log, std::unique_ptr<Slot> slot, StreamArgs&&... stream_args)
      : stream_(std::forward<StreamArgs>(stream_args)...),
        options_(options),
        handler_(handler),
        parking_(std::move(parking)),
        log_(log),
        slot_(std::move(slot)) {}

  void start() {
    asio::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        beast::get_lowest_layer(self->stream_).expires_after(self->options_.idle_timeout);
        self->stream_.async_handshake(asio::ssl::stream_base::server, [self](beast::error_code ec) {
          if (ec) return self->close();
          self->read();
        });
      } else {
        self->read();
      }
    });
  }

  void answer(Response response) override {
    asio::dispatch(stream_.get_executor(),
                   [self = this->shared_from_this(), response = std::move(response)]() mutable {
                     self->write(std::move(response));
                   });
  }

 private:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  void read() {
    parser_.emplace();
    parser_->body_limit(options_.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(options_.max_header_bytes));
    beast::get_lowest_layer(stream_).expires_after(options_.idle_timeout);
    if (!options_.check_headers) {
      bhttp::async_read(stream_, buffer_, *parser_,
                        [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                          self->on_read(ec);
                        });
      return;
    }
    // The headers first: a request refused by them is answered before its
    // body is read.
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
          if (ec) return self->on_read(ec);
          beast::error_code ignored;
          const Request head =
              to_request(self->parser_->get().base(),
                         beast::get_lowest_layer(self->stream_).socket().remote_endpoint(ignored));
          std::optional<Response> refusal;
          try {
            refusal = self->options_.check_headers(head);
          } catch (const std::exception& e) {
            self->log_.error("http.check_threw", {{"path", head.path}, {"error", e.what()}});
            refusal = internal_error();
          }
          if (refusal) {
            self->keep_alive_ = false;
            self->version_ = self->parser_->get().version();
            return self->write(std::move(*refusal));
          }
          if (self->parser_->is_done()) return self->on_read({});
          bhttp::async_read(self->stream_, self->buffer_, *self->parser_,
                            [self](beast::error_code ec2, std::size_t) { self->on_read(ec2); });
        });
  }

  void on_read(beast::error_code ec) {
    if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted) {
      return close();
    }
    if (ec) {
      int status = (ec == bhttp::error::body_limit || ec == bhttp::error::header_limit) ? 413 : 400;
      Response r;
      r.status = status;
      r.body = std::string("{\"error\":\"") +
               (status == 413 ? "request too large" : "malformed request") + "\"}";
      keep_alive_ = false;
      return write(std::move(r));
    }
    auto req = parser_->release();
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    beast::error_code ignored;
    Request request =
        to_request(req, beast::get_lowest_layer(stream_).socket().remote_endpoint(ignored));
    std::uint64_t ticket;
    {
      std::lock_guard lock(parking_->mutex);
      ticket = parking_->next_ticket++;
      parking_->waiting[ticket] = this->shared_from_this();
    }
    // The responder may run on any thread: answer() hops back onto this
    // connection's strand.
    Responder respond = [parking = parking_, ticket](Response response) {
      std::lock_guard lock(parking->mutex);
      if (parking->stopped) return;
      auto it = parking->waiting.find(ticket);
      if (it == parking->waiting.end()) return;  // answered twice
      auto self = std::move(it->second);
      parking->waiting.erase(it);
      self->answer(std::move(response));
    };
    beast::get_lowest_layer(stream_).expires_never();  // a long poll may take a while
    // A handler that throws answers 500 and is logged; the server, and the
    // daemon around it, carry on. An answer already given stays the answer.
    try {
      handler_(request, respond);
    } catch (const std::exception& e) {
      log_.error("http.handler_threw", {{"path", request.path}, {"error", e.what()}});
      respond(internal_error());
    } catch (...) {
      log_.error("http.handler_threw", {{"path", request.path}, {"error", "unknown exception"}});
      respond(internal_error());
    }
  }

  static Response internal_error() {
    Response r;
    r.status = 500;
    r.body = R"({"error":"internal error"})";
    return r;
  }

  void write(Response response) {
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>();
    res->version(version_);
    res->result(static_cast<unsigned>(response.status));
    res->set(bhttp::field::server, "drover");
    res->set(bhttp::field::content_type, response.content_type);
    for (const auto& [k, v] : response.headers) res->set(k, v);
    res->keep_alive(keep_alive_);
    res->body() = std::move(response.body);
    res->prepare_payload();
    beast::get_lowest_layer(stream_).expires_after(options_.idle_timeout);
    bhttp::async_write(stream_, *res,
                       [self = this->shared_from_this(), res](beast::error_code ec, std::size_t) {
                         if (ec || !self->keep_alive_) return self->close();
                         self->read();
                       });
  }

  void close() {
    beast::error_code ignored;
    beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  const ServerOptions& options_;
  const Handler& handler_;
  std::shared_ptr<Parking> parking_;
  Logger& log_;
  std::unique_ptr<Slot> slot_;
  bool keep_alive_ = false;
  unsigned version_ = 11;
};

}  // namespace

Result<Request> parse_request(std::string_view raw, const ServerOptions& limits) {
  bhttp::request_parser<bhttp::string_body> parser;
  parser.body_limit(limits.max_body_bytes);
  parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
  parser.eager(true);
  beast::error_code ec;
  std::size_t used = 0;
  while (used < raw.size() && !parser.is_done()) {
    const std::size_t n = parser.put(asio::const_buffer(raw.data() + used, raw.size() - used), ec);
    if (ec == bhttp::error::need_more && n == 0) break;
    if (ec && ec != bhttp::error::need_more) {
      return make_error(Errc::invalid_argument, "request: " + ec.message());
    }
    if (n == 0) break;
    used += n;
  }
  if (!parser.is_done()) {
    parser.put_eof(ec);
    if (ec || !parser.is_done()) return make_error(Errc::invalid_argument, "request: incomplete");
  }
  return to_request(parser.get(), tcp::endpoint{});
}

const std::string* Request::param(std::string_view name) const {
  for (const auto& [k, v] : query) {
    if (k == name) return &v;
  }
  return nullptr;
}

struct Server::Impl {
  ServerOptions options;
  Handler handler;
  Logger& log;
  std::optional<asio::ssl::context> tls;  // before io: sessions die with io
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  std::thread thread;
  std::uint16_t port = 0;
  std::shared_ptr<Parking> parking = std::make_shared<Parking>();
  std::shared_ptr<Occupancy> occupancy = std::make_shared<Occupancy>();
  asio::steady_timer retry{io};
  std::chrono::milliseconds backoff{0};
  std::atomic<std::uint64_t> accept_failures{0}, refused{0};

  Impl(const ServerOptions& o, Handler h, Logger& l) : options(o), handler(std::move(h)), log(l) {}

  // The key a connection counts under for the per-client cap: one for all of
  // loopback (every 127.x.y.z is the same machine), an IPv6 address's /64
  // (one host's share of addresses), an IPv4 address.
  static std::string client_key(const asio::ip::address& a) {
    if (a.is_loopback() ||
        (a.is_v6() && a.to_v6().is_v4_mapped() && a.to_v6().to_v4().is_loopback())) {
      return "loopback";
    }
    if (a.is_v6() && !a.to_v6().is_v4_mapped()) {
      auto bytes = a.to_v6().to_bytes();
      std::fill(bytes.begin() + 8, bytes.end(), 0);
      return asio::ip::address_v6(bytes).to_string() + "/64";
    }
    return a.is_v6() ? a.to_v6().to_v4().to_string() : a.to_string();
  }

  // A place for a connection from client, or nullptr when a cap is reached.
  std::unique_ptr<Slot> take_slot(const std::string& client) {
    std::lock_guard lock(occupancy->mutex);
    std::size_t& mine = occupancy->per_client[client];
    if (occupancy->total >= options.max_connections || mine >= options.max_connections_per_client) {
      if (mine == 0) occupancy->per_client.erase(client);
      return nullptr;
    }
    ++occupancy->total;
    ++mine;
    return std::make_unique<Slot>(occupancy, client);
  }

  void accept() {
    acceptor.async_accept(asio::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (ec) {
        // EMFILE, ENFILE, ENOBUFS...: the condition lasts, so retrying at
        // once would spin. Wait, longer each time, and say so.
        accept_failures.fetch_add(1, std::memory_order_relaxed);
        backoff = std::min(std::chrono::milliseconds(1000),
                           std::max(std::chrono::milliseconds(50), backoff * 2));
        log.warn("http.accept_failed", {{"error", ec.message()},
                                        {"retry_ms", static_cast<std::int64_t>(backoff.count())}});
        retry.expires_after(backoff);
        retry.async_wait([this](beast::error_code wait_ec) {
          if (!wait_ec) accept();
        });
        return;
      }
      backoff = std::chrono::milliseconds(0);
      beast::error_code ignored;
      const std::string client = client_key(socket.remote_endpoint(ignored).address());
      auto slot = take_slot(client);
      if (!slot) {
        // Over a cap: closed before a byte is read.
        if (refused.fetch_add(1, std::memory_order_relaxed) % 1000 == 0) {
          log.warn("http.connection_refused", {{"client", client}});
        }
        socket.close(ignored);
      } else if (tls) {
        std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
            options, handler, parking, log, std::move(slot), std::move(socket), *tls)
            ->start();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(options, handler, parking, log,
                                                     std::move(slot), std::move(socket))
            ->start();
      }
      accept();
    });
  }
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<Server>> Server::start(const ServerOptions& options, Handler handler,
                                              Logger& log) {
  auto impl = std::make_unique<Impl>(options, std::move(handler), log);
  beast::error_code ec;
  auto address = asio::ip::make_address(options.bind, ec);
  if (ec)
    return make_error(Errc::invalid_argument,
                      "bind address '" + options.bind + "': " + ec.message());
  if (!options.tls_cert_file.empty() || !options.tls_key_file.empty()) {
    impl->tls.emplace(asio::ssl::context::tls_server);
    impl->tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                           asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                           asio::ssl::context::no_tlsv1_1);
    impl->tls->use_certificate_chain_file(options.tls_cert_file, ec);
    if (ec) {
      return make_error(Errc::invalid_argument,
                        "TLS certificate " + options.tls_cert_file + ": " + ec.message());
    }
    impl->tls->use_private_key_file(options.tls_key_file, asio::ssl::context::pem, ec);
    if (ec) {
      return make_error(Errc::invalid_argument,
                        "TLS key " + options.tls_key_file + ": " + ec.message());
    }
  }
  tcp::endpoint endpoint(address, options.port);
  auto fail = [&](const char* what) {
    return make_error(Errc::io, std::string(what) + " " + options.bind + ":" +
                                    std::to_string(options.port) + ": " + ec.message());
  };
  impl->acceptor.open(endpoint.protocol(), ec);
  if (ec) return fail("open");
  impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  impl->acceptor.bind(endpoint, ec);
  if (ec) return fail("bind");
  impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen");
  impl->port = impl->acceptor.local_endpoint().port();
  impl->accept();
  Impl* raw = impl.get();
  // A posted task that throws (a handler's are caught where they run) is
  // logged and the loop goes on: run() resumes after the throwing handler.
  impl->thread = std::thread([raw] {
    name_this_thread("http");
    for (;;) {
      if (run_guarded(raw->log, "http.task_threw", [raw] { raw->io.run(); }).ok()) return;
    }
  });
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::~Server() {
  stop();
}

std::uint16_t Server::port() const {
  return impl_->port;
}

void Server::post_after(std::chrono::milliseconds delay, std::function<void()> fn) {
  auto timer = std::make_shared<asio::steady_timer>(impl_->io, delay);
  timer->async_wait([timer, fn = std::move(fn)](beast::error_code ec) {
    if (!ec) fn();
  });
}

std::uint64_t Server::accept_failures() const {
  return impl_->accept_failures.load();
}

std::uint64_t Server::refused_connections() const {
  return impl_->refused.load();
}

void Server::stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  asio::post(impl_->io, [raw = impl_.get()] {
    beast::error_code ignored;
    raw->acceptor.close(ignored);
    raw->retry.cancel();
  });
  impl_->io.stop();
  impl_->thread.join();
  // Close the connections still waiting for an answer while the io_context lives.
  std::unordered_map<std::uint64_t, std::shared_ptr<SessionBase>> waiting;
  {
    std::lock_guard lock(impl_->parking->mutex);
    impl_->parking->stopped = true;
    waiting.swap(impl_->parking->waiting);
  }
  waiting.clear();
}

}  // namespace drover::http
