#include "coordinator/orchestrator/deploy_machine.hpp"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

namespace drover::coordinator {
namespace {

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

using nlohmann::json;

std::string detail(json j) {
  return j.dump();
}

void audit(Step& s, const std::string& what, json d) {
  s.actions.push_back({Action::Kind::audit, "", {}, what, detail(std::move(d))});
}

// Hosts of batches 0..k.
std::vector<std::string> hosts_upto(const DeployRecord& d, std::size_t k) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i <= k && i < d.batches.size(); ++i) {
    out.insert(out.end(), d.batches[i].hosts.begin(), d.batches[i].hosts.end());
  }
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

std::string list(const std::vector<std::string>& hosts) {
  std::string out;
  for (std::size_t i = 0; i < hosts.size() && i < 5; ++i) out += (i ? ", " : "") + hosts[i];
  if (hosts.size() > 5) out += " and " + std::to_string(hosts.size() - 5) + " more";
  return out;
}

void start_batch(Step& s, const DeployParams& p, std::size_t k, std::int64_t now) {
  DeployRecord& d = s.next;
  d.state = DeployState::deploying;
  d.batch = k;
  d.batches[k].status = "deploying";
  d.batches[k].started_ms = now;
  d.deadline_ms = now + p.converge_timeout_ms;
  d.bake_until_ms = 0;
  // The revision names this batch only: the hosts of earlier batches keep the
  // newest revision that named them, which names the same artifact. A plan
  // then stays the size of a batch, and each host fetches one (not one per
  // batch, each as large as every batch so far).
  s.actions.push_back({Action::Kind::issue_plan, d.artifact, d.batches[k].hosts, "", ""});
  audit(s, "batch.started", {{"batch", k}, {"hosts", d.batches[k].hosts.size()}});
  s.changed = true;
}

void start_rollback(Step& s, const DeployParams& p, std::int64_t now, const std::string& why) {
  DeployRecord& d = s.next;
  d.reason = why;
  if (d.batch < d.batches.size() && d.batches[d.batch].status != "passed") {
    d.batches[d.batch].status = "failed";
    d.batches[d.batch].finished_ms = now;
    d.batches[d.batch].verdict = why;
  }
  if (d.prior_artifact.empty()) {
    // Nothing to go back to: the first deploy of a service.
    d.state = DeployState::failed;
    d.completed_ms = now;
    d.deadline_ms = 0;
    audit(s, "deploy.failed", {{"reason", why + "; no earlier release to roll back to"}});
    s.changed = true;
    return;
  }
  d.state = DeployState::rolling_back;
  d.rollback_started_ms = now;
  d.deadline_ms = now + p.rollback_timeout_ms;
  d.bake_until_ms = 0;
  // The most recently updated batches first; each revision also names the
  // batches already sent back, so no host is left out of the newest plan.
  std::vector<std::string> moved;
  for (std::size_t i = std::min(d.batch + 1, d.batches.size()); i-- > 0;) {
    moved.insert(moved.end(), d.batches[i].hosts.begin(), d.batches[i].hosts.end());
    s.actions.push_back({Action::Kind::issue_plan, d.prior_artifact, moved, "", ""});
  }
  audit(s, "rollback.started", {{"reason", why}, {"hosts", moved.size()}});
  s.changed = true;
}

}  // namespace

Step advance(const DeployRecord& d, const DeployParams& p, const FleetView& fleet,
             std::int64_t now) {
  Step s{d, {}, false};
  DeployRecord& n = s.next;
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
      if (d.batches.empty()) {
        n.state = DeployState::failed;
        n.completed_ms = now;
        n.reason = "no host runs the service";
        audit(s, "deploy.failed", {{"reason", n.reason}});
        s.changed = true;
      } else {
        start_batch(s, p, 0, now);
      }
      break;
    case DeployState::deploying: {
      const auto& batch = d.batches[d.batch].hosts;
      for (const auto& h : batch) {
        if (fleet.apply_failed.count(h)) {
          start_rollback(s, p, now, "host " + h + " could not apply " + d.artifact);
          return s;
        }
      }
      std::vector<std::string> missing;
      if (all_running(fleet, hosts_upto(d, d.batch), d.artifact, &missing)) {
        n.state = DeployState::baking;
        n.batches[d.batch].status = "baking";
        n.batches[d.batch].converged_ms = now;
        n.bake_until_ms = now + p.bake_ms;
        // Samples must keep arriving during the bake: a silent batch fails
        // at its end, so the bake's own end is the wait's deadline.
        n.deadline_ms = n.bake_until_ms;
        audit(s, "batch.baking", {{"batch", d.batch}});
        s.changed = true;
      } else if (now >= d.deadline_ms) {
        start_rollback(s, p, now,
                       "hosts " + list(missing) + " did not run the artifact by the deadline");
      }
      break;
    }
    case DeployState::baking: {
      const auto& batch = d.batches[d.batch];
      const std::set<std::string> updated = [&] {
        auto v = hosts_upto(d, d.batch);
        return std::set<std::string>(v.begin(), v.end());
      }();
      const std::set<std::string> in_batch(batch.hosts.begin(), batch.hosts.end());
      BatchJudge judge(p.health);
      // Only samples taken inside the window being judged count: never one
      // dated after now (the gateway refuses those beyond the clock skew
      // bound; this holds whatever the source), never an old one replayed.
      const auto judged_now = [&](const HostSample& hs) {
        return hs.at_ms >= batch.converged_ms && hs.at_ms <= now;
      };
      std::vector<HostSample> baseline, canary;
      for (const auto& hs : fleet.samples) {
        const bool pre_deploy =
            hs.at_ms < d.created_ms && hs.at_ms >= d.created_ms - p.baseline_window_ms;
        const bool control = !updated.count(hs.host) && hs.release == d.prior_artifact;
        if (pre_deploy || (control && judged_now(hs))) baseline.push_back(hs);
        if (in_batch.count(hs.host) && hs.release == d.artifact && judged_now(hs)) {
          canary.push_back(hs);
        }
      }
      // Each host weighs the same, however many samples it sends: one that
      // floods the window (dating samples inside it) cannot set the baseline
      // or carry its batch.
      baseline = newest_per_host(std::move(baseline), kSamplesPerHost);
      canary = newest_per_host(std::move(canary), kSamplesPerHost);
      for (const auto& hs : baseline) judge.add_baseline(hs.sample);
      for (const auto& hs : canary) judge.add_canary(hs.sample);
      const Verdict v = judge.verdict(now >= d.bake_until_ms);
      if (v.kind == Verdict::Kind::fail) {
        start_rollback(s, p, now, "batch " + std::to_string(d.batch) + ": " + v.reason);
      } else if (v.kind == Verdict::Kind::pass) {
        n.batches[d.batch].status = "passed";
        n.batches[d.batch].finished_ms = now;
        n.batches[d.batch].verdict =
            "passed with " + std::to_string(judge.canary_samples()) + " samples";
        audit(s, "batch.passed", {{"batch", d.batch}, {"samples", judge.canary_samples()}});
        if (d.batch + 1 < d.batches.size()) {
          start_batch(s, p, d.batch + 1, now);
        } else {
          n.state = DeployState::succeeded;
          n.completed_ms = now;
          n.deadline_ms = n.bake_until_ms = 0;
          audit(s, "deploy.succeeded", {{"batches", d.batches.size()}});
          s.actions.push_back(
              {Action::Kind::audit, "", {}, "service.release", detail({{"artifact", d.artifact}})});
        }
        s.changed = true;
      }
      break;
    }
    case DeployState::rolling_back: {
      std::vector<std::string> moved = hosts_upto(d, d.batch), missing;
      if (all_running(fleet, moved, d.prior_artifact, &missing)) {
        n.state = DeployState::rolled_back;
        n.rollback_done_ms = n.completed_ms = now;
        n.deadline_ms = 0;
        audit(s, "rollback.done", {{"ms", now - d.rollback_started_ms}});
        s.actions.push_back({Action::Kind::audit,
                             "",
                             {},
                             "service.release",
                             detail({{"artifact", d.prior_artifact}})});
        s.changed = true;
      } else if (now >= d.deadline_ms) {
        n.state = DeployState::failed;
        n.completed_ms = now;
        n.reason += "; rollback did not reach " + list(missing) + " by the deadline";
        audit(s, "deploy.failed", {{"reason", n.reason}});
        s.changed = true;
      }
      break;
    }
    case DeployState::paused:
    case DeployState::succeeded:
    case DeployState::rolled_back:
    case DeployState::failed: break;
  }
  return s;
}

std::optional<Step> pause(const DeployRecord& d, std::int64_t now) {
  if (is_terminal(d.state) || d.state == DeployState::paused ||
      d.state == DeployState::rolling_back) {
    return std::nullopt;
  }
  Step s{d, {}, true};
  s.next.paused_from = d.state;
  s.next.paused_deadline_left_ms =
      d.deadline_ms ? std::max<std::int64_t>(d.deadline_ms - now, 0) : 0;
  s.next.paused_bake_left_ms =
      d.bake_until_ms ? std::max<std::int64_t>(d.bake_until_ms - now, 0) : 0;
  s.next.state = DeployState::paused;
  s.next.deadline_ms = s.next.bake_until_ms = 0;
  audit(s, "deploy.paused", {{"from", deploy_state_name(d.state)}});
  return s;
}

std::optional<Step> resume(const DeployRecord& d, std::int64_t now) {
  if (d.state != DeployState::paused) return std::nullopt;
  Step s{d, {}, true};
  s.next.state = d.paused_from;
  // The waits go on for what was left of them: a pause never shortens a bake.
  s.next.deadline_ms = d.paused_deadline_left_ms ? now + d.paused_deadline_left_ms : 0;
  s.next.bake_until_ms = d.paused_bake_left_ms ? now + d.paused_bake_left_ms : 0;
  audit(s, "deploy.resumed", {{"to", deploy_state_name(d.paused_from)}});
  return s;
}

std::optional<Step> rollback(const DeployRecord& d, const DeployParams& p, std::int64_t now,
                             const std::string& reason) {
  if (d.state == DeployState::rolling_back || d.state == DeployState::rolled_back ||
      d.state == DeployState::failed) {
    return std::nullopt;
  }
  Step s{d, {}, false};
  if (d.state == DeployState::succeeded)
    s.next.batch = d.batches.empty() ? 0 : d.batches.size() - 1;
  start_rollback(s, p, now, reason);
  return s;
}

}  // namespace drover::coordinator
