// What the agent keeps about each service (docs/FORMATS.md, "Agent state"):
// the durable record and the step in flight. Plain values: the step function
// reads and returns them, AgentState stores them.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace drover::agent {

struct ServiceRecord {
  std::string current;                // artifact id serving now ("" before the first apply)
  std::vector<std::string> previous;  // kept earlier releases, newest first
  std::uint64_t seq = 0;              // the highest plan seq acted on
  bool seq_failed = false;            // that plan was refused at apply time
  std::string flags;                  // canonical JSON of the last flags written ("" none)
  // The flag set the flags came from (docs/FORMATS.md, "Flag set"; 0: none
  // yet, the plans' flags are written).
  std::uint64_t flags_seq = 0;
  std::string active_slot;                   // blue/green: "blue" or "green"; "" otherwise
  std::map<std::string, std::string> slots;  // blue/green: slot -> artifact id
  std::string tracker;                       // tracker URL of the last plan applied
  // Blue/green: the share of the host's live traffic, per mille, that the
  // active slot (the plan's release) receives; the other slot has the rest.
  int traffic = 1000;
  bool preview = false;  // the preview route reaches the active slot
  // Unix ms at which the other slot, without live traffic, is stopped (0: never).
  std::int64_t stop_idle_at_ms = 0;
  // The signed plan of seq (its bundle without the manifest): shown to a
  // coordinator restored from an old backup, which then continues above it.
  std::string proof;
  friend bool operator==(const ServiceRecord&, const ServiceRecord&) = default;
};

struct Intent {
  std::string step;  // "fetch", "unpack", "switch"
  std::uint64_t seq = 0;
  std::string artifact;
  std::string from;  // switch: the release serving before it
  friend bool operator==(const Intent&, const Intent&) = default;
};

// How a supervised process is doing. crash_loop: it exited too often within
// the supervisor's window; it is still restarted (with the longest backoff)
// and reported unhealthy.
enum class RunState { stopped, running, backoff, crash_loop };
const char* run_state_name(RunState s);

}  // namespace drover::agent
