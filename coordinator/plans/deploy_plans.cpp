#include "coordinator/plans/deploy_plans.hpp"

#include <nlohmann/json.hpp>

#include "core/canon/canonical_json.hpp"
#include "core/format/manifest.hpp"

namespace drover::coordinator {

Status issue_plan(PlanIssuer& issuer, const ManifestOf& manifests, const PlanDefaults& defaults,
                  const DeployRecord& d, const std::string& artifact,
                  const std::vector<std::string>& hosts, const PlanRoute& route,
                  std::int64_t now_s) {
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
  p.strategy_kind = route.kind;
  nlohmann::json extra = nlohmann::json::object();
  if (route.traffic != 1000) extra["traffic"] = route.traffic;
  if (route.preview) extra["preview"] = true;
  if (route.scale_down_s) extra["scale_down_s"] = *route.scale_down_s;
  DROVER_ASSIGN(p.strategy_extra, canon::encode(extra));
  p.tracker = defaults.tracker;
  p.issued_at = now_s;
  p.expires_at = now_s + defaults.validity_s;
  return issuer.issue_split(std::move(p), kHostsPerRevision);
}

}  // namespace drover::coordinator
