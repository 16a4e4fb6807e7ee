// Feature flags (docs/COORDINATOR.md, "Feature flags"): a person's flag
// changes, each a new revision of the environment's flag set, and the
// hosts' pulls of them.
#include <nlohmann/json.hpp>

#include "coordinator/service/coordinator.hpp"
#include "core/base/name.hpp"
#include "core/canon/canonical_json.hpp"

namespace drover::coordinator {

using nlohmann::json;

Result<Coordinator::FlagScope> Coordinator::flag_scope(const std::string& service,
                                                       const std::string& env) {
  DROVER_TRY(validate_name(service, "service"));
  DROVER_TRY(validate_name(env, "env"));
  DROVER_ASSIGN(auto all, pipelines());
  std::vector<std::string> ids;  // the service's pipelines, for the refusal
  for (const auto& p : all) {
    if (p.service != service) continue;
    ids.push_back(p.id);
    DROVER_ASSIGN(RunPlan plan, run_plan(p));
    for (std::size_t i = 0; i < plan.envs.size(); ++i) {
      if (plan.envs[i].name != env) continue;
      DROVER_ASSIGN(auto places, places_of(service));
      FlagScope out;
      out.pipeline_id = p.id;
      out.hosts = env_hosts(plan, i, places);
      return out;
    }
  }
  if (ids.empty())
    return make_error(Errc::not_found, "no pipeline deploys service '" + service + "'");
  std::string names;
  for (const auto& id : ids) names += (names.empty() ? "'" : ", '") + id + "'";
  return make_error(Errc::not_found, "no pipeline of service '" + service + "' (" + names +
                                         ") has an environment '" + env + "'");
}

Result<std::vector<FlagSetRecord>> Coordinator::flags(const std::string& service) {
  DROVER_TRY(validate_name(service, "service"));
  return flag_sets_->of_service(service);
}

Result<FlagSetRecord> Coordinator::change_flag(const std::string& service, const std::string& env,
                                               const std::string& flag,
                                               std::optional<proto::FlagValue> value,
                                               const std::string& what, const Caller& who) {
  DROVER_TRY(validate_name(flag, "flag"));
  if (value && value->is_percent && (value->percent < 0 || value->percent > 100)) {
    return make_error(Errc::invalid_argument, "a flag's percentage lies in 0-100");
  }
  DROVER_ASSIGN(FlagScope scope, flag_scope(service, env));
  if (scope.hosts.empty()) {
    return make_error(Errc::refused, "no enrolled host runs service '" + service +
                                         "' in environment '" + env + "'");
  }
  std::lock_guard lock(flags_mu_);  // read, change, issue: one change at a time
  DROVER_ASSIGN(auto held, flag_sets_->current(service, env));
  std::map<std::string, proto::FlagValue> flags = held ? held->flags : decltype(flags){};
  // A kill: the off variant is the only outcome (a boolean false).
  const proto::FlagValue next = value ? *value : proto::FlagValue{false, false, 0};
  if (!value && !flags.count(flag)) {
    return make_error(Errc::not_found, "service '" + service + "' has no flag '" + flag +
                                           "' in environment '" + env + "' to kill");
  }
  const json before = flags.count(flag) ? proto::flag_value_json(flags[flag]) : json();
  flags[flag] = next;
  AuditRecord a;
  a.who = who.person.empty() ? who.name : who.person;
  a.what = what;

  a.detail = *canon::encode(json{{"flag", flag},
                                 {"value", proto::flag_value_json(next)},
                                 {"before", before},
                                 {"token", who.name}});
  return flag_sets_->issue(service, env, std::move(flags), std::move(scope.hosts), now_ms(), a);
}

namespace {

// A flag's share of targeting keys: on 100, off 0.
int percent_of(const proto::FlagValue& v) {
  return v.is_percent ? v.percent : (v.on ? 100 : 0);
}

}  // namespace

Result<Coordinator::FlagChanged> Coordinator::set_flag(const std::string& service,
                                                       const std::string& env,
                                                       const std::string& flag,
                                                       proto::FlagValue value, bool now,
                                                       const Caller& who) {
  DROVER_TRY(validate_name(flag, "flag"));
  DROVER_ASSIGN(FlagScope scope, flag_scope(service, env));
  DROVER_ASSIGN(auto held, flag_sets_->current(service, env));
  int before = 0;
  if (held && held->flags.count(flag)) before = percent_of(held->flags.at(flag));
  const bool raising = percent_of(value) > before;
  if (raising && now && !allows(who.role, Role::approver)) {
    return make_error(Errc::refused,
                      "raising flag '" + flag +
                          "' at once skips the ramp's health checks: it "
                          "needs an approver's token (without now, the raise is a ramp)");
  }
  FlagChanged out;
  if (!raising || now) {
    // A ramp of the flag there ends first (durably), then the change: it
    // never raises the flag again, even after a restart.
    std::lock_guard lock(orchestrator_mu_);
    DROVER_TRY(end_ramps(service, env, flag, "flag '" + flag + "' set at once", who));
    DROVER_ASSIGN(out.set, change_flag(service, env, flag, value, "flag.set", who));
    return out;
  }
  // A ramp: a run of the release the environment runs, holding it.
  DROVER_ASSIGN(auto running, store_->running_at(service, env, now_ms()));
  if (!running) {
    return make_error(Errc::refused, "environment '" + env + "' runs no release of service '" +
                                         service + "' yet: deploy one, then ramp its flags");
  }
  DeployStart start;
  start.pipeline_id = scope.pipeline_id;
  DROVER_ASSIGN(start.artifact, ContentId::parse(running->artifact));
  start.env = env;
  start.flag = std::pair{flag, percent_of(value)};
  start.flag_before = before;
  DROVER_ASSIGN(auto p, load_pipeline(scope.pipeline_id));
  DROVER_ASSIGN(auto started, start_run(std::move(p), start, who, ""));
  out.ramp = std::move(started.deploy);
  return out;
}

Result<FlagSetRecord> Coordinator::kill_flag(const std::string& service, const std::string& env,
                                             const std::string& flag, const Caller& who) {
  // A ramp of the flag there, running or waiting its turn, ends first
  // (durably): it would raise the flag again.
  std::lock_guard lock(orchestrator_mu_);
  DROVER_TRY(end_ramps(service, env, flag, "flag '" + flag + "' killed", who));
  return change_flag(service, env, flag, std::nullopt, "flag.killed", who);
}

Status Coordinator::end_ramps(const std::string& service, const std::string& env,
                              const std::string& flag, const std::string& why, const Caller& who) {
  DROVER_ASSIGN(auto active, store_->active_deploys(service));
  for (const auto& d : active) {
    if (d.flag != flag || is_terminal(d.state)) continue;
    const EnvRun* e = d.current_env();
    if (e == nullptr || e->name != env) continue;
    DROVER_TRY(
        orchestrator_->end_ramp(d.id, {who.name, who.person.empty() ? who.name : who.person}, why));
  }
  return Ok{};
}

void Coordinator::ramp_view(const DeployRecord& d, FleetView& v) {
  const EnvRun* e = d.current_env();
  if (e == nullptr) return;
  auto held = flag_sets_->current(d.service, e->name);
  if (!held.ok()) {
    v.unreadable = "the flag set: " + held.error().message;
    return;
  }
  if (!*held) return;
  v.flagset_seq = (*held)->seq;
  auto it = (*held)->flags.find(d.flag);
  v.flag_now = it == (*held)->flags.end() ? -1 : percent_of(it->second);
}

Status Coordinator::ramp_step(const DeployRecord& d, const std::string& env,
                              const std::string& flag, int percent) {
  DROVER_ASSIGN(auto held, flag_sets_->current(d.service, env));
  if (held && held->flags.count(flag) && held->flags.at(flag).is_percent &&
      held->flags.at(flag).percent == percent) {
    return Ok{};  // re-issued after a restart: it holds already
  }
  Caller system{"system", Role::admin, d.started_by};
  auto r = change_flag(d.service, env, flag, proto::FlagValue{true, false, percent}, "flag.ramped",
                       system);
  return r.ok() ? Status(Ok{}) : Status(r.error());
}

Result<FlagsAnswer> Coordinator::flags_for(const HostRecord& host, const std::string& service,
                                           std::uint64_t have_seq) {
  DROVER_ASSIGN(FlagsAnswer a, flag_sets_->pull(service, host.host, have_seq));
  if (a.kind != FlagsAnswer::Kind::none) return a;
  // Not listed by any flag set of the service: a host enrolled since the
  // last change. Its environment's set is issued again with it, at most
  // once a minute per host (what a pull may cost is bounded).
  {
    std::lock_guard lock(flags_mu_);
    const std::int64_t now = now_ms();
    auto& last = unlisted_checked_[service + "/" + host.host];
    if (now - last < 60'000) return a;
    last = now;
    if (unlisted_checked_.size() > 200'000) unlisted_checked_.clear();
  }
  // And at most one new revision per environment every 10 s: hosts enrolled
  // together are added together (a later pull of theirs finds them listed).
  constexpr std::int64_t kReissueEveryMs = 10'000;
  DROVER_ASSIGN(auto sets, flag_sets_->of_service(service));
  for (const auto& set : sets) {
    auto scope = flag_scope(service, set.env);
    if (!scope.ok()) continue;
    if (std::find(scope->hosts.begin(), scope->hosts.end(), host.host) == scope->hosts.end()) {
      continue;
    }
    std::lock_guard lock(flags_mu_);
    auto& last = unlisted_checked_["env:" + service + "/" + set.env];
    if (now_ms() - last < kReissueEveryMs) {
      unlisted_checked_.erase(service + "/" + host.host);  // asked again at its next pull
      return a;
    }
    last = now_ms();
    DROVER_ASSIGN(auto held, flag_sets_->current(service, set.env));
    if (!held) continue;
    AuditRecord r;
    r.who = "system";
    r.what = "flag.hosts";
    r.detail = *canon::encode(json{{"added", host.host}});
    DROVER_TRY(
        flag_sets_->issue(service, set.env, held->flags, std::move(scope->hosts), now_ms(), r));
    return flag_sets_->pull(service, host.host, have_seq);
  }
  return a;
}

}  // namespace drover::coordinator
