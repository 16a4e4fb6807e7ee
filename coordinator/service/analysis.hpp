// The coordinator's Prometheus analysis (docs/COORDINATOR.md, "Prometheus
// analysis"): for every baking region of a run whose environment has a
// Prometheus check, one round of its queries every interval, off the
// orchestrator's lock (a slow Prometheus delays only these measurements).
// The measurements live in memory: a restarted coordinator measures again,
// and a batch passes only on measurements taken during its own bake.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "coordinator/analysis/prometheus.hpp"
#include "coordinator/orchestrator/deploy_machine.hpp"

namespace drover::coordinator {

class AnalysisRunner {
 public:
  AnalysisRunner(PrometheusOptions options, InstantQuery ask)
      : options_(std::move(options)), ask_(std::move(ask)) {}

  // Measures each baking region of d whose round is due at now_ms.
  void run(const DeployRecord& d, const RunPlan& plan, std::int64_t now_ms);
  // Forgets the runs not in ids (finished ones).
  void retain(const std::set<std::string>& ids);
  // The run's measurements, oldest first (at most kKept).
  std::vector<Measurement> of(const std::string& deploy_id) const;

  static constexpr std::size_t kKept = 512;

 private:
  PrometheusOptions options_;
  InstantQuery ask_;
  mutable std::mutex mu_;
  std::map<std::string, std::vector<Measurement>> taken_;  // deploy id -> measurements
  std::map<std::string, std::int64_t> due_;                // round key -> when next due
};

}  // namespace drover::coordinator
