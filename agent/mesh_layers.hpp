// The agent's layers through the mesh (mesh/): a peer-role libtorrent node,
// started on the first tracker a plan names (or the recorded one at start),
// and its layer cache under STATE/cache. A plan naming another tracker
// restarts the node on it.
#pragma once

#include <functional>
#include <memory>
#include <mutex>

#include "agent/config.hpp"
#include "agent/layers.hpp"
#include "core/log/log.hpp"
#include "core/metrics/metrics.hpp"
#include "core/world/clock.hpp"
#include "core/world/filesystem.hpp"
#include "mesh/node/mesh_node.hpp"

namespace drover::mesh {
class LayerCache;
}  // namespace drover::mesh

namespace drover::agent {

class MeshLayers final : public LayerFetcher {
 public:
  // on_joined(port, tracker) is called each time a node starts.
  MeshLayers(const AgentConfig& config, Filesystem& fs, const Clock& clock, Logger& log,
             std::function<void(std::uint16_t, const std::string&)> on_joined);
  ~MeshLayers() override;

  Status join(const std::string& tracker) override;
  Status fetch(const std::string& tracker, const std::vector<proto::PlanLayer>& layers,
               const std::function<void(std::uint64_t, std::uint64_t)>& progress,
               const std::function<bool()>& stopping) override;
  Result<std::string> read(const format::Layer& layer) override;
  std::vector<ContentId> held() override;
  Status drop(const ContentId& layer) override;
  std::uint64_t downloaded_bytes() override;
  std::uint16_t port() override;
  std::string tracker() override;
  void set_mesh_token(const std::string& token) override;
  // Stops the node (before the agent's other parts go).
  void close();
  // The mesh families of docs/METRICS.md, read at each scrape; bytes count
  // over every node this agent ran, not only the current one.
  void export_metrics(metrics::Registry& registry);

 private:
  const AgentConfig& config_;
  Filesystem& fs_;
  const Clock& clock_;
  Logger& log_;
  std::function<void(std::uint16_t, const std::string&)> on_joined_;
  // Guards node_, cache_, tracker_ and token_. Only the cycle thread replaces them
  // (join), so it may use cache_ outside the lock during a fetch.
  mutable std::mutex mu_;
  std::unique_ptr<mesh::MeshNode> node_;
  std::unique_ptr<mesh::LayerCache> cache_;
  std::string tracker_;
  std::string token_;           // the newest mesh token, for the next node started
  mesh::NodeCounters retired_;  // the sum of the counters of nodes replaced
};

}  // namespace drover::agent
