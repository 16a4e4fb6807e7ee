#include "coordinator/orchestrator/orchestrator.hpp"

#include <algorithm>

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
  DROVER_ASSIGN(auto d, store_.deploy(deploy_id));
  if (!d) return make_error(Errc::not_found, "no deploy '" + deploy_id + "'");
  return std::move(*d);
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
  DROVER_TRY(store_.commit_deploy(step.next, audits));
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
  DROVER_ASSIGN(auto active, store_.active_deploys());
  for (const auto& d : active) {
    for (const auto& a : implied_plans(d)) {
      DROVER_TRY(plans_(d, a.artifact, a.hosts));
    }
    log_.info("coordinator.deploy.recovered",
              {{"deploy", d.id}, {"state", deploy_state_name(d.state)}, {"batch", d.batch}});
  }
  return Ok{};
}

Result<DeployRecord> Orchestrator::start(const DeployRequest& r) {
  DROVER_ASSIGN(auto other, store_.active_deploy(r.service));
  if (other) {
    return make_error(Errc::refused, "deploy '" + other->id + "' of service '" + r.service +
                                         "' is " + deploy_state_name(other->state) +
                                         "; one deploy per service at a time");
  }
  DROVER_ASSIGN(auto all_hosts, store_.hosts());
  std::vector<std::string> hosts;
  for (const auto& h : all_hosts) {
    if (std::find(h.services.begin(), h.services.end(), r.service) == h.services.end()) continue;
    if (!r.region.empty() && h.region != r.region) continue;
    if (!r.cluster.empty() && h.cluster != r.cluster) continue;
    hosts.push_back(h.host);
  }
  if (hosts.empty()) {
    return make_error(Errc::refused,
                      "no enrolled host runs service '" + r.service + "' in env '" + r.env + "'");
  }
  DROVER_ASSIGN(std::uint64_t counter, store_.deploy_counter(r.service));
  CoordinatorStore::NewDeploy n;
  n.counter = counter + 1;
  DeployRecord& d = n.record;
  d.id = r.service + "-" + std::to_string(n.counter);
  d.pipeline_id = r.pipeline_id;
  d.service = r.service;
  d.artifact = r.artifact;
  d.created_ms = now_ms();
  DROVER_ASSIGN(auto running, store_.running_at(r.service, d.created_ms));
  if (running) d.prior_artifact = running->artifact;
  d.batches = pending_batches(plan_batches(hosts, r.shape, d.id));
  n.created = created_record(d, r.who, r.git_sha);
  n.config_snapshot = r.config_snapshot;
  DROVER_TRY(store_.create_deploy(n));
  log_.info("coordinator.deploy.created", {{"deploy", d.id},
                                           {"artifact", d.artifact},
                                           {"hosts", hosts.size()},
                                           {"batches", d.batches.size()},
                                           {"who", r.who}});
  return std::move(n.record);
}

AuditRecord Orchestrator::created_record(const DeployRecord& d, const std::string& who,
                                         const std::string& git_sha) const {
  AuditRecord r;
  r.at_ms = now_ms();
  r.who = who;
  r.what = "deploy.created";
  r.service = d.service;
  r.deploy_id = d.id;
  r.artifact = d.artifact;
  r.git_sha = git_sha;
  return r;
}

Status Orchestrator::create(const DeployRecord& d, const std::string& who,
                            const std::string& git_sha, const std::string& config_snapshot) {
  return store_.create_deploy({d, created_record(d, who, git_sha), config_snapshot, 0});
}

Result<int> Orchestrator::tick() {
  DROVER_ASSIGN(auto active, store_.active_deploys());
  int changed = 0;
  for (const auto& d : active) {
    if (d.state == DeployState::paused) continue;
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
