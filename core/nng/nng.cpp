#include "core/nng/nng.hpp"

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>

#include <arpa/inet.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace drover::nng {
namespace {

constexpr std::size_t kMaxMessageBytes = 16ull << 20;  // proto::kMaxMessageBytes

Error nng_error(const std::string& what, int rv) {
  const Errc code = rv == NNG_ETIMEDOUT ? Errc::timeout : Errc::io;
  return make_error(code, what + ": " + nng_strerror(rv));
}

Status bound_size(nng_socket s, std::size_t max_bytes = kMaxMessageBytes) {
  int rv = nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, max_bytes);
  if (rv != 0) return nng_error("nng set recv-size-max", rv);
  return Ok{};
}

bool is_tls(const std::string& url) {
  return url.rfind("tls+tcp://", 0) == 0;
}

// A TLS configuration NNG holds a reference to once set on an endpoint.
struct TlsConfig {
  nng_tls_config* cfg = nullptr;
  ~TlsConfig() {
    if (cfg) nng_tls_config_free(cfg);
  }
};

// TLS 1.2 at least (1.3 where the TLS library has it).
Status tls_versions(nng_tls_config* cfg) {
  int rv = nng_tls_config_version(cfg, NNG_TLS_1_2, NNG_TLS_1_3);
  if (rv == NNG_ENOTSUP) rv = nng_tls_config_version(cfg, NNG_TLS_1_2, NNG_TLS_1_2);
  if (rv != 0) return nng_error("nng tls versions", rv);
  return Ok{};
}

Status server_tls(nng_listener l, const std::string& url, const std::optional<TlsServer>& tls) {
  if (!is_tls(url)) return Ok{};
  if (!tls || tls->cert_pem.empty() || tls->key_pem.empty()) {
    return make_error(Errc::invalid_argument,
                      "listen " + url + ": a tls+tcp:// listener needs a certificate and key");
  }
  TlsConfig c;
  int rv = nng_tls_config_alloc(&c.cfg, NNG_TLS_MODE_SERVER);
  if (rv != 0) return nng_error("nng tls config", rv);
  rv = nng_tls_config_own_cert(c.cfg, tls->cert_pem.c_str(), tls->key_pem.c_str(), nullptr);
  if (rv != 0) {
    return make_error(Errc::invalid_argument,
                      "listen " + url + ": the TLS certificate or key is not usable (" +
                          nng_strerror(rv) + "); both must be PEM and the key unencrypted");
  }
  DROVER_TRY(tls_versions(c.cfg));
  rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, c.cfg);
  if (rv != 0) return nng_error("nng listener tls " + url, rv);
  return Ok{};
}

Status client_tls(nng_dialer d, const std::string& url, const std::optional<TlsClient>& tls) {
  if (!is_tls(url)) return Ok{};
  if (!tls || tls->ca_pem.empty()) {
    return make_error(Errc::invalid_argument,
                      "dial " + url + ": a tls+tcp:// URL needs the CA to pin (tls.ca_file)");
  }
  TlsConfig c;
  int rv = nng_tls_config_alloc(&c.cfg, NNG_TLS_MODE_CLIENT);
  if (rv != 0) return nng_error("nng tls config", rv);
  rv = nng_tls_config_ca_chain(c.cfg, tls->ca_pem.c_str(), nullptr);
  if (rv != 0) {
    return make_error(Errc::invalid_argument, "dial " + url + ": the pinned CA is not usable (" +
                                                  nng_strerror(rv) + "); it must be PEM");
  }
  const std::string name = tls->server_name.empty() ? url_host(url) : tls->server_name;
  rv = nng_tls_config_server_name(c.cfg, name.c_str());
  if (rv != 0) return nng_error("nng tls server name", rv);
  rv = nng_tls_config_auth_mode(c.cfg, NNG_TLS_AUTH_MODE_REQUIRED);
  if (rv != 0) return nng_error("nng tls auth mode", rv);
  DROVER_TRY(tls_versions(c.cfg));
  rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, c.cfg);
  if (rv != 0) return nng_error("nng dialer tls " + url, rv);
  return Ok{};
}

// Listens on url; returns the listener (for the bound port).
Result<nng_listener> start_listener(nng_socket s, const std::string& url,
                                    const std::optional<TlsServer>& tls = std::nullopt,
                                    std::size_t max_message_bytes = 0) {
  nng_listener l;
  int rv = nng_listener_create(&l, s, url.c_str());
  if (rv != 0) return nng_error("nng listen " + url, rv);
  DROVER_TRY(server_tls(l, url, tls));
  if (max_message_bytes != 0) {
    rv = nng_listener_set_size(l, NNG_OPT_RECVMAXSZ, max_message_bytes);
    if (rv != 0) return nng_error("nng listener recv-size-max " + url, rv);
  }
  rv = nng_listener_start(l, 0);
  if (rv != 0) return nng_error("nng listen " + url, rv);
  return l;
}

// Dials url in the background (reconnecting until closed).
Status start_dialer(nng_socket s, const std::string& url, const std::optional<TlsClient>& tls) {
  nng_dialer d;
  int rv = nng_dialer_create(&d, s, url.c_str());
  if (rv != 0) return nng_error("nng dial " + url, rv);
  DROVER_TRY(client_tls(d, url, tls));
  rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK);
  if (rv != 0) return nng_error("nng dial " + url, rv);
  return Ok{};
}

std::uint16_t bound_port(nng_listener l) {
  int port = 0;
  if (nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) != 0) return 0;
  return static_cast<std::uint16_t>(port);
}

// "tcp://127.0.0.1:0" with the port replaced by the bound one.
std::string with_port(const std::string& url, std::uint16_t port) {
  if (port == 0) return url;
  auto colon = url.rfind(':');
  if (colon == std::string::npos) return url;
  return url.substr(0, colon + 1) + std::to_string(port);
}

}  // namespace

std::string url_host(const std::string& url) {
  std::string_view rest;
  for (std::string_view scheme : {"tcp://", "tls+tcp://", "tcp4://", "tcp6://"}) {
    if (url.rfind(scheme, 0) == 0) rest = std::string_view(url).substr(scheme.size());
  }
  if (rest.empty()) return "";
  if (rest.front() == '[') {
    const auto close = rest.find(']');
    return close == std::string_view::npos ? "" : std::string(rest.substr(1, close - 1));
  }
  return std::string(rest.substr(0, rest.rfind(':')));
}

Status check_transport(const std::string& url, bool allow_plaintext) {
  if (is_tls(url) || url.rfind("ipc://", 0) == 0 || url.rfind("inproc://", 0) == 0) return Ok{};
  if (url.rfind("tcp://", 0) != 0) {
    return make_error(Errc::invalid_argument,
                      "URL '" + url + "': use tls+tcp://, tcp:// (loopback) or ipc://");
  }
  const std::string host = url_host(url);
  in_addr v4{};
  const bool loopback =
      host == "localhost" || host == "::1" ||
      (inet_pton(AF_INET, host.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127);
  if (loopback || allow_plaintext) return Ok{};
  return make_error(Errc::refused, "URL '" + url +
                                       "' is plain TCP beyond loopback: use tls+tcp:// (with tls "
                                       "settings), or set allow_plaintext to accept it");
}

// ---- Client ----

// A dialer of NNG 1.5.2 can stop reconnecting for good: seen on a TLS
// agent link after three coordinator restarts within a second (one agent of
// three sent nothing for 90 s, every send timing out for want of a pipe,
// while the others reconnected at once). After kRedialAfter sends in a row
// that found no connection, the socket is closed and dialed afresh.
constexpr int kRedialAfter = 3;

struct Client::Impl {
  nng_socket sock = NNG_SOCKET_INITIALIZER;
  std::string url;
  std::optional<TlsClient> tls;
  int unsent = 0;  // sends in a row that timed out (no connection to send on)
  std::mutex mu;   // serializes request/answer pairs on the REQ socket
  ~Impl() { nng_close(sock); }

  Status open() {
    int rv = nng_req0_open(&sock);
    if (rv != 0) return nng_error("nng req open", rv);
    DROVER_TRY(bound_size(sock));
    // A lost request is retried by the caller, with its own backoff.
    nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_ms(sock, NNG_OPT_RECONNMINT, 50);
    nng_socket_set_ms(sock, NNG_OPT_RECONNMAXT, 2000);
    return start_dialer(sock, url, tls);
  }
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::dial(const std::string& url,
                                             const std::optional<TlsClient>& tls) {
  auto impl = std::make_unique<Impl>();
  impl->url = url;
  impl->tls = tls;
  DROVER_TRY(impl->open());
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Result<std::string> Client::request(std::string_view bytes, std::chrono::milliseconds timeout) {
  std::lock_guard lock(impl_->mu);
  if (impl_->unsent >= kRedialAfter) {
    nng_close(impl_->sock);
    impl_->sock = NNG_SOCKET_INITIALIZER;
    impl_->unsent = 0;
    ++redials_;
    if (Status st = impl_->open(); !st.ok()) return st.error().context("nng dial again");
  }
  const auto ms = static_cast<nng_duration>(timeout.count());
  nng_socket_set_ms(impl_->sock, NNG_OPT_SENDTIMEO, ms);
  nng_socket_set_ms(impl_->sock, NNG_OPT_RECVTIMEO, ms);
  int rv = nng_send(impl_->sock, const_cast<char*>(bytes.data()), bytes.size(), 0);
  if (rv == NNG_ETIMEDOUT) ++impl_->unsent;
  if (rv != 0) return nng_error("nng send", rv);
  impl_->unsent = 0;
  char* buf = nullptr;
  std::size_t size = 0;
  rv = nng_recv(impl_->sock, &buf, &size, NNG_FLAG_ALLOC);
  if (rv != 0) return nng_error("nng receive answer", rv);
  std::string out(buf, size);
  nng_free(buf, size);
  return out;
}

// ---- Server ----

struct WorkerState;

// Shared by the server and every pending reply: once closed, replies are
// dropped instead of touching freed contexts.
struct ReplyGuard {
  std::mutex mu;
  bool closed = false;
};

// Connections open, in total and per address, for ServerLimits.
struct PipeCounts {
  ServerLimits limits;
  std::mutex mu;  // guards the rest
  std::size_t total = 0;
  std::unordered_map<std::string, std::size_t> per_address;
  std::unordered_map<std::uint32_t, std::string> open;  // pipe id -> its address key
  std::atomic<std::uint64_t> refused{0};
};

struct Server::Impl {
  nng_socket sock = NNG_SOCKET_INITIALIZER;
  PipeCounts pipes;
  std::vector<std::pair<int, std::size_t>> listeners;  // NNG listener id -> endpoint
  std::vector<std::string> urls;
  EndpointHandler handler;
  std::shared_ptr<ReplyGuard> guard = std::make_shared<ReplyGuard>();
  std::vector<std::unique_ptr<WorkerState>> workers;
};

struct WorkerState {
  enum class Step { receiving, handling, sending } step = Step::receiving;
  nng_aio* aio = nullptr;
  nng_ctx ctx;
  nng_msg* request = nullptr;  // held while the handler has not replied
  bool in_callback = false;    // on_worker is running the handler
  bool answered = false;       // an answer waits to be sent
  std::string answer;
  Server::EndpointHandler* handler = nullptr;
  const std::vector<std::pair<int, std::size_t>>* listeners = nullptr;
  std::shared_ptr<ReplyGuard> guard;
};

namespace {

// Under the guard's lock: the answer replaces the request in its message.
void send_answer(WorkerState* w) {
  nng_msg* msg = w->request;
  w->request = nullptr;
  w->answered = false;
  nng_msg_clear(msg);
  nng_msg_append(msg, w->answer.data(), w->answer.size());
  std::string().swap(w->answer);
  nng_aio_set_msg(w->aio, msg);
  w->step = WorkerState::Step::sending;
  nng_ctx_send(w->ctx, w->aio);
}

void on_worker(void* arg) {
  auto* w = static_cast<WorkerState*>(arg);
  if (const int rv = nng_aio_result(w->aio); rv != 0) {
    // A failed send leaves its message with us: drop it. Then listen again,
    // unless the server is shutting down.
    if (w->step == WorkerState::Step::sending) {
      nng_msg* m = nng_aio_get_msg(w->aio);
      nng_aio_set_msg(w->aio, nullptr);
      if (m) nng_msg_free(m);
    }
    if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) return;
    w->step = WorkerState::Step::receiving;
    nng_ctx_recv(w->ctx, w->aio);
    return;
  }
  if (w->step == WorkerState::Step::receiving) {
    {
      std::lock_guard lock(w->guard->mu);
      w->request = nng_aio_get_msg(w->aio);
      nng_aio_set_msg(w->aio, nullptr);
      w->step = WorkerState::Step::handling;
      w->in_callback = true;
    }
    std::string_view req(static_cast<const char*>(nng_msg_body(w->request)),
                         nng_msg_len(w->request));
    Server::Reply reply = [w, guard = w->guard](std::string answer) {
      std::lock_guard lock(guard->mu);
      if (guard->closed || w->step != WorkerState::Step::handling || w->answered) return;
      w->answer = std::move(answer);
      w->answered = true;
      // An answer given while this context's callback still runs is sent
      // when the callback ends (an aio is not restarted from two threads).
      if (!w->in_callback) send_answer(w);
    };
    // A handler that throws must not end the process from NNG's thread: the
    // request is answered with nothing (the client sees an undecodable
    // answer) and the context listens again. Handlers answer their own
    // errors; this is the last resort.
    // A request whose connection is already gone names no listener: then
    // it counts as none of them (SIZE_MAX), never as the first.
    std::size_t endpoint = SIZE_MAX;
    const int listener = nng_listener_id(nng_pipe_listener(nng_msg_get_pipe(w->request)));
    for (const auto& [id, index] : *w->listeners) {
      if (id == listener) endpoint = index;
    }
    try {
      (*w->handler)(req, endpoint, reply);
    } catch (...) {
      reply(std::string());
    }
    std::lock_guard lock(w->guard->mu);
    w->in_callback = false;
    if (w->answered && !w->guard->closed) send_answer(w);
  } else {
    w->step = WorkerState::Step::receiving;
    nng_ctx_recv(w->ctx, w->aio);
  }
}

// The key a connection counts under: "" for loopback (never counted), the
// IPv4 address, or an IPv6 address's /64.
std::string address_key(nng_pipe p) {
  nng_sockaddr sa;
  if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) != 0) return "?";
  if (sa.s_family == NNG_AF_INET) {
    const std::uint32_t a = ntohl(sa.s_in.sa_addr);
    if ((a >> 24) == 127) return "";
    return "4:" + std::to_string(a);
  }
  if (sa.s_family == NNG_AF_INET6) {
    static constexpr std::uint8_t kLoopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (std::memcmp(sa.s_in6.sa_addr, kLoopback, 16) == 0) return "";
    return "6:" + std::string(reinterpret_cast<const char*>(sa.s_in6.sa_addr), 8);
  }
  return "";  // ipc, inproc: local
}

void on_pipe(nng_pipe p, nng_pipe_ev ev, void* arg) {
  auto* counts = static_cast<PipeCounts*>(arg);
  const std::uint32_t id = static_cast<std::uint32_t>(nng_pipe_id(p));
  std::lock_guard lock(counts->mu);
  if (ev == NNG_PIPE_EV_REM_POST) {
    auto it = counts->open.find(id);
    if (it == counts->open.end()) return;
    --counts->total;
    if (!it->second.empty() && --counts->per_address[it->second] == 0) {
      counts->per_address.erase(it->second);
    }
    counts->open.erase(it);
    return;
  }
  if (ev != NNG_PIPE_EV_ADD_PRE) return;
  const ServerLimits& l = counts->limits;
  const std::string key = address_key(p);
  const bool over_total = l.max_connections != 0 && counts->total >= l.max_connections;
  const bool over_address = l.max_connections_per_address != 0 && !key.empty() &&
                            counts->per_address[key] >= l.max_connections_per_address;
  if (over_total || over_address) {
    if (!key.empty() && counts->per_address[key] == 0) counts->per_address.erase(key);
    counts->refused.fetch_add(1, std::memory_order_relaxed);
    nng_pipe_close(p);
    return;
  }
  ++counts->total;
  if (!key.empty()) ++counts->per_address[key];
  counts->open[id] = key;
}

}  // namespace

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

std::uint64_t Server::refused_connections() const {
  return impl_->pipes.refused.load();
}

Server::~Server() {
  {
    // No reply starts a send from now on.
    std::lock_guard lock(impl_->guard->mu);
    impl_->guard->closed = true;
  }
  // Stop every worker (waiting for a callback in progress), then close.
  for (auto& w : impl_->workers) {
    if (w->aio) nng_aio_stop(w->aio);
  }
  for (auto& w : impl_->workers) {
    if (w->aio) {
      // A message still attached (an answer whose send never started) is ours.
      if (nng_msg* m = nng_aio_get_msg(w->aio); m && w->step == WorkerState::Step::sending) {
        nng_msg_free(m);
      }
      nng_aio_free(w->aio);
    }
    if (w->request) nng_msg_free(w->request);  // never answered
    nng_ctx_close(w->ctx);
  }
  nng_close(impl_->sock);
}

Result<std::unique_ptr<Server>> Server::listen(const std::string& url, Handler handler,
                                               int workers) {
  return listen_async(
      url,
      [handler = std::move(handler)](std::string_view request, Reply reply) {
        reply(handler(request));
      },
      workers);
}

Result<std::unique_ptr<Server>> Server::listen_async(const std::string& url, AsyncHandler handler,
                                                     int workers, const ServerLimits& limits) {
  return listen_endpoints(
      {{url, limits.max_message_bytes}},
      [handler = std::move(handler)](std::string_view request, std::size_t, Reply reply) {
        handler(request, std::move(reply));
      },
      workers, limits);
}

Result<std::unique_ptr<Server>> Server::listen_endpoints(const std::vector<Endpoint>& endpoints,
                                                         EndpointHandler handler, int workers,
                                                         const ServerLimits& limits,
                                                         const std::optional<TlsServer>& tls) {
  if (endpoints.empty()) return make_error(Errc::invalid_argument, "a server needs a URL");
  auto impl = std::make_unique<Impl>();
  impl->handler = std::move(handler);
  impl->pipes.limits = limits;
  int rv = nng_rep0_open(&impl->sock);
  if (rv != 0) return nng_error("nng rep open", rv);
  std::unique_ptr<Server> server(new Server(std::move(impl)));
  Impl& s = *server->impl_;
  DROVER_TRY(bound_size(s.sock, limits.max_message_bytes));
  for (nng_pipe_ev ev : {NNG_PIPE_EV_ADD_PRE, NNG_PIPE_EV_REM_POST}) {
    rv = nng_pipe_notify(s.sock, ev, on_pipe, &s.pipes);
    if (rv != 0) return nng_error("nng pipe notify", rv);
  }
  for (int i = 0; i < std::max(1, workers); ++i) {
    auto w = std::make_unique<WorkerState>();
    w->handler = &s.handler;
    w->listeners = &s.listeners;
    w->guard = s.guard;
    rv = nng_ctx_open(&w->ctx, s.sock);
    if (rv != 0) return nng_error("nng context open", rv);
    rv = nng_aio_alloc(&w->aio, on_worker, w.get());
    if (rv != 0) return nng_error("nng aio alloc", rv);
    s.workers.push_back(std::move(w));
  }
  // Every listener is recorded before any worker receives.
  for (std::size_t i = 0; i < endpoints.size(); ++i) {
    const Endpoint& e = endpoints[i];
    DROVER_ASSIGN(nng_listener l,
                  start_listener(s.sock, e.url, tls,
                                 std::min(e.max_message_bytes, limits.max_message_bytes)));
    s.listeners.emplace_back(nng_listener_id(l), i);
    s.urls.push_back(with_port(e.url, bound_port(l)));
  }
  for (auto& w : s.workers) nng_ctx_recv(w->ctx, w->aio);
  return server;
}

std::string Server::url() const {
  return impl_->urls.front();
}

std::vector<std::string> Server::urls() const {
  return impl_->urls;
}

// ---- Publisher ----

struct Publisher::Impl {
  nng_socket sock = NNG_SOCKET_INITIALIZER;
  std::vector<std::string> urls;
  ~Impl() { nng_close(sock); }
};

Publisher::Publisher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Publisher::~Publisher() = default;

Result<std::unique_ptr<Publisher>> Publisher::listen(const std::vector<std::string>& urls,
                                                     const std::optional<TlsServer>& tls) {
  if (urls.empty()) return make_error(Errc::invalid_argument, "a publisher needs a URL");
  auto impl = std::make_unique<Impl>();
  int rv = nng_pub0_open(&impl->sock);
  if (rv != 0) return nng_error("nng pub open", rv);
  for (const std::string& url : urls) {
    DROVER_ASSIGN(nng_listener l, start_listener(impl->sock, url, tls));
    impl->urls.push_back(with_port(url, bound_port(l)));
  }
  return std::unique_ptr<Publisher>(new Publisher(std::move(impl)));
}

std::string Publisher::url() const {
  return impl_->urls.front();
}

std::vector<std::string> Publisher::urls() const {
  return impl_->urls;
}

Status Publisher::publish(std::string_view bytes) {
  int rv = nng_send(impl_->sock, const_cast<char*>(bytes.data()), bytes.size(), NNG_FLAG_NONBLOCK);
  if (rv != 0) return nng_error("nng publish", rv);
  return Ok{};
}

// ---- Subscriber ----

struct Subscriber::Impl {
  nng_socket sock = NNG_SOCKET_INITIALIZER;
  ~Impl() { nng_close(sock); }
};

Subscriber::Subscriber(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Subscriber::~Subscriber() = default;

Result<std::unique_ptr<Subscriber>> Subscriber::dial(const std::string& url,
                                                     std::string_view prefix,
                                                     const std::optional<TlsClient>& tls) {
  auto impl = std::make_unique<Impl>();
  int rv = nng_sub0_open(&impl->sock);
  if (rv != 0) return nng_error("nng sub open", rv);
  DROVER_TRY(bound_size(impl->sock));
  rv = nng_socket_set(impl->sock, NNG_OPT_SUB_SUBSCRIBE, prefix.data(), prefix.size());
  if (rv != 0) return nng_error("nng subscribe", rv);
  nng_socket_set_ms(impl->sock, NNG_OPT_RECONNMINT, 50);
  nng_socket_set_ms(impl->sock, NNG_OPT_RECONNMAXT, 2000);
  DROVER_TRY(start_dialer(impl->sock, url, tls));
  return std::unique_ptr<Subscriber>(new Subscriber(std::move(impl)));
}

void Subscriber::close() {
  nng_close(impl_->sock);  // a second close (the destructor's) only returns NNG_ECLOSED
}

Result<std::optional<std::string>> Subscriber::receive(std::chrono::milliseconds timeout) {
  nng_socket_set_ms(impl_->sock, NNG_OPT_RECVTIMEO, static_cast<nng_duration>(timeout.count()));
  char* buf = nullptr;
  std::size_t size = 0;
  int rv = nng_recv(impl_->sock, &buf, &size, NNG_FLAG_ALLOC);
  if (rv == NNG_ETIMEDOUT) return std::optional<std::string>();
  if (rv != 0) return nng_error("nng receive announcement", rv);
  std::string out(buf, size);
  nng_free(buf, size);
  return std::optional<std::string>(std::move(out));
}

}  // namespace drover::nng
