// The deploy state machine (docs/COORDINATOR.md, "Deploys"), as a pure step
// function: given a deploy's record, its parameters, what the fleet reports
// and the time, it returns the next record and the actions that go with the
// transition. The driver commits the new record (and its audit records) in
// one transaction before it acts, so a restarted coordinator resumes exactly
// where it was. Time is an argument, never read: tests run in virtual time.
//
//   pending -> artifact_ready -> deploying k -> baking k -> (next batch | succeeded)
//                                    \______________\____-> rolling_back -> rolled_back | failed
//   any active state <-> paused (a person's pause waits for the person)
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "coordinator/health/judge.hpp"
#include "coordinator/store/deploy_record.hpp"

namespace drover::coordinator {

struct DeployParams {
  std::int64_t bake_ms = 60'000;
  std::int64_t converge_timeout_ms = 600'000;  // a batch's hosts must run the artifact by then
  std::int64_t ready_timeout_ms = 600'000;     // the artifact must be at the seeds by then
  std::int64_t rollback_timeout_ms = 300'000;
  std::int64_t baseline_window_ms = 600'000;  // pre-deploy samples that count as baseline
  HealthThresholds health;
};

// What the fleet has reported, as the machine needs it.
struct HostSample {
  std::string host, release;
  std::int64_t at_ms = 0;
  Sample sample;
};
struct FleetView {
  bool artifact_ready = false;
  std::map<std::string, std::string> running;  // host -> release it reports running
  std::vector<HostSample> samples;             // the service's recent health samples
  std::set<std::string> apply_failed;          // hosts that refused or failed this artifact
};

struct Action {
  enum class Kind { issue_plan, audit } kind = Kind::audit;
  std::string artifact;            // issue_plan: what the hosts run
  std::vector<std::string> hosts;  // issue_plan: who
  std::string what;                // audit: the step ("batch.started", ...)
  std::string detail;              // audit: canonical JSON object
};

struct Step {
  DeployRecord next;
  std::vector<Action> actions;
  bool changed = false;
};

Step advance(const DeployRecord& d, const DeployParams& p, const FleetView& fleet,
             std::int64_t now_ms);
// A person's commands. Each is refused (nullopt) where it makes no sense
// (pausing a finished deploy, resuming one that is not paused).
std::optional<Step> pause(const DeployRecord& d, std::int64_t now_ms);
std::optional<Step> resume(const DeployRecord& d, std::int64_t now_ms);
std::optional<Step> rollback(const DeployRecord& d, const DeployParams& p, std::int64_t now_ms,
                             const std::string& reason);

}  // namespace drover::coordinator
