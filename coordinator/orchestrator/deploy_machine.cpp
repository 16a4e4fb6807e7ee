#include "coordinator/orchestrator/deploy_machine.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

namespace drover::coordinator {
namespace {

using nlohmann::json;

// The judge's view of one host: at most this many of its samples, its newest.
constexpr std::size_t kSamplesPerHost = 60;

// samples, each host's newest `per_host` only, oldest first.
std::vector<HostSample> newest_per_host(std::vector<HostSample> samples, std::size_t per_host) {
  std::stable_sort(samples.begin(), samples.end(),
                   [](const HostSample& a, const HostSample& b) { return a.at_ms > b.at_ms; });
  std::map<std::string, std::size_t> taken;
  std::vector<HostSample> out;
  for (auto& hs : samples) {
    if (taken[hs.host]++ < per_host) out.push_back(std::move(hs));
  }
  std::reverse(out.begin(), out.end());
  return out;
}

void audit(Step& s, const std::string& what, json d, const std::string& env = "") {
  Action a;
  a.kind = Action::Kind::audit;
  a.what = what;
  a.detail = d.dump();
  a.env = env;
  s.actions.push_back(std::move(a));
}

void release(Step& s, const std::string& env, const std::string& artifact) {
  Action a;
  a.kind = Action::Kind::audit;
  a.what = "service.release";
  a.detail = json{{"artifact", artifact}, {"env", env}}.dump();
  a.env = env;
  a.release = artifact;
  s.actions.push_back(std::move(a));
}

void plan(Step& s, const std::string& artifact, std::vector<std::string> hosts,
          PlanRoute route = {}) {
  Action a;
  a.kind = Action::Kind::issue_plan;
  a.artifact = artifact;
  a.hosts = std::move(hosts);
  a.route = std::move(route);
  s.actions.push_back(std::move(a));
}

using Split = RolloutShape::Split;

// A flag ramp's step: the flag at percent in the run's environment.
void flags(Step& s, const std::string& flag, int percent) {
  Action a;
  a.kind = Action::Kind::issue_flags;
  a.flag = flag;
  a.flag_percent = percent;
  s.actions.push_back(std::move(a));
}

// A ramp's steps: the ramp's percentages between the one the flag had and
// the one asked for, then it.
std::vector<BatchRecord> ramp_batches(const EnvPlan& ep, int before, int target,
                                      std::vector<std::string> hosts) {
  std::sort(hosts.begin(), hosts.end());
  std::vector<BatchRecord> out;
  auto add = [&](int percent) {
    BatchRecord b;
    b.hosts = hosts;
    b.flag_percent = percent;
    out.push_back(std::move(b));
  };
  for (int p : ep.shape.ramp_percents) {
    if (p > before && p < target) add(p);
  }
  add(target);
  return out;
}

// Whether every host applied the environment's flag set with the flag at percent.
bool flags_applied(const FleetView& f, const std::vector<std::string>& hosts, int percent,
                   std::vector<std::string>* missing) {
  bool all = f.flag_now == percent;
  for (const auto& h : hosts) {
    auto it = f.flags_seq.find(h);
    if (it == f.flags_seq.end() || it->second < f.flagset_seq) {
      all = false;
      missing->push_back(h);
    }
  }
  return all;
}

// A step of a split strategy: the release at less than all traffic, or previewed.
bool split_step(const BatchRecord& b) {
  return b.traffic < 1000 || b.preview;
}

// The batches of a region under the environment's strategy. A split moves
// traffic, not hosts: blue/green previews each batch (or the whole region)
// at no traffic, then flips it; a traffic canary moves every host of the
// region through each share, then to all. An environment that ran nothing
// before has nothing to split with: plain batches.
std::vector<BatchRecord> region_batches(const EnvPlan& ep, const EnvRun& e,
                                        std::vector<std::string> hosts, const std::string& seed) {
  const Split& split = ep.shape.split;
  if (split.kind == Split::Kind::none || e.prior_artifact.empty()) {
    return pending_batches(plan_batches(std::move(hosts), ep.shape, seed));
  }
  std::vector<BatchRecord> out;
  auto add = [&](const std::vector<std::string>& group, int traffic, bool preview) {
    BatchRecord b;
    b.hosts = group;
    b.traffic = traffic;
    b.preview = preview;
    out.push_back(std::move(b));
  };
  if (split.kind == Split::Kind::traffic) {
    std::sort(hosts.begin(), hosts.end());
    for (int step : split.steps) add(hosts, step, false);
    add(hosts, 1000, false);
    return out;
  }
  std::vector<std::vector<std::string>> groups;
  if (split.per_region) {
    std::sort(hosts.begin(), hosts.end());
    groups.push_back(std::move(hosts));
  } else {
    groups = plan_batches(std::move(hosts), ep.shape, seed);
  }
  for (const auto& g : groups) {
    add(g, 0, true);
    add(g, 1000, false);
  }
  return out;
}

}  // namespace

PlanRoute batch_route(const BatchRecord& b, const EnvPlan* ep) {
  PlanRoute r;
  const Split::Kind kind = ep ? ep->shape.split.kind : Split::Kind::none;
  if (kind == Split::Kind::none && !split_step(b)) return r;
  r.kind = kind == Split::Kind::traffic ? "canary" : "blue_green";
  r.traffic = b.traffic;
  r.preview = b.preview;
  if (b.traffic == 1000 && ep) r.scale_down_s = ep->shape.split.scale_down_s;
  return r;
}

namespace {

std::string list(const std::vector<std::string>& hosts) {
  std::string out;
  for (std::size_t i = 0; i < hosts.size() && i < 5; ++i) out += (i ? ", " : "") + hosts[i];
  if (hosts.size() > 5) out += " and " + std::to_string(hosts.size() - 5) + " more";
  return out;
}

bool all_running(const FleetView& f, const std::vector<std::string>& hosts,
                 const std::string& release, std::vector<std::string>* missing = nullptr) {
  bool all = true;
  for (const auto& h : hosts) {
    auto it = f.running.find(h);
    if (it == f.running.end() || it->second != release) {
      all = false;
      if (missing) missing->push_back(h);
    }
  }
  return all;
}

// Hosts of a region's batches 0..k.
std::vector<std::string> region_hosts_upto(const RegionRun& r, std::size_t k) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i <= k && i < r.batches.size(); ++i) {
    out.insert(out.end(), r.batches[i].hosts.begin(), r.batches[i].hosts.end());
  }
  return out;
}

bool started(const BatchRecord& b) {
  return b.started_ms > 0 || b.status != "pending";
}

// Every host of the environment the run has sent the new artifact to.
std::set<std::string> updated_hosts(const EnvRun& e) {
  std::set<std::string> out;
  for (const auto& w : e.waves) {
    for (const auto& r : w.regions) {
      for (const auto& b : r.batches) {
        if (started(b)) out.insert(b.hosts.begin(), b.hosts.end());
      }
    }
  }
  return out;
}

std::string where(const RegionRun& r) {
  if (r.region.empty()) return "";
  return r.cluster.empty() ? r.region : r.region + "/" + r.cluster;
}

const EnvPlan* env_plan(const RunPlan& p, std::size_t i) {
  return i < p.envs.size() ? &p.envs[i] : nullptr;
}

std::int64_t wave_bake(const EnvPlan& e, std::size_t w) {
  return w < e.waves.size() && e.waves[w].bake_ms ? *e.waves[w].bake_ms : e.params.bake_ms;
}

// ---- the regions of a wave ----

void start_batch(Step& s, const EnvPlan& ep, EnvRun& e, RegionRun& r, std::size_t k,
                 std::int64_t now) {
  r.status = "deploying";
  r.batch = k;
  r.batches[k].status = "deploying";
  r.batches[k].started_ms = now;
  r.deadline_ms = now + ep.params.converge_timeout_ms;
  r.bake_until_ms = 0;
  r.judge_from_ms = 0;
  // The revision names this batch only: the hosts of earlier batches keep the
  // newest revision that named them, which names the same artifact. A plan
  // then stays the size of a batch.
  const BatchRecord& b = r.batches[k];
  json detail = {{"region", where(r)}, {"batch", k}, {"hosts", b.hosts.size()}};
  if (b.flag_percent >= 0) {
    flags(s, s.next.flag, b.flag_percent);
    detail["flag"] = s.next.flag;
    detail["percent"] = b.flag_percent;
  } else {
    plan(s, s.next.artifact, b.hosts, batch_route(b, &ep));
  }
  if (ep.shape.split.kind != Split::Kind::none) {
    detail["traffic"] = b.traffic;
    if (b.preview) detail["preview"] = true;
  }
  audit(s, "batch.started", detail, e.name);
  s.changed = true;
}

// The regions a wave covers, each with the hosts it holds now.
std::vector<std::pair<RegionRef, std::vector<std::string>>> wave_regions(
    const RunPlan& p, const Wave& w, const std::vector<HostPlace>& hosts) {
  std::vector<std::pair<RegionRef, std::vector<std::string>>> out;
  auto add = [&](const RegionRef& ref, const std::string& host) {
    for (auto& [r, hs] : out) {
      if (r.region == ref.region && r.cluster == ref.cluster) {
        hs.push_back(host);
        return;
      }
    }
    out.push_back({ref, {host}});
  };
  if (w.rest) {
    for (const auto& h : hosts) {
      const bool named = std::any_of(p.named.begin(), p.named.end(),
                                     [&](const RegionRef& r) { return covers(r, h); });
      if (!named) add({h.region, ""}, h.host);
    }
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.first.region < b.first.region; });
    return out;
  }
  for (const auto& ref : w.regions) {
    out.push_back({ref, {}});
    for (const auto& h : hosts) {
      if (covers(ref, h)) out.back().second.push_back(h.host);
    }
  }
  return out;
}

void start_rollback(Step& s, const RunPlan& p, std::int64_t now, const std::string& why);

// Starts wave w of the current environment unless a freeze window holds it.
void start_wave(Step& s, const RunPlan& p, const FleetView& fleet, std::size_t w,
                std::int64_t now) {
  DeployRecord& d = s.next;
  EnvRun& e = *d.current_env();
  const EnvPlan& ep = p.envs[d.env];
  e.wave = w;
  if (!e.freeze_override && ep.frozen) {
    std::string window = ep.frozen(now);
    if (!window.empty()) {
      if (e.frozen != window) {
        e.frozen = window;
        audit(s, "wave.frozen", {{"wave", e.waves[w].name}, {"window", window}}, e.name);
        s.changed = true;
      }
      return;
    }
  }
  if (!e.frozen.empty()) e.frozen.clear();
  WaveRun& wave = e.waves[w];
  if (d.ramp()) {
    // A ramp moves a flag on every host of the environment at once: one
    // "region" of them all, its batches the ramp's steps.
    wave.status = "running";
    wave.started_ms = now;
    wave.regions.clear();
    RegionRun r;
    r.batches = ramp_batches(ep, d.flag_before, d.flag_percent, env_hosts(p, d.env, fleet.hosts));
    wave.regions.push_back(std::move(r));
    audit(
        s, "wave.started",
        {{"wave", wave.name}, {"flag", d.flag}, {"hosts", wave.regions[0].batches[0].hosts.size()}},
        e.name);
    start_batch(s, ep, e, wave.regions[0], 0, now);
    s.changed = true;
    return;
  }
  const auto regions = wave_regions(p, ep.waves[w], fleet.hosts);
  if (ep.shape.split.kind != Split::Kind::none && !e.prior_artifact.empty()) {
    // A split goes only to hosts that report splitting: an agent that
    // cannot would refuse the plan, and one older than shares would move
    // all its traffic at once.
    std::vector<std::string> cannot;
    for (const auto& [ref, region_hosts] : regions) {
      for (const auto& h : region_hosts) {
        // A host that runs nothing yet has nothing to split: it gets the
        // release at all traffic first (fresh_first below).
        auto running = fleet.running.find(h);
        const bool fresh = running == fleet.running.end() || running->second.empty();
        if (!fresh && !fleet.traffic.count(h)) cannot.push_back(h);
      }
    }
    if (!cannot.empty()) {
      wave.status = "failed";
      wave.finished_ms = now;
      start_rollback(s, p, now,
                     "wave " + wave.name + ": hosts " + list(cannot) +
                         " do not report splitting traffic (blue/green slots with the nginx "
                         "router and an agent that reports its shares are needed)");
      return;
    }
  }
  wave.status = "running";
  wave.started_ms = now;
  wave.regions.clear();
  std::size_t hosts = 0;
  for (auto [ref, region_hosts] : regions) {
    if (region_hosts.empty()) continue;  // a region holding none of the service
    RegionRun r;
    r.region = ref.region;
    r.cluster = ref.cluster;
    hosts += region_hosts.size();
    // Hosts running nothing yet take the release at all traffic first: a
    // split needs a release in the other slot.
    std::vector<std::string> fresh;
    if (ep.shape.split.kind != Split::Kind::none && !e.prior_artifact.empty()) {
      std::erase_if(region_hosts, [&](const std::string& h) {
        auto running = fleet.running.find(h);
        const bool none = running == fleet.running.end() || running->second.empty();
        if (none) fresh.push_back(h);
        return none;
      });
    }
    r.batches = region_hosts.empty() ? std::vector<BatchRecord>{}
                                     : region_batches(ep, e, std::move(region_hosts),
                                                      d.id + "/" + e.name + "/" + where(r) + "/");
    if (!fresh.empty()) {
      std::sort(fresh.begin(), fresh.end());
      BatchRecord b;
      b.hosts = std::move(fresh);
      r.batches.insert(r.batches.begin(), std::move(b));
    }
    wave.regions.push_back(std::move(r));
  }
  audit(s, "wave.started",
        {{"wave", wave.name}, {"regions", wave.regions.size()}, {"hosts", hosts}}, e.name);
  for (auto& r : wave.regions) start_batch(s, ep, e, r, 0, now);
  s.changed = true;
}

// ---- rollback of the current environment, newest wave first ----

// The newest wave at or below w with a batch started (npos: none).
std::size_t touched_wave_from(const EnvRun& e, std::size_t w) {
  for (std::size_t i = std::min(w + 1, e.waves.size()); i-- > 0;) {
    for (const auto& r : e.waves[i].regions) {
      for (const auto& b : r.batches) {
        if (started(b)) return i;
      }
    }
  }
  return std::string::npos;
}

// The hosts of a wave's started batches, each once.
std::vector<std::string> wave_moved(const WaveRun& w) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& r : w.regions) {
    for (const auto& b : r.batches) {
      if (!started(b)) continue;
      for (const auto& h : b.hosts) {
        if (seen.insert(h).second) out.push_back(h);
      }
    }
  }
  return out;
}

void start_wave_rollback(Step& s, const EnvPlan& ep, std::size_t w, std::int64_t now) {
  DeployRecord& d = s.next;
  EnvRun& e = *d.current_env();
  e.wave = w;
  WaveRun& wave = e.waves[w];
  wave.status = "rolling_back";
  // The most recently started batches first, across the wave's regions; each
  // revision also names the batches already sent back, so the newest plan
  // names every host moved so far.
  struct Started {
    std::int64_t at;
    std::size_t region, batch;
  };
  std::vector<Started> order;
  for (std::size_t ri = 0; ri < wave.regions.size(); ++ri) {
    RegionRun& r = wave.regions[ri];
    bool any = false;
    for (std::size_t bi = 0; bi < r.batches.size(); ++bi) {
      if (started(r.batches[bi])) {
        order.push_back({r.batches[bi].started_ms, ri, bi});
        any = true;
      }
    }
    if (any) r.status = "rolling_back";
  }
  std::sort(order.begin(), order.end(), [](const Started& a, const Started& b) {
    if (a.at != b.at) return a.at > b.at;
    if (a.batch != b.batch) return a.batch > b.batch;
    return a.region > b.region;
  });
  if (d.ramp()) {
    // A ramp goes back in one step: the flag where it was on every host.
    flags(s, d.flag, d.flag_before);
    d.deadline_ms = now + ep.params.rollback_timeout_ms;
    audit(s, "rollback.wave", {{"wave", wave.name}, {"flag", d.flag}}, e.name);
    s.changed = true;
    return;
  }
  // A split's steps name the same hosts again: each host is sent back once.
  std::vector<std::string> moved;
  std::set<std::string> named;
  for (const auto& o : order) {
    bool added = false;
    for (const auto& h : wave.regions[o.region].batches[o.batch].hosts) {
      if (named.insert(h).second) {
        moved.push_back(h);
        added = true;
      }
    }
    if (added) plan(s, e.prior_artifact, moved);
  }
  d.deadline_ms = now + ep.params.rollback_timeout_ms;
  audit(s, "rollback.wave", {{"wave", wave.name}, {"hosts", moved.size()}}, e.name);
  s.changed = true;
}

// Rolls back the current environment (what this run changed in it), or ends
// the run failed when the environment ran nothing before.
void start_rollback(Step& s, const RunPlan& p, std::int64_t now, const std::string& why) {
  DeployRecord& d = s.next;
  EnvRun& e = *d.current_env();
  d.reason = why;
  const std::size_t from = touched_wave_from(e, e.waves.size() - 1);
  if (from == std::string::npos || (e.prior_artifact.empty() && !d.ramp())) {
    d.state = DeployState::failed;
    e.status = "failed";
    e.finished_ms = d.completed_ms = now;
    d.deadline_ms = 0;
    const std::string more = from == std::string::npos
                                 ? "; nothing was changed in environment '" + e.name + "'"
                                 : "; environment '" + e.name + "' ran no earlier release";
    d.reason = why + more;
    audit(s, "deploy.failed", {{"reason", d.reason}}, e.name);
    s.changed = true;
    return;
  }
  d.state = DeployState::rolling_back;
  e.status = "rolling_back";
  e.rollback_started_ms = now;
  e.frozen.clear();  // rollbacks are never frozen
  audit(s, "rollback.started", {{"reason", why}, {"env", e.name}}, e.name);
  const EnvPlan* ep = env_plan(p, d.env);
  start_wave_rollback(s, ep ? *ep : EnvPlan{}, from, now);
}

// Marks the failing region and its wave, then rolls the environment back.
void fail_region(Step& s, const RunPlan& p, WaveRun& w, RegionRun& r, std::int64_t now,
                 const std::string& why) {
  if (r.batch < r.batches.size() && r.batches[r.batch].status != "passed") {
    r.batches[r.batch].status = "failed";
    r.batches[r.batch].finished_ms = now;
    r.batches[r.batch].verdict = why;
  }
  r.status = "failed";
  r.verdict = why;
  w.status = "failed";
  w.finished_ms = now;
  start_rollback(s, p, now, why);
}

// ---- entering environments ----

void begin_waves(Step& s, const RunPlan& p, const FleetView& fleet, std::int64_t now) {
  DeployRecord& d = s.next;
  EnvRun& e = *d.current_env();
  e.status = "deploying";
  d.state = DeployState::deploying;
  d.deadline_ms = 0;
  if (env_hosts(p, d.env, fleet.hosts).empty()) {
    d.state = DeployState::failed;
    e.status = "failed";
    e.finished_ms = d.completed_ms = now;
    d.reason = "no enrolled host runs service '" + d.service + "' in environment '" + e.name + "'";
    audit(s, "deploy.failed", {{"reason", d.reason}}, e.name);
    s.changed = true;
    return;
  }
  start_wave(s, p, fleet, 0, now);
  s.changed = true;
}

void enter_env(Step& s, const RunPlan& p, const FleetView& fleet, std::int64_t now) {
  DeployRecord& d = s.next;
  EnvRun& e = *d.current_env();
  const EnvPlan& ep = p.envs[d.env];
  // Another run in the environment comes first: a release's run queues
  // behind it like any run.
  const bool behind_run = !fleet.next_env_holder.empty() && fleet.next_env_holder != d.id;
  if (!fleet.release_hold.empty() && !behind_run) {
    // Then the release's wait: the run holds the entrance for its service
    // meanwhile, so no newer run slips in ahead of it.
    const std::string behind = d.release + ": " + fleet.release_hold;
    if (d.state != DeployState::queued || d.queued_behind != behind) {
      d.state = DeployState::queued;
      d.queued_behind = behind;
      d.deadline_ms = 0;
      audit(s, "deploy.queued", {{"behind", behind}, {"release", d.release}}, e.name);
      s.changed = true;
    }
    return;
  }
  if (behind_run) {
    if (d.state != DeployState::queued || d.queued_behind != fleet.next_env_holder) {
      d.state = DeployState::queued;
      d.queued_behind = fleet.next_env_holder;
      d.deadline_ms = 0;
      audit(s, "deploy.queued", {{"behind", d.queued_behind}}, e.name);
      s.changed = true;
    }
    return;
  }
  d.queued_behind.clear();
  e.entered_ms = now;
  e.prior_artifact = fleet.next_env_prior;
  audit(s, "env.entered", {{"prior_artifact", e.prior_artifact}}, e.name);
  s.changed = true;
  // A ramp is the person's change of a flag itself: no gate.
  if (ep.gate && !d.ramp()) {
    e.status = "awaiting_approval";
    e.gate.required = ep.gate->approvals;
    e.gate.deadline_ms = now + ep.gate->deadline_ms;
    d.state = DeployState::awaiting_approval;
    d.deadline_ms = e.gate.deadline_ms;
    audit(s, "gate.waiting", {{"approvals", e.gate.required}, {"deadline_ms", e.gate.deadline_ms}},
          e.name);
    return;
  }
  begin_waves(s, p, fleet, now);
}

// The environment passed: the next one, or the end of the run.
void pass_env(Step& s, const RunPlan& p, const FleetView& fleet, std::int64_t now) {
  DeployRecord& d = s.next;
  EnvRun& e = *d.current_env();
  e.status = "passed";
  e.finished_ms = now;
  e.watch_until_ms = 0;
  audit(s, "env.passed", {{"artifact", d.artifact}}, e.name);
  if (!d.ramp()) release(s, e.name, d.artifact);  // a ramp changes no release
  s.changed = true;
  if (!d.ramp() && d.env + 1 < d.environments.size() && d.env + 1 < p.envs.size()) {
    ++d.env;
    enter_env(s, p, fleet, now);
    return;
  }
  d.state = DeployState::succeeded;
  d.completed_ms = now;
  d.deadline_ms = 0;
  audit(s, "deploy.succeeded", {{"environments", d.env + 1}});
}

void finish_waves(Step& s, const RunPlan& p, const FleetView& fleet, std::int64_t now) {
  DeployRecord& d = s.next;
  EnvRun& e = *d.current_env();
  const EnvPlan& ep = p.envs[d.env];
  if (ep.watch_ms > 0) {
    e.status = "watching";
    d.state = DeployState::watching;
    e.watch_until_ms = now + ep.watch_ms;
    audit(s, "watch.started", {{"until_ms", e.watch_until_ms}}, e.name);
    s.changed = true;
    return;
  }
  pass_env(s, p, fleet, now);
}

// ---- judging ----

struct Judged {
  Verdict verdict;
  std::size_t samples = 0;
  std::size_t measurements = 0;  // Prometheus measurements that joined it
};

// Canary: the samples of `canary_hosts` running the artifact taken in
// [from, now]. Baseline: the environment's hosts before it was entered, and
// its hosts not updated yet (still on the prior release) in the same window.
Judged judge(const DeployRecord& d, const EnvRun& e, const EnvPlan& ep, const FleetView& fleet,
             const std::set<std::string>& env_set, const std::set<std::string>& updated,
             const std::set<std::string>& canary_hosts, std::int64_t from, std::int64_t now,
             bool over) {
  BatchJudge j(ep.params.health);
  std::vector<HostSample> baseline, canary;
  for (const auto& hs : fleet.samples) {
    if (!env_set.count(hs.host)) continue;
    const bool judged_now = hs.at_ms >= from && hs.at_ms <= now;
    const bool pre =
        hs.at_ms < e.entered_ms && hs.at_ms >= e.entered_ms - ep.params.baseline_window_ms;
    const bool control = !updated.count(hs.host) && hs.release == e.prior_artifact;
    if (pre || (control && judged_now)) baseline.push_back(hs);
    if (canary_hosts.count(hs.host) && hs.release == d.artifact && judged_now) canary.push_back(hs);
  }
  // Each host weighs the same, however many samples it sends.
  baseline = newest_per_host(std::move(baseline), kSamplesPerHost);
  canary = newest_per_host(std::move(canary), kSamplesPerHost);
  for (const auto& hs : baseline) j.add_baseline(hs.sample);
  for (const auto& hs : canary) j.add_canary(hs.sample);
  return {j.verdict(over), j.canary_samples()};
}

// A step of a split: on each host of the step, the release's samples
// against that host's other slot in the same window (the control, as
// Kayenta judges a canary beside a control started with it). Each host is
// judged on its own: a host speaks only for itself, so one host's samples
// (or lies) never pass or fail another's. The step fails as soon as one
// host fails and passes when every host passed; a preview must also have
// served enough requests on every host.
Judged judge_split(const DeployRecord& d, const EnvRun& e, const EnvPlan& ep,
                   const FleetView& fleet, const BatchRecord& b, std::int64_t from,
                   std::int64_t now, bool over) {
  struct PerHost {
    std::vector<HostSample> control, canary;
  };
  std::map<std::string, PerHost> by_host;
  for (const auto& h : b.hosts) by_host[h];
  for (const auto& hs : fleet.samples) {
    auto it = by_host.find(hs.host);
    if (it == by_host.end() || hs.at_ms < from || hs.at_ms > now) continue;
    if (hs.other && hs.release == e.prior_artifact) it->second.control.push_back(hs);
    if (!hs.other && hs.release == d.artifact) it->second.canary.push_back(hs);
  }
  const auto wanted = static_cast<double>(ep.shape.split.preview_min_requests);
  Judged out{{Verdict::Kind::pass, ""}, 0};
  bool pending = false;
  for (auto& [host, s] : by_host) {
    BatchJudge j(ep.params.health);
    for (const auto& hs : newest_per_host(std::move(s.control), kSamplesPerHost)) {
      j.add_baseline(hs.sample);
    }
    double requests = 0;
    for (const auto& hs : newest_per_host(std::move(s.canary), kSamplesPerHost)) {
      j.add_canary(hs.sample);
      requests += hs.requests;
    }
    out.samples += j.canary_samples();
    Verdict v = j.verdict(over);
    if (b.preview && v.kind == Verdict::Kind::pass && requests < wanted) {
      // An idle slot nobody sent requests to proves nothing.
      v = {Verdict::Kind::fail,
           "the previewed release served " + std::to_string(std::llround(requests)) +
               " requests during its analysis; at least " + std::to_string(std::llround(wanted)) +
               " are needed on each host (strategy.preview_min_requests)"};
    }
    if (v.kind == Verdict::Kind::fail) {
      out.verdict = {Verdict::Kind::fail, "host " + host + ": " + v.reason};
      return out;
    }
    pending = pending || v.kind == Verdict::Kind::pending;
  }
  if (pending) out.verdict = {Verdict::Kind::pending, ""};
  return out;
}

// The agents' verdict joined with the Prometheus measurements of the
// region's batch taken during its bake (none configured: the agents' alone).
// A failure of either fails the batch; it passes when both pass.
Judged with_analysis(const Judged& agents, const EnvPlan& ep, const FleetView& fleet,
                     const EnvRun& e, const RegionRun& r, bool over) {
  if (!ep.params.prometheus) return agents;
  // This bake's measurements only: its batch, judged from the same instant
  // (a bake resumed after a restart or a pause counts afresh).
  const BatchAnalysis* taken = nullptr;
  for (const auto& b : fleet.analysis) {
    if (b.env == e.name && b.region == where(r) && b.batch == r.batch &&
        b.from_ms == r.judge_from_ms) {
      taken = &b;
    }
  }
  const Verdict prom = analysis_verdict(*ep.params.prometheus, taken, over);
  Judged out = agents;
  if (agents.verdict.kind == Verdict::Kind::fail && !agents.verdict.starved) return agents;
  if (prom.kind == Verdict::Kind::fail) {
    out.verdict = prom;
  } else if (prom.kind == Verdict::Kind::pending && agents.verdict.kind == Verdict::Kind::pass) {
    out.verdict = prom;
  }
  if (taken != nullptr) {
    for (const auto& q : taken->queries) {
      out.measurements += static_cast<std::size_t>(q.pass + q.fail + q.inconclusive);
    }
  }
  return out;
}

// The region's batch has converged: it bakes (the wave's bake for its last).
void start_bake(Step& s, const EnvPlan& ep, const EnvRun& e, RegionRun& r, std::int64_t now) {
  r.status = "baking";
  r.batches[r.batch].status = "baking";
  r.batches[r.batch].converged_ms = now;
  r.judge_from_ms = now;
  const bool last = r.batch + 1 == r.batches.size();
  r.bake_until_ms = now + (last ? wave_bake(ep, e.wave) : ep.params.bake_ms);
  // Samples must keep arriving during the bake: a silent batch fails at its
  // end, so the bake's own end is the wait's deadline.
  r.deadline_ms = r.bake_until_ms;
  audit(s, "batch.baking", {{"region", where(r)}, {"batch", r.batch}}, e.name);
  s.changed = true;
}

// Whether every host of a split's step routes it as the step says.
bool routed(const FleetView& f, const BatchRecord& b, std::vector<std::string>* missing) {
  bool all = true;
  for (const auto& h : b.hosts) {
    auto t = f.traffic.find(h);
    const bool ok = t == f.traffic.end()
                        ? !split_step(b)
                        : t->second == b.traffic && f.previewed.count(h) == (b.preview ? 1u : 0u);
    if (!ok) {
      all = false;
      missing->push_back(h);
    }
  }
  return all;
}

// Advances every region of the current wave; rolls the environment back on
// the first failure.
void advance_wave(Step& s, const RunPlan& p, const FleetView& fleet, std::int64_t now) {
  DeployRecord& d = s.next;
  EnvRun& e = *d.current_env();
  const EnvPlan& ep = p.envs[d.env];
  WaveRun& w = e.waves[e.wave];
  if (w.status == "pending") {
    start_wave(s, p, fleet, e.wave, now);  // held by a freeze window until now
    return;
  }
  std::set<std::string> env_set;
  for (const auto& h : env_hosts(p, d.env, fleet.hosts)) env_set.insert(h);
  const std::set<std::string> updated = updated_hosts(e);  // as the tick began
  for (auto& r : w.regions) {
    if (r.status == "deploying" && r.batches[r.batch].flag_percent >= 0) {
      const BatchRecord& b = r.batches[r.batch];
      std::vector<std::string> missing;
      if (flags_applied(fleet, b.hosts, b.flag_percent, &missing)) {
        start_bake(s, ep, e, r, now);
      } else if (now >= r.deadline_ms) {
        fail_region(s, p, w, r, now,
                    "hosts " + list(missing) + " did not apply flag set " +
                        std::to_string(fleet.flagset_seq) + " by the deadline");
        return;
      }
    } else if (r.status == "deploying") {
      const auto& batch = r.batches[r.batch].hosts;
      for (const auto& h : batch) {
        if (fleet.apply_failed.count(h)) {
          fail_region(s, p, w, r, now, "host " + h + " could not apply " + d.artifact);
          return;
        }
      }
      std::vector<std::string> missing;
      bool converged = all_running(fleet, region_hosts_upto(r, r.batch), d.artifact, &missing);
      if (converged && ep.shape.split.kind != Split::Kind::none) {
        converged = routed(fleet, r.batches[r.batch], &missing);
      }
      if (converged) {
        start_bake(s, ep, e, r, now);
      } else if (now >= r.deadline_ms) {
        fail_region(s, p, w, r, now,
                    (r.region.empty() ? "" : "region " + where(r) + ": ") + "hosts " +
                        list(missing) +
                        (split_step(r.batches[r.batch])
                             ? " did not route " + std::to_string(r.batches[r.batch].traffic) +
                                   " per mille to the artifact by the deadline"
                             : " did not run the artifact by the deadline"));
        return;
      }
    } else if (r.status == "baking") {
      const auto& hosts = r.batches[r.batch].hosts;
      const std::set<std::string> in_batch(hosts.begin(), hosts.end());
      // Only samples inside the window being judged count: never one dated
      // after now, never an old one replayed.
      const bool over = now + ep.params.planted_early_batch_ms >= r.bake_until_ms;
      const BatchRecord& cur = r.batches[r.batch];
      const Judged agents =
          split_step(cur)
              ? judge_split(d, e, ep, fleet, cur, r.judge_from_ms, now, over)
              : judge(d, e, ep, fleet, env_set, updated, in_batch, r.judge_from_ms, now, over);
      const Judged v = with_analysis(agents, ep, fleet, e, r, over);
      // Too few samples at the bake's end: the batch's health has not reached
      // the coordinator (a partition, lost reports, a restart), which is no
      // verdict on the release. The bake waits for it up to the converge
      // timeout past its end, then fails naming the silence.
      const bool waiting_for_health = v.verdict.kind == Verdict::Kind::fail && v.verdict.starved &&
                                      now < r.bake_until_ms + ep.params.converge_timeout_ms;
      if (v.verdict.kind == Verdict::Kind::fail && !waiting_for_health) {
        fail_region(s, p, w, r, now,
                    (r.region.empty() ? "" : "region " + where(r) + ": ") + "batch " +
                        std::to_string(r.batch) + ": " + v.verdict.reason);
        return;
      }
      if (v.verdict.kind == Verdict::Kind::pass) {
        r.batches[r.batch].status = "passed";
        r.batches[r.batch].finished_ms = now;
        r.batches[r.batch].verdict =
            "passed with " + std::to_string(v.samples) + " samples" +
            (ep.params.prometheus
                 ? " and " + std::to_string(v.measurements) + " Prometheus measurements"
                 : "");
        json passed = {{"region", where(r)}, {"batch", r.batch}, {"samples", v.samples}};
        if (ep.params.prometheus) passed["measurements"] = v.measurements;
        audit(s, "batch.passed", passed, e.name);
        s.changed = true;
        if (r.batch + 1 < r.batches.size()) {
          start_batch(s, ep, e, r, r.batch + 1, now);
        } else {
          r.status = "passed";
          r.deadline_ms = r.bake_until_ms = 0;
          r.verdict = "passed";
        }
      }
    }
  }
  const bool all_passed = std::all_of(w.regions.begin(), w.regions.end(),
                                      [](const RegionRun& r) { return r.status == "passed"; });
  if (all_passed) {
    w.status = "passed";
    w.finished_ms = now;
    audit(s, "wave.passed", {{"wave", w.name}}, e.name);
    s.changed = true;
    if (e.wave + 1 < e.waves.size() && !d.ramp()) {
      start_wave(s, p, fleet, e.wave + 1, now);
    } else {
      finish_waves(s, p, fleet, now);
      return;
    }
  }
  // The run's summary state: baking when no region of the wave is deploying.
  const WaveRun& cur = e.waves[e.wave];
  const bool any_deploying =
      cur.status != "running" ||
      std::any_of(cur.regions.begin(), cur.regions.end(),
                  [](const RegionRun& r) { return r.status == "deploying"; });
  const DeployState summary = any_deploying ? DeployState::deploying : DeployState::baking;
  if (d.state != summary) {
    d.state = summary;
    s.changed = true;
  }
}

void advance_watch(Step& s, const RunPlan& p, const FleetView& fleet, std::int64_t now) {
  DeployRecord& d = s.next;
  EnvRun& e = *d.current_env();
  const EnvPlan& ep = p.envs[d.env];
  std::set<std::string> env_set;
  for (const auto& h : env_hosts(p, d.env, fleet.hosts)) env_set.insert(h);
  const std::set<std::string> updated = updated_hosts(e);
  const bool over = now >= e.watch_until_ms;
  const Judged v =
      judge(d, e, ep, fleet, env_set, updated, updated, e.watch_until_ms - ep.watch_ms, now, false);
  // A regression rolls the environment back; a quiet watch passes (its
  // batches already passed their bakes).
  bool failed = v.verdict.kind == Verdict::Kind::fail;
  std::string why = v.verdict.reason;
  if (!failed && over && v.samples >= static_cast<std::size_t>(ep.params.health.min_samples)) {
    const Judged end = judge(d, e, ep, fleet, env_set, updated, updated,
                             e.watch_until_ms - ep.watch_ms, now, true);
    failed = end.verdict.kind == Verdict::Kind::fail;
    why = end.verdict.reason;
  }
  if (failed) {
    start_rollback(s, p, now, "post-release watch of '" + e.name + "': " + why);
    return;
  }
  if (over) pass_env(s, p, fleet, now);
}

void advance_rollback(Step& s, const RunPlan& p, const FleetView& fleet, std::int64_t now) {
  DeployRecord& d = s.next;
  EnvRun& e = *d.current_env();
  WaveRun& w = e.waves[e.wave];
  std::vector<std::string> moved = wave_moved(w), missing;
  const bool back = d.ramp() ? flags_applied(fleet, moved, d.flag_before, &missing)
                             : all_running(fleet, moved, e.prior_artifact, &missing);
  if (back) {
    w.status = "rolled_back";
    for (auto& r : w.regions) {
      if (r.status == "rolling_back") r.status = "rolled_back";
    }
    audit(s, "rollback.wave_done", {{"wave", w.name}}, e.name);
    s.changed = true;
    const std::size_t next = e.wave == 0 ? std::string::npos : touched_wave_from(e, e.wave - 1);
    if (next != std::string::npos) {
      const EnvPlan* ep = env_plan(p, d.env);
      start_wave_rollback(s, ep ? *ep : EnvPlan{}, next, now);
      return;
    }
    d.state = DeployState::rolled_back;
    e.status = "rolled_back";
    e.rollback_done_ms = e.finished_ms = d.completed_ms = now;
    d.deadline_ms = 0;
    audit(s, "rollback.done", {{"ms", now - e.rollback_started_ms}}, e.name);
    if (!d.ramp()) release(s, e.name, e.prior_artifact);
  } else if (now >= d.deadline_ms) {
    d.state = DeployState::failed;
    e.status = "failed";
    e.finished_ms = d.completed_ms = now;
    d.reason += "; rollback did not reach " + list(missing) + " by the deadline";
    d.deadline_ms = 0;
    audit(s, "deploy.failed", {{"reason", d.reason}}, e.name);
    s.changed = true;
  }
}

// Shifts the current environment's running waits by `by` (a pause's length).
void shift_waits(DeployRecord& d, std::int64_t by) {
  EnvRun* e = d.current_env();
  if (e == nullptr) return;
  for (auto& w : e->waves) {
    for (auto& r : w.regions) {
      if (r.status != "deploying" && r.status != "baking") continue;
      if (r.deadline_ms) r.deadline_ms += by;
      if (r.bake_until_ms) r.bake_until_ms += by;
    }
  }
  if (e->watch_until_ms) e->watch_until_ms += by;
  if (e->gate.deadline_ms && e->status == "awaiting_approval") e->gate.deadline_ms += by;
}

}  // namespace

bool covers(const RegionRef& ref, const HostPlace& h) {
  if (ref.region.empty()) return true;
  return h.region == ref.region && (ref.cluster.empty() || h.cluster == ref.cluster);
}

std::vector<std::string> env_hosts(const RunPlan& plan, std::size_t env,
                                   const std::vector<HostPlace>& hosts) {
  std::vector<std::string> out;
  if (env >= plan.envs.size()) return out;
  for (const auto& w : plan.envs[env].waves) {
    for (auto& [ref, hs] : wave_regions(plan, w, hosts)) {
      out.insert(out.end(), hs.begin(), hs.end());
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Step advance(const DeployRecord& d, const RunPlan& p, const FleetView& fleet, std::int64_t now) {
  Step s{d, {}, false};
  DeployRecord& n = s.next;
  if (n.current_env() == nullptr || env_plan(p, n.env) == nullptr) {
    if (!is_terminal(d.state)) {
      n.state = DeployState::failed;
      n.completed_ms = now;
      n.reason = "the run's plan has no environment " + std::to_string(d.env);
      audit(s, "deploy.failed", {{"reason", n.reason}});
      s.changed = true;
    }
    return s;
  }
  switch (d.state) {
    case DeployState::pending:
      if (fleet.artifact_ready) {
        n.state = DeployState::artifact_ready;
        n.deadline_ms = 0;
        audit(s, "artifact.ready", {{"artifact", d.artifact}});
        s.changed = true;
      } else if (d.deadline_ms == 0) {
        n.deadline_ms = now + p.ready_timeout_ms;
        s.changed = true;
      } else if (now >= d.deadline_ms) {
        n.state = DeployState::failed;
        n.completed_ms = now;
        n.reason = "the artifact's layers were not at the seeds by the deadline";
        audit(s, "deploy.failed", {{"reason", n.reason}});
        s.changed = true;
      }
      break;
    case DeployState::artifact_ready:
    case DeployState::queued: enter_env(s, p, fleet, now); break;
    case DeployState::awaiting_approval: {
      EnvRun& e = *n.current_env();
      if (static_cast<int>(e.gate.approvals.size()) >= e.gate.required) {
        audit(s, "gate.passed", {{"approvals", e.gate.approvals.size()}}, e.name);
        begin_waves(s, p, fleet, now);
      } else if (now >= e.gate.deadline_ms) {
        n.state = DeployState::expired;
        e.status = "expired";
        e.finished_ms = n.completed_ms = now;
        n.deadline_ms = 0;
        n.reason = "the gate of environment '" + e.name + "' was not approved by its deadline";
        audit(s, "gate.expired", {{"approvals", e.gate.approvals.size()}}, e.name);
        s.changed = true;
      }
      break;
    }
    case DeployState::deploying:
    case DeployState::baking: advance_wave(s, p, fleet, now); break;
    case DeployState::watching: advance_watch(s, p, fleet, now); break;
    case DeployState::rolling_back: advance_rollback(s, p, fleet, now); break;
    case DeployState::paused:
      if (d.deadline_ms && now >= d.deadline_ms) {
        // Resumed in place, then failed: the waits are the pause's business
        // no more.
        n.state = d.paused_from;
        shift_waits(n, now - d.paused_at_ms);
        start_rollback(s, p, now, "paused past its deadline");
      }
      break;
    case DeployState::succeeded:
    case DeployState::rolled_back:
    case DeployState::failed:
    case DeployState::rejected:
    case DeployState::expired:
    case DeployState::superseded:
    case DeployState::cancelled: break;
  }
  return s;
}

Command pause(const DeployRecord& d, const RunPlan& p, std::int64_t now) {
  switch (d.state) {
    case DeployState::pending:
    case DeployState::artifact_ready:
    case DeployState::queued:
    case DeployState::awaiting_approval:
    case DeployState::deploying:
    case DeployState::baking:
    case DeployState::watching: break;
    default:
      return Refusal{"deploy '" + d.id + "' is " + deploy_state_name(d.state) +
                     " and cannot be paused"};
  }
  Step s{d, {}, true};
  s.next.paused_from = d.state;
  s.next.paused_at_ms = now;
  s.next.state = DeployState::paused;
  const EnvPlan* ep = env_plan(p, d.env);
  s.next.deadline_ms = now + (ep ? ep->params.pause_timeout_ms : DeployParams{}.pause_timeout_ms);
  audit(s, "deploy.paused",
        {{"from", deploy_state_name(d.state)}, {"deadline_ms", s.next.deadline_ms}},
        d.current_env() ? d.current_env()->name : "");
  return s;
}

Command resume(const DeployRecord& d, std::int64_t now) {
  if (d.state != DeployState::paused) {
    return Refusal{"deploy '" + d.id + "' is " + deploy_state_name(d.state) + ", not paused"};
  }
  Step s{d, {}, true};
  DeployRecord& n = s.next;
  n.state = d.paused_from;
  // The waits go on for what was left of them: a pause never shortens a bake.
  shift_waits(n, now - d.paused_at_ms);
  // The gate's deadline goes on; a pending run sets its ready deadline anew.
  n.deadline_ms = n.state == DeployState::awaiting_approval && n.current_env()
                      ? n.current_env()->gate.deadline_ms
                      : 0;
  n.paused_at_ms = 0;
  audit(s, "deploy.resumed", {{"to", deploy_state_name(d.paused_from)}},
        d.current_env() ? d.current_env()->name : "");
  return s;
}

Command rollback(const DeployRecord& d, const RunPlan& p, std::int64_t now,
                 const std::string& reason) {
  const EnvRun* e = d.current_env();
  if (e == nullptr) return Refusal{"deploy '" + d.id + "' has no environment"};
  const bool running = d.state == DeployState::deploying || d.state == DeployState::baking ||
                       d.state == DeployState::watching || d.state == DeployState::paused;
  const bool finished = d.state == DeployState::succeeded && e->status == "passed";
  if (!running && !finished) {
    return Refusal{"deploy '" + d.id + "' is " + deploy_state_name(d.state) +
                   "; nothing to roll back"};
  }
  if (e->prior_artifact.empty()) {
    return Refusal{"environment '" + e->name + "' ran nothing before deploy '" + d.id +
                   "': there is no release to roll back to"};
  }
  if (touched_wave_from(*e, e->waves.size() - 1) == std::string::npos) {
    return Refusal{"deploy '" + d.id + "' has changed nothing in environment '" + e->name + "'"};
  }
  Step s{d, {}, false};
  if (d.state == DeployState::paused) s.next.state = d.paused_from;
  start_rollback(s, p, now, reason);
  return s;
}

Command approve(const DeployRecord& d, const GateAct& act) {
  const EnvRun* e = d.current_env();
  if (d.state != DeployState::awaiting_approval || e == nullptr) {
    return Refusal{"deploy '" + d.id + "' is " + deploy_state_name(d.state) +
                   ", not waiting at a gate"};
  }
  if (act.person == d.started_by) {
    return Refusal{"person '" + act.person + "' started deploy '" + d.id +
                   "' and cannot approve it: a gate needs another person"};
  }
  for (const auto& a : e->gate.approvals) {
    if (a.person == act.person) {
      return Refusal{"person '" + act.person + "' already approved deploy '" + d.id +
                     "' (with token '" + a.token + "'); each approval must be another person's"};
    }
  }
  Step s{d, {}, true};
  EnvRun& n = *s.next.current_env();
  n.gate.approvals.push_back(act);
  json detail = {{"person", act.person},
                 {"token", act.token},
                 {"comment", act.comment},
                 {"approvals", n.gate.approvals.size()},
                 {"required", n.gate.required}};
  if (!d.release.empty()) detail["release"] = d.release;  // given to the whole release
  audit(s, "gate.approved", detail, n.name);
  return s;
}

Command reject(const DeployRecord& d, const GateAct& act) {
  const EnvRun* e = d.current_env();
  if (d.state != DeployState::awaiting_approval || e == nullptr) {
    return Refusal{"deploy '" + d.id + "' is " + deploy_state_name(d.state) +
                   ", not waiting at a gate"};
  }
  Step s{d, {}, true};
  DeployRecord& n = s.next;
  EnvRun& ne = *n.current_env();
  ne.gate.rejection = act;
  ne.status = "rejected";
  ne.finished_ms = n.completed_ms = act.at_ms;
  n.state = DeployState::rejected;
  n.deadline_ms = 0;
  n.reason = "rejected at the gate of '" + ne.name + "' by " + act.person + ": " + act.comment;
  audit(s, "gate.rejected", {{"person", act.person}, {"token", act.token}, {"reason", act.comment}},
        ne.name);
  return s;
}

Command override_freeze(const DeployRecord& d, const GateAct& act) {
  if (is_terminal(d.state) || d.state == DeployState::rolling_back || d.current_env() == nullptr) {
    return Refusal{"deploy '" + d.id + "' is " + deploy_state_name(d.state) +
                   "; no wave of it is left to start"};
  }
  Step s{d, {}, true};
  EnvRun& e = *s.next.current_env();
  e.freeze_override = act;
  audit(
      s, "freeze.overridden",
      {{"person", act.person}, {"token", act.token}, {"reason", act.comment}, {"window", e.frozen}},
      e.name);
  return s;
}

Command supersede(const DeployRecord& d, const std::string& newer, std::int64_t now) {
  if (d.state != DeployState::queued) {
    return Refusal{"deploy '" + d.id + "' is " + deploy_state_name(d.state) + ", not queued"};
  }
  Step s{d, {}, true};
  s.next.state = DeployState::superseded;
  s.next.completed_ms = now;
  s.next.reason = "superseded by '" + newer + "'";
  audit(s, "deploy.superseded", {{"by", newer}}, d.current_env() ? d.current_env()->name : "");
  return s;
}

std::size_t entering_env(const DeployRecord& d) {
  switch (d.state) {
    case DeployState::pending:
    case DeployState::artifact_ready:
    case DeployState::queued: return d.env;
    case DeployState::deploying:
    case DeployState::baking:
    case DeployState::watching: return d.env + 1;
    default: return std::string::npos;
  }
}

Command cancel(const DeployRecord& d, const std::string& why, std::int64_t now) {
  const DeployState from = d.state == DeployState::paused ? d.paused_from : d.state;
  switch (from) {
    case DeployState::pending:
    case DeployState::artifact_ready:
    case DeployState::queued:
    case DeployState::awaiting_approval: break;
    default:
      return Refusal{"deploy '" + d.id + "' is " + deploy_state_name(d.state) +
                     "; only a run that has not entered its environment can be cancelled"};
  }
  Step s{d, {}, true};
  DeployRecord& n = s.next;
  n.state = DeployState::cancelled;
  n.completed_ms = now;
  n.deadline_ms = 0;
  n.queued_behind.clear();
  n.reason = why;
  EnvRun* e = n.current_env();
  if (e != nullptr && from == DeployState::awaiting_approval) {
    e->status = "cancelled";
    e->finished_ms = now;
  }
  audit(s, "deploy.cancelled", {{"reason", why}, {"release", d.release}}, e ? e->name : "");
  return s;
}

Command rollback_passed(const DeployRecord& d, const RunPlan& p, std::size_t env, std::int64_t now,
                        const std::string& reason) {
  if (env >= d.environments.size() || d.environments[env].status != "passed") {
    return Refusal{"deploy '" + d.id + "' has not passed environment " + std::to_string(env)};
  }
  const DeployState s = d.state == DeployState::paused ? d.paused_from : d.state;
  if (!is_terminal(s) && s != DeployState::queued && s != DeployState::awaiting_approval) {
    return Refusal{"deploy '" + d.id + "' is " + deploy_state_name(d.state) +
                   " in a later environment; it cannot go back to environment '" +
                   d.environments[env].name + "' yet"};
  }
  // Nothing after env holds a change of this run: never entered, entered
  // without touching a host, or rolled back.
  for (std::size_t j = env + 1; j < d.environments.size(); ++j) {
    const EnvRun& later = d.environments[j];
    const bool clean = later.entered_ms == 0 || later.status == "rolled_back" ||
                       later.waves.empty() ||
                       touched_wave_from(later, later.waves.size() - 1) == std::string::npos;
    if (!clean) {
      return Refusal{"deploy '" + d.id + "' changed environment '" + later.name + "' after '" +
                     d.environments[env].name + "'; that one goes back first"};
    }
  }
  DeployRecord back = d;
  for (std::size_t j = env + 1; j < back.environments.size(); ++j) {
    EnvRun& later = back.environments[j];
    if (later.status == "awaiting_approval") {
      later.status = "cancelled";
      later.finished_ms = now;
    }
  }
  back.env = env;
  back.state = DeployState::succeeded;
  back.queued_behind.clear();
  back.paused_at_ms = 0;
  back.deadline_ms = 0;
  return rollback(back, p, now, reason);
}

Command end_ramp(const DeployRecord& d, const std::string& why, std::int64_t now) {
  if (!d.ramp()) return Refusal{"deploy '" + d.id + "' is not a flag ramp"};
  if (is_terminal(d.state)) {
    return Refusal{"ramp '" + d.id + "' is " + deploy_state_name(d.state) + " already"};
  }
  Step s{d, {}, true};
  s.next.state = DeployState::superseded;
  s.next.completed_ms = now;
  s.next.deadline_ms = 0;
  s.next.reason = why;
  if (EnvRun* e = s.next.current_env()) {
    e->status = "superseded";
    e->finished_ms = now;
  }
  // No flag is written: whoever ended it sets the flag.
  audit(s, "ramp.ended", {{"reason", why}}, d.current_env() ? d.current_env()->name : "");
  return s;
}

std::optional<Step> after_restart(const DeployRecord& d, const RunPlan& p, std::int64_t now) {
  if (is_terminal(d.state) || d.state == DeployState::paused) return std::nullopt;
  const EnvPlan* ep = env_plan(p, d.env);
  if (ep == nullptr || d.current_env() == nullptr) return std::nullopt;
  Step s{d, {}, false};
  EnvRun& e = *s.next.current_env();
  json restarted = json::array();
  for (std::size_t wi = 0; wi < e.waves.size(); ++wi) {
    for (auto& r : e.waves[wi].regions) {
      if (r.status == "baking") {
        const std::size_t k = r.batch;
        const bool last = k + 1 == r.batches.size();
        r.judge_from_ms = now;
        r.bake_until_ms = r.deadline_ms = now + (last ? wave_bake(*ep, wi) : ep->params.bake_ms);
        restarted.push_back(
            {{"region", where(r)}, {"batch", k}, {"bake_until_ms", r.bake_until_ms}});
        s.changed = true;
      } else if (r.status == "deploying") {
        const std::int64_t floor = now + ep->params.converge_timeout_ms;
        if (r.deadline_ms < floor) {
          r.deadline_ms = floor;
          s.changed = true;
        }
      }
    }
  }
  if (e.status == "watching" && d.state == DeployState::watching) {
    e.watch_until_ms = now + ep->watch_ms;
    restarted.push_back({{"watch_until_ms", e.watch_until_ms}});
    s.changed = true;
  }
  if (d.state == DeployState::rolling_back) {
    const std::int64_t floor = now + ep->params.rollback_timeout_ms;
    if (s.next.deadline_ms < floor) {
      s.next.deadline_ms = floor;
      s.changed = true;
    }
  }
  if (!s.changed) return std::nullopt;
  audit(s, "waits.restarted", {{"after", "coordinator restart"}, {"restarted", restarted}}, e.name);
  return s;
}

}  // namespace drover::coordinator
