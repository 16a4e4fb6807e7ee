// The durable driver of deploys (docs/COORDINATOR.md, "Deploys" and
// "Promotion"): on each tick it advances every active deploy with the pure
// state machine, commits the new record with its audit records in one
// transaction, and only then issues the plans the transition calls for.
// Decisions that involve several runs live here: one run per service and
// environment (a run entering an environment another run holds queues; a
// newer queued run supersedes an older one), and a rollback refused while a
// newer run has entered the environment.
//
// A crash between the commit and the plans is repaired at start: for every
// active deploy the driver issues again the plans its state implies. A host
// already running that release ignores the repeat, so no batch is applied
// twice. A start also restarts every bake and watch running (the samples of
// the outage were never seen) and gives every converge wait its full timeout
// again: an outage of the coordinator never fails a healthy release.
//
// Threads: one caller at a time (the coordinator's event loop).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/orchestrator/batches.hpp"
#include "coordinator/orchestrator/deploy_machine.hpp"
#include "coordinator/store/coordinator_store.hpp"
#include "core/log/log.hpp"
#include "core/world/clock.hpp"

namespace drover::coordinator {

// The plan a deploy runs (from its config snapshot).
using PlanOf = std::function<RunPlan(const DeployRecord&)>;
// What the fleet reports about a deploy's service (the orchestrator fills in
// the environment's holder and prior release).
using FleetSource = std::function<FleetView(const DeployRecord&, const RunPlan&)>;
// Issues a plan revision: hosts run artifact, routed so.
using PlanSink =
    std::function<Status(const DeployRecord&, const std::string& artifact,
                         const std::vector<std::string>& hosts, const PlanRoute& route)>;

// The plans a deploy in this state stands behind, oldest first.
std::vector<Action> implied_plans(const DeployRecord& d, const RunPlan& plan);

// A deploy to start: of which artifact, through which plan from which of its
// environments, and why (who, the git SHA, the config snapshot).
struct DeployRequest {
  std::string pipeline_id, service, artifact;
  RunPlan plan;
  std::size_t first_env = 0;  // earlier environments are skipped
  std::string who;            // the token's name
  std::string person;         // whose run it is (gates compare persons)
  std::string git_sha;
  std::string config_snapshot;   // hashed into the audit chain
  std::string redeploy_of = {};  // the deploy this run reproduces ("" for none)
  std::string flag = {};         // a flag ramp: the flag and the percentage asked for
  int flag_percent = -1;
  int flag_before = 0;  // and the percentage it had
};

// Who acts, and why (a person's command).
struct Actor {
  std::string token, person;
};

class Orchestrator {
 public:
  Orchestrator(CoordinatorStore& store, FleetSource fleet, PlanSink plans, PlanOf plan_of,
               const Clock& clock, Logger& log);

  // Restarts the waits of every active deploy and re-issues their plans
  // (call once at start).
  Status recover();
  // Starts a deploy (state pending): numbered "<service>-<n>"; several runs
  // of a service may exist, queued per environment. Its record, number,
  // config snapshot and creation audit record commit in one transaction.
  // Refused (Errc::refused) when its first environment has no host.
  Result<DeployRecord> start(const DeployRequest& request);
  // A new run's record and creation audit record as start() would store
  // them (numbered after the service's last deploy), not stored.
  Result<CoordinatorStore::NewDeploy> new_run(const DeployRequest& request);
  // Records a deploy already planned with its creation audit record and the
  // pipeline config snapshot.
  Status create(const DeployRecord& d, const std::string& who, const std::string& git_sha,
                const std::string& config_snapshot);
  // Advances every active deploy as far as its conditions allow now, at
  // most kStepsPerTick transitions each. Returns the transitions committed.
  Result<int> tick();
  static constexpr int kStepsPerTick = 8;

  // A person's commands; refused (Errc::refused) where they make no sense.
  Status pause(const std::string& deploy_id, const Actor& who);
  Status resume(const std::string& deploy_id, const Actor& who);
  Status rollback(const std::string& deploy_id, const Actor& who, const std::string& why);
  // Ends a flag ramp at once (end_ramp), writing no flag.
  Status end_ramp(const std::string& deploy_id, const Actor& who, const std::string& why);
  Status approve(const std::string& deploy_id, const Actor& who, const std::string& comment);
  Status reject(const std::string& deploy_id, const Actor& who, const std::string& reason);
  Status override_freeze(const std::string& deploy_id, const Actor& who, const std::string& reason);

  Result<DeployRecord> get(const std::string& deploy_id);

  // A transition of one deploy that fn decides from its record and plan,
  // committed as a person's command is (who: the token acting). Answers the
  // new record; a refusal is Errc::refused naming why.
  using Decide = std::function<Command(const DeployRecord&, const RunPlan&)>;
  Result<DeployRecord> apply(const std::string& deploy_id, const std::string& who,
                             const Decide& fn);
  // A run of d's service that entered environment env after d did (none:
  // nullopt): it owns what env runs now, so d's rollback there is refused.
  Result<std::optional<DeployRecord>> newer_in_env(const DeployRecord& d, const std::string& env);

  // Releases of several services (coordinator/releases): before each tick
  // advances the active deploys (oldest first), the hook may change them
  // and answers, per deploy id, why its release holds it at its next
  // environment's entrance.
  using ReleaseHook =
      std::function<Result<std::map<std::string, std::string>>(std::vector<DeployRecord>& active)>;
  void on_releases(ReleaseHook hook) { releases_ = std::move(hook); }

  // Called after each transition commits, before its plans go out (a test's
  // crash point sits here).
  // Where a flag ramp's steps go: the flag at a percentage in the run's
  // environment (set once, before the first tick; without it a ramp's step
  // fails as a plan would).
  using FlagSink = std::function<Status(const DeployRecord&, const std::string& env,
                                        const std::string& flag, int percent)>;
  void on_flags(FlagSink sink) { flags_ = std::move(sink); }
  void on_commit(std::function<void(const std::vector<AuditRecord>&)> hook) {
    on_commit_ = std::move(hook);
  }

 private:
  Status commit(const DeployRecord& before, const Step& step, const std::string& who);
  Status command(const std::string& deploy_id, const std::string& who,
                 const std::function<Command(const DeployRecord&)>& fn);
  AuditRecord created_record(const DeployRecord& d, const std::string& who,
                             const std::string& git_sha) const;
  // Supersedes every queued run that a newer queued run of its service and
  // environment replaces.
  Status supersede_queued(std::vector<DeployRecord>& active);
  std::int64_t now_ms() const;

  CoordinatorStore& store_;
  FleetSource fleet_;
  PlanSink plans_;
  FlagSink flags_;
  PlanOf plan_of_;
  const Clock& clock_;
  Logger& log_;
  std::function<void(const std::vector<AuditRecord>&)> on_commit_;
  ReleaseHook releases_;
};

}  // namespace drover::coordinator
