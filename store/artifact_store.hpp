// The artifact store: packs directories into content-addressed layers, keeps
// them as blob files with an LMDB index, verifies, materializes and collects
// garbage. This is what `drover artifact ...` drives and what the origin seeds.
//
// Concurrency: several processes may use one store. Writers and readers hold
// a shared lock on STORE/lock; gc holds it exclusively, so it never deletes a
// blob that a push has placed but not yet indexed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/base/result.hpp"
#include "core/format/manifest.hpp"
#include "core/log/log.hpp"
#include "core/world/clock.hpp"
#include "core/world/filesystem.hpp"
#include "core/world/random.hpp"
#include "store/artifact_index.hpp"
#include "store/blob_store.hpp"
#include "store/materialize.hpp"
#include "store/pack.hpp"

namespace drover::store {

// Where the store lives when neither --store nor DROVER_STORE says.
inline constexpr const char* kDefaultStorePath = "/var/lib/drover/store";

struct StoreOptions {
  std::uint64_t map_size = ArtifactIndex::kDefaultMapSize;
  PackParams pack;
  format::Limits limits;
};

struct PushResult {
  ArtifactRecord record;
  format::Manifest manifest;
  std::uint64_t new_bytes = 0;  // blob bytes this push added to the store
  bool already_present = false;
};

// How far a push has got: bytes of the tree read and hashed, bytes stored
// (compressed) and layers, against the tree's size.
struct PushStats {
  std::uint64_t tree_bytes = 0, raw_bytes = 0, stored_bytes = 0, layers = 0;
};
using PushProgress = std::function<void(const PushStats&)>;

struct VerifyReport {
  std::vector<std::string> problems;  // empty when everything checked out
  std::uint64_t artifacts = 0, blobs = 0, bytes = 0;
  std::uint64_t orphan_blobs = 0;  // present but not referenced (harmless; gc removes them)
};

struct GcReport {
  std::vector<ArtifactRecord> removed;
  std::uint64_t kept = 0;
  std::uint64_t blobs_removed = 0, bytes_freed = 0, tmp_removed = 0;
};

class ArtifactStore {
 public:
  static Result<std::unique_ptr<ArtifactStore>> open(const fs::path& root, Filesystem& fs,
                                                     const Clock& clock, Random& random,
                                                     Logger& log, const StoreOptions& options = {});
  ~ArtifactStore();

  // progress, when given, is called after each layer is staged (from the
  // packing threads, one call at a time per layer; it must not block).
  Result<PushResult> push(const fs::path& dir, const PackInput& input,
                          const PushProgress& progress = {});
  // Newest first; every service when service is empty.
  Result<std::vector<ArtifactRecord>> list(const std::string& service);
  // Accepts a full id ("sha256:<hex>" or the bare hex) or an unambiguous hex
  // prefix of at least 6 digits.
  Result<ArtifactRecord> resolve(std::string_view id_or_prefix);
  // The hex digits of an id or prefix, or an invalid_argument error naming
  // the text: for checking a command line before opening the store.
  static Result<std::string> id_digits(std::string_view id_or_prefix);
  // Reads the manifest blob, checks it against the id and decodes it.
  Result<format::Manifest> load_manifest(const ContentId& id);
  Result<VerifyReport> verify(const ContentId& id);
  Result<VerifyReport> verify_all();
  Result<MaterializeStats> materialize(const ContentId& id, const fs::path& dest);
  // Keeps, per service, the newest `keep` artifacts and every pinned one;
  // removes the rest and every blob nothing kept references.
  Result<GcReport> gc(std::size_t keep);
  Status pin(const ContentId& id, const std::string& reason);
  Result<bool> unpin(const ContentId& id);

  fs::path blob_path(const ContentId& id) const { return blobs_.path_of(id); }
  const fs::path& root() const { return root_; }

 private:
  class Lock;
  ArtifactStore(const fs::path& root, Filesystem& fs, const Clock& clock, Random& random,
                Logger& log, const StoreOptions& options);
  Result<Lock> lock(bool exclusive);
  Status verify_artifact(const ArtifactRecord& record, VerifyReport& report);

  fs::path root_;
  Filesystem& fs_;
  const Clock& clock_;
  Random& random_;
  Logger& log_;
  StoreOptions options_;
  BlobStore blobs_;
  std::unique_ptr<ArtifactIndex> index_;
};

}  // namespace drover::store
