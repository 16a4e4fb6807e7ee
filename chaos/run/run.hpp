// Faults against a real fleet (docs/CHAOS.md, "Faults against a real
// fleet"): the scenarios `drover-chaos run` knows, the run that carries one
// out on a Fleet, and the invariants every run is held to.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "chaos/fleet/fleet.hpp"

namespace drover::chaos {

struct RunOptions {
  std::uint64_t seed = 1;
  int hosts_per_region = 2;
  bool loopback = false;  // never build namespaces, even as root
  // Test-only: plant the early batch in the coordinator (docs/CHAOS.md).
  int planted_early_batch_ms = 0;
  bool keep = false;  // keep the run's directory (its logs) afterwards
};

struct FleetViolation {
  std::string invariant, subject;
  std::int64_t at_ms = 0;  // since the run began
  std::string detail;
};

struct ScenarioResult {
  std::string name;
  std::uint64_t seed = 0;
  bool skipped = false, pass = false;
  std::string skip_reason, mode;  // mode: "namespaces" or "loopback"
  double seconds = 0;
  std::string outcome;               // the faulted deploy's final state
  std::int64_t deploy_ms = 0;        // the faulted deploy, created to ended
  std::int64_t rollback_ms = -1;     // its rollback, when it had one
  std::uint64_t origin_bytes = 0;    // the origin's upload during the run
  std::uint64_t artifact_bytes = 0;  // bytes of each release
  std::vector<FleetViolation> violations;
  std::vector<std::string> log;  // what the run did, with times
  std::string dir;               // kept with --keep or on failure
};

class Run;

struct Scenario {
  std::string name, description;
  bool needs_namespaces = false;  // link faults
  // Only control-plane faults: the service on every host must never stop
  // answering or restart except when a plan switches it.
  bool control_plane_only = false;
  std::function<void(Run&)> body;
  // Hosts whose state directory is a small disk of its own (needs root).
  std::vector<std::string> small_disks = {};
};

// Called from a signal handler (async-signal-safe): the running scenario
// stops at its next wait, and its fleet and network are taken down.
void interrupt();
bool interrupted();

const std::vector<Scenario>& scenarios();
const Scenario* find_scenario(const std::string& name);

// Runs one scenario on a fresh fleet in a fresh directory and checks the
// invariants after it (and the service probes throughout).
ScenarioResult run_scenario(const Scenario& s, const RunOptions& options);

// What a scenario's body works with.
class Run {
 public:
  Run(Fleet& fleet, const Scenario& s, const RunOptions& options, ScenarioResult& result);
  ~Run();

  Fleet& fleet() { return fleet_; }
  Network& net() { return fleet_.net(); }
  std::mt19937_64& rng() { return rng_; }
  std::int64_t now_ms() const;
  void note(const std::string& what);
  // Waits length (a fault's length, a poll period); throws once interrupted.
  void pause(std::chrono::milliseconds length);
  // A draw in [lo, hi] milliseconds.
  std::chrono::milliseconds between(int lo_ms, int hi_ms);

  // Pushes v1 (healthy) and deploys it everywhere: the state before the
  // faults. Starts the probes.
  void baseline();
  // Pushes v2; bad_in names the regions where it degrades.
  std::string push_v2(const std::set<std::string>& bad_in = {});
  const std::string& v1() const { return v1_; }
  // Starts a deploy of artifact; the deploy watched by wait_deploy.
  std::string deploy(const std::string& artifact);
  // Polls the deploy every 200 ms (approving its gates as bob) until it
  // ends; calls on_poll with its view each time. Returns the final view.
  nlohmann::json wait_deploy(const std::string& id,
                             const std::function<void(const nlohmann::json&)>& on_poll = {},
                             std::chrono::seconds timeout = std::chrono::seconds(300));
  // Waits (polling, approving gates) until pred holds on the deploy's view.
  bool wait_view(const std::string& id, const std::function<bool(const nlohmann::json&)>& pred,
                 std::chrono::seconds timeout = std::chrono::seconds(120));
  // Waits for an agent's line matching pred (from now on), approving gates.
  bool wait_agent_line(
      const std::function<bool(const std::string& host, const nlohmann::json&)>& pred,
      std::string* host_out, std::chrono::seconds timeout);

  // What each host must run at the end, and the deploy's expected end.
  void expect(const std::string& host, const std::string& artifact) { expected_[host] = artifact; }
  void expect_everywhere(const std::string& artifact);
  // Daemons the scenario stops or kills on purpose say so, so that any other
  // exit is a violation (a daemon died).
  void check_daemons();
  void expect_outcome(const std::string& deploy, const std::string& state) {
    expected_state_[deploy] = state;
  }
  void kill_coordinator_for(std::chrono::milliseconds down);
  // Records a violation now (any thread).
  void violate(const std::string& invariant, const std::string& subject, const std::string& detail);

 private:
  friend ScenarioResult run_scenario(const Scenario& s, const RunOptions& options);
  void start_probes();
  void stop_probes();
  void check();
  void check_audit(const std::string& deploy_id);
  // (host, artifact) -> when the first batch of a deploy of that artifact
  // named the host (the coordinator's unix ms), from the deploys' views.
  std::map<std::pair<std::string, std::string>, std::int64_t> batches_named();
  std::set<std::string> unreadable_;  // releases whose deploys' views could not be read

  Fleet& fleet_;
  const Scenario& scenario_;
  RunOptions options_;
  ScenarioResult& result_;
  std::mt19937_64 rng_;
  std::chrono::steady_clock::time_point start_;
  std::string v1_;
  std::set<std::string> planned_;  // every artifact a deploy named
  std::vector<std::string> deploys_;
  std::map<std::string, std::string> expected_, expected_state_;
  std::uint64_t origin_before_ = 0;
  int pushed_before_ = 0;
  // Per host, the agent process and how many of its lines were looked at.
  std::map<std::string, std::pair<const void*, std::size_t>> seen_lines_;
  // From now on only new agent lines count in wait_agent_line.
  void skip_agent_lines();

  // The probes: per host, what its service answered, every 100 ms.
  struct Probe {
    std::string release;
    int pid = 0;
    std::int64_t down_since = -1;  // a failing streak, since when
    // Each release the service switched to, and when it first answered
    // with it (unix ms).
    std::vector<std::pair<std::string, std::int64_t>> seen;
  };
  std::mutex probe_mu_;
  std::map<std::string, Probe> probes_;
  std::vector<std::thread> probers_;
  std::atomic<bool> probing_{false};
};

}  // namespace drover::chaos
