// The agent's Prometheus metrics (docs/METRICS.md, "Agent"). Most are
// counted from the agent's own event lines (docs/FORMATS.md, "Agent
// events"), so what a metric says and what the agent printed cannot differ;
// the rest (the report queue, the coordinator's reachability, the mesh
// node's bytes by source) are read at each scrape.
#pragma once

#include <nlohmann/json.hpp>

#include "core/metrics/metrics.hpp"

namespace drover::agent {

class AgentMetrics {
 public:
  explicit AgentMetrics(metrics::Registry& registry);
  // One event line, as the agent emits it.
  void on_event(const nlohmann::json& line);
  // One health sample of a service's live slot.
  void on_sample(const std::string& service, bool healthy);

 private:
  metrics::Registry& r_;
};

}  // namespace drover::agent
