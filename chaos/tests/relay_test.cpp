// The delay relay (chaos/fleet/relay.hpp): every chunk is held for the
// delay each way, bytes arrive intact and in order, and a closed side closes
// the other.
#include "chaos/fleet/relay.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <thread>

namespace drover::chaos {
namespace {

using namespace std::chrono_literals;

// An echo server on 127.0.0.1 that answers every byte until its client closes.
class Echo {
 public:
  Echo() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 4);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char buf[4096];
      for (ssize_t n; (n = ::recv(c, buf, sizeof buf, 0)) > 0;) ::send(c, buf, n, MSG_NOSIGNAL);
      ::close(c);
    });
  }
  ~Echo() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

int dial(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Reads exactly n bytes, waiting at most timeout in all; "" on EOF or timeout.
std::string read_n(int fd, std::size_t n, std::chrono::milliseconds timeout) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out.size() < n) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return "";
    char buf[4096];
    const ssize_t got = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), 0);
    if (got <= 0) return "";
    out.append(buf, static_cast<std::size_t>(got));
  }
  return out;
}

TEST(ChaosRelay, EveryChunkIsHeldForTheDelayEachWayAndArrivesIntact) {
  Echo echo;
  Relay::Options o;
  o.delay = 150ms;
  o.upstream = "127.0.0.1:" + std::to_string(echo.port());
  std::string why;
  auto relay = Relay::start(o, &why);
  ASSERT_TRUE(relay) << why;
  const int c = dial(relay->port());
  ASSERT_GE(c, 0);
  for (int round = 0; round < 3; ++round) {
    const std::string msg = "ping " + std::to_string(round) + std::string(1000, 'x');
    const auto sent = std::chrono::steady_clock::now();
    ASSERT_EQ(::send(c, msg.data(), msg.size(), 0), static_cast<ssize_t>(msg.size()));
    EXPECT_EQ(read_n(c, msg.size(), 5s), msg);
    // Out through the relay and back: held twice.
    EXPECT_GE(std::chrono::steady_clock::now() - sent, 300ms);
  }
  EXPECT_GE(relay->held_min_ms(), 150);
  EXPECT_EQ(relay->connections(), 1u);
  // The client closes: the relay closes toward the echo, which closes back.
  ::shutdown(c, SHUT_WR);
  EXPECT_EQ(read_n(c, 1, 5s), "");
  ::close(c);
}

TEST(ChaosRelay, AnUnreachableUpstreamClosesTheClientAndIsCounted) {
  Relay::Options o;
  o.delay = 10ms;
  o.upstream = "127.0.0.1:1";  // nothing listens on port 1
  std::string why;
  auto relay = Relay::start(o, &why);
  ASSERT_TRUE(relay) << why;
  const int c = dial(relay->port());
  ASSERT_GE(c, 0);
  EXPECT_EQ(read_n(c, 1, 5s), "");
  ::close(c);
  EXPECT_EQ(relay->refused(), 1u);
}

// An upstream that never reads: the relay holds a bounded amount and then
// stops reading, so the sender stalls as it would on a slow link instead of
// the relay queueing without end.
TEST(ChaosRelay, AnUpstreamThatDoesNotReadStallsTheSenderAtABound) {
  // Listening but never accepting: the kernel completes the connection and
  // buffers what arrives until the receive buffer is full.
  const int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(l, 4), 0);
  socklen_t len = sizeof a;
  ::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len);
  Relay::Options o;
  o.delay = 10ms;
  o.upstream = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  std::string why;
  auto relay = Relay::start(o, &why);
  ASSERT_TRUE(relay) << why;
  const int c = dial(relay->port());
  ASSERT_GE(c, 0);
  // What the kernel may buffer on both legs: each side's send and receive
  // buffers at their largest (tcp_wmem, tcp_rmem), besides the relay's 8 MiB.
  constexpr std::size_t kMiB = 1 << 20;
  auto largest = [](const char* path) {
    std::ifstream in(path);
    std::size_t lo = 0, mid = 0, hi = 0;
    in >> lo >> mid >> hi;
    return hi > 0 ? hi : 16 * kMiB;
  };
  const std::size_t bound =
      8 * kMiB +
      2 * (largest("/proc/sys/net/ipv4/tcp_wmem") + largest("/proc/sys/net/ipv4/tcp_rmem")) +
      4 * kMiB;
  // Send until a second passes without room to send more (or well past the bound).
  const std::size_t kTry = bound + 32 * kMiB;
  const std::string block(64 << 10, 'x');
  std::size_t sent = 0;
  while (sent < kTry) {
    pollfd p{c, POLLOUT, 0};
    if (::poll(&p, 1, 1000) <= 0) break;
    const ssize_t n = ::send(c, block.data(), block.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN) break;
    if (n > 0) sent += static_cast<std::size_t>(n);
  }
  EXPECT_LT(sent, bound);
  EXPECT_GT(sent, 8 * kMiB);
  ::close(c);
  ::close(l);
}

}  // namespace
}  // namespace drover::chaos
