// The coordinator's own Prometheus metrics (docs/METRICS.md, "Coordinator").
// Transitions are counted from the audit records each one commits, so the
// metrics and the audit log cannot tell different stories; durations pair
// records of one deploy (batch.started with batch.passed, batch.baking with
// batch.passed, rollback.done's own duration). States are read from the
// store at each scrape. No label names a host: cardinality stays bounded by
// the pipelines' shape, not the fleet's size.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "coordinator/audit/audit_log.hpp"
#include "coordinator/store/coordinator_store.hpp"
#include "core/metrics/metrics.hpp"

namespace drover::coordinator {

class CoordinatorMetrics {
 public:
  explicit CoordinatorMetrics(metrics::Registry& registry);
  // The audit records of one committed transition.
  void on_records(const std::vector<AuditRecord>& records);
  // Deploys by state, gates waiting and deploys overdue, from the store (at
  // each scrape; now_ms on the coordinator's clock).
  void set_states(const std::vector<DeployRecord>& active, std::int64_t now_ms);

 private:
  metrics::Registry& r_;
  std::mutex mu_;  // guards started_, baking_
  // Open batches and bakes, by "deploy/env/region/batch": their start (ms).
  // Bounded; a restart forgets them (their durations go unmeasured).
  std::map<std::string, std::int64_t> started_, baking_;
};

}  // namespace drover::coordinator
