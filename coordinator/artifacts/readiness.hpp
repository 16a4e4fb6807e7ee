// Whether a deploy's artifact has reached the mesh (docs/COORDINATOR.md,
// "Deploys"): before any host is told to fetch it, every layer must be held
// whole by a seed in each region the deploy's hosts are in (rule "seeds"),
// or by any seed or the origin (rule "origin"). The mesh tracker is asked
// through a TrackerClient; without one (no mesh), a registered artifact is
// ready. A deploy found ready stays ready: the answer is kept per deploy.
//
// Threads: check() asks the tracker over the network: call it off the
// orchestrator's lock (the coordinator's driver does, before each tick).
// ready() only reads what check() found. Both are thread-safe.
#pragma once

#include <mutex>
#include <set>
#include <string>

#include "coordinator/store/coordinator_store.hpp"
#include "mesh/tracker/client/tracker_client.hpp"

namespace drover::coordinator {

class ArtifactReadiness {
 public:
  // tracker may be null: no mesh to ask.
  ArtifactReadiness(CoordinatorStore& store, mesh::TrackerClient* tracker)
      : store_(store), tracker_(tracker) {}

  // Asks (unless d is known ready) and answers whether d's artifact is
  // ready under rule ("seeds" or "origin"). Any failure to find out is
  // "not yet".
  bool check(const DeployRecord& d, const std::string& rule);
  // What check() found for this deploy.
  bool ready(const std::string& deploy_id) const;
  // Forgets deploys not in keep (finished ones).
  void retain(const std::set<std::string>& keep);

 private:
  bool ask(const DeployRecord& d, const std::string& rule);

  CoordinatorStore& store_;
  mesh::TrackerClient* tracker_;
  mutable std::mutex mu_;        // guards ready_
  std::set<std::string> ready_;  // deploy ids found ready
};

}  // namespace drover::coordinator
