// What drover's mesh daemons (drover-seed, drover-peer) share beyond
// core/daemon: periodic counter lines for a mesh node, and flag values.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/base/result.hpp"
#include "core/daemon/daemon.hpp"
#include "core/http/http.hpp"
#include "mesh/node/mesh_node.hpp"

namespace drover::mesh {

// Waits for a stop signal (daemon::install_stop_signals); meanwhile, every
// `every` (if not zero), prints a {"event":"counters"} line with the node's
// counters.
void run_until_stopped(const MeshNode& node, std::chrono::milliseconds every);

nlohmann::json counters_json(const NodeCounters& c);

// "4MiB", "512KiB", "2G", "1048576": bytes per second (binary units).
Result<std::uint64_t> parse_rate(const std::string& text);
// "127.0.0.1:0", "[::1]:7000": host and port.
using http::parse_listen;

}  // namespace drover::mesh
