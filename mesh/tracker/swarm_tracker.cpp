#include "mesh/tracker/swarm_tracker.hpp"

#include <algorithm>

namespace drover::mesh {

const char* role_name(NodeRole role) {
  switch (role) {
    case NodeRole::peer: return "peer";
    case NodeRole::seed: return "seed";
    case NodeRole::origin: return "origin";
  }
  return "peer";
}

bool parse_role(std::string_view text, NodeRole& out) {
  for (auto r : {NodeRole::peer, NodeRole::seed, NodeRole::origin}) {
    if (text == role_name(r)) {
      out = r;
      return true;
    }
  }
  return false;
}

void SwarmTracker::expire(Swarm& swarm, SteadyTime now) {
  for (auto it = swarm.begin(); it != swarm.end();) {
    it = now - it->second.last_seen > options_.expiry ? swarm.erase(it) : std::next(it);
  }
}

std::vector<Holder> SwarmTracker::holders(const std::string& info_hash) const {
  std::vector<Holder> out;
  auto it = swarms_.find(info_hash);
  if (it == swarms_.end()) return out;
  const SteadyTime now = clock_.steady();
  for (const auto& [k, n] : it->second) {
    if (n.left == 0 && now - n.last_seen <= options_.expiry) {
      out.push_back({n.role, n.region, n.host});
    }
  }
  return out;
}

AnnounceReply SwarmTracker::announce(const Announce& a) {
  ++announces_;
  const SteadyTime now = clock_.steady();
  Swarm& swarm = swarms_[a.info_hash];
  expire(swarm, now);
  const auto key = std::make_pair(a.ip, a.port);
  if (a.event == Announce::Event::stopped) {
    swarm.erase(key);
  } else if (swarm.size() < options_.max_swarm_size || swarm.contains(key)) {
    Node& n = swarm[key];
    n = Node{a.peer_id, a.ip, a.port, a.role, a.region, a.cluster, a.host, a.left, now};
  }

  AnnounceReply reply;
  std::vector<const Node*> cluster_peers, region_peers, seeds, origins;
  bool live_seed = false;
  for (const auto& [k, n] : swarm) {
    (n.left == 0 ? reply.complete : reply.incomplete)++;
    if (k == key || n.peer_id == a.peer_id) continue;
    switch (n.role) {
      case NodeRole::origin: origins.push_back(&n); break;
      case NodeRole::seed:
        if (n.region == a.region) {
          seeds.push_back(&n);
          live_seed = true;
        }
        break;
      case NodeRole::peer:
        if (n.region != a.region) break;
        (n.cluster == a.cluster ? cluster_peers : region_peers).push_back(&n);
        break;
    }
  }
  if (a.event == Announce::Event::stopped || a.role == NodeRole::origin) {
    if (swarm.empty()) swarms_.erase(a.info_hash);
    return reply;  // the origin holds everything and needs no one
  }

  // Spread load: a random order within each class, classes in locality order.
  auto shuffle = [&](std::vector<const Node*>& v) {
    for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[random_.uniform(i)]);
  };
  shuffle(cluster_peers);
  shuffle(region_peers);
  shuffle(seeds);
  const std::size_t cap = std::min(a.numwant, options_.max_peers_per_answer);
  if (seeds.size() > options_.seed_slots) seeds.resize(options_.seed_slots);
  if (live_seed) origins.clear();  // the origin only when no seed of the region answers
  const std::size_t reserved = std::min(cap, seeds.size() + origins.size());
  std::vector<const Node*> chosen;
  for (auto* group : {&cluster_peers, &region_peers}) {
    for (const Node* n : *group) {
      if (chosen.size() + reserved >= cap) break;
      chosen.push_back(n);
    }
  }
  for (auto* group : {&seeds, &origins}) {
    for (const Node* n : *group) {
      if (chosen.size() >= cap) break;
      chosen.push_back(n);
    }
  }
  for (const Node* n : chosen) reply.peers.push_back({n->ip, n->port, n->role, n->host});
  return reply;
}

void SwarmTracker::sweep() {
  const SteadyTime now = clock_.steady();
  for (auto it = swarms_.begin(); it != swarms_.end();) {
    expire(it->second, now);
    it = it->second.empty() ? swarms_.erase(it) : std::next(it);
  }
}

TrackerStats SwarmTracker::stats() const {
  TrackerStats s;
  s.swarms = swarms_.size();
  for (const auto& [h, swarm] : swarms_) s.nodes += swarm.size();
  s.announces = announces_;
  return s;
}

}  // namespace drover::mesh
