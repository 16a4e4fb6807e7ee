// The tracker's logic, apart from HTTP: swarms of nodes per torrent, and which
// peers to hand a node, by locality (docs/FORMATS.md, "Tracker").
//
// Order of an answer: peers of the same cluster, then peers of the same region
// (other clusters), then that region's seeds, then the origin; the origin is
// handed out only when no live seed of the region is in the swarm. Peers of
// other regions are never handed out: traffic stays in the region. Seed and
// origin slots are reserved, so a full answer of peers never crowds out a
// source. Nodes that stop announcing expire.
//
// Not thread-safe: one owner thread (the HTTP server's) calls it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/world/clock.hpp"
#include "core/world/random.hpp"

namespace drover::mesh {

enum class NodeRole { peer, seed, origin };
const char* role_name(NodeRole role);
bool parse_role(std::string_view text, NodeRole& out);

struct Announce {
  std::string info_hash;  // 20 bytes
  std::string peer_id;    // 20 bytes
  std::string ip;         // as the tracker saw the connection
  std::uint16_t port = 0;
  std::uint64_t left = 0;  // bytes the node still needs (0: it holds the layer)
  enum class Event { none, started, completed, stopped } event = Event::none;
  std::size_t numwant = 50;
  NodeRole role = NodeRole::peer;
  std::string region, cluster, host;
};

struct HandedPeer {
  std::string ip;
  std::uint16_t port = 0;
  NodeRole role = NodeRole::peer;
  std::string host;
};

struct AnnounceReply {
  std::vector<HandedPeer> peers;  // in locality order
  std::size_t complete = 0;       // nodes holding the whole layer
  std::size_t incomplete = 0;
};

// A node that holds a whole layer (what /swarm answers).
struct Holder {
  NodeRole role = NodeRole::peer;
  std::string region, host;
};

struct TrackerOptions {
  std::chrono::seconds interval{30};  // told to clients
  std::chrono::seconds expiry{90};    // silence after which a node is forgotten
  std::size_t max_peers_per_answer = 50;
  std::size_t seed_slots = 4;  // reserved for the region's seeds in each answer
  std::size_t max_swarm_size = 100'000;
};

struct TrackerStats {
  std::size_t swarms = 0, nodes = 0;
  std::uint64_t announces = 0;
};

class SwarmTracker {
 public:
  SwarmTracker(const TrackerOptions& options, const Clock& clock, Random& random)
      : options_(options), clock_(clock), random_(random) {}

  AnnounceReply announce(const Announce& a);
  // Forgets nodes silent for longer than the expiry, and empty swarms.
  void sweep();
  TrackerStats stats() const;
  // The live nodes holding the whole layer of info_hash (20 bytes).
  std::vector<Holder> holders(const std::string& info_hash) const;
  const TrackerOptions& options() const { return options_; }

 private:
  struct Node {
    std::string peer_id, ip;
    std::uint16_t port = 0;
    NodeRole role = NodeRole::peer;
    std::string region, cluster, host;
    std::uint64_t left = 0;
    SteadyTime last_seen;
  };
  using Swarm = std::map<std::pair<std::string, std::uint16_t>, Node>;  // by (ip, port)
  void expire(Swarm& swarm, SteadyTime now);

  TrackerOptions options_;
  const Clock& clock_;
  Random& random_;
  std::map<std::string, Swarm> swarms_;  // by info_hash
  std::uint64_t announces_ = 0;
};

}  // namespace drover::mesh
