// The artifacts the coordinator knows (docs/COORDINATOR.md, "Artifacts"):
// registered from the origin (its feed of pushes, or one id on request), each
// manifest checked against its id before it is stored, each registration
// recorded in the audit log. Plans list an artifact's layers from here.
//
// Threads: any; the origin is asked over HTTP (never under the
// orchestrator's lock).
#pragma once

#include <string>

#include "coordinator/store/coordinator_store.hpp"
#include "core/hash/sha256.hpp"
#include "core/log/log.hpp"
#include "core/world/clock.hpp"

namespace drover::coordinator {

class ArtifactRegistry {
 public:
  // origin_feed: "http://host:port" of the origin's feed ("" for none).
  ArtifactRegistry(CoordinatorStore& store, std::string origin_feed, const Clock& clock,
                   Logger& log)
      : store_(store), origin_(std::move(origin_feed)), clock_(clock), log_(log) {}

  const std::string& origin_feed() const { return origin_; }
  // Registers id from the origin's store; an artifact already known answers
  // its record. Errc::not_found when the origin does not have it.
  Result<ArtifactRecord> register_from_origin(const ContentId& id, const std::string& who);
  // Registers manifest bytes served for id, refused (Errc::corrupt) unless
  // they hash to it. source: "feed" or "api".
  Result<ArtifactRecord> register_manifest(const ContentId& id, const std::string& bytes,
                                           const std::string& source, const std::string& who);
  // The manifest's bytes of a registered artifact.
  Result<std::string> manifest(const ContentId& id);
  // Registers what the origin's feed announced since the last call (waiting
  // up to wait_s for news); the feed position is stored after each artifact.
  Status follow_feed_once(int wait_s);

 private:
  CoordinatorStore& store_;
  std::string origin_;
  const Clock& clock_;
  Logger& log_;
};

}  // namespace drover::coordinator
