#include "coordinator/service/analysis.hpp"

namespace drover::coordinator {

void AnalysisRunner::run(const DeployRecord& d, const RunPlan& plan, std::int64_t now_ms) {
  const EnvRun* e = d.current_env();
  if (e == nullptr || d.env >= plan.envs.size() || e->wave >= e->waves.size()) return;
  const EnvPlan& ep = plan.envs[d.env];
  if (!ep.params.prometheus) return;
  const PromCheck& check = *ep.params.prometheus;
  for (const auto& r : e->waves[e->wave].regions) {
    if (r.status != "baking" || r.batch >= r.batches.size()) continue;
    const std::string where =
        r.region.empty() ? "" : (r.cluster.empty() ? r.region : r.region + "/" + r.cluster);
    const std::string key = d.id + "|" + e->name + "|" + where + "|" + std::to_string(r.batch);
    {
      std::lock_guard lock(mu_);
      // The first round one interval into the bake: Prometheus has then
      // scraped the batch on its new release at least once, if it scrapes
      // as often as the check asks.
      auto it = due_.find(key);
      if (it == due_.end()) {
        due_[key] = now_ms + check.interval_ms;
        continue;
      }
      if (now_ms < it->second) continue;
      it->second = now_ms + check.interval_ms;
    }
    AnalysisRound round;
    round.env = e->name;
    round.region = where;
    round.batch = r.batch;
    round.now_ms = now_ms;
    round.baseline_ms = e->entered_ms;
    round.canary = {r.batches[r.batch].hosts, d.artifact, d.service, e->name, where};
    std::vector<std::string> region_hosts;
    for (const auto& b : r.batches) {
      region_hosts.insert(region_hosts.end(), b.hosts.begin(), b.hosts.end());
    }
    round.baseline = {region_hosts, e->prior_artifact, d.service, e->name, where};
    // Network I/O, under no lock.
    std::vector<Measurement> got = measure(check, round, options_, ask_);
    std::lock_guard lock(mu_);
    auto& kept = taken_[d.id];
    for (auto& m : got) kept.push_back(std::move(m));
    if (kept.size() > kKept) {
      kept.erase(kept.begin(), kept.begin() + static_cast<std::ptrdiff_t>(kept.size() - kKept));
    }
  }
}

void AnalysisRunner::retain(const std::set<std::string>& ids) {
  std::lock_guard lock(mu_);
  for (auto it = taken_.begin(); it != taken_.end();) {
    it = ids.count(it->first) ? std::next(it) : taken_.erase(it);
  }
  for (auto it = due_.begin(); it != due_.end();) {
    const std::string id = it->first.substr(0, it->first.find('|'));
    it = ids.count(id) ? std::next(it) : due_.erase(it);
  }
}

std::vector<Measurement> AnalysisRunner::of(const std::string& deploy_id) const {
  std::lock_guard lock(mu_);
  auto it = taken_.find(deploy_id);
  return it == taken_.end() ? std::vector<Measurement>{} : it->second;
}

}  // namespace drover::coordinator
