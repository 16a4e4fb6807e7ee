#include "coordinator/releases/release_driver.hpp"

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>
#include <set>

#include "core/canon/canonical_json.hpp"

namespace drover::coordinator {
namespace {

using nlohmann::json;
const std::string kRecords = "release/r/";
const std::string kActive = "release/active/";
const std::string kCounter = "release/counter";

std::uint64_t to_u64(const std::optional<std::string>& s) {
  std::uint64_t v = 0;
  if (s) std::from_chars(s->data(), s->data() + s->size(), v);
  return v;
}

}  // namespace

ReleaseDriver::ReleaseDriver(CoordinatorStore& store, Orchestrator& orchestrator,
                             const Clock& clock, Logger& log)
    : store_(store), orchestrator_(orchestrator), clock_(clock), log_(log) {}

std::int64_t ReleaseDriver::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now().time_since_epoch())
      .count();
}

Result<ReleaseRecord> ReleaseDriver::create(const ReleaseRequest& req) {
  if (req.runs.empty()) {
    return make_error(Errc::invalid_argument, "services: a release names at least one service");
  }
  if (req.runs.size() > kMaxReleaseServices || req.runs.size() != req.pipelines.size()) {
    return make_error(
        Errc::invalid_argument,
        "services: a release names at most " + std::to_string(kMaxReleaseServices) + " services");
  }
  DROVER_ASSIGN(auto active, store_.settings_under(kActive));
  if (active.size() >= kMaxActiveReleases) {
    return make_error(Errc::refused, std::to_string(active.size()) +
                                         " releases are not finished (the most there may be); "
                                         "let them end first");
  }
  DROVER_ASSIGN(auto envs, release_environments(req.pipelines));
  DROVER_ASSIGN(auto order, release_members(req.pipelines));
  DROVER_ASSIGN(auto counter, store_.setting(kCounter));
  const std::uint64_t number = to_u64(counter) + 1;

  ReleaseRecord r;
  r.id = "rel-" + std::to_string(number);
  r.started_by = req.person;
  r.who = req.who;
  r.policy = req.policy;
  r.environments = envs;
  r.created_ms = now_ms();
  for (const auto& env : envs) {
    int required = 0;
    for (const auto& run : req.runs) {
      for (const auto& ep : run.plan.envs) {
        if (ep.name == env && ep.gate) required = std::max(required, ep.gate->approvals);
      }
    }
    if (required > 0) r.gates.push_back({env, required, {}, std::nullopt});
  }
  std::vector<CoordinatorStore::NewDeploy> runs;
  json listed = json::array();
  for (auto& m : order) {
    std::size_t i = 0;
    while (req.pipelines[i].service != m.service) ++i;
    DROVER_ASSIGN(CoordinatorStore::NewDeploy n, orchestrator_.new_run(req.runs[i]));
    n.record.release = r.id;
    json detail = json::parse(n.created.detail);
    detail["release"] = r.id;
    n.created.detail = *canon::encode(detail);
    m.pipeline_id = req.runs[i].pipeline_id;
    m.artifact = req.runs[i].artifact;
    m.deploy_id = n.record.id;
    listed.push_back({{"service", m.service},
                      {"deploy", m.deploy_id},
                      {"artifact", m.artifact},
                      {"depends_on", m.depends_on}});
    runs.push_back(std::move(n));
  }
  r.services = std::move(order);

  AuditRecord created;
  created.at_ms = r.created_ms;
  created.who = req.who;
  created.what = "release.created";
  created.detail = *canon::encode(json{{"release", r.id},
                                       {"started_by", r.started_by},
                                       {"policy", release_policy_name(r.policy)},
                                       {"environments", r.environments},
                                       {"services", listed}});
  DROVER_TRY(store_.create_release(runs, kRecords + r.id,
                                   {{kRecords + r.id, encode_release(r)},
                                    {kActive + r.id, ""},
                                    {kCounter, std::to_string(number)}},
                                   {created}));
  log_.info("coordinator.release.created",
            {{"release", r.id}, {"services", r.services.size()}, {"who", req.who}});
  return r;
}

Result<ReleaseRecord> ReleaseDriver::load(const std::string& id) {
  DROVER_ASSIGN(auto bytes, store_.setting(kRecords + id));
  if (!bytes) return make_error(Errc::not_found, "no release '" + id + "'");
  return decode_release(*bytes);
}

Result<Members> ReleaseDriver::members(const ReleaseRecord& r,
                                       const std::vector<DeployRecord>* active) {
  Members out;
  for (const auto& m : r.services) {
    if (active) {
      auto it = std::find_if(active->begin(), active->end(),
                             [&](const DeployRecord& d) { return d.id == m.deploy_id; });
      if (it != active->end()) {
        out.emplace(m.service, *it);
        continue;
      }
    }
    DROVER_ASSIGN(auto d, store_.deploy(m.deploy_id));
    if (d) out.emplace(m.service, std::move(*d));
  }
  return out;
}

Result<ReleaseView> ReleaseDriver::get(const std::string& id) {
  DROVER_ASSIGN(ReleaseRecord r, load(id));
  DROVER_ASSIGN(Members m, members(r, nullptr));
  return ReleaseView{std::move(r), std::move(m)};
}

Result<std::vector<ReleaseRecord>> ReleaseDriver::list(std::size_t limit) {
  // Numbered in creation order: the newest `limit` are the highest numbers,
  // read one by one (however many releases were ever made).
  DROVER_ASSIGN(auto counter, store_.setting(kCounter));
  std::vector<ReleaseRecord> out;
  for (std::uint64_t n = to_u64(counter); n > 0 && out.size() < limit; --n) {
    auto r = load("rel-" + std::to_string(n));
    if (!r.ok()) {
      if (r.error().code != Errc::not_found) {
        log_.warn("coordinator.release.unreadable", {{"release", n}, {"error", r.error().message}});
      }
      continue;
    }
    out.push_back(std::move(*r));
  }
  return out;
}

Status ReleaseDriver::commit(const ReleaseRecord& before, const ReleaseStep& s,
                             const std::string& who, std::vector<DeployRecord>* active) {
  ReleaseRecord current = s.next;
  if (s.changed) {
    std::vector<AuditRecord> audits;
    for (const auto& a : s.audits) {
      AuditRecord rec;
      rec.at_ms = now_ms();
      rec.who = who;
      rec.what = a.what;
      rec.service = a.service;
      rec.env = a.env;
      if (const ReleaseMember* m = before.member(a.service)) rec.artifact = m->artifact;
      rec.detail = a.detail;
      audits.push_back(std::move(rec));
    }
    std::vector<std::string> erases;
    if (s.ended) erases.push_back(kActive + before.id);
    DROVER_TRY(
        store_.write_settings({{kRecords + before.id, encode_release(s.next)}}, erases, audits));
    if (s.ended) {
      log_.info("coordinator.release.ended",
                {{"release", before.id}, {"state", release_state_name(s.next.state)}});
    }
  }
  const std::int64_t now = now_ms();
  for (const auto& c : s.commands) {
    using K = MemberCommand::Kind;
    const bool back = c.kind == K::rollback || c.kind == K::rollback_passed;
    if (back) {
      // A run of the service that entered the environment since owns it.
      DROVER_ASSIGN(DeployRecord d, orchestrator_.get(c.deploy_id));
      const std::string env = c.kind == K::rollback_passed && c.env < d.environments.size()
                                  ? d.environments[c.env].name
                                  : (d.current_env() ? d.current_env()->name : "");
      DROVER_ASSIGN(auto newer, orchestrator_.newer_in_env(d, env));
      if (newer) {
        ReleaseStep left = leave_member(current, c.service,
                                        "deploy '" + newer->id + "' entered '" + env +
                                            "' after it; that one owns what runs there");
        DROVER_TRY(commit(current, left, "system", nullptr));
        current = left.next;
        continue;
      }
    }
    Orchestrator::Decide fn = [&](const DeployRecord& d, const RunPlan& plan) -> Command {
      switch (c.kind) {
        case K::approve: return coordinator::approve(d, c.act);
        case K::reject: return coordinator::reject(d, c.act);
        case K::cancel: return coordinator::cancel(d, c.why, now);
        case K::rollback: return coordinator::rollback(d, plan, now, c.why);
        case K::rollback_passed: return coordinator::rollback_passed(d, plan, c.env, now, c.why);
      }
      return Refusal{"unknown command"};
    };
    const std::string actor = c.kind == K::approve || c.kind == K::reject ? c.act.token : "system";
    auto next = orchestrator_.apply(c.deploy_id, actor, fn);
    if (!next.ok() && next.error().code != Errc::refused && active) {
      // The transition may have committed before what followed it failed
      // (a plan not issued): the tick goes on from what is stored.
      if (auto stored = orchestrator_.get(c.deploy_id); stored.ok()) {
        for (auto& d : *active) {
          if (d.id == stored->id) d = *stored;
        }
      }
    }
    if (!next.ok()) {
      log_.warn("coordinator.release.command_refused",
                {{"release", before.id}, {"deploy", c.deploy_id}, {"error", next.error().message}});
      if (back && next.error().code == Errc::refused) {
        ReleaseStep left = leave_member(current, c.service, next.error().message);
        DROVER_TRY(commit(current, left, "system", nullptr));
        current = left.next;
      }
      continue;
    }
    if (active) {
      for (auto& d : *active) {
        if (d.id == next->id) d = *next;
      }
    }
  }
  return Ok{};
}

Result<std::map<std::string, std::string>> ReleaseDriver::tick(std::vector<DeployRecord>& active) {
  std::map<std::string, std::string> holds;
  std::set<std::string> seen;
  DROVER_ASSIGN(auto listed, store_.settings_under(kActive));
  for (const auto& [key, unused] : listed) {
    const std::string id = key.substr(kActive.size());
    auto r = load(id);
    if (!r.ok()) {
      log_.error("coordinator.release.unreadable", {{"release", id}, {"error", r.error().message}});
      continue;  // its runs are held below
    }
    seen.insert(id);
    Status driven = [&]() -> Status {
      DROVER_ASSIGN(Members m, members(*r, &active));
      ReleaseStep s = step_release(*r, m, now_ms());
      if (s.changed || !s.commands.empty()) DROVER_TRY(commit(*r, s, "system", &active));
      holds.insert(s.holds.begin(), s.holds.end());
      return Ok{};
    }();
    if (!driven.ok()) {
      // This release waits for the next tick; the others and single runs go on.
      log_.error("coordinator.release.failed_tick",
                 {{"release", id}, {"error", driven.error().message}});
      for (const auto& d : active) {
        if (d.release == id) holds[d.id] = "its release: " + driven.error().message;
      }
    }
  }
  // A run whose release is not active: ended (nothing holds it), or its
  // record cannot be read (it waits, rather than ignore its order).
  for (const auto& d : active) {
    if (d.release.empty() || seen.count(d.release) || is_terminal(d.state)) continue;
    auto r = load(d.release);
    if (!r.ok()) holds[d.id] = "its release could not be read: " + r.error().message;
  }
  return holds;
}

Status ReleaseDriver::approve(const std::string& id, const Actor& who, const std::string& comment) {
  DROVER_ASSIGN(ReleaseRecord r, load(id));
  DROVER_ASSIGN(Members m, members(r, nullptr));
  ReleaseCommand c = approve_release(r, m, {who.person, who.token, now_ms(), comment});
  if (auto* no = std::get_if<ReleaseRefusal>(&c)) return make_error(Errc::refused, no->why);
  return commit(r, std::get<ReleaseStep>(c), who.token, nullptr);
}

Status ReleaseDriver::reject(const std::string& id, const Actor& who, const std::string& reason) {
  DROVER_ASSIGN(ReleaseRecord r, load(id));
  DROVER_ASSIGN(Members m, members(r, nullptr));
  ReleaseCommand c = reject_release(r, m, {who.person, who.token, now_ms(), reason});
  if (auto* no = std::get_if<ReleaseRefusal>(&c)) return make_error(Errc::refused, no->why);
  return commit(r, std::get<ReleaseStep>(c), who.token, nullptr);
}

}  // namespace drover::coordinator
