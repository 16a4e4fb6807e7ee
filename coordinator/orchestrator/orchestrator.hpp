// The durable driver of deploys (docs/COORDINATOR.md, "Deploys"): on each
// tick it advances every active deploy with the pure state machine, commits
// the new record with its audit records in one transaction, and only then
// issues the plans the transition calls for.
//
// A crash between the commit and the plans is repaired at start: for every
// active deploy the driver issues again the plans its state implies (the
// current batch with the new release, or the moved hosts with the prior
// one). A host already running that release ignores the repeat, so no batch
// is applied twice; deadlines and bakes are absolute times on the record, so
// none is shortened or lengthened by the restart.
//
// Threads: one caller at a time (the coordinator's event loop).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "coordinator/orchestrator/batches.hpp"
#include "coordinator/orchestrator/deploy_machine.hpp"
#include "coordinator/store/coordinator_store.hpp"
#include "core/log/log.hpp"
#include "core/world/clock.hpp"

namespace drover::coordinator {

// What the fleet reports about a deploy's service.
using FleetSource = std::function<FleetView(const DeployRecord&)>;
// Issues a plan revision: hosts run artifact.
using PlanSink = std::function<Status(const DeployRecord&, const std::string& artifact,
                                      const std::vector<std::string>& hosts)>;
// The parameters of a deploy (from its pipeline).
using ParamsOf = std::function<DeployParams(const DeployRecord&)>;

// The plans a deploy in this state stands behind, oldest first.
std::vector<Action> implied_plans(const DeployRecord& d);

// A deploy to start: of which artifact, through which env of which pipeline,
// in what shape, and why (who, the git SHA, the config snapshot).
struct DeployRequest {
  std::string pipeline_id, service, artifact;
  std::string env;              // its name
  std::string region, cluster;  // which enrolled hosts it is ("" matches any)
  RolloutShape shape;
  std::string who, git_sha;
  std::string config_snapshot;  // hashed into the audit chain
};

class Orchestrator {
 public:
  Orchestrator(CoordinatorStore& store, FleetSource fleet, PlanSink plans, ParamsOf params,
               const Clock& clock, Logger& log);

  // Re-issues the plans of every active deploy (call once at start).
  Status recover();
  // Starts a deploy (state pending): one deploy per service at a time; the
  // enrolled hosts of the service in the env, batched in the request's shape;
  // numbered "<service>-<n>"; rolling back to what the service ran before.
  // Its record, number, config snapshot and creation audit record commit in
  // one transaction. Refused (Errc::refused) while another deploy of the
  // service is active or when the env has no host.
  Result<DeployRecord> start(const DeployRequest& request);
  // Records a deploy already planned (state pending, not numbered) with its
  // creation audit record and the pipeline config snapshot.
  Status create(const DeployRecord& d, const std::string& who, const std::string& git_sha,
                const std::string& config_snapshot);
  // Advances every active deploy once. Returns how many changed.
  Result<int> tick();

  // A person's commands; refused (Errc::refused) where they make no sense.
  Status pause(const std::string& deploy_id, const std::string& who);
  Status resume(const std::string& deploy_id, const std::string& who);
  Status rollback(const std::string& deploy_id, const std::string& who, const std::string& why);

  Result<DeployRecord> get(const std::string& deploy_id);

  // Called after each transition commits, before its plans go out (a test's
  // crash point sits here).
  void on_commit(std::function<void(const std::vector<AuditRecord>&)> hook) {
    on_commit_ = std::move(hook);
  }

 private:
  Status commit(const DeployRecord& before, const Step& step, const std::string& who);
  AuditRecord created_record(const DeployRecord& d, const std::string& who,
                             const std::string& git_sha) const;
  std::int64_t now_ms() const;

  CoordinatorStore& store_;
  FleetSource fleet_;
  PlanSink plans_;
  ParamsOf params_;
  const Clock& clock_;
  Logger& log_;
  std::function<void(const std::vector<AuditRecord>&)> on_commit_;
};

}  // namespace drover::coordinator
