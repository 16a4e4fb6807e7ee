#include "coordinator/orchestrator/fleet_adapter.hpp"

#include "core/format/manifest.hpp"

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

Status issue_plan(PlanIssuer& issuer, const ManifestOf& manifests, const PlanDefaults& defaults,
                  const DeployRecord& d, const std::string& artifact,
                  const std::vector<std::string>& hosts, std::int64_t now_s) {
  DROVER_ASSIGN(ContentId id, ContentId::parse(artifact));
  DROVER_ASSIGN(std::string bytes, manifests(id));
  DROVER_ASSIGN(format::Manifest m, format::decode_manifest(bytes));
  proto::Plan p;
  p.service = d.service;
  p.deploy_id = d.id;
  p.artifact = id;
  p.manifest_size = bytes.size();
  for (const auto& l : m.layers) p.layers.push_back({l.id, l.size, l.bt_root});
  p.hosts = hosts;
  p.strategy_kind = "rolling";
  p.tracker = defaults.tracker;
  p.issued_at = now_s;
  p.expires_at = now_s + defaults.validity_s;
  DROVER_ASSIGN(auto bundle, issuer.issue(p));
  (void)bundle;
  return Ok{};
}

}  // namespace drover::coordinator
