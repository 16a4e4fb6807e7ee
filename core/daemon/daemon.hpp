// What every drover daemon shares (drover-agent, drover-coordinator,
// drover-seed, drover-peer): stopping on SIGTERM/SIGINT, and one JSON object
// per line on stdout for whoever supervises it (tests, benchmarks, an init
// system's log); and (data_dir_lock.hpp) the claim on a data directory that
// keeps a second daemon off it. Nothing here knows a daemon's own types.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>

namespace drover::daemon {

// Installs handlers for SIGTERM and SIGINT (and ignores SIGPIPE). Call once,
// from main(), before starting threads.
void install_stop_signals();
// Thread-safe: true once a stop signal arrived.
bool stop_requested();
// Waits until a stop signal arrives or the deadline passes; true when stopped.
bool wait_for_stop(std::chrono::steady_clock::time_point deadline);

// Prints one JSON object on one line and flushes. Thread-safe per line (one
// fwrite on a locked stdout).
void emit_line(const nlohmann::json& line);

}  // namespace drover::daemon
