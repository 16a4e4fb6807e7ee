#include "coordinator/pipelines/pipeline.hpp"

namespace drover::coordinator {

const PipelineEnv* find_env(const Pipeline& p, const std::string& name) {
  for (const auto& e : p.envs) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

}  // namespace drover::coordinator
