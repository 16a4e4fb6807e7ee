// The store's index of artifacts in LMDB (docs/FORMATS.md, "Store layout").
// One transaction per change; a record is written only after its blobs are in
// place, so every indexed artifact is complete.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/base/result.hpp"
#include "core/hash/sha256.hpp"
#include "core/lmdb/lmdb.hpp"
#include "core/world/filesystem.hpp"

namespace drover::store {

struct ArtifactRecord {
  ContentId id;
  std::string service;
  std::string git_sha;
  std::map<std::string, std::string> meta;
  std::int64_t pushed_at = 0;    // unix seconds of the latest push
  std::uint64_t push_seq = 0;    // order of the latest push in this store
  std::uint64_t size_bytes = 0;  // stored bytes of all layers
  std::uint64_t tree_bytes = 0;  // bytes of all files
  std::uint64_t files = 0;
  std::uint64_t manifest_size = 0;
  std::vector<ContentId> layers;
  // From the pins table.
  bool pinned = false;
  std::string pin_reason;
};

class ArtifactIndex {
 public:
  static constexpr std::uint64_t kDefaultMapSize = 1ull << 30;

  static Result<std::unique_ptr<ArtifactIndex>> open(const fs::path& dir, std::uint64_t map_size);

  // Records a push: a new artifact, or an existing one moved to the newest
  // position of its service. Fills push_seq. Returns true when it was new.
  Result<bool> record_push(ArtifactRecord& record);
  Result<std::optional<ArtifactRecord>> get(const ContentId& id);
  // Newest first; all services when service is empty.
  Result<std::vector<ArtifactRecord>> list(const std::string& service);
  // Artifact ids whose hex starts with prefix.
  Result<std::vector<ContentId>> find_prefix(const std::string& hex_prefix);
  Status pin(const ContentId& id, const std::string& reason, std::int64_t now);
  Result<bool> unpin(const ContentId& id);
  // Removes the records of ids (not their blobs) in one transaction.
  Status remove(const std::vector<ContentId>& ids);

 private:
  ArtifactIndex() = default;
  std::unique_ptr<lmdb::Env> env_;
  lmdb::Table meta_, artifacts_, by_service_, pins_;
};

}  // namespace drover::store
