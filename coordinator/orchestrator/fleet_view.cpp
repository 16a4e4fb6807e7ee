#include "coordinator/orchestrator/fleet_view.hpp"

#include <algorithm>

#include "core/proto/plan.hpp"

namespace drover::coordinator {

Result<std::vector<HostPlace>> service_hosts(CoordinatorStore& store, const std::string& service) {
  DROVER_ASSIGN(auto hosts, store.hosts());
  std::vector<HostPlace> out;
  for (const auto& h : hosts) {
    if (std::find(h.services.begin(), h.services.end(), service) != h.services.end()) {
      out.push_back({h.host, h.region, h.cluster});
    }
  }
  return out;
}

FleetView store_fleet_view(CoordinatorStore& store, const DeployRecord& d, const RunPlan& plan,
                           bool artifact_ready, std::vector<HostPlace> hosts) {
  FleetView v;
  v.artifact_ready = artifact_ready;
  v.hosts = std::move(hosts);
  // Samples from the baseline window before the current environment was
  // entered (before the run began, while it has not entered one).
  const EnvRun* e = d.current_env();
  const std::int64_t from = e != nullptr && e->entered_ms > 0 ? e->entered_ms : d.created_ms;
  const std::int64_t window = d.env < plan.envs.size() ? plan.envs[d.env].params.baseline_window_ms
                                                       : DeployParams{}.baseline_window_ms;
  auto f = store.fleet(d.service, from - window, true);
  if (!f.ok()) {
    v.unreadable = f.error().message;  // the run waits for a view it can trust
    return v;
  }
  v.running = f->running;
  v.traffic = f->traffic;
  v.previewed = f->previewed;
  v.flags_seq = f->flags_seq;
  for (const auto& s : f->samples) {
    v.samples.push_back({s.host,
                         s.release,
                         s.at_ms,
                         {s.error_rate, s.p99_ms, s.saturation, s.ok},
                         s.requests,
                         s.other});
  }
  for (const auto& [host, failed] : f->failed_seq) {
    auto bundle = store.plan_for(d.service, host);
    if (!bundle.ok() || !*bundle) continue;
    auto decoded = proto::decode_bundle(**bundle);
    if (!decoded.ok()) continue;
    auto signed_plan = proto::decode_plan(decoded->plan.payload);
    if (signed_plan.ok() && signed_plan->artifact.str() == d.artifact &&
        failed >= signed_plan->seq) {
      v.apply_failed.insert(host);
    }
  }
  return v;
}

}  // namespace drover::coordinator
