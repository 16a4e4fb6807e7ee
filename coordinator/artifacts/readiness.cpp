#include "coordinator/artifacts/readiness.hpp"

#include <algorithm>

#include "core/base/hex.hpp"
#include "core/format/layer_torrent.hpp"
#include "core/format/manifest.hpp"

namespace drover::coordinator {

bool ArtifactReadiness::ready(const std::string& deploy_id) const {
  std::lock_guard lock(mu_);
  return ready_.count(deploy_id) > 0;
}

void ArtifactReadiness::retain(const std::set<std::string>& keep) {
  std::lock_guard lock(mu_);
  for (auto it = ready_.begin(); it != ready_.end();) {
    it = keep.count(*it) ? std::next(it) : ready_.erase(it);
  }
}

bool ArtifactReadiness::check(const DeployRecord& d, const std::string& rule) {
  if (ready(d.id)) return true;
  if (!ask(d, rule)) return false;
  std::lock_guard lock(mu_);
  ready_.insert(d.id);
  return true;
}

bool ArtifactReadiness::ask(const DeployRecord& d, const std::string& rule) {
  auto bytes = store_.manifest(d.artifact);
  if (!bytes.ok() || !*bytes) return false;
  if (tracker_ == nullptr) return true;  // no mesh to ask: registered is ready
  auto m = format::decode_manifest(**bytes);
  if (!m.ok()) return false;
  // Every region holding the service: the run may reach each of them.
  std::set<std::string> regions;
  auto hosts = store_.hosts();
  if (!hosts.ok()) return false;
  for (const auto& h : *hosts) {
    if (std::find(h.services.begin(), h.services.end(), d.service) != h.services.end()) {
      regions.insert(h.region);
    }
  }
  for (const auto& layer : m->layers) {
    const auto t = format::derive_layer_torrent(layer);
    auto holders = tracker_->holders(to_hex(t.info_hash.data(), 20));
    if (!holders.ok()) return false;
    std::set<std::string> seeded;
    bool any = false;
    for (const auto& h : *holders) {
      if (h.role == mesh::NodeRole::seed) seeded.insert(h.region);
      if (h.role == mesh::NodeRole::seed || h.role == mesh::NodeRole::origin) any = true;
    }
    if (rule == "origin"
            ? !any
            : !std::includes(seeded.begin(), seeded.end(), regions.begin(), regions.end())) {
      return false;
    }
  }
  return true;
}

}  // namespace drover::coordinator
