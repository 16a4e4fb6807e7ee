// Pipelines (docs/COORDINATOR.md, "Pipelines"; docs/FORMATS.md, "Pipeline
// records"): how a service is deployed. A pipeline names the service, its
// environments (which hosts each one is), the rollout strategy, the health
// checks that judge each batch and the deadlines of the automatic waits.
// A deploy snapshots its pipeline as it was when the deploy started, so a
// later edit never changes a running deploy and every deploy can be
// reproduced from its git SHA and that snapshot.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/orchestrator/batches.hpp"
#include "coordinator/orchestrator/deploy_machine.hpp"
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

struct Pipeline {
  std::string id, service, source_repo;
  std::vector<PipelineEnv> envs;
  Strategy strategy;
  std::vector<std::string> approval_gates;  // env names
  DeployParams params;                      // bake, health thresholds, deadlines
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
};

const PipelineEnv* find_env(const Pipeline& p, const std::string& name);

}  // namespace drover::coordinator
