#include "coordinator/orchestrator/orchestrator.hpp"

#include "coordinator/orchestrator/deploy_codec.hpp"

namespace drover::coordinator {

std::vector<Action> implied_plans(const DeployRecord& d) {
  std::vector<Action> out;
  std::vector<std::string> hosts;
  const std::size_t upto = std::min(d.batch + 1, d.batches.size());
  const DeployState s = d.state == DeployState::paused ? d.paused_from : d.state;
  if ((s == DeployState::deploying || s == DeployState::baking) && upto > 0) {
    // Each batch's revision named that batch; a crash can only have lost the
    // newest one (plans go out right after each commit).
    out.push_back({Action::Kind::issue_plan, d.artifact, d.batches[upto - 1].hosts, "", ""});
  } else if (s == DeployState::rolling_back) {
    for (std::size_t i = upto; i-- > 0;) {
      hosts.insert(hosts.end(), d.batches[i].hosts.begin(), d.batches[i].hosts.end());
    }
    out.push_back({Action::Kind::issue_plan, d.prior_artifact, hosts, "", ""});
  }
  return out;
}

Orchestrator::Orchestrator(CoordinatorStore& store, FleetSource fleet, PlanSink plans,
                           ParamsOf params, const Clock& clock, Logger& log)
    : store_(store),
      fleet_(std::move(fleet)),
      plans_(std::move(plans)),
      params_(std::move(params)),
      clock_(clock),
      log_(log) {}

std::int64_t Orchestrator::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now().time_since_epoch())
      .count();
}

Result<DeployRecord> Orchestrator::get(const std::string& deploy_id) {
  DROVER_ASSIGN(auto bytes, store_.deploy(deploy_id));
  if (!bytes) return make_error(Errc::not_found, "no deploy '" + deploy_id + "'");
  return decode_deploy(*bytes);
}

Status Orchestrator::commit(const DeployRecord& before, const Step& step, const std::string& who) {
  std::vector<AuditRecord> audits;
  for (const auto& a : step.actions) {
    if (a.kind != Action::Kind::audit) continue;
    AuditRecord r;
    r.at_ms = now_ms();
    r.who = who;
    r.what = a.what;
    r.service = before.service;
    r.deploy_id = before.id;
    r.artifact = a.what == "service.release" && step.next.state == DeployState::rolled_back
                     ? before.prior_artifact
                     : before.artifact;
    r.detail = a.detail;
    audits.push_back(std::move(r));
  }
  // The transition is durable before anything is acted on.
  DROVER_TRY(store_.commit_deploy(before.id, encode_deploy(step.next), audits));
  log_.info("coordinator.deploy.transition", {{"deploy", before.id},
                                              {"from", deploy_state_name(before.state)},
                                              {"to", deploy_state_name(step.next.state)},
                                              {"batch", step.next.batch}});
  if (on_commit_) on_commit_(audits);
  for (const auto& a : step.actions) {
    if (a.kind != Action::Kind::issue_plan) continue;
    if (auto st = plans_(step.next, a.artifact, a.hosts); !st.ok()) {
      // The state stands; recover() or the next restart issues it again.
      log_.error("coordinator.plan.failed", {{"deploy", before.id}, {"error", st.error().message}});
      return st;
    }
  }
  return Ok{};
}

Status Orchestrator::recover() {
  DROVER_ASSIGN(auto all, store_.deploys());
  for (const auto& bytes : all) {
    DROVER_ASSIGN(DeployRecord d, decode_deploy(bytes));
    if (is_terminal(d.state)) continue;
    for (const auto& a : implied_plans(d)) {
      DROVER_TRY(plans_(d, a.artifact, a.hosts));
    }
    log_.info("coordinator.deploy.recovered",
              {{"deploy", d.id}, {"state", deploy_state_name(d.state)}, {"batch", d.batch}});
  }
  return Ok{};
}

Status Orchestrator::create(const DeployRecord& d, const std::string& who,
                            const std::string& git_sha, const std::string& config_snapshot) {
  DROVER_ASSIGN(auto existing, store_.deploy(d.id));
  if (existing) return make_error(Errc::already_exists, "deploy '" + d.id + "' exists");
  AuditRecord r;
  r.at_ms = now_ms();
  r.who = who;
  r.what = "deploy.created";
  r.service = d.service;
  r.deploy_id = d.id;
  r.artifact = d.artifact;
  r.git_sha = git_sha;
  return store_.commit_deploy(d.id, encode_deploy(d), {r}, config_snapshot);
}

Result<int> Orchestrator::tick() {
  DROVER_ASSIGN(auto all, store_.deploys());
  int changed = 0;
  for (const auto& bytes : all) {
    DROVER_ASSIGN(DeployRecord d, decode_deploy(bytes));
    if (is_terminal(d.state) || d.state == DeployState::paused) continue;
    Step s = advance(d, params_(d), fleet_(d), now_ms());
    if (!s.changed) continue;
    DROVER_TRY(commit(d, s, "system"));
    ++changed;
  }
  return changed;
}

Status Orchestrator::pause(const std::string& deploy_id, const std::string& who) {
  DROVER_ASSIGN(DeployRecord d, get(deploy_id));
  auto s = coordinator::pause(d, now_ms());
  if (!s) {
    return make_error(Errc::refused, "deploy '" + deploy_id + "' is " + deploy_state_name(d.state) +
                                         " and cannot be paused");
  }
  return commit(d, *s, who);
}

Status Orchestrator::resume(const std::string& deploy_id, const std::string& who) {
  DROVER_ASSIGN(DeployRecord d, get(deploy_id));
  auto s = coordinator::resume(d, now_ms());
  if (!s) {
    return make_error(Errc::refused, "deploy '" + deploy_id + "' is " + deploy_state_name(d.state) +
                                         ", not paused");
  }
  return commit(d, *s, who);
}

Status Orchestrator::rollback(const std::string& deploy_id, const std::string& who,
                              const std::string& why) {
  DROVER_ASSIGN(DeployRecord d, get(deploy_id));
  auto s = coordinator::rollback(d, params_(d), now_ms(), why);
  if (!s) {
    return make_error(Errc::refused, "deploy '" + deploy_id + "' is " + deploy_state_name(d.state) +
                                         "; nothing to roll back");
  }
  return commit(d, *s, who);
}

}  // namespace drover::coordinator
