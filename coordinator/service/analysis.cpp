#include "coordinator/service/analysis.hpp"

#include <algorithm>

namespace drover::coordinator {

void AnalysisRunner::run(const DeployRecord& d, const RunPlan& plan) {
  const EnvRun* e = d.current_env();
  if (e == nullptr || d.env >= plan.envs.size() || e->wave >= e->waves.size()) return;
  const EnvPlan& ep = plan.envs[d.env];
  if (!ep.params.prometheus) return;
  const PromCheck& check = *ep.params.prometheus;
  for (const auto& r : e->waves[e->wave].regions) {
    if (r.status != "baking" || r.batch >= r.batches.size()) continue;
    if (stopping_()) return;
    const std::int64_t now = now_();
    const std::string where =
        r.region.empty() ? "" : (r.cluster.empty() ? r.region : r.region + "/" + r.cluster);
    const std::string region_key = d.id + "|" + e->name + "|" + where;
    const std::string key =
        region_key + "|" + std::to_string(r.batch) + "|" + std::to_string(r.judge_from_ms);
    std::map<std::string, double> baselines;
    {
      std::lock_guard lock(mu_);
      auto it = due_.find(key);
      if (it == due_.end()) {
        // The first round one interval into the bake (Prometheus has then
        // scraped the batch on its new release), or halfway through a bake
        // shorter than two intervals, so even a short bake is measured.
        const std::int64_t bake = std::max<std::int64_t>(r.bake_until_ms - r.judge_from_ms, 0);
        const std::int64_t first =
            std::max<std::int64_t>(std::min<std::int64_t>(check.interval_ms, bake / 2), 1000);
        it = due_.emplace(key, r.judge_from_ms + first).first;
      }
      if (now < it->second) continue;
      it->second = now + check.interval_ms;
      baselines = baselines_[region_key];
    }
    AnalysisRound round;
    round.now_ms = now;
    round.baseline_ms = e->entered_ms;
    std::vector<std::string> canary = r.batches[r.batch].hosts;
    std::vector<std::string> region_hosts;
    for (const auto& b : r.batches) {
      region_hosts.insert(region_hosts.end(), b.hosts.begin(), b.hosts.end());
    }
    // A split's steps name the same hosts again: each once.
    for (auto* hosts : {&canary, &region_hosts}) {
      std::sort(hosts->begin(), hosts->end());
      hosts->erase(std::unique(hosts->begin(), hosts->end()), hosts->end());
    }
    round.canary = {canary, d.artifact, d.service, e->name, where};
    round.baseline = {region_hosts, e->prior_artifact, d.service, e->name, where};
    // Network I/O, under no lock.
    const std::vector<Measurement> got = measure(check, round, options_, ask_, &baselines);
    std::lock_guard lock(mu_);
    baselines_[region_key] = baselines;
    auto& bakes = taken_[d.id];
    auto bake = std::find_if(bakes.begin(), bakes.end(), [&](const BatchAnalysis& b) {
      return b.env == e->name && b.region == where && b.batch == r.batch &&
             b.from_ms == r.judge_from_ms;
    });
    if (bake == bakes.end()) {
      bakes.push_back({e->name, where, r.batch, r.judge_from_ms, {}});
      bake = std::prev(bakes.end());
    }
    for (const auto& m : got) bake->add(m);
  }
}

void AnalysisRunner::retain(const std::set<std::string>& ids) {
  std::lock_guard lock(mu_);
  auto deploy_of = [](const std::string& key) { return key.substr(0, key.find('|')); };
  for (const auto& [id, bakes] : taken_) {
    if (ids.count(id) == 0 &&
        std::find(finished_.begin(), finished_.end(), id) == finished_.end()) {
      finished_.push_back(id);
    }
  }
  while (finished_.size() > kKeptFinished) {
    taken_.erase(finished_.front());
    finished_.pop_front();
  }
  for (auto it = due_.begin(); it != due_.end();) {
    it = ids.count(deploy_of(it->first)) ? std::next(it) : due_.erase(it);
  }
  for (auto it = baselines_.begin(); it != baselines_.end();) {
    it = ids.count(deploy_of(it->first)) ? std::next(it) : baselines_.erase(it);
  }
}

std::vector<BatchAnalysis> AnalysisRunner::of(const std::string& deploy_id) const {
  std::lock_guard lock(mu_);
  auto it = taken_.find(deploy_id);
  return it == taken_.end() ? std::vector<BatchAnalysis>{} : it->second;
}

}  // namespace drover::coordinator
