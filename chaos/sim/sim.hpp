// The seeded whole-system simulation (docs/CHAOS.md, "The simulation"): the
// coordinator's real decisions (the deploy machine and its durable driver,
// plan issue and signing, the store contract on a crashable in-memory store)
// and each agent's real step function, on a simulated network with a
// virtual clock, under a fault schedule drawn from a seed. One run is a pure
// function of its options: the same seed replays the same run exactly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace drover::chaos {

struct SimOptions {
  std::uint64_t seed = 1;
  int hosts_per_region = 2;
  // Test-only planted bugs (docs/CHAOS.md, "Planted bugs"): each makes one
  // invariant breakable, to prove its checker can fail.
  // The deploy machine's planted bug: each batch passes 5 s before its bake
  // ends (DeployParams::planted_early_batch_ms).
  bool plant_early_batch = false;
  // The agent's planted bug: releases are unpacked without their sync
  // (ServiceSpec::planted_unsynced_unpack), so a power loss can leave
  // `current` on a tree of empty files.
  bool plant_unsynced_unpack = false;
};

struct Violation {
  // converged, planned_only, current_complete, audit, bake, healthy_stays,
  // rollback_in_time
  std::string invariant;
  std::string subject;     // the host or deploy
  std::int64_t at_ms = 0;  // virtual time since the run began
  std::string detail;
};

struct SimResult {
  std::uint64_t seed = 0;
  std::vector<Violation> violations;
  std::vector<std::string> schedule;  // the faults drawn, in time order
  std::int64_t virtual_ms = 0;
  int deploys = 0, succeeded = 0, rolled_back = 0, superseded = 0;
  int coordinator_crashes = 0, agent_crashes = 0, power_losses = 0, partitions = 0;
  std::uint64_t messages = 0, dropped = 0;
};

SimResult run_sim(const SimOptions& options);

}  // namespace drover::chaos
