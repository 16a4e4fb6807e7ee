// The coordinator's Prometheus analysis (docs/COORDINATOR.md, "Prometheus
// analysis"): for every baking region of a run whose environment has a
// Prometheus check, one round of its queries every interval, off the
// orchestrator's lock (a slow Prometheus delays only these measurements).
// The measurements live in memory, counted per bake: a restarted
// coordinator measures again, and a batch passes only on measurements taken
// during the bake it judges.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
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
  // now: the coordinator's clock (read for each round); stopping: true once
  // the coordinator stops (checked between rounds).
  AnalysisRunner(PrometheusOptions options, InstantQuery ask, std::function<std::int64_t()> now,
                 std::function<bool()> stopping)
      : options_(std::move(options)),
        ask_(std::move(ask)),
        now_(std::move(now)),
        stopping_(std::move(stopping)) {}

  // Measures each baking region of d whose round is due.
  void run(const DeployRecord& d, const RunPlan& plan);
  // Stops measuring the runs not in ids (finished ones). Their measurements
  // stay in view, for the newest kKeptFinished finished runs, so a run's
  // view shows what failed it after it ended.
  void retain(const std::set<std::string>& ids);
  static constexpr std::size_t kKeptFinished = 256;
  // The run's bakes measured so far.
  std::vector<BatchAnalysis> of(const std::string& deploy_id) const;

 private:
  PrometheusOptions options_;
  InstantQuery ask_;
  std::function<std::int64_t()> now_;
  std::function<bool()> stopping_;
  mutable std::mutex mu_;
  std::map<std::string, std::vector<BatchAnalysis>> taken_;  // deploy id -> its bakes
  std::deque<std::string> finished_;         // finished runs in taken_, oldest first
  std::map<std::string, std::int64_t> due_;  // bake key -> next round
  // deploy|env|region -> query name -> the baseline's value (a past instant).
  std::map<std::string, std::map<std::string, double>> baselines_;
};

}  // namespace drover::coordinator
