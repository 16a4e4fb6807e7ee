// One BitTorrent node (a libtorrent session) that seeds and fetches layers.
// This is the only place in drover that touches libtorrent: its sessions,
// torrents and alerts are translated here into drover's own types.
//
// Every layer is its own torrent, derived from the manifest alone
// (docs/FORMATS.md, "Layer torrents"). The node is tuned for hosts that may
// share one machine (tests, benchmarks): TCP only unless asked, many
// connections per IP, no DHT/LSD/UPnP, and rate limits that apply to
// loopback and private addresses too (libtorrent exempts them by default).
//
// Threads: the public methods may be called from any thread. Events are
// delivered on the node's own alert thread; a handler must not call back into
// the node's destructor. Destroying the node stops the session.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/base/result.hpp"
#include "core/format/manifest.hpp"
#include "core/log/log.hpp"
#include "core/world/filesystem.hpp"
#include "mesh/tracker/swarm_tracker.hpp"

namespace drover::mesh {

// What a node needs to name a layer's torrent: all from the signed manifest.
struct LayerRef {
  ContentId id;
  std::uint64_t size = 0;
  Digest bt_root{};
};
LayerRef layer_ref(const format::Layer& layer);

// Who sent or received bytes, by the remote node's role (read from its peer
// id, which drover nodes prefix with their role).
struct ByteCounts {
  std::uint64_t origin = 0, seed = 0, peer = 0, other = 0;
  std::uint64_t total() const { return origin + seed + peer + other; }
};

struct NodeCounters {
  ByteCounts down, up;                 // payload bytes, by the remote's role
  std::uint64_t hash_failures = 0;     // pieces that failed their hash check
  std::uint64_t rechecks = 0;          // finished layers rechecked after failing their hash
  std::uint64_t peers_banned = 0;      // peers dropped for sending corrupt data
  std::uint64_t layers_completed = 0;  // fetched and verified against their id
  // Connections refused or not made because the tracker had not vouched for
  // the address (only with a token and vouched_only).
  std::uint64_t peers_blocked = 0;
  std::uint64_t vouched_addresses = 0;  // addresses the last /vouched answer allowed
  // Of the bytes in `up`, those of blocks this node had sent before (to
  // anyone): what a seed sends more than once instead of peers trading it.
  std::uint64_t up_again = 0;
  // Requests refused because the piece had already left this node while
  // another the peer lacks had not (NodeOptions::first_copies_first).
  std::uint64_t repeats_refused = 0;
};

struct MeshEvent {
  enum class Kind { progress, complete, failed, hash_failed, peer_banned };
  Kind kind = Kind::progress;
  ContentId layer;
  std::uint64_t done = 0, total = 0;
  std::string detail;  // failures: what went wrong; bans: who
};

struct NodeOptions {
  NodeRole role = NodeRole::peer;
  std::string host, region, cluster;
  std::string tracker;                 // base URL, "http://127.0.0.1:6969"; empty: no tracker
  std::string listen = "127.0.0.1:0";  // port 0: any free port
  std::uint64_t upload_rate = 0, download_rate = 0;  // bytes per second, 0: unlimited
  int min_announce_interval_s = 5;
  // Peers uploaded to at once. drover-seed uses 16: with first copies first
  // its refused peers wait, so more of them are served at once to keep its
  // link busy (docs/MESH.md).
  int unchoke_slots = 32;
  // Connections per layer's swarm. Every finished piece is announced to each
  // of them, so more costs CPU on every node for no faster rollout; seeds and
  // the origin take 200, so every peer can reach them (docs/MESH.md).
  int peers_per_layer = 4;
  bool utp = false;  // TCP is faster on loopback and inside a data centre
  // Offer each piece to one peer at a time, so a seed sends each piece about
  // once and peers trade the rest (BitTorrent "super seeding").
  bool super_seed = false;
  // While a complete layer still has pieces it has sent to nobody, refuse a
  // request for a piece already sent to another peer, and suggest one of
  // those instead (docs/MESH.md, "First copies first"). Seeds and the origin
  // turn it on.
  bool first_copies_first = false;
  // The node's mesh token (docs/FORMATS.md, "Mesh tokens"), put in every
  // announce URL; "" for none, for a tracker that checks no tokens (then the
  // node behaves as before tokens existed). set_token() replaces it.
  std::string token;
  // Once the node has a token: accept connections from, and connect to, only
  // the addresses the tracker vouches for (GET /vouched; docs/MESH.md, "Who
  // may fetch"). Turned off only to show what the filter stops (the network
  // namespace test's control case).
  bool vouched_only = true;
  // A fetch that receives no block for this long while none of its peers has
  // a piece it lacks drops those peers and asks the tracker for sources
  // (docs/MESH.md, "Fallback"); 0: never.
  int stall_kick_s = 30;
};

// Diagnostics of one layer, for messages that say what was tried.
struct LayerDiagnostics {
  std::string tracker_status;          // last tracker answer or error
  int tracker_peers = 0;               // peers in the last answer
  std::vector<std::string> connected;  // peers connected now: "seed (has 40%)"
};

class MeshNode {
 public:
  static Result<std::unique_ptr<MeshNode>> start(const NodeOptions& options, Logger& log);
  ~MeshNode();

  std::uint16_t port() const;
  const NodeOptions& options() const;

  // Seeds a complete layer from `file`, read in place. Hashes the file to build
  // the torrent's hash tree and refuses a file whose pieces root does not match
  // the layer's.
  Status seed(const LayerRef& layer, const fs::path& file);
  // Downloads a layer into `file` (its directory must exist). resume_data, if
  // not empty, is what save_resume produced for it earlier.
  Status fetch(const LayerRef& layer, const fs::path& file, const std::string& resume_data = {});
  // Stops seeding or fetching a layer (the file stays).
  void remove(const ContentId& layer);
  bool has_torrent(const ContentId& layer) const;

  // Resume data of a fetching layer, delivered later to on_resume_data.
  void save_resume(const ContentId& layer);
  void on_resume_data(std::function<void(const ContentId&, std::string)> handler);
  void on_event(std::function<void(const MeshEvent&)> handler);

  // Replaces the node's mesh token: every torrent's announce URL changes
  // (and each announces again), and the vouched addresses are asked for anew.
  // A token that only extends the current one's life replaces it only when
  // the current one has less than min(1 hour, half the new one's life) left,
  // so a coordinator that hands out a fresh token with every answer does not
  // make every torrent re-announce each time. Returns whether it replaced
  // the token. The first token turns vouching on (vouched_only).
  bool set_token(const std::string& token);
  std::string token() const;

  // Connects to the node at address:port for a layer the node seeds or
  // fetches. The tracker introduces peers; this is for operators and tests
  // (an outsider that knows a seed's address). The ip filter applies.
  Status connect(const ContentId& layer, const std::string& address, std::uint16_t port);

  NodeCounters counters() const;
  // The node's swarms now: layers it holds or fetches, those still
  // fetching, and peers connected over all of them.
  struct Swarms {
    std::size_t layers = 0, fetching = 0, peers = 0;
  };
  Swarms swarms() const;
  std::optional<LayerDiagnostics> diagnostics(const ContentId& layer) const;

  // What libtorrent was told, read back from the session: the rate limits and
  // whether loopback peers fall under them.
  struct LimitsInForce {
    std::int64_t upload = 0, download = 0;
    bool loopback_in_global_class = false;
    bool private_ranges_in_global_class = false;
  };
  LimitsInForce limits_in_force() const;

 private:
  struct Impl;
  explicit MeshNode(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace drover::mesh
