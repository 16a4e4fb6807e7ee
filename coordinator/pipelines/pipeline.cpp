#include "coordinator/pipelines/pipeline.hpp"

namespace drover::coordinator {

const PipelineEnv* find_env(const Pipeline& p, const std::string& name) {
  for (const auto& e : p.envs) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

std::size_t env_index(const Pipeline& p, const std::string& name) {
  for (std::size_t i = 0; i < p.environments.size(); ++i) {
    if (p.environments[i].name == name) return i;
  }
  return std::string::npos;
}

Result<RunPlan> run_plan(const Pipeline& p) {
  RunPlan plan;
  plan.ready_timeout_ms = p.params.ready_timeout_ms;
  for (std::size_t i = 0; i < p.environments.size(); ++i) {
    const Environment& e = p.environments[i];
    const EnvSettings& s = i < p.settings.size() ? p.settings[i] : EnvSettings{};
    EnvPlan ep;
    ep.name = e.name;
    ep.waves = e.waves;
    ep.gate = e.gate;
    ep.shape = s.strategy.shape;
    ep.params = s.params;
    ep.watch_ms = s.watch_ms;
    DROVER_ASSIGN(ep.frozen,
                  freeze_check(e.freeze, "environments[" + std::to_string(i) + "].freeze"));
    for (const auto& w : e.waves) {
      plan.named.insert(plan.named.end(), w.regions.begin(), w.regions.end());
    }
    plan.envs.push_back(std::move(ep));
  }
  return plan;
}

}  // namespace drover::coordinator
