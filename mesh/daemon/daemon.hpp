// What drover's mesh daemons (drover-seed, drover-peer) share: stopping on
// SIGTERM/SIGINT, one JSON object per line on stdout for whoever supervises
// them (tests, benchmarks, an init system's log), and flag values.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/base/result.hpp"
#include "core/http/http.hpp"
#include "mesh/node/mesh_node.hpp"

namespace drover::mesh {

// Installs handlers for SIGTERM and SIGINT (and ignores SIGPIPE).
void install_stop_signals();
bool stop_requested();
// Waits until a stop signal arrives or the deadline passes; true when stopped.
bool wait_for_stop(std::chrono::steady_clock::time_point deadline);

// Waits for a stop signal; meanwhile, every `every` (if not zero), prints a
// {"event":"counters"} line with the node's counters.
void run_until_stopped(const MeshNode& node, std::chrono::milliseconds every);

// Prints one JSON object on one line and flushes.
void emit_line(const nlohmann::json& line);
nlohmann::json counters_json(const NodeCounters& c);

// "4MiB", "512KiB", "2G", "1048576": bytes per second (binary units).
Result<std::uint64_t> parse_rate(const std::string& text);
// "127.0.0.1:0", "[::1]:7000": host and port.
using http::parse_listen;

}  // namespace drover::mesh
