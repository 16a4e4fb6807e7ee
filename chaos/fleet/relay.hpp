// Latency on a link, which this kernel cannot add (no netem): a TCP relay
// that holds every chunk it forwards for a fixed delay, each way
// (docs/CHAOS.md, "The network").
//
// nftables redirects the flows to delay to the relay's port (a `redirect`
// in a nat prerouting chain of the namespace the relay listens in); the relay
// reads each connection's original destination (SO_ORIGINAL_DST) and
// connects there itself. Without a redirect (a test), `upstream` names where
// every connection goes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace drover::chaos {

class Relay {
 public:
  struct Options {
    std::chrono::milliseconds delay{0};
    std::string upstream;  // "HOST:PORT", or "" for each connection's original destination
    int netns_fd = -1;     // listen (and connect) inside this namespace; -1: this one
  };
  // Listens on 0.0.0.0 (port 0: any); "" in *why when it could not.
  static std::unique_ptr<Relay> start(const Options& o, std::string* why);
  ~Relay();  // closes every connection and joins every thread
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  std::uint16_t port() const { return port_; }
  // Connections relayed so far, and those whose upstream could not be reached.
  std::uint64_t connections() const { return connections_; }
  std::uint64_t refused() const { return refused_; }
  // The longest and shortest a chunk was held (ms), measured by the relay.
  std::int64_t held_max_ms() const { return held_max_ms_; }
  std::int64_t held_min_ms() const { return held_min_ms_; }

 private:
  Relay() = default;
  void accept_loop();
  void serve(int client);
  void pump(int from, int to);

  Options o_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> connections_{0}, refused_{0};
  std::atomic<std::int64_t> held_max_ms_{0}, held_min_ms_{-1};
  std::thread acceptor_;
  std::mutex mu_;  // guards threads_, fds_
  std::vector<std::thread> threads_;
  std::vector<int> fds_;
};

}  // namespace drover::chaos
