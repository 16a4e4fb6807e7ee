#include "chaos/fleet/relay.hpp"

#include <arpa/inet.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <deque>

namespace drover::chaos {

namespace {

using Clock = std::chrono::steady_clock;

int connect_to(const sockaddr_in& to) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool parse_address(const std::string& text, sockaddr_in* out) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  std::memset(out, 0, sizeof *out);
  out->sin_family = AF_INET;
  out->sin_port = htons(static_cast<std::uint16_t>(std::atoi(text.c_str() + colon + 1)));
  return ::inet_pton(AF_INET, text.substr(0, colon).c_str(), &out->sin_addr) == 1;
}

}  // namespace

std::unique_ptr<Relay> Relay::start(const Options& o, std::string* why) {
  std::unique_ptr<Relay> r(new Relay());
  r->o_ = o;
  // The listening socket is made inside the namespace (a socket stays in the
  // namespace it was made in, whichever thread uses it later).
  std::string failure;
  std::thread maker([&] {
    if (o.netns_fd >= 0 && ::setns(o.netns_fd, CLONE_NEWNET) != 0) {
      failure = std::string("setns: ") + std::strerror(errno);
      return;
    }
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in any{};
    any.sin_family = AF_INET;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0 ||
        ::listen(fd, 128) != 0) {
      failure = std::string("listen: ") + std::strerror(errno);
      if (fd >= 0) ::close(fd);
      return;
    }
    socklen_t len = sizeof any;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&any), &len);
    r->listener_ = fd;
    r->port_ = ntohs(any.sin_port);
  });
  maker.join();
  if (!failure.empty()) {
    *why = failure;
    return nullptr;
  }
  Relay* self = r.get();
  r->acceptor_ = std::thread([self] {
    if (self->o_.netns_fd >= 0) (void)::setns(self->o_.netns_fd, CLONE_NEWNET);
    self->accept_loop();
  });
  return r;
}

Relay::~Relay() {
  stopping_ = true;
  if (listener_ >= 0) ::shutdown(listener_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  {
    std::lock_guard lock(mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
  }
  // The threads end once their sockets are shut down; none is added now.
  for (auto& t : threads_) t.join();
  for (int fd : fds_) ::close(fd);
  if (listener_ >= 0) ::close(listener_);
}

void Relay::accept_loop() {
  while (!stopping_) {
    const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) {
      if (stopping_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // out of descriptors: back off
      continue;
    }
    std::lock_guard lock(mu_);
    if (stopping_) {
      ::close(client);
      return;
    }
    fds_.push_back(client);
    threads_.emplace_back([this, client] { serve(client); });
  }
}

void Relay::serve(int client) {
  if (o_.netns_fd >= 0) (void)::setns(o_.netns_fd, CLONE_NEWNET);
  sockaddr_in to{};
  bool known = false;
  if (o_.upstream.empty()) {
    socklen_t len = sizeof to;
    known = ::getsockopt(client, SOL_IP, SO_ORIGINAL_DST, &to, &len) == 0 &&
            ntohs(to.sin_port) != port_;  // a direct connection would loop back here
  } else {
    known = parse_address(o_.upstream, &to);
  }
  const int upstream = known ? connect_to(to) : -1;
  if (upstream < 0) {
    ++refused_;
    ::shutdown(client, SHUT_RDWR);  // closed with the others at destruction
    return;
  }
  ++connections_;
  {
    std::lock_guard lock(mu_);
    fds_.push_back(upstream);
    if (stopping_) ::shutdown(upstream, SHUT_RDWR);
  }
  std::thread back([this, upstream, client] { pump(upstream, client); });
  pump(client, upstream);
  back.join();
}

// Copies from -> to, each chunk held for the delay after it was read. At
// most kHeldBytes wait at once: past that the relay stops reading, and TCP's
// own flow control slows the sender, as a slow link would.
void Relay::pump(int from, int to) {
  constexpr std::size_t kHeldBytes = 8 << 20;
  struct Chunk {
    Clock::time_point due;
    std::string bytes;
  };
  std::mutex mu;
  std::condition_variable cv, room;
  std::deque<Chunk> queue;
  std::size_t held_bytes = 0;
  bool done = false, broken = false;
  std::thread writer([&] {
    for (;;) {
      Chunk c;
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return done || !queue.empty(); });
        if (queue.empty()) break;
        c = std::move(queue.front());
        queue.pop_front();
        held_bytes -= c.bytes.size();
      }
      room.notify_one();
      std::this_thread::sleep_until(c.due);  // the delay this relay exists to add
      const auto held =
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - (c.due - o_.delay))
              .count();
      if (held > held_max_ms_) held_max_ms_ = held;
      if (held_min_ms_ < 0 || held < held_min_ms_) held_min_ms_ = held;
      std::size_t off = 0;
      while (off < c.bytes.size()) {
        const ssize_t n = ::send(to, c.bytes.data() + off, c.bytes.size() - off, MSG_NOSIGNAL);
        if (n <= 0) {
          ::shutdown(from, SHUT_RDWR);  // the other side is gone: stop reading too
          {
            std::lock_guard lock(mu);
            broken = true;
          }
          room.notify_one();
          return;
        }
        off += static_cast<std::size_t>(n);
      }
    }
    ::shutdown(to, SHUT_WR);
  });
  char buf[64 << 10];
  for (;;) {
    const ssize_t n = ::recv(from, buf, sizeof buf, 0);
    if (n <= 0) break;
    std::unique_lock lock(mu);
    room.wait(lock, [&] { return broken || held_bytes < kHeldBytes; });
    if (broken) break;
    held_bytes += static_cast<std::size_t>(n);
    queue.push_back({Clock::now() + o_.delay, std::string(buf, static_cast<std::size_t>(n))});
    cv.notify_one();
  }
  {
    std::lock_guard lock(mu);
    done = true;
  }
  cv.notify_one();
  writer.join();
}

}  // namespace drover::chaos
