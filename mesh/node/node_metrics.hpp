// A mesh node's Prometheus metrics (docs/METRICS.md, "Mesh"): bytes up and
// down by the remote's class, hash failures, bans, swarm sizes. Read from the
// node at each scrape; every daemon that runs a node (origin, seed, peer,
// agent) exports the same families.
#pragma once

#include "core/metrics/metrics.hpp"
#include "mesh/node/mesh_node.hpp"

namespace drover::mesh {

// Registers a collector reading node at each scrape; node must outlive the
// registry's scrapes.
void export_node_metrics(metrics::Registry& registry, const MeshNode& node);

// What that collector does, for a caller that keeps the figures itself (the
// agent, whose node is replaced when its tracker changes).
void set_node_metrics(metrics::Registry& registry, const NodeCounters& counters,
                      const MeshNode::Swarms& swarms);

// a += b, field by field.
void add_counters(NodeCounters& a, const NodeCounters& b);

}  // namespace drover::mesh
