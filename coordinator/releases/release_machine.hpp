// Every decision about a release of several services (docs/COORDINATOR.md,
// "Releases of several services"), as pure functions of the release's record,
// its member runs and the time: which environments it walks, when each member
// may enter each of them, which approvals and rejections reach which member,
// what a failure does to the others under the release's policy, and when the
// release has ended. The driver (release_driver) only reads, commits and
// applies what these answer, so one owner holding a whole release (a
// connected component of the dependency graph) can make all its decisions.
//
// In each environment E, in the order the release walks them:
//   - no member enters E before every member still going has finished every
//     earlier environment (the release stands at one gate at a time);
//   - a member enters E only after each of its dependencies finished E
//     (passed, its watch included); independent members enter together;
//   - a member whose dependency ended without passing E never enters it;
//   - a failure in E under policy all rolls back every member the release
//     changed in E, dependents before their dependencies; earlier
//     environments stay as they are.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "coordinator/orchestrator/deploy_machine.hpp"
#include "coordinator/releases/release_record.hpp"

namespace drover::coordinator {

// One pipeline of a release as the release sees it.
struct ReleasePipeline {
  std::string service;
  std::vector<std::string> envs;        // its environments, in order
  std::vector<std::string> depends_on;  // its pipeline's dependencies
};

// The environments a release walks: every one some pipeline names, in the
// order they all agree on (first seen first where they do not say). Refused,
// naming both, when two pipelines order two environments differently.
Result<std::vector<std::string>> release_environments(const std::vector<ReleasePipeline>& ps);
// The members in dependency order (dependencies first), each keeping only the
// dependencies the release changes. Refused for a service named twice, or a
// cycle (named).
Result<std::vector<ReleaseMember>> release_members(const std::vector<ReleasePipeline>& ps);

// What the release does to one of its runs.
struct MemberCommand {
  enum class Kind { approve, reject, cancel, rollback, rollback_passed } kind = Kind::cancel;
  std::string deploy_id, service;
  GateAct act = {};      // approve, reject
  std::string why = {};  // cancel, rollback, rollback_passed
  std::size_t env = 0;   // rollback_passed: the run's environment to roll back
};

struct ReleaseAudit {
  std::string what, detail, env, service = {};
};

struct ReleaseStep {
  ReleaseRecord next;
  bool changed = false;
  std::vector<ReleaseAudit> audits;
  std::vector<MemberCommand> commands;
  // Deploy id -> why the release holds that run at its next environment's
  // entrance (absent: it may enter).
  std::map<std::string, std::string> holds;
  bool ended = false;  // every member has ended: the release is finished
};

// Members by service (each member's run as it is now).
using Members = std::map<std::string, DeployRecord>;

ReleaseStep step_release(const ReleaseRecord& r, const Members& members, std::int64_t now);

// A person at the release's gate: the environment where a member waits at a
// gate now. Approvals follow the four-eyes rule (never the release's starter,
// each person once).
struct ReleaseRefusal {
  std::string why;
};
using ReleaseCommand = std::variant<ReleaseStep, ReleaseRefusal>;
ReleaseCommand approve_release(const ReleaseRecord& r, const Members& members, const GateAct& act);
ReleaseCommand reject_release(const ReleaseRecord& r, const Members& members, const GateAct& act);
// The release stops because a member could not be rolled back (policy all).
ReleaseStep leave_member(const ReleaseRecord& r, const std::string& service,
                         const std::string& why);

// A member's state in one environment of the release, for GET /releases/:id:
// absent (its pipeline lacks it), pending, waiting (the release holds it at
// the entrance), queued (behind another run), cancelled, or its run's
// environment status there (awaiting_approval, deploying, watching, passed,
// rolling_back, rolled_back, failed, rejected, expired).
std::string member_env_state(const DeployRecord& d, const std::string& env);

}  // namespace drover::coordinator
