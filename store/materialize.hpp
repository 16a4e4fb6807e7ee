// Safe materialization of an artifact into a new release directory.
//
// Layers and manifests are treated as hostile. The manifest passes the format's
// checks (no absolute or ".." paths, no escaping symlinks, no set-id bits, no
// devices, bounded counts and sizes); every layer is checked against its id
// before it is decoded and is decoded into exactly its declared size; every
// file is checked against its hash. All writes go through a directory file
// descriptor with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so even a
// symlink planted in the staging directory by someone else cannot redirect
// them. The tree is built in a fresh staging directory beside dest, synced,
// and renamed to dest only when complete: on any failure nothing is left at
// dest. This works on the real filesystem only, on purpose: its safety is the
// kernel's path resolution.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/base/result.hpp"
#include "core/format/manifest.hpp"
#include "core/world/filesystem.hpp"
#include "core/world/random.hpp"

namespace drover::store {

// Where layer bytes come from: the store's blobs, or an agent's cache.
class LayerSource {
 public:
  virtual ~LayerSource() = default;
  // The stored bytes of a layer. Must not return more than layer.size + 1
  // bytes whatever the source holds, so an oversized blob is caught without
  // reading it all. Called from several threads at once.
  virtual Result<std::string> read_layer(const format::Layer& layer) = 0;
};

struct MaterializeOptions {
  format::Limits limits;  // may be tighter than the format's own
  unsigned threads = 2;   // layers decoded at once
  // The release's root directory's mode, and the group every file and
  // directory is given (nullopt: the process's own). The agent running as
  // root makes releases root:<service's group> with a root of 0750, so the
  // service reads its release and writes none of it.
  std::uint32_t root_mode = 0755;
  std::optional<std::uint32_t> group;
  // The release reaches the disk before its rename makes it visible. False
  // only under the agent's test-only planted bug (docs/CHAOS.md, "Planted
  // bugs"): after a power loss the renamed tree may then hold empty files.
  bool sync = true;
};

struct MaterializeStats {
  std::uint64_t files = 0, dirs = 0, symlinks = 0, bytes = 0, layers = 0;
};

// dest must not exist; its parent must. Returns what was written. Entries
// that group or others may write (mode & 022) are refused before anything is
// written, naming the entry and its mode (docs/FORMATS.md, "Manifest"): the
// manifest format allows them, so old manifests still read, but no release
// is made of them.
Result<MaterializeStats> materialize(const format::Manifest& manifest, LayerSource& source,
                                     const fs::path& dest, const MaterializeOptions& options,
                                     Random& random);

// Removes a release or a half-built staging tree, making its directories
// writable first (a release may hold read-only directories). Never follows a
// symlink out of the tree. Best effort: errors are ignored.
void remove_tree(const fs::path& path);

}  // namespace drover::store
