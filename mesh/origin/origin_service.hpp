// The origin: seeds every layer of the artifact store straight from the
// store's blob files (never copied), follows the store as artifacts are pushed
// or collected, and publishes the artifact feed that regional seeds follow
// (docs/FORMATS.md, "Origin feed"):
//
//   GET /v1/artifacts?after=SEQ&wait=SECONDS   artifacts pushed after SEQ; waits
//                                              up to SECONDS for one to appear
//   GET /v1/manifests/<hex>                    a manifest's canonical bytes
#pragma once

#include <chrono>
#include <memory>

#include "core/http/http.hpp"
#include "mesh/node/mesh_node.hpp"
#include "store/artifact_store.hpp"

namespace drover::mesh {

struct OriginOptions {
  std::chrono::milliseconds poll{500};  // how often the store's index is read
  http::ServerOptions feed;
  std::chrono::seconds max_wait{60};  // longest long poll
};

class OriginService {
 public:
  static Result<std::unique_ptr<OriginService>> start(MeshNode& node, store::ArtifactStore& store,
                                                      const OriginOptions& options, Logger& log);
  ~OriginService();
  std::uint16_t feed_port() const;
  std::size_t layers_seeded() const;

 private:
  struct Impl;
  explicit OriginService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace drover::mesh
