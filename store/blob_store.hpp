// Blob files named by their content id: layers and manifests.
//
// Writing is two-phase so that a failed push changes nothing: stage() writes
// a temporary file and starts its writeback; commit() fsyncs every staged
// file, renames them into place and fsyncs their directories; only after that
// may the index mention them. (One fsync per file at commit rather than at
// staging keeps the encoding threads from waiting on the disk: measured in
// docs/BENCHMARKS.md.)
// A blob at its final name is complete (files are renamed in whole, after fsync).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.hpp"
#include "core/hash/sha256.hpp"
#include "core/world/filesystem.hpp"
#include "core/world/random.hpp"

namespace drover::store {

struct StagedBlob {
  ContentId id;
  std::uint64_t size = 0;
  fs::path tmp;          // empty when the blob was already present: nothing to commit
  bool durable = false;  // tmp has been fsynced
};

// Thread-safe: staging, reading and listing may run on several threads.
class BlobStore {
 public:
  BlobStore(Filesystem& fs, fs::path root, Random& random);

  Status init();
  fs::path path_of(const ContentId& id) const;
  const fs::path& tmp_dir() const { return tmp_; }

  // Size of the blob at its final name, or nullopt when absent.
  Result<std::optional<std::uint64_t>> size_of(const ContentId& id);
  // Writes bytes to a fresh temporary file, unless a blob of that id and
  // size is already in place.
  Result<StagedBlob> stage(const ContentId& id, std::string_view bytes);
  // Fsyncs a staged file now (commit() then skips it).
  Status make_durable(StagedBlob& staged);
  // Fsyncs every staged file not yet durable, renames each into place and
  // fsyncs the directories touched.
  // Returns the bytes placed.
  Result<std::uint64_t> commit(const std::vector<StagedBlob>& staged);
  // Removes temporary files of staged blobs that will not be committed.
  void discard(const std::vector<StagedBlob>& staged);

  // Reads a blob, refusing more than max_bytes.
  Result<std::string> read(const ContentId& id, std::uint64_t max_bytes);
  Result<std::vector<ContentId>> list();
  Status remove(const ContentId& id);
  // Removes leftovers of interrupted writes. Call only when no writer runs.
  Result<std::size_t> clean_tmp();

 private:
  Filesystem& fs_;
  fs::path root_;
  fs::path blobs_;
  fs::path tmp_;
  Random& random_;
};

}  // namespace drover::store
