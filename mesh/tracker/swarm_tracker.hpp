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
// What it refuses (docs/MESH.md, "What the tracker refuses"): with a token
// key, an announce without a mesh token whose claims match it; an announce for
// an info-hash it does not track, a claim to serve (role seed or origin) that
// its source allow-list does not grant, and a new node or swarm beyond its
// caps. A refused announce changes nothing; nodes already tracked keep being
// served.
//
// Not thread-safe: one owner thread (the HTTP server's) calls it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.hpp"
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
  std::string token;  // the mesh token (docs/FORMATS.md, "Mesh tokens"); "" when none was sent
  // avoid=seed: the region's seed sent this node corrupt data; its answer
  // then names the origin instead (only this node's own answer changes).
  bool avoid_seed = false;
  // want=sources: a fetch that stalled, connected only to peers as stuck as
  // it is; its answer names only nodes that can send it pieces (the region's
  // seeds, the origin as usual, and peers holding the whole layer).
  bool sources_only = false;
};

struct HandedPeer {
  std::string ip;
  std::uint16_t port = 0;
  NodeRole role = NodeRole::peer;
  std::string host;
};

struct AnnounceReply {
  // Not empty: the announce was refused and changed nothing; this says why
  // (BEP 3's "failure reason"), and the rest of the reply is empty.
  std::string failure;
  std::vector<HandedPeer> peers;  // in locality order
  std::size_t complete = 0;       // nodes holding the whole layer
  std::size_t incomplete = 0;
};

// A node that holds a whole layer (what /swarm answers).
struct Holder {
  NodeRole role = NodeRole::peer;
  std::string region, host;
};

// A node allowed to announce as a source (TrackerOptions::sources). The
// address is the one the tracker sees the announce come from (a TCP peer
// cannot choose it); the port narrows the grant to one BitTorrent port of
// that host.
struct SourceGrant {
  NodeRole role = NodeRole::seed;  // seed or origin
  std::string region;              // a seed's one region; "" for the origin
  std::string address;             // an IPv4 or IPv6 address
  std::uint16_t port = 0;          // 0: any port of that address
};

// Reads a grant's text form: "seed:REGION@ADDRESS[:PORT]" or
// "origin@ADDRESS[:PORT]", an IPv6 address in brackets
// ("seed:eu@[fd00::5]:6881"). Errc::invalid_argument names what is wrong.
Result<SourceGrant> parse_source_grant(std::string_view text);
// The address in the form the tracker compares: IPv4 dotted, IPv6 as
// inet_ntop writes it, an IPv4-mapped IPv6 address as its IPv4 address; ""
// when text is no IP address.
std::string canonical_address(std::string_view text);

struct TrackerOptions {
  std::chrono::seconds interval{30};  // told to clients
  std::chrono::seconds expiry{90};    // silence after which a node is forgotten
  std::size_t max_peers_per_answer = 50;
  std::size_t seed_slots = 4;  // reserved for the region's seeds in each answer

  // Caps, so that no sequence of announces grows the tracker without bound
  // (a node costs about 0.4 KB, 0.8 KB with the longest names). An announce
  // that would add a node or a swarm beyond one is refused; nodes already
  // tracked keep announcing. Granted sources (below) pass the per-swarm cap,
  // so peers filling a swarm never lock its seed out; the other two bound
  // everyone.
  std::size_t max_swarms = 100'000;           // torrents with a live node
  std::size_t max_nodes_per_swarm = 100'000;  // peers, seeds and origin of one torrent
  std::size_t max_nodes = 1'000'000;          // nodes over all swarms

  // The info-hashes tracked. Unset: any (a tracker of its own, tests,
  // benchmarks). Set (the coordinator: the layers of its registered
  // artifacts): an announce for an info-hash it answers false for is refused
  // and creates nothing. It is called on the tracker's thread once per
  // announce, so it must be quick and safe against the threads that change
  // what it answers.
  std::function<bool(const std::string& info_hash)> tracks;

  // The nodes that may announce role=seed or role=origin. Unset: any node
  // (as before; a tracker of its own, tests, benchmarks). Set: such an
  // announce is refused unless a grant names its address, its port (or any)
  // and, for a seed, the region it announces; an empty list lets no node
  // serve.
  std::optional<std::vector<SourceGrant>> sources;

  // The mesh token key (mesh_token::kKeySize bytes). Unset: announces need no
  // token and /vouched is not served (a tracker of its own, tests,
  // benchmarks). Set: an announce is refused unless its token verifies under
  // this key, has not expired and claims the announce's role, region and host;
  // and the tracker vouches, to the holder of a valid token, for the
  // addresses of the nodes it may exchange layers with (vouched()).
  std::optional<std::string> token_key;
};

// What /vouched answers: the addresses a node may accept connections from.
struct Vouched {
  std::vector<std::string> addresses;  // canonical form, sorted, no duplicates
  std::chrono::seconds interval{30};   // ask again after this long
};

struct TrackerStats {
  std::size_t swarms = 0, nodes = 0;
  std::uint64_t announces = 0;
  // Announces refused: unregistered info-hash, role not granted, a cap
  // reached, no valid mesh token (missing, forged, expired or for another node).
  std::uint64_t refused_unregistered = 0, refused_role = 0, refused_full = 0, refused_token = 0;
  std::size_t vouched_addresses = 0;  // addresses vouched for (until swept)
};

class SwarmTracker {
 public:
  SwarmTracker(const TrackerOptions& options, const Clock& clock, Random& random);

  AnnounceReply announce(const Announce& a);
  // Forgets nodes silent for longer than the expiry, and empty swarms. (An
  // announce that meets a cap sweeps too, at most once an interval.)
  void sweep();
  TrackerStats stats() const;
  // The live nodes holding the whole layer of info_hash (20 bytes).
  std::vector<Holder> holders(const std::string& info_hash) const;
  // For the holder of token: the addresses that announced with a valid token
  // within the expiry, whose token has not expired, and that the tracker
  // would hand it or hand it to: the nodes of its region and the origin (the
  // origin: every vouched node). Errc::unsupported without a token key;
  // Errc::refused naming the flaw when the token does not verify. Answers are
  // cached per role and region for a second, except that a newly vouched
  // address is seen at once.
  Result<Vouched> vouched(const std::string& token);
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
  // Whether the source allow-list grants a's role (always false for a peer).
  bool granted(const Announce& a) const;
  // The reason a new node of a (in swarm, null for a new one) would pass a
  // cap, or "". A granted source is held to the caps on the whole only.
  std::string beyond_cap(const Announce& a, const Swarm* swarm, bool source) const;
  // Why a's token does not admit it, or "" when it does (or no key is set).
  // On success, expires_at is the token's expiry.
  std::string token_flaw(const Announce& a, std::int64_t& expires_at) const;
  void vouch(const Announce& a, std::int64_t expires_at, SteadyTime now);
  void expire_vouches(SteadyTime now);

  // An address that announced with a valid token, per role and region.
  struct Vouch {
    NodeRole role = NodeRole::peer;
    std::string region;
    std::int64_t expires_at = 0;  // the token's, unix seconds
    SteadyTime last_seen;
  };
  std::map<std::string, std::vector<Vouch>> vouches_;  // by canonical address
  std::size_t vouch_count_ = 0;
  struct CachedVouched {
    SteadyTime at;
    std::uint64_t generation = 0;
    std::vector<std::string> addresses;
  };
  std::map<std::pair<NodeRole, std::string>, CachedVouched> vouched_cache_;
  std::uint64_t vouch_generation_ = 0;  // rises when an address is first vouched for

  TrackerOptions options_;
  const Clock& clock_;
  Random& random_;
  std::map<std::string, Swarm> swarms_;  // by info_hash
  std::size_t nodes_ = 0;                // over all swarms
  SteadyTime last_sweep_;
  TrackerStats counts_;  // announces and refusals
};

}  // namespace drover::mesh
