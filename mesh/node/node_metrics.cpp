#include "mesh/node/node_metrics.hpp"

namespace drover::mesh {
namespace {

constexpr const char* kBytesHelp =
    "Layer payload bytes sent (up) and received (down), by the remote's class "
    "(origin, seed, peer, other).";

void bytes(metrics::Registry& r, const char* direction, const ByteCounts& b) {
  const std::vector<std::string> names{"direction", "from"};
  const std::pair<const char*, std::uint64_t> classes[] = {
      {"origin", b.origin}, {"seed", b.seed}, {"peer", b.peer}, {"other", b.other}};
  for (const auto& [cls, n] : classes) {
    r.counter("drover_mesh_bytes_total", kBytesHelp, names, {direction, cls})
        .catch_up(static_cast<double>(n));
  }
}

}  // namespace

void add_counters(NodeCounters& a, const NodeCounters& b) {
  auto add = [](ByteCounts& x, const ByteCounts& y) {
    x.origin += y.origin;
    x.seed += y.seed;
    x.peer += y.peer;
    x.other += y.other;
  };
  add(a.down, b.down);
  add(a.up, b.up);
  a.hash_failures += b.hash_failures;
  a.rechecks += b.rechecks;
  a.peers_banned += b.peers_banned;
  a.layers_completed += b.layers_completed;
  a.peers_blocked += b.peers_blocked;
  a.up_again += b.up_again;
  a.repeats_refused += b.repeats_refused;
  a.vouched_addresses = b.vouched_addresses;
}

void export_node_metrics(metrics::Registry& registry, const MeshNode& node) {
  registry.on_collect(
      [&node](metrics::Registry& r) { set_node_metrics(r, node.counters(), node.swarms()); });
}

void set_node_metrics(metrics::Registry& r, const NodeCounters& c, const MeshNode::Swarms& s) {
  bytes(r, "down", c.down);
  bytes(r, "up", c.up);
  const struct {
    const char* name;
    const char* help;
    std::uint64_t value;
  } counters[] = {
      {"drover_mesh_hash_failures_total", "Pieces received that failed their hash check.",
       c.hash_failures},
      {"drover_mesh_peers_banned_total", "Peers dropped for sending corrupt data.", c.peers_banned},
      {"drover_mesh_layers_completed_total",
       "Layers fetched and verified against their content id.", c.layers_completed},
      {"drover_mesh_peers_blocked_total",
       "Connections refused or not made because the tracker had not vouched for the address.",
       c.peers_blocked},
      {"drover_mesh_sent_again_bytes_total",
       "Bytes uploaded of blocks this node had uploaded before: a seed's repeats.", c.up_again},
      {"drover_mesh_repeats_refused_total",
       "Requests refused because the piece had already been sent to another peer while one "
       "the asker lacked had not (first copies first).",
       c.repeats_refused},
  };
  for (const auto& k : counters) r.counter(k.name, k.help).catch_up(static_cast<double>(k.value));
  r.gauge("drover_mesh_layers", "Layers this node holds or fetches (one swarm each).")
      .set(static_cast<double>(s.layers));
  r.gauge("drover_mesh_layers_fetching", "Layers still being fetched.")
      .set(static_cast<double>(s.fetching));
  r.gauge("drover_mesh_peers_connected", "Peers connected, over every swarm of this node.")
      .set(static_cast<double>(s.peers));
}

}  // namespace drover::mesh
