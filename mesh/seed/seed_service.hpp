// A regional seed: follows the origin's artifact feed and replicates every new
// artifact's layers into its cache as soon as it is pushed ("replicate on
// first build"), then seeds them to its region. Manifests are checked against
// their artifact ids before their layers are fetched. Restarted, it seeds what
// its cache holds at once and fetches only what it lacks.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "mesh/peer/layer_cache.hpp"

namespace drover::mesh {

struct SeedOptions {
  std::string origin;                            // the origin's feed, "http://127.0.0.1:7000"
  std::chrono::seconds long_poll{5};             // also bounds how long stopping takes
  std::chrono::seconds replicate_timeout{3600};  // one artifact's layers
  std::chrono::seconds max_backoff{30};
};

// Reported once per artifact replicated.
struct Replicated {
  ContentId artifact;
  std::uint64_t push_seq = 0;
  std::uint64_t bytes = 0;
  std::chrono::milliseconds took{0};
};

class SeedService {
 public:
  static Result<std::unique_ptr<SeedService>> start(
      LayerCache& cache, const SeedOptions& options, const Clock& clock, Logger& log,
      std::function<void(const Replicated&)> on_replicated = {});
  ~SeedService();

 private:
  struct Impl;
  explicit SeedService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Fetches a manifest from the origin's feed and checks it against its id.
Result<format::Manifest> fetch_manifest(const std::string& origin, const ContentId& artifact,
                                        std::chrono::milliseconds timeout);

}  // namespace drover::mesh
