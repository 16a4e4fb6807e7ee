// A deploy as the coordinator records it, drover.deploy.v1 (docs/FORMATS.md,
// "Deploy records"): its state, batches, deadlines and outcome. Written by
// the orchestrator in one transaction per transition; stored as canonical
// JSON and read back exactly as written.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.hpp"

namespace drover::coordinator {

enum class DeployState {
  pending,
  artifact_ready,
  deploying,
  baking,
  rolling_back,
  succeeded,
  rolled_back,
  failed,
  paused
};
const char* deploy_state_name(DeployState s);
bool is_terminal(DeployState s);

struct BatchRecord {
  std::vector<std::string> hosts;
  std::string status = "pending";  // pending, deploying, baking, passed, failed
  std::int64_t started_ms = 0, converged_ms = 0, finished_ms = 0;
  std::string verdict;
};

// Batches of hosts (plan_batches' answer) as a new deploy's records.
std::vector<BatchRecord> pending_batches(const std::vector<std::vector<std::string>>& hosts);

struct DeployRecord {
  std::string id, pipeline_id, service, artifact;
  std::string prior_artifact;  // what the fleet ran before: the rollback target
  DeployState state = DeployState::pending;
  std::size_t batch = 0;  // the batch being deployed or baked
  std::vector<BatchRecord> batches;
  // Every automatic wait has an absolute deadline (0: none).
  std::int64_t deadline_ms = 0;
  std::int64_t bake_until_ms = 0;
  // Paused: what it was doing and how much of each wait was left.
  DeployState paused_from = DeployState::pending;
  std::int64_t paused_deadline_left_ms = 0, paused_bake_left_ms = 0;
  std::int64_t created_ms = 0, completed_ms = 0;
  std::int64_t rollback_started_ms = 0, rollback_done_ms = 0;
  std::string reason;  // why it rolled back or failed
};

std::string encode_deploy(const DeployRecord& d);
Result<DeployRecord> decode_deploy(std::string_view bytes);
// The state named by deploy_state_name.
Result<DeployState> parse_deploy_state(std::string_view name);

}  // namespace drover::coordinator
