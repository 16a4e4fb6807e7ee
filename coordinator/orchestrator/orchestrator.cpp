#include "coordinator/orchestrator/orchestrator.hpp"

#include <algorithm>
#include <map>
#include <set>

namespace drover::coordinator {
namespace {

// (service, environment name): the run holding it.
using Holders = std::map<std::pair<std::string, std::string>, std::string>;

void hold(Holders& h, const DeployRecord& d) {
  const EnvRun* e = d.current_env();
  if (e == nullptr || !holds_env(d)) return;
  if (d.state == DeployState::queued) {
    // A release's run held at the entrance: never in place of a run that
    // is in the environment.
    h.emplace(std::pair{d.service, e->name}, d.id);
  } else {
    h[{d.service, e->name}] = d.id;
  }
}

void release_held(Holders& h, const DeployRecord& before) {
  const EnvRun* e = before.current_env();
  if (e == nullptr) return;
  auto it = h.find({before.service, e->name});
  if (it != h.end() && it->second == before.id) h.erase(it);
}

}  // namespace

std::vector<Action> implied_plans(const DeployRecord& d, const RunPlan& plan) {
  std::vector<Action> out;
  const EnvRun* e = d.current_env();
  if (e == nullptr || e->wave >= e->waves.size()) return out;
  const DeployState s = d.state == DeployState::paused ? d.paused_from : d.state;
  const WaveRun& w = e->waves[e->wave];
  if (d.ramp() &&
      (s == DeployState::deploying || s == DeployState::baking || s == DeployState::rolling_back)) {
    // A ramp's step, or its way back: the flag at that percentage.
    int percent = d.flag_before;
    for (const auto& r : w.regions) {
      if (s != DeployState::rolling_back && r.batch < r.batches.size()) {
        percent = r.batches[r.batch].flag_percent;
      }
    }
    Action a;
    a.kind = Action::Kind::issue_flags;
    a.flag = d.flag;
    a.flag_percent = percent;
    out.push_back(std::move(a));
    return out;
  }
  if (s == DeployState::deploying || s == DeployState::baking) {
    // Each batch's revision named that batch; a crash can only have lost the
    // newest ones (plans go out right after each commit).
    for (const auto& r : w.regions) {
      if ((r.status == "deploying" || r.status == "baking") && r.batch < r.batches.size()) {
        Action a;
        a.kind = Action::Kind::issue_plan;
        a.artifact = d.artifact;
        a.hosts = r.batches[r.batch].hosts;
        a.route =
            batch_route(r.batches[r.batch], d.env < plan.envs.size() ? &plan.envs[d.env] : nullptr);
        out.push_back(std::move(a));
      }
    }
  } else if (s == DeployState::rolling_back) {
    Action a;
    a.kind = Action::Kind::issue_plan;
    a.artifact = e->prior_artifact;
    std::set<std::string> named;  // a split's steps name the same hosts again
    for (const auto& r : w.regions) {
      for (const auto& b : r.batches) {
        if (b.started_ms == 0 && b.status == "pending") continue;
        for (const auto& h : b.hosts) {
          if (named.insert(h).second) a.hosts.push_back(h);
        }
      }
    }
    if (!a.hosts.empty()) out.push_back(std::move(a));
  }
  return out;
}

Orchestrator::Orchestrator(CoordinatorStore& store, FleetSource fleet, PlanSink plans,
                           PlanOf plan_of, const Clock& clock, Logger& log)
    : store_(store),
      fleet_(std::move(fleet)),
      plans_(std::move(plans)),
      plan_of_(std::move(plan_of)),
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
  const std::int64_t at = step.at_ms ? step.at_ms : now_ms();
  for (const auto& a : step.actions) {
    if (a.kind != Action::Kind::audit) continue;
    AuditRecord r;
    r.at_ms = at;
    r.who = who;
    r.what = a.what;
    r.service = before.service;
    r.env = a.env;
    r.deploy_id = before.id;
    r.artifact = a.release.empty() ? before.artifact : a.release;
    r.detail = a.detail;
    audits.push_back(std::move(r));
  }
  // The transition is durable before anything is acted on.
  DROVER_TRY(store_.commit_deploy(step.next, audits));
  log_.info("coordinator.deploy.transition", {{"deploy", before.id},
                                              {"from", deploy_state_name(before.state)},
                                              {"to", deploy_state_name(step.next.state)},
                                              {"env", step.next.env}});
  if (on_commit_) on_commit_(audits);
  for (const auto& a : step.actions) {
    if (a.kind == Action::Kind::issue_flags) {
      const EnvRun* e = step.next.current_env();
      Status st = flags_ && e ? flags_(step.next, e->name, a.flag, a.flag_percent)
                              : Status(make_error(Errc::internal, "no flag sink"));
      // The state stands and the step waits for its hosts: a flag set that
      // could not be written fails the step at its deadline, never the tick
      // of every other run (recover() writes it again after a restart).
      if (!st.ok()) {
        log_.error("coordinator.flags.failed",
                   {{"deploy", before.id}, {"error", st.error().message}});
      }
      continue;
    }
    if (a.kind != Action::Kind::issue_plan) continue;
    if (auto st = plans_(step.next, a.artifact, a.hosts, a.route); !st.ok()) {
      // The state stands; recover() or the next restart issues it again.
      log_.error("coordinator.plan.failed", {{"deploy", before.id}, {"error", st.error().message}});
      return st;
    }
  }
  return Ok{};
}

Status Orchestrator::recover() {
  DROVER_ASSIGN(auto active, store_.active_deploys());
  for (auto& d : active) {
    const std::int64_t now = now_ms();
    if (auto s = after_restart(d, plan_of_(d), now)) {
      s->at_ms = now;
      // Audit records only: the re-issue below covers every plan.
      DROVER_TRY(commit(d, *s, "system"));
      d = s->next;
    }
    for (const auto& a : implied_plans(d, plan_of_(d))) {
      if (a.kind == Action::Kind::issue_flags) {
        const EnvRun* e = d.current_env();
        if (flags_ && e) {
          if (Status st = flags_(d, e->name, a.flag, a.flag_percent); !st.ok()) {
            log_.error("coordinator.flags.failed",
                       {{"deploy", d.id}, {"error", st.error().message}});
          }
        }
        continue;
      }
      DROVER_TRY(plans_(d, a.artifact, a.hosts, a.route));
    }
    log_.info("coordinator.deploy.recovered",
              {{"deploy", d.id}, {"state", deploy_state_name(d.state)}, {"env", d.env}});
  }
  return Ok{};
}

Result<DeployRecord> Orchestrator::start(const DeployRequest& r) {
  DROVER_ASSIGN(CoordinatorStore::NewDeploy n, new_run(r));
  DROVER_TRY(store_.create_deploy(n));
  log_.info("coordinator.deploy.created", {{"deploy", n.record.id},
                                           {"artifact", n.record.artifact},
                                           {"env", n.created.env},
                                           {"environments", n.record.environments.size()},
                                           {"who", r.who}});
  return std::move(n.record);
}

Result<CoordinatorStore::NewDeploy> Orchestrator::new_run(const DeployRequest& r) {
  if (r.first_env >= r.plan.envs.size()) {
    return make_error(Errc::invalid_argument,
                      "the pipeline has no environment " + std::to_string(r.first_env));
  }
  DROVER_ASSIGN(auto all_hosts, store_.hosts());
  std::vector<HostPlace> places;
  for (const auto& h : all_hosts) {
    if (std::find(h.services.begin(), h.services.end(), r.service) == h.services.end()) continue;
    places.push_back({h.host, h.region, h.cluster});
  }
  const std::string& env_name = r.plan.envs[r.first_env].name;
  if (env_hosts(r.plan, r.first_env, places).empty()) {
    return make_error(Errc::refused, "no enrolled host runs service '" + r.service +
                                         "' in environment '" + env_name + "'");
  }
  DROVER_ASSIGN(std::uint64_t counter, store_.deploy_counter(r.service));
  CoordinatorStore::NewDeploy n;
  n.counter = counter + 1;
  DeployRecord& d = n.record;
  d.id = r.service + "-" + std::to_string(n.counter);
  d.pipeline_id = r.pipeline_id;
  d.service = r.service;
  d.artifact = r.artifact;
  d.started_by = r.person;
  d.flag = r.flag;
  d.flag_percent = r.flag_percent;
  d.flag_before = r.flag_before;
  d.created_ms = now_ms();
  for (std::size_t i = 0; i < r.plan.envs.size(); ++i) {
    EnvRun e;
    e.name = r.plan.envs[i].name;
    if (i < r.first_env) e.status = "skipped";
    for (const auto& w : r.plan.envs[i].waves) {
      WaveRun run;
      run.name = w.name;
      e.waves.push_back(std::move(run));
    }
    if (e.waves.empty()) e.waves.push_back(WaveRun{});
    d.environments.push_back(std::move(e));
  }
  d.env = r.first_env;
  n.created = created_record(d, r.who, r.git_sha);
  if (!r.redeploy_of.empty()) {
    n.created.detail =
        nlohmann::json{{"started_by", d.started_by}, {"redeploy_of", r.redeploy_of}}.dump();
  }
  n.created.env = env_name;
  n.config_snapshot = r.config_snapshot;
  return n;
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
  r.detail = nlohmann::json{{"started_by", d.started_by}}.dump();
  return r;
}

Status Orchestrator::create(const DeployRecord& d, const std::string& who,
                            const std::string& git_sha, const std::string& config_snapshot) {
  return store_.create_deploy({d, created_record(d, who, git_sha), config_snapshot, 0});
}

Status Orchestrator::supersede_queued(std::vector<DeployRecord>& active) {
  // The newest queued run of each service and environment (active is oldest first).
  std::map<std::pair<std::string, std::string>, std::string> newest;
  for (const auto& d : active) {
    if (d.state == DeployState::queued && d.current_env()) {
      newest[{d.service, d.current_env()->name}] = d.id;
    }
  }
  for (auto& d : active) {
    if (d.state != DeployState::queued || !d.current_env()) continue;
    const std::string& n = newest[{d.service, d.current_env()->name}];
    if (n == d.id) continue;
    Command c = coordinator::supersede(d, n, now_ms());
    if (auto* s = std::get_if<Step>(&c)) {
      DROVER_TRY(commit(d, *s, "system"));
      d = s->next;
    }
  }
  return Ok{};
}

Result<int> Orchestrator::tick() {
  DROVER_ASSIGN(auto active, store_.active_deploys());
  std::stable_sort(active.begin(), active.end(), [](const DeployRecord& a, const DeployRecord& b) {
    return a.created_ms < b.created_ms;
  });
  DROVER_TRY(supersede_queued(active));
  std::map<std::string, std::string> release_holds;
  if (releases_) {
    auto holds = releases_(active);
    if (holds.ok()) {
      release_holds = std::move(*holds);
    } else {
      // Single runs go on; every run of a release waits at its next
      // entrance rather than enter without its release's decision.
      log_.error("coordinator.release.tick_failed", {{"error", holds.error().message}});
      for (const auto& d : active) {
        if (!d.release.empty()) release_holds[d.id] = "its release: " + holds.error().message;
      }
    }
  }
  Holders holders;
  for (const auto& d : active) hold(holders, d);
  int changed = 0;
  const std::int64_t now = now_ms();
  for (const auto& first : active) {
    if (is_terminal(first.state)) continue;  // superseded just now
    // A run goes as far as its conditions allow in one tick (a zero bake
    // passes in the tick its batch converged), each transition its own
    // durable commit; bounded, so a run that never settles cannot hold the
    // tick from the others.
    DeployRecord d = first;
    const std::size_t first_target = entering_env(first);
    for (int step = 0; step < kStepsPerTick && !is_terminal(d.state); ++step) {
      // Its release decided for the environment it was entering when the
      // tick began: a run of a release heading for another one waits for
      // the next tick's decision (its release stands at one environment
      // at a time).
      if (step > 0 && !d.release.empty() && entering_env(d) != first_target) break;
      const RunPlan plan = plan_of_(d);
      FleetView fleet = fleet_(d, plan);
      if (!fleet.unreadable.empty()) {
        log_.warn("coordinator.deploy.fleet_unreadable",
                  {{"deploy", d.id}, {"error", fleet.unreadable}});
        break;  // waits run on; the next tick reads again
      }
      if (auto h = release_holds.find(d.id); h != release_holds.end()) {
        fleet.release_hold = h->second;
      }
      const std::size_t target = entering_env(d);
      if (target < d.environments.size()) {
        const std::string& name = d.environments[target].name;
        if (auto it = holders.find({d.service, name}); it != holders.end() && it->second != d.id) {
          fleet.next_env_holder = it->second;
        }
        auto prior = store_.running_at(d.service, name, now);
        if (prior.ok() && *prior) fleet.next_env_prior = (*prior)->artifact;
      }
      Step s = advance(d, plan, fleet, now);
      if (!s.changed) break;
      s.at_ms = now;
      DROVER_TRY(commit(d, s, "system"));
      release_held(holders, d);
      hold(holders, s.next);
      ++changed;
      d = std::move(s.next);
    }
  }
  return changed;
}

Status Orchestrator::command(const std::string& deploy_id, const std::string& who,
                             const std::function<Command(const DeployRecord&)>& fn) {
  DROVER_ASSIGN(DeployRecord d, get(deploy_id));
  Command c = fn(d);
  if (auto* r = std::get_if<Refusal>(&c)) return make_error(Errc::refused, r->why);
  return commit(d, std::get<Step>(c), who);
}

Status Orchestrator::pause(const std::string& deploy_id, const Actor& who) {
  return command(deploy_id, who.token, [&](const DeployRecord& d) {
    return coordinator::pause(d, plan_of_(d), now_ms());
  });
}

Status Orchestrator::resume(const std::string& deploy_id, const Actor& who) {
  return command(deploy_id, who.token,
                 [&](const DeployRecord& d) { return coordinator::resume(d, now_ms()); });
}

Status Orchestrator::end_ramp(const std::string& deploy_id, const Actor& who,
                              const std::string& why) {
  return command(deploy_id, who.token, [&](const DeployRecord& d) {
    return coordinator::end_ramp(d, why + " (by " + who.person + ")", now_ms());
  });
}

Result<std::optional<DeployRecord>> Orchestrator::newer_in_env(const DeployRecord& d,
                                                               const std::string& env) {
  std::int64_t entered = 0;
  for (const auto& e : d.environments) {
    if (e.name == env) entered = e.entered_ms;
  }
  // A run that entered the environment after this one (whenever it was
  // created: an older run held back may enter later) owns what it runs now.
  DROVER_ASSIGN(auto recent, store_.recent_deploys({d.service, ""}, 1000));
  for (const auto& n : recent) {
    if (n.id == d.id) continue;
    for (const auto& ne : n.environments) {
      if (ne.name == env && ne.entered_ms > 0 && ne.entered_ms >= entered) {
        return std::optional<DeployRecord>(n);
      }
    }
  }
  return std::optional<DeployRecord>();
}

Result<DeployRecord> Orchestrator::apply(const std::string& deploy_id, const std::string& who,
                                         const Decide& fn) {
  DROVER_ASSIGN(DeployRecord d, get(deploy_id));
  Command c = fn(d, plan_of_(d));
  if (auto* r = std::get_if<Refusal>(&c)) return make_error(Errc::refused, r->why);
  const Step& s = std::get<Step>(c);
  DROVER_TRY(commit(d, s, who));
  return s.next;
}

Status Orchestrator::rollback(const std::string& deploy_id, const Actor& who,
                              const std::string& why) {
  DROVER_ASSIGN(DeployRecord d, get(deploy_id));
  if (const EnvRun* e = d.current_env()) {
    DROVER_ASSIGN(auto newer, newer_in_env(d, e->name));
    if (newer) {
      return make_error(Errc::refused,
                        "deploy '" + newer->id + "' of service '" + d.service +
                            "' entered environment '" + e->name + "' after this one (it is " +
                            deploy_state_name(newer->state) + "); roll back that one instead");
    }
  }
  return command(deploy_id, who.token, [&](const DeployRecord& rec) {
    return coordinator::rollback(rec, plan_of_(rec), now_ms(), why);
  });
}

Status Orchestrator::approve(const std::string& deploy_id, const Actor& who,
                             const std::string& comment) {
  return command(deploy_id, who.token, [&](const DeployRecord& d) {
    return coordinator::approve(d, {who.person, who.token, now_ms(), comment});
  });
}

Status Orchestrator::reject(const std::string& deploy_id, const Actor& who,
                            const std::string& reason) {
  return command(deploy_id, who.token, [&](const DeployRecord& d) {
    return coordinator::reject(d, {who.person, who.token, now_ms(), reason});
  });
}

Status Orchestrator::override_freeze(const std::string& deploy_id, const Actor& who,
                                     const std::string& reason) {
  return command(deploy_id, who.token, [&](const DeployRecord& d) {
    return coordinator::override_freeze(d, {who.person, who.token, now_ms(), reason});
  });
}

}  // namespace drover::coordinator
