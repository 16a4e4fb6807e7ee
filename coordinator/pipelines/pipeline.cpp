#include "coordinator/pipelines/pipeline.hpp"

#include <algorithm>
#include <functional>
#include <set>

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

Status check_dependencies(const std::map<std::string, std::vector<std::string>>& depends_on,
                          const std::string& service) {
  auto mine = depends_on.find(service);
  if (mine == depends_on.end()) return Ok{};
  for (std::size_t i = 0; i < mine->second.size(); ++i) {
    if (!depends_on.count(mine->second[i])) {
      return make_error(Errc::invalid_argument,
                        "depends_on[" + std::to_string(i) + "] names service '" + mine->second[i] +
                            "', which no pipeline deploys: apply its pipeline first");
    }
  }
  // Depth first from service: a path back to it is a cycle, named in order.
  std::vector<std::string> path = {service};
  std::set<std::string> done;
  std::function<bool(const std::string&)> walk = [&](const std::string& s) -> bool {
    auto it = depends_on.find(s);
    if (it == depends_on.end()) return false;
    for (const auto& next : it->second) {
      if (next == service) {
        path.push_back(next);
        return true;
      }
      if (done.count(next) || std::find(path.begin(), path.end(), next) != path.end()) continue;
      path.push_back(next);
      if (walk(next)) return true;
      path.pop_back();
      done.insert(next);
    }
    return false;
  };
  if (walk(service)) {
    std::string cycle;
    for (const auto& s : path) cycle += (cycle.empty() ? "" : " -> ") + s;
    return make_error(Errc::invalid_argument, "depends_on makes a cycle: " + cycle);
  }
  return Ok{};
}

}  // namespace drover::coordinator
