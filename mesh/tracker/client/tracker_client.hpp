// Asking the mesh tracker which nodes hold a layer whole: the client side of
// its GET /swarm (docs/FORMATS.md, "Tracker"). The coordinator asks it
// whether a deploy's artifact has reached the seeds before any host fetches.
//
// TrackerClient is the seam; HttpTrackerClient speaks HTTP to a tracker
// (TrackerService, embedded or elsewhere) and FakeTrackerClient answers from
// a table (tests, simulations).
//
// Threads: holders() may block on the network (HttpTrackerClient: at most
// its timeout); implementations are thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/base/result.hpp"
#include "mesh/tracker/swarm_tracker.hpp"

namespace drover::mesh {

class TrackerClient {
 public:
  virtual ~TrackerClient() = default;
  // The nodes holding the whole layer whose torrent has this info-hash (the
  // truncated v2 info-hash, 20 bytes, as 40 hex digits).
  virtual Result<std::vector<Holder>> holders(const std::string& info_hash_hex) = 0;
};

class HttpTrackerClient final : public TrackerClient {
 public:
  // base_url: "http://host:port" of the tracker.
  explicit HttpTrackerClient(std::string base_url,
                             std::chrono::milliseconds timeout = std::chrono::seconds(2))
      : base_url_(std::move(base_url)), timeout_(timeout) {}
  Result<std::vector<Holder>> holders(const std::string& info_hash_hex) override;

 private:
  std::string base_url_;
  std::chrono::milliseconds timeout_;
};

// GET /vouched of the tracker at base_url ("http://host:port") for the holder
// of token: the addresses it may accept connections from (docs/FORMATS.md,
// "Tracker announce"). The error names the tracker's answer (a refused token,
// a tracker that checks none) or what failed; the answer is bounded (at most
// 1,000,000 addresses, each checked to be an IP address).
Result<Vouched> fetch_vouched(const std::string& base_url, const std::string& token,
                              std::chrono::milliseconds timeout = std::chrono::seconds(2));

// Answers from a table; counts the questions.
class FakeTrackerClient final : public TrackerClient {
 public:
  void set(const std::string& info_hash_hex, std::vector<Holder> holders) {
    std::lock_guard lock(mu_);
    swarms_[info_hash_hex] = std::move(holders);
  }
  void fail(bool failing) {
    std::lock_guard lock(mu_);
    failing_ = failing;
  }
  int asked() const {
    std::lock_guard lock(mu_);
    return asked_;
  }
  Result<std::vector<Holder>> holders(const std::string& info_hash_hex) override {
    std::lock_guard lock(mu_);
    ++asked_;
    if (failing_) return make_error(Errc::io, "tracker unreachable (fake)");
    auto it = swarms_.find(info_hash_hex);
    return it == swarms_.end() ? std::vector<Holder>() : it->second;
  }

 private:
  mutable std::mutex mu_;  // guards everything below
  std::map<std::string, std::vector<Holder>> swarms_;
  bool failing_ = false;
  int asked_ = 0;
};

}  // namespace drover::mesh
