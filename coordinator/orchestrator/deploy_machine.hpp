// The deploy state machine (docs/COORDINATOR.md, "Deploys" and "Promotion"),
// as a pure step function: given a deploy's record, the plan it runs (its
// pipeline's environments as they were when it started), what the fleet
// reports and the time, it returns the next record and the actions that go
// with the transition. The driver commits the new record (and its audit
// records) in one transaction before it acts, so a restarted coordinator
// resumes exactly where it was. Time is an argument, never read: tests run
// in virtual time.
//
//   pending -> artifact_ready -> [queued] -> (per environment:)
//     [awaiting_approval] -> deploying/baking (wave by wave; each region of a
//     wave through its own batches, in parallel) -> [watching] -> next
//     environment | succeeded
//   a failure in an environment -> rolling_back (that environment only,
//     newest wave first) -> rolled_back | failed
//   gates end in rejected or expired; a newer queued run supersedes an older
//   one; any active state <-> paused (a person's pause, with a deadline)
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "coordinator/health/analysis.hpp"
#include "coordinator/health/judge.hpp"
#include "coordinator/orchestrator/batches.hpp"
#include "coordinator/promotion/promotion.hpp"
#include "coordinator/store/deploy_record.hpp"

namespace drover::coordinator {

struct DeployParams {
  std::int64_t bake_ms = 60'000;
  std::int64_t converge_timeout_ms = 600'000;  // a batch's hosts must run the artifact by then
  std::int64_t ready_timeout_ms = 600'000;     // the artifact must be at the seeds by then
  std::int64_t rollback_timeout_ms = 300'000;  // per wave rolled back
  std::int64_t pause_timeout_ms = 86'400'000;  // a paused run fails and rolls back after
  std::int64_t baseline_window_ms = 600'000;   // pre-deploy samples that count as baseline
  HealthThresholds health;
  // Prometheus queries judged beside the agents' samples (absent: none).
  std::optional<PromCheck> prometheus = {};
  // Test only, a planted bug (docs/CHAOS.md, "Planted bugs"): a bake counts
  // as over this long before its end, so the next batch starts early. Never
  // set outside tests; the chaos simulation must catch it.
  std::int64_t planted_early_batch_ms = 0;
};

// One environment of the run's plan, every setting resolved.
struct EnvPlan {
  std::string name;
  std::vector<Wave> waves;
  std::optional<Gate> gate;
  RolloutShape shape;
  DeployParams params;
  std::int64_t watch_ms = 0;
  // The freeze window holding at now_ms, described ("" when none). Empty
  // function: never frozen.
  std::function<std::string(std::int64_t now_ms)> frozen;
};

struct RunPlan {
  std::vector<EnvPlan> envs;
  // Every region (and cluster) some environment names: what a "*" wave
  // leaves out.
  std::vector<RegionRef> named;
  std::int64_t ready_timeout_ms = 600'000;
};

// What the fleet has reported, as the machine needs it.
struct HostSample {
  std::string host, release;
  std::int64_t at_ms = 0;
  Sample sample;
  double requests = 0;  // requests the release served in the sample's window (0: not said)
  bool other = false;   // the host's other slot: the control of a traffic split
};
struct HostPlace {
  std::string host, region, cluster;
};
struct FleetView {
  bool artifact_ready = false;
  std::map<std::string, std::string> running;  // host -> release it reports running
  std::vector<HostSample> samples;             // the service's recent health samples
  std::set<std::string> apply_failed;          // hosts that refused or failed this artifact
  std::vector<HostPlace> hosts = {};           // the service's enrolled hosts
  // Hosts that split traffic (blue/green slots, an agent that reports it):
  // the per mille their release receives, and those it is previewed on.
  std::map<std::string, int> traffic = {};
  std::set<std::string> previewed = {};
  // A flag ramp: the environment's flag set now (its seq, and the ramped
  // flag's percentage in it, -1 when absent) and the set each host applied.
  std::uint64_t flagset_seq = 0;
  int flag_now = -1;
  std::map<std::string, std::uint64_t> flags_seq = {};
  // The environment the run enters next (its current one while queued or
  // before its first): another run holding it ("" when free), and what that
  // environment runs now (its rollback target once entered).
  std::string next_env_holder = {};
  std::string next_env_prior = {};
  // A release's run: why its release holds it at that entrance ("" when it
  // may enter). It waits queued, holding the environment for its service.
  std::string release_hold = {};
  // Why the view could not be read ("" when it was): the run is not advanced
  // on it (no host list read as empty, no samples read as silence).
  std::string unreadable = {};
  // The run's Prometheus measurements (coordinator/health/analysis.hpp),
  // taken off the machine's lock; each batch counts those of its bake.
  std::vector<BatchAnalysis> analysis = {};
};

struct Action {
  enum class Kind { issue_plan, audit, issue_flags } kind = Kind::audit;
  std::string artifact;            // issue_plan: what the hosts run
  std::vector<std::string> hosts;  // issue_plan: who
  std::string what;                // audit: the step ("batch.started", ...)
  std::string detail;              // audit: canonical JSON object
  std::string env = {};            // audit: the environment it happened in ("" none)
  std::string release = {};        // audit "service.release": what the environment runs now
  PlanRoute route = {};            // issue_plan: how the hosts route it
  // issue_flags: the flag at this percentage in the run's environment (a
  // new revision of its flag set unless it holds that value already).
  std::string flag = {};
  int flag_percent = -1;
};

struct Step {
  DeployRecord next;
  std::vector<Action> actions;
  bool changed = false;
  // When the step was decided (0: when it is committed). Its audit records
  // carry this time, so a bake's records measure the bake the machine timed
  // and not the time the commit waited for the store.
  std::int64_t at_ms = 0;
};

// Which hosts a region reference covers: region "" covers every host (a
// version-1 environment without a region); rest covers the hosts in no
// named region.
bool covers(const RegionRef& ref, const HostPlace& h);
// The hosts of an environment of the plan.
std::vector<std::string> env_hosts(const RunPlan& plan, std::size_t env,
                                   const std::vector<HostPlace>& hosts);

// How a batch's plan routes its release (ep: the environment's plan, if known).
PlanRoute batch_route(const BatchRecord& b, const EnvPlan* ep);

Step advance(const DeployRecord& d, const RunPlan& plan, const FleetView& fleet,
             std::int64_t now_ms);

// A person's commands. Each is refused (an error naming why) where it makes
// no sense (pausing a finished deploy, approving one not at a gate, the
// run's starter approving it, a person approving twice).
struct Refusal {
  std::string why;
};
using Command = std::variant<Step, Refusal>;
Command pause(const DeployRecord& d, const RunPlan& plan, std::int64_t now_ms);
Command resume(const DeployRecord& d, std::int64_t now_ms);
// Rolls back the run's current environment (for a finished run: the last
// environment it entered).
Command rollback(const DeployRecord& d, const RunPlan& plan, std::int64_t now_ms,
                 const std::string& reason);
Command approve(const DeployRecord& d, const GateAct& act);
Command reject(const DeployRecord& d, const GateAct& act);
Command override_freeze(const DeployRecord& d, const GateAct& act);
// A newer queued run of the service takes d's place.
Command supersede(const DeployRecord& d, const std::string& newer, std::int64_t now_ms);

// The environment d enters next (npos: none): its current one before it
// entered it, the one after while it is in one.
std::size_t entering_env(const DeployRecord& d);

// A release ends its run before it enters another environment (from
// pending, artifact_ready, queued or awaiting_approval: the run changes
// nothing more). The run ends cancelled.
Command cancel(const DeployRecord& d, const std::string& why, std::int64_t now);
// A release rolls back environment `env` of its run, which passed it (the
// run is queued at the next one, or succeeded): the environment goes back to
// what it ran before, as a person's rollback of a finished run would.
Command rollback_passed(const DeployRecord& d, const RunPlan& plan, std::size_t env,
                        std::int64_t now, const std::string& reason);

// A flag ramp ended by a person's change of its flag (a kill, a value set
// at once), whatever its state: it writes no flag and never raises it again.
Command end_ramp(const DeployRecord& d, const std::string& why, std::int64_t now);

// After the coordinator was down: every bake and watch running restarts
// (samples the coordinator did not see never pass a batch, and its absence
// never fails one), and every converge deadline gives the hosts at least
// its full timeout again. Nothing to do: nullopt.
std::optional<Step> after_restart(const DeployRecord& d, const RunPlan& plan, std::int64_t now_ms);

}  // namespace drover::coordinator
