// Attacks on drover's HTTP servers (issue 11, item 10; docs/SECURITY.md):
// a client holding many connections, a process out of descriptors, and an
// unauthorized upload. Raw sockets on loopback, so the test controls every
// byte and when it is sent.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <thread>

#include "core/http/http.hpp"
#include "core/metrics/endpoint.hpp"

namespace drover::http {
namespace {

using namespace std::chrono_literals;

// A blocking TCP connection to 127.0.0.1:port (from the loopback address
// `from`), or -1.
int connect_to(std::uint16_t port, const char* from = nullptr) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  if (from != nullptr) {
    sockaddr_in local{};
    local.sin_family = AF_INET;
    ::inet_pton(AF_INET, from, &local.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
      ::close(fd);
      return -1;
    }
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{10, 0};  // a server that never answers fails the test, not hangs it
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

void send_all(int fd, const std::string& bytes) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

// Reads until the peer closes or the status line and headers are in; "" on
// a connection closed (or reset) with nothing sent, "timeout" when nothing
// came.
std::string read_answer(int fd) {
  std::string got;
  char buf[4096];
  while (got.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return got.empty() ? "timeout" : got;
    if (n < 0) return got;  // reset: closed
    if (n == 0) return got;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

std::unique_ptr<Server> ok_server(ServerOptions o = {}) {
  return Server::start(
             o,
             [](const Request&, Responder respond) {
               Response r;
               r.body = "{}";
               respond(std::move(r));
             },
             Logger::discard())
      .value();
}

const std::string kGet = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

// Before: one client could open connections until the process ran out of
// descriptors, each holding memory and a parser.
TEST(HttpAttack, AClientBeyondItsConnectionCapIsClosedAtOnce) {
  ServerOptions o;
  o.max_connections_per_client = 3;
  auto server = ok_server(o);
  std::vector<int> held;
  for (int i = 0; i < 3; ++i) {
    int fd = connect_to(server->port());
    ASSERT_GE(fd, 0);
    send_all(fd, kGet);
    EXPECT_EQ(read_answer(fd).rfind("HTTP/1.1 200", 0), 0u);  // kept alive, still counted
    held.push_back(fd);
  }
  int extra = connect_to(server->port());
  ASSERT_GE(extra, 0);
  send_all(extra, kGet);
  EXPECT_EQ(read_answer(extra), "");  // closed without an answer
  EXPECT_EQ(server->refused_connections(), 1u);
  ::close(extra);
  // A connection given back makes room again.
  ::close(held.back());
  held.pop_back();
  std::string answer;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (answer.rfind("HTTP/1.1 200", 0) != 0 && std::chrono::steady_clock::now() < deadline) {
    int fd = connect_to(server->port());
    ASSERT_GE(fd, 0);
    send_all(fd, kGet);
    answer = read_answer(fd);
    ::close(fd);
  }
  EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer;
  for (int fd : held) ::close(fd);
}

// Found in review: each 127.x.y.z counted as its own client, so one local
// user had 16 million addresses' worth of caps.
TEST(HttpAttack, AllOfLoopbackIsOneClient) {
  ServerOptions o;
  o.max_connections_per_client = 2;
  auto server = ok_server(o);
  int a = connect_to(server->port(), "127.0.0.2"), b = connect_to(server->port(), "127.0.0.3");
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  send_all(a, kGet);
  send_all(b, kGet);
  EXPECT_EQ(read_answer(a).rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(read_answer(b).rfind("HTTP/1.1 200", 0), 0u);
  int c = connect_to(server->port(), "127.9.9.9");
  ASSERT_GE(c, 0);
  send_all(c, kGet);
  EXPECT_EQ(read_answer(c), "");
  for (int fd : {a, b, c}) ::close(fd);
}

TEST(HttpAttack, TheTotalConnectionCapHolds) {
  ServerOptions o;
  o.max_connections = 2;
  auto server = ok_server(o);
  int a = connect_to(server->port()), b = connect_to(server->port());
  send_all(a, kGet);
  send_all(b, kGet);
  EXPECT_EQ(read_answer(a).rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(read_answer(b).rfind("HTTP/1.1 200", 0), 0u);
  int c = connect_to(server->port());
  send_all(c, kGet);
  EXPECT_EQ(read_answer(c), "");
  for (int fd : {a, b, c}) ::close(fd);
}

// Before: an accept that failed with EMFILE was retried at once, forever:
// the I/O thread spun at 100% and served nothing else.
TEST(HttpAttack, OutOfDescriptorsTheAcceptLoopBacksOffInsteadOfSpinning) {
#if defined(__SANITIZE_ADDRESS__)
  // The sanitizers' runtime opens descriptors of its own (UBSan's type
  // checks read the process's maps): with none left it reports errors that
  // are not the server's. The optimized build runs this case.
  GTEST_SKIP() << "needs a process whose every descriptor the test may take";
#endif
  auto server = ok_server();
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  // A limit just above what is open, then every descriptor below it taken:
  // the server cannot accept.
  const int probe = ::dup(0);
  ASSERT_GE(probe, 0);
  ::close(probe);
  rlimit low = old;
  low.rlim_cur = static_cast<rlim_t>(probe) + 64;
  ASSERT_LE(low.rlim_cur, old.rlim_max);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);  // below the limit: taken before the hog
  std::vector<int> hog;
  for (;;) {
    int fd = ::dup(0);
    if (fd < 0) break;
    hog.push_back(fd);
  }
  // Clients come from another process (bash, spawned: no fork of this
  // threaded process), which raises its own limit back and connects.
  const std::string port = std::to_string(server->port());
  const std::string script = "ulimit -Sn " + std::to_string(old.rlim_cur) +
                             " && exec 7<>/dev/tcp/127.0.0.1/" + port + " 8<>/dev/tcp/127.0.0.1/" +
                             port + " 9<>/dev/tcp/127.0.0.1/" + port +
                             " && echo ready && exec sleep 60";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, ready[1], 1);
  const char* argv[] = {"/bin/bash", "-c", script.c_str(), nullptr};
  pid_t child = -1;
  const int spawned = ::posix_spawn(&child, "/bin/bash", &actions, nullptr,
                                    const_cast<char* const*>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(ready[1]);  // bash's end only: a bash that fails closes it, and the read ends
  // Closing it freed a descriptor: taken again, or the server would accept
  // one connection with it, and a success starts its back-off over (the
  // test then timed the short waits; seen twice in CI).
  for (;;) {
    int fd = ::dup(0);
    if (fd < 0) break;
    hog.push_back(fd);
  }
  ASSERT_EQ(spawned, 0);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1) << "the client process did not connect";
  const auto start = std::chrono::steady_clock::now();
  // Failures the server met before this point (the clients connect before
  // they say so): only the waits after them are sure to fall in what is timed.
  const std::uint64_t before = server->accept_failures();
  const auto deadline = start + 20s;
  while (server->accept_failures() < 4 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  const std::uint64_t failures = server->accept_failures();
  for (int fd : hog) ::close(fd);
  ::setrlimit(RLIMIT_NOFILE, &old);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ::close(ready[0]);
  ASSERT_GE(failures, 4u);
  // The server waits 50, 100, then 200 ms after the 1st, 2nd and 3rd failed
  // accept: every whole wait after the failures already seen at the start
  // lies in what is timed (all three, 350 ms, when none was seen).
  std::chrono::milliseconds waited{0};
  for (std::uint64_t k = before + 1; k <= 3; ++k) waited += std::chrono::milliseconds(25 << k);
  EXPECT_GE(elapsed, waited) << failures << " failures, " << before << " before timing";
  // With descriptors back, it serves again.
  auto r = request("GET", "http://127.0.0.1:" + std::to_string(server->port()) + "/", "", 10s);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200);
}

// Before: the body was read before the handler could look at who was
// asking, so anyone could make the server take in max_body_bytes.
TEST(HttpAttack, HeadersAreJudgedBeforeTheBodyIsRead) {
  ServerOptions o;
  o.max_body_bytes = 64 << 20;
  std::atomic<int> handled{0};
  o.check_headers = [](const Request& r) -> std::optional<Response> {
    if (r.headers.count("authorization")) return std::nullopt;
    Response no;
    no.status = 401;
    no.body = R"({"error":"missing bearer token"})";
    return no;
  };
  auto server = Server::start(
                    o,
                    [&](const Request& r, Responder respond) {
                      ++handled;
                      Response res;
                      res.body = std::to_string(r.body.size());
                      respond(std::move(res));
                    },
                    Logger::discard())
                    .value();
  int fd = connect_to(server->port());
  ASSERT_GE(fd, 0);
  // Announces 60 MiB and sends none of it: the answer comes anyway.
  send_all(fd, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 62914560\r\n\r\n");
  const std::string answer = read_answer(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 401", 0), 0u) << answer;
  ::close(fd);
  EXPECT_EQ(handled.load(), 0);
  // An authorized request reads its body and reaches the handler.
  ClientOptions co;
  co.headers.emplace_back("Authorization", "Bearer x");
  auto r = request("POST", "http://127.0.0.1:" + std::to_string(server->port()) + "/upload",
                   std::string(1000, 'b'), co);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->body, "1000");
  EXPECT_EQ(handled.load(), 1);
}

// Issue 18: a daemon's metrics listener faces the scraper's network. A body,
// a header flood, a crawl of paths, a crowd of connections and garbage get
// refusals and cost it nothing; it keeps answering the scraper.
TEST(HttpAttack, TheMetricsListenerRefusesEverythingButAScrape) {
  metrics::Registry registry;
  registry.counter("drover_test_total", "t").inc(3);
  auto server = metrics::serve("127.0.0.1:0", registry, Logger::discard());
  ASSERT_TRUE(server.ok()) << server.error().message;
  const std::uint16_t port = (*server)->port();
  auto ask = [port](const std::string& raw) {
    int fd = connect_to(port);
    if (fd < 0) return std::string("no connection");
    send_all(fd, raw);
    std::string got = read_answer(fd);
    ::close(fd);
    return got;
  };
  auto status_of = [](const std::string& answer) {
    return answer.size() >= 12 ? answer.substr(9, 3) : answer;
  };
  EXPECT_EQ(status_of(ask("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")),
            "413");
  EXPECT_EQ(status_of(ask("PUT /metrics HTTP/1.1\r\nHost: x\r\n\r\n")), "405");
  EXPECT_EQ(status_of(ask("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")), "405");
  EXPECT_EQ(status_of(ask("DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n")), "405");
  for (const char* path :
       {"/", "/status", "/v1/plans", "/metrics/../status", "/metricsX", "/%2e%2e/etc/passwd"}) {
    EXPECT_EQ(status_of(ask(std::string("GET ") + path + " HTTP/1.1\r\nHost: x\r\n\r\n")), "404")
        << path;
  }
  const std::string flood =
      "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(64 << 10, 'a') + "\r\n\r\n";
  const std::string flooded = ask(flood);
  EXPECT_TRUE(flooded.empty() || status_of(flooded)[0] == '4') << flooded.substr(0, 40);
  EXPECT_EQ(status_of(ask("\x16\x03\x01garbage\r\n\r\n")).substr(0, 1), "4");
  // A crowd from one address past its cap is closed at once.
  std::vector<int> crowd;
  for (int i = 0; i < 40; ++i) crowd.push_back(connect_to(port));
  for (int fd : crowd) {
    if (fd >= 0) ::close(fd);
  }
  // And the scraper still gets its scrape.
  // (Each closed connection leaves the server's count when it notices the
  // close: ask until then, up to a deadline.)
  std::string scrape;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (status_of(scrape) != "200" && std::chrono::steady_clock::now() < deadline) {
    scrape = ask("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  }
  EXPECT_EQ(status_of(scrape), "200") << scrape;
}

}  // namespace
}  // namespace drover::http
