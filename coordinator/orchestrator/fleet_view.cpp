#include "coordinator/orchestrator/fleet_view.hpp"

#include "core/proto/plan.hpp"

namespace drover::coordinator {

FleetView store_fleet_view(CoordinatorStore& store, const DeployRecord& d,
                           std::int64_t baseline_window_ms, bool artifact_ready) {
  FleetView v;
  v.artifact_ready = artifact_ready;
  auto f = store.fleet(d.service, d.created_ms - baseline_window_ms);
  if (!f.ok()) return v;  // nothing known: waits run into their deadlines
  v.running = f->running;
  for (const auto& s : f->samples) {
    v.samples.push_back({s.host, s.release, s.at_ms, {s.error_rate, s.p99_ms, s.saturation, s.ok}});
  }
  for (const auto& [host, failed] : f->failed_seq) {
    auto bundle = store.plan_for(d.service, host);
    if (!bundle.ok() || !*bundle) continue;
    auto decoded = proto::decode_bundle(**bundle);
    if (!decoded.ok()) continue;
    auto plan = proto::decode_plan(decoded->plan.payload);
    if (plan.ok() && plan->artifact.str() == d.artifact && failed >= plan->seq) {
      v.apply_failed.insert(host);
    }
  }
  return v;
}

}  // namespace drover::coordinator
