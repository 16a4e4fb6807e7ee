// Where the agent's layers come from and where they are kept: the host's
// share of the swarm. MeshLayers (agent/mesh_layers.hpp) is the real one, a
// libtorrent node and its layer cache; tests hand in their own.
//
// Threads: fetch runs on the agent's cycle thread; read, held, drop and the
// counters may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/base/result.hpp"
#include "core/format/manifest.hpp"
#include "core/hash/sha256.hpp"
#include "core/proto/plan.hpp"

namespace drover::agent {

class LayerFetcher {
 public:
  virtual ~LayerFetcher() = default;
  // Joins the swarm of this tracker (a no-op when joined already).
  virtual Status join(const std::string& tracker) = 0;
  // Fetches the layers into the cache, capped at their signed sizes.
  // progress(held layers, held bytes) is called as they arrive; stopping()
  // ends the wait early (a timeout error).
  virtual Status fetch(const std::string& tracker, const std::vector<proto::PlanLayer>& layers,
                       const std::function<void(std::uint64_t, std::uint64_t)>& progress,
                       const std::function<bool()>& stopping) = 0;
  // A fetched layer's bytes, for unpacking.
  virtual Result<std::string> read(const format::Layer& layer) = 0;
  virtual std::vector<ContentId> held() = 0;
  virtual Status drop(const ContentId& layer) = 0;
  virtual std::uint64_t downloaded_bytes() = 0;
  virtual std::uint16_t port() = 0;  // 0 until joined
  virtual std::string tracker() = 0;
  // The host's mesh token, as the coordinator last issued it (docs/FORMATS.md,
  // "Mesh tokens"): announces carry it from now on, and the node accepts
  // connections only from the peers the tracker vouches for. May be called
  // from any thread, before or after join; a token that only extends the
  // current one's life is taken when the current one nears its end
  // (mesh::MeshNode::set_token). The default ignores it (test fakes).
  virtual void set_mesh_token(const std::string& token) { (void)token; }
};

}  // namespace drover::agent
