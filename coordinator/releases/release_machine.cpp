#include "coordinator/releases/release_machine.hpp"

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "core/canon/canonical_json.hpp"

namespace drover::coordinator {
namespace {

using nlohmann::json;
constexpr std::size_t npos = std::string::npos;

std::size_t env_index(const DeployRecord& d, const std::string& name) {
  for (std::size_t i = 0; i < d.environments.size(); ++i) {
    if (d.environments[i].name == name) return i;
  }
  return npos;
}

// The run's own end in an environment, as opposed to passing it.
bool failed_status(const std::string& st) {
  return st == "rolling_back" || st == "rolled_back" || st == "failed" || st == "rejected" ||
         st == "expired";
}

// Whether the run changed the environment and has not gone back.
bool holds_changes(const std::string& st) {
  return st == "passed" || st == "deploying" || st == "watching" || st == "rolling_back";
}

// A run's state, or the state it was paused in.
DeployState effective(const DeployRecord& d) {
  return d.state == DeployState::paused ? d.paused_from : d.state;
}

bool active_in_env(DeployState s) {
  return s == DeployState::deploying || s == DeployState::baking || s == DeployState::watching;
}

bool cancellable(DeployState s) {
  return s == DeployState::pending || s == DeployState::artifact_ready ||
         s == DeployState::queued || s == DeployState::awaiting_approval;
}

void audit(ReleaseStep& s, const std::string& what, json detail, const std::string& env,
           const std::string& service = "") {
  detail["release"] = s.next.id;
  s.audits.push_back({what, *canon::encode(detail), env, service});
}

MemberCommand command(MemberCommand::Kind kind, const DeployRecord& d, std::string why,
                      GateAct act = {}, std::size_t env = 0) {
  return {kind, d.id, d.service, std::move(act), std::move(why), env};
}

const DeployRecord* run_of(const Members& m, const std::string& service) {
  auto it = m.find(service);
  return it == m.end() ? nullptr : &it->second;
}

// The members `service` waits for in env: its dependencies whose pipelines
// have env, and through one that lacks it, that one's (a <- b <- c with b
// absent from env: c waits for a there).
void deps_in(const ReleaseRecord& r, const Members& m, const std::string& service,
             const std::string& env, std::set<std::string>& out, std::set<std::string>& seen) {
  const ReleaseMember* mem = r.member(service);
  if (mem == nullptr) return;
  for (const auto& y : mem->depends_on) {
    if (!seen.insert(y).second) continue;
    const DeployRecord* dy = run_of(m, y);
    if (dy != nullptr && env_index(*dy, env) == npos) {
      deps_in(r, m, y, env, out, seen);
    } else {
      out.insert(y);
    }
  }
}

// The members that wait for `service` in env, the same way.
void dependents_in(const ReleaseRecord& r, const Members& m, const std::string& service,
                   const std::string& env, std::set<std::string>& out,
                   std::set<std::string>& seen) {
  for (const auto& z : r.services) {
    if (std::find(z.depends_on.begin(), z.depends_on.end(), service) == z.depends_on.end()) {
      continue;
    }
    if (!seen.insert(z.service).second) continue;
    const DeployRecord* dz = run_of(m, z.service);
    if (dz != nullptr && env_index(*dz, env) == npos) {
      dependents_in(r, m, z.service, env, out, seen);
    } else {
      out.insert(z.service);
    }
  }
}

// Approvals and a rejection of the release's gate that the run waiting at
// its gate has not been given yet.
void at_gate(ReleaseStep& s, const DeployRecord& d) {
  const EnvRun* e = d.current_env();
  if (d.state != DeployState::awaiting_approval || e == nullptr) return;
  const ReleaseGate* g = s.next.gate(e->name);
  if (g == nullptr) return;
  if (g->rejection) {
    s.commands.push_back(command(MemberCommand::Kind::reject, d, "", *g->rejection));
    return;
  }
  for (const auto& a : g->approvals) {
    const bool given = std::any_of(e->gate.approvals.begin(), e->gate.approvals.end(),
                                   [&](const GateAct& x) { return x.person == a.person; });
    if (!given) s.commands.push_back(command(MemberCommand::Kind::approve, d, "", a));
  }
}

// The lowest environment of the release where a member waits at its gate.
std::string gate_env(const ReleaseRecord& r, const Members& m) {
  std::size_t best = npos;
  for (const auto& [service, d] : m) {
    const EnvRun* e = d.current_env();
    if (d.state != DeployState::awaiting_approval || e == nullptr) continue;
    auto it = std::find(r.environments.begin(), r.environments.end(), e->name);
    if (it != r.environments.end()) {
      best = std::min<std::size_t>(best, static_cast<std::size_t>(it - r.environments.begin()));
    }
  }
  return best == npos ? "" : r.environments[best];
}

std::string list(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& x : v) out += (out.empty() ? "'" : ", '") + x + "'";
  return out;
}

}  // namespace

Result<std::vector<std::string>> release_environments(const std::vector<ReleasePipeline>& ps) {
  // Environments in first-seen order, and which one each pipeline puts first.
  std::vector<std::string> names;
  std::map<std::pair<std::string, std::string>, std::string> before;  // (a, b) -> who says a < b
  for (const auto& p : ps) {
    for (std::size_t i = 0; i < p.envs.size(); ++i) {
      if (std::find(names.begin(), names.end(), p.envs[i]) == names.end()) {
        names.push_back(p.envs[i]);
      }
      for (std::size_t j = i + 1; j < p.envs.size(); ++j) {
        if (auto it = before.find({p.envs[j], p.envs[i]}); it != before.end()) {
          return make_error(Errc::invalid_argument, "the pipelines of '" + it->second + "' and '" +
                                                        p.service + "' order environments '" +
                                                        p.envs[i] + "' and '" + p.envs[j] +
                                                        "' differently; a release walks one order");
        }
        before.emplace(std::pair{p.envs[i], p.envs[j]}, p.service);
      }
    }
  }
  // Pairwise agreement leaves no cycle among pairs named by one pipeline,
  // but order is only partial: place each environment after everything some
  // pipeline puts before it, keeping first-seen order otherwise.
  std::vector<std::string> out;
  std::set<std::string> placed;
  while (out.size() < names.size()) {
    bool progressed = false;
    for (const auto& n : names) {
      if (placed.count(n)) continue;
      bool ready = true;
      for (const auto& [pair, who] : before) {
        if (pair.second == n && !placed.count(pair.first)) ready = false;
      }
      if (!ready) continue;
      out.push_back(n);
      placed.insert(n);
      progressed = true;
      break;
    }
    if (!progressed) {
      return make_error(Errc::invalid_argument,
                        "the pipelines order their environments in a cycle; a release walks one "
                        "order");
    }
  }
  return out;
}

Result<std::vector<ReleaseMember>> release_members(const std::vector<ReleasePipeline>& ps) {
  std::set<std::string> in;
  for (const auto& p : ps) {
    if (!in.insert(p.service).second) {
      return make_error(Errc::invalid_argument,
                        "service '" + p.service + "' is named twice; a release runs each once");
    }
  }
  std::map<std::string, std::vector<std::string>> deps;
  for (const auto& p : ps) {
    auto& d = deps[p.service];
    for (const auto& x : p.depends_on) {
      if (in.count(x) && std::find(d.begin(), d.end(), x) == d.end()) d.push_back(x);
    }
  }
  // Depth first, in the order given: dependencies before their dependents.
  std::vector<ReleaseMember> out;
  std::map<std::string, int> mark;  // 1: on the path, 2: placed
  std::vector<std::string> path;
  std::function<Status(const std::string&)> visit = [&](const std::string& s) -> Status {
    if (mark[s] == 2) return Ok{};
    if (mark[s] == 1) {
      std::string cycle;
      auto from = std::find(path.begin(), path.end(), s);
      for (auto it = from; it != path.end(); ++it) cycle += *it + " -> ";
      return make_error(Errc::invalid_argument,
                        "the release's dependencies make a cycle: " + cycle + s);
    }
    mark[s] = 1;
    path.push_back(s);
    for (const auto& x : deps[s]) DROVER_TRY(visit(x));
    path.pop_back();
    mark[s] = 2;
    ReleaseMember m;
    m.service = s;
    m.depends_on = deps[s];
    out.push_back(std::move(m));
    return Ok{};
  };
  for (const auto& p : ps) DROVER_TRY(visit(p.service));
  return out;
}

ReleaseStep step_release(const ReleaseRecord& r, const Members& m, std::int64_t now) {
  ReleaseStep s{r, false, {}, {}, {}, false};
  ReleaseRecord& n = s.next;

  // What the members did since: a newer run took one's place, or one failed.
  for (const auto& mem : r.services) {
    const DeployRecord* d = run_of(m, mem.service);
    if (d == nullptr) continue;
    if (d->state == DeployState::superseded && n.state == ReleaseState::running) {
      n.state = ReleaseState::superseded;
      n.reason = "'" + mem.service + "' (" + d->id + ") was " + d->reason;
      audit(s, "release.superseded", {{"service", mem.service}, {"reason", d->reason}}, "");
    }
    const bool seen =
        std::any_of(n.failures.begin(), n.failures.end(),
                    [&](const ReleaseFailure& f) { return f.service == mem.service; });
    if (seen || d->state == DeployState::cancelled) continue;
    std::string where;
    for (const auto& e : d->environments) {
      if (failed_status(e.status)) {
        where = e.name;
        break;
      }
    }
    const bool ended_badly = d->state == DeployState::failed || d->state == DeployState::expired ||
                             d->state == DeployState::rejected ||
                             d->state == DeployState::rolled_back;
    if (where.empty() && ended_badly && d->current_env()) where = d->current_env()->name;
    if (where.empty()) continue;
    // A release's own rollback (policy all) is not a failure of that member.
    if (!n.failures.empty() && r.policy == ReleasePolicy::all && where == n.failures[0].env &&
        d->reason.starts_with(n.id + ":")) {
      continue;
    }
    std::string why =
        d->reason.empty() ? "it ended " + std::string(deploy_state_name(d->state)) : d->reason;
    n.failures.push_back({where, mem.service, why});
    audit(s, "release.member_failed",
          {{"service", mem.service}, {"deploy", d->id}, {"reason", why}}, where, mem.service);
  }

  // Policy all acts on a failure whatever else ended the release (a
  // rejection, a newer run): what the release changed there goes back.
  const bool rolling = r.policy == ReleasePolicy::all && !n.failures.empty();
  const bool stopping = n.state != ReleaseState::running;
  const std::string fail_env = rolling ? n.failures[0].env : "";

  // Whether every member depending on `service` has undone its changes to
  // env (or never made any): policy all rolls back dependents first.
  auto dependents_settled = [&](const std::string& service, const std::string& env) {
    std::set<std::string> dependents, seen;
    dependents_in(r, m, service, env, dependents, seen);
    for (const auto& z : dependents) {
      const DeployRecord* dz = run_of(m, z);
      if (dz == nullptr || n.left.count(z)) continue;
      const std::size_t iz = env_index(*dz, env);
      if (iz != npos && holds_changes(dz->environments[iz].status)) return false;
    }
    return true;
  };

  for (const auto& mem : r.services) {
    const DeployRecord* dp = run_of(m, mem.service);
    if (dp == nullptr) continue;
    const DeployRecord& d = *dp;
    const std::size_t k = entering_env(d);

    if (rolling) {
      const std::string why =
          n.id + ": '" + n.failures[0].service + "' failed in '" + fail_env +
          "'; the release's policy is all: every service it changed there goes back";
      if (k != npos) s.holds[d.id] = "rolling back '" + fail_env + "'";
      const DeployState eff = effective(d);
      if (n.left.count(mem.service)) {
        // It cannot go back (a newer run owns that environment now), but
        // the release failed: it goes no further either.
        if (!is_terminal(d.state) && cancellable(eff)) {
          s.commands.push_back(command(MemberCommand::Kind::cancel, d, why));
        }
        continue;
      }
      const std::size_t idx = env_index(d, fail_env);
      if (idx == npos ||
          (!is_terminal(d.state) && (d.env < idx || (d.env == idx && cancellable(eff))))) {
        // Not in that environment yet: it never enters it, nor any after.
        if (cancellable(eff)) s.commands.push_back(command(MemberCommand::Kind::cancel, d, why));
        continue;
      }
      if (d.env > idx && active_in_env(eff)) {
        // It went on (a person's rollback of a finished member came late):
        // it stops where it is first.
        s.commands.push_back(command(MemberCommand::Kind::rollback, d, why));
        continue;
      }
      if (!dependents_settled(mem.service, fail_env)) continue;
      if (d.env == idx && active_in_env(eff)) {
        s.commands.push_back(command(MemberCommand::Kind::rollback, d, why));
      } else if (d.environments[idx].status == "passed") {
        s.commands.push_back(command(MemberCommand::Kind::rollback_passed, d, why, {}, idx));
      }
      continue;
    }
    if (is_terminal(d.state)) continue;

    if (stopping) {
      const DeployState eff = effective(d);
      const std::string why = n.id + ": the release was " +
                              std::string(release_state_name(n.state)) + " (" + n.reason + ")";
      if (d.state == DeployState::awaiting_approval) {
        at_gate(s, d);  // a rejection reaches the members at the gate
        if (n.state != ReleaseState::rejected) {
          s.commands.push_back(command(MemberCommand::Kind::cancel, d, why));
        }
      } else if ((k != npos || d.state == DeployState::paused) && cancellable(eff)) {
        s.commands.push_back(command(MemberCommand::Kind::cancel, d, why));
      } else if (k != npos) {
        s.holds[d.id] = "the release was " + std::string(release_state_name(n.state));
      }
      continue;
    }

    if (d.state == DeployState::awaiting_approval) {
      at_gate(s, d);
      continue;
    }
    if (k == npos || k >= d.environments.size()) continue;
    const std::string& name = d.environments[k].name;
    std::string hold, cancel;
    std::set<std::string> deps, seen;
    deps_in(r, m, mem.service, name, deps, seen);
    for (const auto& y : deps) {
      const DeployRecord* dy = run_of(m, y);
      if (dy == nullptr) continue;
      const std::size_t iy = env_index(*dy, name);
      if (iy == npos || dy->environments[iy].status == "passed") continue;
      if (is_terminal(dy->state) || failed_status(dy->environments[iy].status)) {
        cancel = n.id + ": its dependency '" + y + "' did not finish '" + name + "' (" + dy->id +
                 " is " + deploy_state_name(dy->state) + ")";
        break;
      }
      if (hold.empty()) hold = "waiting for '" + y + "' to finish '" + name + "'";
    }
    if (!cancel.empty()) {
      if (cancellable(d.state)) {
        s.commands.push_back(command(MemberCommand::Kind::cancel, d, cancel));
      }
      s.holds[d.id] = "a dependency did not finish '" + name + "'";
      continue;
    }
    // The release stands at one environment at a time: every member still
    // going has finished each environment before this one.
    auto ek = std::find(r.environments.begin(), r.environments.end(), name);
    for (const auto& z : r.services) {
      if (!hold.empty()) break;
      const DeployRecord* dz = run_of(m, z.service);
      if (dz == nullptr || dz == dp || is_terminal(dz->state)) continue;
      for (auto it = r.environments.begin(); it != ek && it != r.environments.end(); ++it) {
        const std::size_t iz = env_index(*dz, *it);
        if (iz == npos) continue;
        const std::string& st = dz->environments[iz].status;
        if (st != "passed" && st != "skipped") {
          hold = "waiting for '" + z.service + "' to finish '" + *it + "'";
          break;
        }
      }
    }
    if (!hold.empty()) s.holds[d.id] = hold;
  }

  // The end: every member has ended and nothing is left to do to them.
  const bool all_ended = std::all_of(r.services.begin(), r.services.end(), [&](const auto& mem) {
    const DeployRecord* d = run_of(m, mem.service);
    return d == nullptr || is_terminal(d->state);
  });
  if (all_ended && s.commands.empty()) {
    s.ended = true;
    if (n.state == ReleaseState::running) {
      std::vector<std::string> failed;
      for (const auto& f : n.failures) failed.push_back(f.service + " in " + f.env);
      if (n.failures.empty()) {
        n.state = ReleaseState::succeeded;
      } else if (r.policy == ReleasePolicy::all) {
        n.state = ReleaseState::rolled_back;
        n.reason = "'" + n.failures[0].service + "' failed in '" + n.failures[0].env +
                   "': the services the release changed there went back";
      } else {
        n.state = ReleaseState::failed;
        n.reason = "failed: " + list(failed);
      }
    }
    n.completed_ms = now;
    audit(s, std::string("release.") + release_state_name(n.state), {{"reason", n.reason}}, "");
  }
  s.changed = s.ended || encode_release(n) != encode_release(r);
  return s;
}

ReleaseCommand approve_release(const ReleaseRecord& r, const Members& m, const GateAct& act) {
  if (r.state != ReleaseState::running) {
    return ReleaseRefusal{"release '" + r.id + "' is " + release_state_name(r.state)};
  }
  const std::string env = gate_env(r, m);
  if (env.empty()) return ReleaseRefusal{"release '" + r.id + "' is not waiting at a gate"};
  if (act.person == r.started_by) {
    return ReleaseRefusal{"person '" + act.person + "' started release '" + r.id +
                          "' and cannot approve it: a gate needs another person"};
  }
  ReleaseStep s{r, false, {}, {}, {}, false};
  ReleaseGate* g = s.next.gate(env);
  if (g == nullptr) return ReleaseRefusal{"release '" + r.id + "' has no gate in '" + env + "'"};
  for (const auto& a : g->approvals) {
    if (a.person == act.person) {
      return ReleaseRefusal{"person '" + act.person + "' already approved release '" + r.id +
                            "' in '" + env + "'; each approval must be another person's"};
    }
  }
  g->approvals.push_back(act);
  s.changed = true;
  audit(s, "release.approved",
        {{"person", act.person},
         {"token", act.token},
         {"comment", act.comment},
         {"approvals", g->approvals.size()},
         {"required", g->required}},
        env);
  for (const auto& [service, d] : m) at_gate(s, d);
  return s;
}

ReleaseCommand reject_release(const ReleaseRecord& r, const Members& m, const GateAct& act) {
  if (r.state != ReleaseState::running) {
    return ReleaseRefusal{"release '" + r.id + "' is " + release_state_name(r.state)};
  }
  const std::string env = gate_env(r, m);
  if (env.empty()) return ReleaseRefusal{"release '" + r.id + "' is not waiting at a gate"};
  ReleaseStep s{r, false, {}, {}, {}, false};
  ReleaseGate* g = s.next.gate(env);
  if (g == nullptr) return ReleaseRefusal{"release '" + r.id + "' has no gate in '" + env + "'"};
  g->rejection = act;
  s.next.state = ReleaseState::rejected;
  s.next.reason = "rejected at the gate of '" + env + "' by " + act.person + ": " + act.comment;
  s.changed = true;
  audit(s, "release.rejected",
        {{"person", act.person}, {"token", act.token}, {"reason", act.comment}}, env);
  for (const auto& [service, d] : m) at_gate(s, d);
  return s;
}

ReleaseStep leave_member(const ReleaseRecord& r, const std::string& service,
                         const std::string& why) {
  ReleaseStep s{r, false, {}, {}, {}, false};
  s.next.left[service] = why;
  s.changed = true;
  audit(s, "release.member_left", {{"service", service}, {"reason", why}}, "", service);
  return s;
}

std::string member_env_state(const DeployRecord& d, const std::string& env) {
  const std::size_t idx = env_index(d, env);
  if (idx == npos) return "absent";
  const EnvRun& e = d.environments[idx];
  if (d.env == idx && d.state == DeployState::queued) {
    return !d.release.empty() && d.queued_behind.starts_with(d.release + ":") ? "waiting"
                                                                              : "queued";
  }
  if (d.state == DeployState::cancelled && idx >= d.env && e.status == "pending") {
    return "cancelled";
  }
  return e.status;
}

}  // namespace drover::coordinator
