// Pipelines (docs/COORDINATOR.md, "Pipelines"; docs/FORMATS.md, "Pipeline
// records"): how a service is deployed. A pipeline names the service, its
// environments (which hosts each one is), the rollout strategy, the health
// checks that judge each batch and the deadlines of the automatic waits.
// A deploy snapshots its pipeline as it was when the deploy started, so a
// later edit never changes a running deploy and every deploy can be
// reproduced from its git SHA and that snapshot.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/orchestrator/batches.hpp"
#include "coordinator/orchestrator/deploy_machine.hpp"
#include "coordinator/promotion/promotion.hpp"
#include "core/base/result.hpp"

namespace drover::coordinator {

struct PipelineEnv {
  std::string name;
  std::string region, cluster;  // "" matches any
};

struct Strategy {
  std::string kind = "rolling";  // rolling | canary
  RolloutShape shape;
};

// An environment's settings once its overrides are applied.
struct EnvSettings {
  Strategy strategy;
  DeployParams params;
  std::int64_t watch_ms = 0;
};

struct Pipeline {
  std::string id, service, source_repo;
  std::string branch = "main";  // whose pushes trigger it (version 2; version 1: main)
  // The services this one depends on (version 2; issue 16): in a release,
  // it enters an environment only after they have finished it.
  std::vector<std::string> depends_on;
  int format = 1;  // 1: drover pipeline v1 (envs); 2: drover.pipeline.v2 (environments)
  std::vector<PipelineEnv> envs;            // version 1
  std::vector<std::string> approval_gates;  // version 1: env names
  // The promotion path (a version-1 pipeline reads into it too: one wave of
  // its region per env, a gate of one approval where approval_gates names it).
  std::vector<Environment> environments;
  std::vector<EnvSettings> settings;  // per environment, resolved
  Strategy strategy;
  DeployParams params;                // bake, health thresholds, deadlines
  std::int64_t watch_ms = 0;          // version 2: default 600 s; version 1: none
  std::int64_t gate_ms = 86'400'000;  // timeouts.gate_s: a gate's default deadline
  // When an artifact counts as ready: "seeds" (every layer held by a seed
  // in each region the deploy touches) or "origin" (held by any source).
  std::string artifact_ready = "seeds";
  std::uint64_t version = 0;
  std::int64_t updated_ms = 0;
  std::string updated_by;
};

// What a deploy was started with, as its config snapshot records it (the
// snapshot's bytes are hashed into the audit chain; pipeline_codec.hpp).
struct DeployConfig {
  std::optional<Pipeline> pipeline;  // with the strategy the deploy used; absent if unreadable
  std::string env, artifact_id, git_sha, started_by;
  std::string redeploy_of;  // the deploy this one reproduces ("" for none)
};

const PipelineEnv* find_env(const Pipeline& p, const std::string& name);
// The index of environment `name` (npos: none).
std::size_t env_index(const Pipeline& p, const std::string& name);

// The plan a run of p follows (freeze windows' time zones loaded).
Result<RunPlan> run_plan(const Pipeline& p);

// The services' dependencies (service -> the services it depends on, every
// service that has a pipeline a key), checked for service: each dependency
// must have a pipeline, and no chain of dependencies may lead back to it.
// The refusal names the unknown service, or the cycle ("a -> b -> a").
Status check_dependencies(const std::map<std::string, std::vector<std::string>>& depends_on,
                          const std::string& service);

}  // namespace drover::coordinator
