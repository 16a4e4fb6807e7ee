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
// counters, and, with a token file, reads it every 10 seconds and hands a
// changed token to the node (an operator renews a seed's token by replacing
// the file).
void run_until_stopped(MeshNode& node, std::chrono::milliseconds every,
                       const std::string& token_file = "");

// A mesh token file: the token on one line. Refused when group or others may
// read it (the token is a bearer credential), or when it holds no token.
Result<std::string> read_token_file(const std::string& path);

nlohmann::json counters_json(const NodeCounters& c);

// "4MiB", "512KiB", "2G", "1048576": bytes per second (binary units).
Result<std::uint64_t> parse_rate(const std::string& text);
// "127.0.0.1:0", "[::1]:7000": host and port.
using http::parse_listen;

}  // namespace drover::mesh
