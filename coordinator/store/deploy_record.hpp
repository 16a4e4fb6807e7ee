// A deploy as the coordinator records it, drover.deploy.v2 (docs/FORMATS.md,
// "Deploy records, version 2"): its state, and per environment, wave and
// region its batches, waits, gate and outcome. Written by the orchestrator in
// one transaction per transition; stored as canonical JSON and read back
// exactly as written. A drover.deploy.v1 record reads as one environment with
// one wave of one region (every host of the deploy).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.hpp"

namespace drover::coordinator {

enum class DeployState {
  pending,            // waiting for the artifact to reach the seeds
  artifact_ready,     // about to enter its first environment
  queued,             // another run of the service holds the environment it enters next
  awaiting_approval,  // at an environment's gate
  deploying,          // the current environment's waves are rolling out
  baking,             // every region of the current wave is baking
  watching,           // the current environment's post-release watch
  rolling_back,       // the current environment goes back to what it ran before
  paused,             // a person's pause
  succeeded,
  rolled_back,
  failed,
  rejected,    // refused at a gate
  expired,     // a gate's deadline passed
  superseded,  // a newer run of the service queued for the same environment
  cancelled,   // its release stopped it before it entered an environment
};
const char* deploy_state_name(DeployState s);
bool is_terminal(DeployState s);
// The state named by deploy_state_name.
Result<DeployState> parse_deploy_state(std::string_view name);

struct BatchRecord {
  std::vector<std::string> hosts;
  std::string status = "pending";  // pending, deploying, baking, passed, failed
  std::int64_t started_ms = 0, converged_ms = 0, finished_ms = 0;
  std::string verdict;
  // Strategies on a traffic router (issue 15): the per mille of each host's
  // live traffic the release receives in this step (the other slot keeps
  // the rest), and whether the preview route reaches it. A step at less
  // than all traffic is judged against the other slot on the same hosts.
  int traffic = 1000;
  bool preview = false;
  // A flag ramp's step: the flag's percentage on every host (-1: not a ramp).
  int flag_percent = -1;
};

// How a plan revision routes its release on each host: the strategy keys of
// the plan (docs/FORMATS.md, "Plans").
struct PlanRoute {
  std::string kind = "rolling";
  int traffic = 1000;  // per mille of each host's live traffic for the artifact
  bool preview = false;
  std::optional<std::int64_t> scale_down_s = {};
  friend bool operator==(const PlanRoute&, const PlanRoute&) = default;
};

// Batches of hosts (plan_batches' answer) as a new run's records.
std::vector<BatchRecord> pending_batches(const std::vector<std::vector<std::string>>& hosts);

// One region (or one cluster of it) of a wave: its own batches, in parallel
// with the wave's other regions.
struct RegionRun {
  std::string region, cluster;  // "" for a version-1 record (every host)
  // pending, deploying, baking, passed, failed, rolling_back, rolled_back
  std::string status = "pending";
  std::size_t batch = 0;  // the batch being deployed or baked
  std::vector<BatchRecord> batches;
  std::int64_t deadline_ms = 0;    // deploying: the batch's converge deadline
  std::int64_t bake_until_ms = 0;  // baking: the bake's end
  // Baking: samples taken from here count (the batch converged, or the
  // coordinator came back: a bake covers a full bake the coordinator saw).
  std::int64_t judge_from_ms = 0;
  std::string verdict;
};

struct WaveRun {
  std::string name;
  std::string status = "pending";  // pending, running, passed, failed, rolling_back, rolled_back
  std::int64_t started_ms = 0, finished_ms = 0;
  std::vector<RegionRun> regions;  // filled when the wave starts
};

// A person's act at a gate (or a freeze override): who, with which token.
struct GateAct {
  std::string person, token;
  std::int64_t at_ms = 0;
  std::string comment;
};

struct GateRecord {
  int required = 0;  // approvals needed (0: no gate)
  std::int64_t deadline_ms = 0;
  std::vector<GateAct> approvals;
  std::optional<GateAct> rejection;  // comment: the reason
};

struct EnvRun {
  std::string name;
  // pending, awaiting_approval, deploying, watching, passed, rolling_back,
  // rolled_back, failed, rejected, expired
  std::string status = "pending";
  std::string prior_artifact;  // what this environment ran before: its rollback target
  std::int64_t entered_ms = 0, finished_ms = 0;
  GateRecord gate;
  std::optional<GateAct> freeze_override;  // comment: the reason
  std::string frozen;                      // the window holding the next wave ("" none)
  std::size_t wave = 0;                    // the wave running (or rolling back)
  std::vector<WaveRun> waves;
  std::int64_t watch_until_ms = 0;
  std::int64_t rollback_started_ms = 0, rollback_done_ms = 0;
};

struct DeployRecord {
  std::string id, pipeline_id, service, artifact;
  std::string started_by;  // the person who started the run (gates compare persons)
  // The release this run belongs to ("" for a single run): it decides when
  // the run enters each environment (coordinator/releases).
  std::string release = {};
  // A flag ramp (issue 15): the flag this run ramps in its one environment
  // up to flag_percent; its artifact is the release the environment runs,
  // which the run never changes. "" for a deploy.
  std::string flag = {};
  int flag_percent = -1;
  int flag_before = 0;  // the flag's percentage when the ramp began: its rollback's target
  bool ramp() const { return !flag.empty(); }
  DeployState state = DeployState::pending;
  std::size_t env = 0;  // the environment entered (or being entered)
  std::vector<EnvRun> environments;
  std::string queued_behind;  // queued: the run holding the environment
  // The deploy's own wait: the artifact (pending), the gate
  // (awaiting_approval), a person's pause (paused), the rollback of a wave
  // (rolling_back). 0: none.
  std::int64_t deadline_ms = 0;
  DeployState paused_from = DeployState::pending;
  std::int64_t paused_at_ms = 0;
  std::int64_t created_ms = 0, completed_ms = 0;
  std::string reason;  // why it rolled back, failed or ended

  EnvRun* current_env() { return env < environments.size() ? &environments[env] : nullptr; }
  const EnvRun* current_env() const {
    return env < environments.size() ? &environments[env] : nullptr;
  }
};

// Whether d holds its current environment (from its gate to the end of its
// watch or rollback, or, for a release's run, while its release holds it at
// the entrance): another run of the service entering it queues.
bool holds_env(const DeployRecord& d);

std::string encode_deploy(const DeployRecord& d);
Result<DeployRecord> decode_deploy(std::string_view bytes);

}  // namespace drover::coordinator
