// Feature flags (docs/COORDINATOR.md, "Feature flags"): a person's flag
// changes, each a new revision of the environment's flag set, and the
// hosts' pulls of them.
#include <nlohmann/json.hpp>

#include "coordinator/service/coordinator.hpp"
#include "core/base/name.hpp"
#include "core/canon/canonical_json.hpp"

namespace drover::coordinator {

using nlohmann::json;

namespace {

json value_json(const proto::FlagValue& v) {
  return v.is_percent ? json(v.percent) : json(v.on);
}

}  // namespace

Result<Coordinator::FlagScope> Coordinator::flag_scope(const std::string& service,
                                                       const std::string& env) {
  DROVER_TRY(validate_name(service, "service"));
  DROVER_TRY(validate_name(env, "env"));
  DROVER_ASSIGN(auto all, pipelines());
  for (const auto& p : all) {
    if (p.service != service) continue;
    DROVER_ASSIGN(RunPlan plan, run_plan(p));
    for (std::size_t i = 0; i < plan.envs.size(); ++i) {
      if (plan.envs[i].name != env) continue;
      DROVER_ASSIGN(auto places, places_of(service));
      FlagScope out;
      out.pipeline_id = p.id;
      out.hosts = env_hosts(plan, i, places);
      return out;
    }
    return make_error(Errc::not_found, "pipeline '" + p.id + "' of service '" + service +
                                           "' has no environment '" + env + "'");
  }
  return make_error(Errc::not_found, "no pipeline deploys service '" + service + "'");
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
  const json before = flags.count(flag) ? value_json(flags[flag]) : json();
  flags[flag] = next;
  AuditRecord a;
  a.who = who.person.empty() ? who.name : who.person;
  a.what = what;
  a.detail = *canon::encode(
      json{{"flag", flag}, {"value", value_json(next)}, {"before", before}, {"token", who.name}});
  return flag_sets_->issue(service, env, std::move(flags), std::move(scope.hosts), now_ms(), a);
}

Result<FlagSetRecord> Coordinator::set_flag(const std::string& service, const std::string& env,
                                            const std::string& flag, proto::FlagValue value,
                                            const Caller& who) {
  return change_flag(service, env, flag, value, "flag.set", who);
}

Result<FlagSetRecord> Coordinator::kill_flag(const std::string& service, const std::string& env,
                                             const std::string& flag, const Caller& who) {
  return change_flag(service, env, flag, std::nullopt, "flag.killed", who);
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
  DROVER_ASSIGN(auto sets, flag_sets_->of_service(service));
  for (const auto& set : sets) {
    auto scope = flag_scope(service, set.env);
    if (!scope.ok()) continue;
    if (std::find(scope->hosts.begin(), scope->hosts.end(), host.host) == scope->hosts.end()) {
      continue;
    }
    std::lock_guard lock(flags_mu_);
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
