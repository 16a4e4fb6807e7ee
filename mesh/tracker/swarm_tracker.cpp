#include "mesh/tracker/swarm_tracker.hpp"

#include <arpa/inet.h>

#include <algorithm>

#include "core/base/hex.hpp"
#include "core/mesh_token/mesh_token.hpp"

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

std::string canonical_address(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return "";
  const std::string z(text);
  unsigned char addr[16];
  char out[INET6_ADDRSTRLEN];
  if (::inet_pton(AF_INET, z.c_str(), addr) == 1) {
    return ::inet_ntop(AF_INET, addr, out, sizeof out) ? out : "";
  }
  if (::inet_pton(AF_INET6, z.c_str(), addr) != 1) return "";
  static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(kMapped, kMapped + 12, addr)) {
    return ::inet_ntop(AF_INET, addr + 12, out, sizeof out) ? out : "";
  }
  return ::inet_ntop(AF_INET6, addr, out, sizeof out) ? out : "";
}

Result<SourceGrant> parse_source_grant(std::string_view text) {
  const std::string shown(text.substr(0, 160));
  auto bad = [&](const std::string& why) {
    return make_error(Errc::invalid_argument,
                      "source grant '" + shown + "': " + why +
                          " (the form is seed:REGION@ADDRESS[:PORT] or origin@ADDRESS[:PORT])");
  };
  const std::size_t at = text.find('@');
  if (at == std::string_view::npos) return bad("no '@' before the address");
  const std::string_view who = text.substr(0, at);
  std::string_view where = text.substr(at + 1);
  SourceGrant g;
  if (who == "origin") {
    g.role = NodeRole::origin;
  } else if (who.substr(0, 5) == "seed:") {
    g.role = NodeRole::seed;
    g.region = std::string(who.substr(5));
    if (g.region.empty() || g.region.size() > 128)
      return bad("a seed's region must be 1-128 bytes");
  } else {
    return bad("the role must be seed:REGION or origin");
  }
  std::string_view address = where, port;
  if (!where.empty() && where.front() == '[') {
    const std::size_t close = where.find(']');
    if (close == std::string_view::npos) return bad("no ']' after the IPv6 address");
    address = where.substr(1, close - 1);
    const std::string_view rest = where.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad("text after ']' that is not ':PORT'");
      port = rest.substr(1);
      if (port.empty()) return bad("an empty port");
    }
  } else if (std::count(where.begin(), where.end(), ':') == 1) {
    const std::size_t colon = where.find(':');
    address = where.substr(0, colon);
    port = where.substr(colon + 1);
    if (port.empty()) return bad("an empty port");
  }
  g.address = canonical_address(address);
  if (g.address.empty())
    return bad("'" + std::string(address.substr(0, 64)) + "' is no IP address");
  if (!port.empty()) {
    unsigned value = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || value > 65535) return bad("the port must be 1-65535");
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value == 0 || value > 65535) return bad("the port must be 1-65535");
    g.port = static_cast<std::uint16_t>(value);
  }
  return g;
}

SwarmTracker::SwarmTracker(const TrackerOptions& options, const Clock& clock, Random& random)
    : options_(options), clock_(clock), random_(random), last_sweep_(clock.steady()) {
  // Grants compare with the address as the server reports it.
  if (options_.sources) {
    for (auto& g : *options_.sources) {
      if (std::string a = canonical_address(g.address); !a.empty()) g.address = std::move(a);
    }
  }
}

void SwarmTracker::expire(Swarm& swarm, SteadyTime now) {
  for (auto it = swarm.begin(); it != swarm.end();) {
    if (now - it->second.last_seen > options_.expiry) {
      it = swarm.erase(it);
      --nodes_;
    } else {
      ++it;
    }
  }
}

bool SwarmTracker::granted(const Announce& a) const {
  if (!options_.sources || a.role == NodeRole::peer) return false;
  const std::string address = canonical_address(a.ip);
  return std::any_of(options_.sources->begin(), options_.sources->end(), [&](const SourceGrant& g) {
    return g.role == a.role && g.address == address && (g.port == 0 || g.port == a.port) &&
           (a.role != NodeRole::seed || g.region == a.region);
  });
}

std::string SwarmTracker::beyond_cap(const Announce& a, const Swarm* swarm, bool source) const {
  if (swarm == nullptr && swarms_.size() >= options_.max_swarms) {
    return "tracker full: " + std::to_string(swarms_.size()) +
           " swarms tracked, its cap (max_swarms); nodes of those swarms are still served, "
           "announce again later";
  }
  if (swarm != nullptr && !source && swarm->size() >= options_.max_nodes_per_swarm) {
    return "swarm full: " + std::to_string(swarm->size()) + " nodes announce info-hash " +
           to_hex(a.info_hash) + ", its cap (max_nodes_per_swarm); announce again later";
  }
  if (nodes_ >= options_.max_nodes) {
    return "tracker full: " + std::to_string(nodes_) +
           " nodes tracked, its cap (max_nodes); announce again later";
  }
  return "";
}

std::string SwarmTracker::token_flaw(const Announce& a, std::int64_t& expires_at) const {
  if (!options_.token_key) return "";
  if (a.token.empty()) {
    return "no mesh token: this tracker serves only nodes with a token from the coordinator "
           "(token= in the announce URL; seeds and the origin get theirs from `drover mesh "
           "token`)";
  }
  const auto checked = mesh_token::check(*options_.token_key, a.token, unix_seconds(clock_.now()));
  if (!checked.ok()) return "mesh token refused: " + checked.refusal().message;
  const mesh_token::Claims& c = checked.claims();
  if (c.role != role_name(a.role) || c.region != a.region || c.host != a.host) {
    return "mesh token is for role " + c.role + ", region '" + c.region + "', host '" + c.host +
           "'; the announce says role " + role_name(a.role) + ", region '" + a.region +
           "', host '" + a.host + "'";
  }
  expires_at = c.expires_at;
  return "";
}

void SwarmTracker::vouch(const Announce& a, std::int64_t expires_at, SteadyTime now) {
  if (!options_.token_key) return;
  const std::string address = canonical_address(a.ip);
  if (address.empty()) return;
  auto& entries = vouches_[address];
  for (auto& v : entries) {
    if (v.role == a.role && v.region == a.region) {
      v.expires_at = std::max(v.expires_at, expires_at);
      v.last_seen = now;
      return;
    }
  }
  if (vouch_count_ >= options_.max_nodes) {
    if (entries.empty()) vouches_.erase(address);
    return;  // bounded like the nodes; the address is vouched for again once others expire
  }
  entries.push_back({a.role, a.region, expires_at, now});
  ++vouch_count_;
  ++vouch_generation_;
}

void SwarmTracker::expire_vouches(SteadyTime now) {
  const std::int64_t wall = unix_seconds(clock_.now());
  for (auto it = vouches_.begin(); it != vouches_.end();) {
    auto& entries = it->second;
    const std::size_t before = entries.size();
    std::erase_if(entries, [&](const Vouch& v) {
      return now - v.last_seen > options_.expiry || wall >= v.expires_at;
    });
    vouch_count_ -= before - entries.size();
    it = entries.empty() ? vouches_.erase(it) : std::next(it);
  }
}

Result<Vouched> SwarmTracker::vouched(const std::string& token) {
  if (!options_.token_key) {
    return make_error(Errc::unsupported,
                      "this tracker checks no mesh tokens (no token key), so it vouches for no "
                      "one: a node that accepts only vouched peers cannot use it");
  }
  const auto checked = mesh_token::check(*options_.token_key, token, unix_seconds(clock_.now()));
  if (!checked.ok()) return make_error(Errc::refused, checked.refusal().message);
  NodeRole role = NodeRole::peer;
  parse_role(checked.claims().role, role);
  const std::string& region = checked.claims().region;
  const SteadyTime now = clock_.steady();
  Vouched out;
  out.interval = options_.interval;
  auto& cached = vouched_cache_[{role, region}];
  if (cached.generation == vouch_generation_ && cached.at != SteadyTime{} &&
      now - cached.at < std::chrono::seconds(1)) {
    out.addresses = cached.addresses;
    return out;
  }
  const std::int64_t wall = unix_seconds(clock_.now());
  for (const auto& [address, entries] : vouches_) {
    const bool admitted = std::any_of(entries.begin(), entries.end(), [&](const Vouch& v) {
      if (now - v.last_seen > options_.expiry || wall >= v.expires_at) return false;
      return role == NodeRole::origin || v.role == NodeRole::origin || v.region == region;
    });
    if (admitted) out.addresses.push_back(address);
  }
  cached = {now, vouch_generation_, out.addresses};
  return out;
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
  ++counts_.announces;
  AnnounceReply reply;
  // Every refusal comes before the first change; the token's first, so that
  // an announce without one learns nothing (not even which layers exist).
  std::int64_t token_expires_at = 0;
  if (std::string flaw = token_flaw(a, token_expires_at); !flaw.empty()) {
    ++counts_.refused_token;
    reply.failure = std::move(flaw);
    return reply;
  }
  if (options_.tracks && !options_.tracks(a.info_hash)) {
    ++counts_.refused_unregistered;
    reply.failure = "unregistered info-hash " + to_hex(a.info_hash) +
                    ": this tracker tracks only the layers of registered artifacts";
    return reply;
  }
  const bool source = granted(a);
  if (options_.sources && a.role != NodeRole::peer && !source) {
    ++counts_.refused_role;
    reply.failure = std::string("role ") + role_name(a.role) + " is not granted to " + a.ip + ":" +
                    std::to_string(a.port) +
                    (a.role == NodeRole::seed ? " in region '" + a.region + "'" : std::string()) +
                    ": only the nodes on the tracker's source allow-list may announce as seed or "
                    "origin; announce as a peer, or have the node added to the list";
    return reply;
  }
  const SteadyTime now = clock_.steady();
  const auto key = std::make_pair(a.ip, a.port);
  auto swarm_it = swarms_.find(a.info_hash);
  if (swarm_it != swarms_.end()) {
    expire(swarm_it->second, now);
    if (swarm_it->second.empty()) {
      swarms_.erase(swarm_it);
      swarm_it = swarms_.end();
    }
  }
  if (a.event == Announce::Event::stopped) {
    if (swarm_it == swarms_.end()) return reply;  // nothing to leave, and nothing made
  } else if (swarm_it == swarms_.end() || !swarm_it->second.contains(key)) {
    std::string full =
        beyond_cap(a, swarm_it == swarms_.end() ? nullptr : &swarm_it->second, source);
    // Swarms of expired nodes count until they are swept: at a cap, sweep
    // first, at most once an interval (a flood of refused announces must not
    // cost a sweep each).
    if (!full.empty() && now - last_sweep_ >= options_.interval) {
      sweep();
      swarm_it = swarms_.find(a.info_hash);
      full = beyond_cap(a, swarm_it == swarms_.end() ? nullptr : &swarm_it->second, source);
    }
    if (!full.empty()) {
      ++counts_.refused_full;
      reply.failure = std::move(full);
      return reply;
    }
  }
  vouch(a, token_expires_at, now);
  if (swarm_it == swarms_.end()) swarm_it = swarms_.emplace(a.info_hash, Swarm{}).first;
  Swarm& swarm = swarm_it->second;
  if (a.event == Announce::Event::stopped) {
    nodes_ -= swarm.erase(key);
  } else {
    auto [node, added] = swarm.try_emplace(key);
    if (added) ++nodes_;
    node->second = Node{a.peer_id, a.ip, a.port, a.role, a.region, a.cluster, a.host, a.left, now};
  }

  std::vector<const Node*> cluster_peers, region_peers, seeds, origins;
  bool live_seed = false;
  for (const auto& [k, n] : swarm) {
    (n.left == 0 ? reply.complete : reply.incomplete)++;
    if (k == key || n.peer_id == a.peer_id) continue;
    switch (n.role) {
      case NodeRole::origin: origins.push_back(&n); break;
      case NodeRole::seed:
        if (n.region == a.region && !a.avoid_seed) {
          seeds.push_back(&n);
          live_seed = true;
        }
        break;
      case NodeRole::peer:
        if (n.region != a.region || (a.sources_only && n.left != 0)) break;
        (n.cluster == a.cluster ? cluster_peers : region_peers).push_back(&n);
        break;
    }
  }
  if (a.event == Announce::Event::stopped || a.role == NodeRole::origin) {
    if (swarm.empty()) swarms_.erase(swarm_it);
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
  last_sweep_ = now;
  for (auto it = swarms_.begin(); it != swarms_.end();) {
    expire(it->second, now);
    it = it->second.empty() ? swarms_.erase(it) : std::next(it);
  }
  expire_vouches(now);
  vouched_cache_.clear();
}

TrackerStats SwarmTracker::stats() const {
  TrackerStats s = counts_;
  s.swarms = swarms_.size();
  s.nodes = nodes_;
  s.vouched_addresses = vouches_.size();
  return s;
}

}  // namespace drover::mesh
