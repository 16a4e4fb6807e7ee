// A node's blob cache of layers, and fetching into it through the mesh. This
// is the peer role that agents embed, and what a regional seed runs on.
//
// Layout (docs/FORMATS.md, "Layer cache"):
//   CACHE/layers/<hex>     layer bytes, complete or in progress
//   CACHE/complete/<hex>   a record written only once the bytes were checked
//                          against the signed layer id (JSON: id, size, bt_root)
//   CACHE/resume/<hex>     libtorrent resume data of a fetch in progress
//
// A layer is held when its record exists: it is never fetched again, and it is
// seeded to others from the moment the cache opens. A fetch interrupted by a
// crash resumes from its resume data (saved every couple of seconds).
//
// Threads: methods may be called from any thread; events arrive on the mesh
// node's thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/world/clock.hpp"
#include "mesh/node/mesh_node.hpp"

namespace drover::mesh {

struct CacheOptions {
  fs::path dir;
  // A fetch that makes no progress for this long fails, naming the layer and
  // what was tried.
  std::chrono::milliseconds stall_timeout{std::chrono::seconds(60)};
  std::chrono::milliseconds resume_interval{std::chrono::seconds(2)};
  // Layers fetched at once (0: all). Fetching all at once was fastest in the
  // mesh benchmark; 1 to 4 at a time was slower (docs/MESH.md).
  std::size_t max_active = 0;
  // Where in the list of layers this host starts (taken modulo the count),
  // so that hosts starting together work on different layers first.
  std::uint64_t stagger = 0;
};

class LayerCache {
 public:
  // Opens (creating) the cache and seeds every layer it holds through node.
  static Result<std::unique_ptr<LayerCache>> open(MeshNode& node, const CacheOptions& options,
                                                  const Clock& clock, Logger& log);
  ~LayerCache();

  bool holds(const ContentId& layer) const;
  fs::path path_of(const ContentId& layer) const;
  std::vector<LayerRef> held() const;

  // Makes sure every layer ends up held: held ones are left alone (and
  // seeded), the others are fetched, resuming what an earlier run began.
  Status fetch(const std::vector<LayerRef>& layers);
  // Waits until every layer is held, or one fails or stalls (its error), or
  // the deadline passes.
  Status wait(const std::vector<LayerRef>& layers, SteadyTime deadline);

  // Stops seeding a held layer and deletes it (garbage collection). Refused
  // while the layer is being fetched.
  Status drop(const ContentId& layer);

  // Receives the node's events after the cache has acted on them.
  void on_event(std::function<void(const MeshEvent&)> handler);

 private:
  LayerCache(MeshNode& node, const CacheOptions& options, const Clock& clock, Logger& log);
  void handle(const MeshEvent& e);
  void monitor();
  // Starts queued fetches while fewer than max_active run.
  Status start_queued();
  Status seed_held();

  struct Fetch {
    LayerRef ref;
    std::uint64_t done = 0;
    SteadyTime last_progress;
    SteadyTime last_resume_save;
  };

  MeshNode& node_;
  CacheOptions options_;
  const Clock& clock_;
  Logger& log_;
  PosixFilesystem fs_;

  mutable std::mutex mu_;  // guards fetching_, failed_, held_, handler_, stopping_
  std::condition_variable changed_;
  std::map<ContentId, Fetch> fetching_;
  std::deque<LayerRef> queued_;
  std::map<ContentId, std::string> failed_;  // layer -> why
  std::map<ContentId, LayerRef> held_;
  std::function<void(const MeshEvent&)> handler_;
  bool stopping_ = false;
  std::thread monitor_;
};

}  // namespace drover::mesh
