// The tracker on HTTP: BitTorrent's announce (BEP 3, compact peer lists of
// BEP 23, IPv6 "peers6" of BEP 7) with drover's locality parameters, plus a
// JSON /stats page, and /vouched for nodes that accept only the peers the
// tracker vouched for. It is a component of its own: the coordinator hosts one
// (tracking only the layers of its registered artifacts), and
// `drover-seed --tracker-listen` runs one beside a seed. What it refuses:
// swarm_tracker.hpp.
#pragma once

#include <memory>

#include "core/http/http.hpp"
#include "core/metrics/metrics.hpp"
#include "mesh/tracker/swarm_tracker.hpp"

namespace drover::mesh {

class TrackerService {
 public:
  // Serves on options.bind:options.port (0: any free port).
  static Result<std::unique_ptr<TrackerService>> start(const http::ServerOptions& server,
                                                       const TrackerOptions& options,
                                                       const Clock& clock, Random& random,
                                                       Logger& log);
  ~TrackerService();
  std::uint16_t port() const;
  TrackerStats stats() const;  // from any thread
  // Registers the tracker's families (docs/METRICS.md, "Tracker"), read at
  // each scrape; the service must outlive the registry's scrapes.
  void export_metrics(metrics::Registry& registry) const;
  // The announce URL for a node of this role, region and cluster.
  std::string announce_url(const std::string& host, NodeRole role, const std::string& region,
                           const std::string& cluster, const std::string& bind = "127.0.0.1") const;

 private:
  struct Impl;
  explicit TrackerService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Builds an announce URL: base is "http://host:port"; the node's parameters
// (and its mesh token, when it has one) go in the query string, before those
// the BitTorrent client appends.
std::string announce_url(const std::string& base, const std::string& host, NodeRole role,
                         const std::string& region, const std::string& cluster,
                         const std::string& token = "");

// The handler's parsing and answering, apart from the server (for tests).
http::Response handle_announce(SwarmTracker& tracker, const http::Request& request);
// GET /swarm?info_hash=<40 hex>: the nodes holding the whole layer, as JSON.
http::Response handle_swarm(const SwarmTracker& tracker, const http::Request& request);
// GET /vouched?token=<mesh token>: the addresses the token's holder may accept
// connections from, {"addresses":[…],"interval":S}; 403 naming the flaw for a
// bad token, 404 when the tracker checks no tokens.
http::Response handle_vouched(SwarmTracker& tracker, const http::Request& request);

}  // namespace drover::mesh
