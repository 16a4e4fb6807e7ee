// A service's releases on disk (docs/FORMATS.md, "Agent state"):
//
//   STATE/releases/<service>/<64 hex>   a complete, verified release
//   STATE/releases/<service>/current    symlink naming the serving release
//   STATE/releases/<service>/blue|green symlinks of the blue/green slots
//
// A directory named by an artifact id only ever appears by the rename that
// ends a successful materialize, so it is complete. Links are replaced
// atomically (a new symlink renamed over the old, then the directory synced),
// so `current` always names one complete release.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/base/result.hpp"
#include "core/format/manifest.hpp"
#include "core/hash/sha256.hpp"
#include "core/world/filesystem.hpp"
#include "core/world/random.hpp"
#include "store/materialize.hpp"

namespace drover::agent {

class ReleaseDir {
 public:
  // Links (made, read, replaced, synced) and the listing go through fs, so a
  // MemoryFilesystem can crash a switch at any step. Release trees are built
  // and removed by the store beneath a directory descriptor
  // (store::materialize, store::remove_tree): the Filesystem interface has no
  // descriptor-relative creation yet.
  // With a group (the agent runs as root and the service as another user),
  // the service's directory is root:group 0750 and every release in it is
  // root:group, its root 0750: the service reads its releases and writes
  // none of them, and no other service reads them.
  ReleaseDir(fs::path root, Filesystem& fs, Random& random,
             std::optional<std::uint32_t> group = std::nullopt)
      : root_(std::move(root)), fs_(fs), random_(random), group_(group) {}

  // Makes the service's directory (and gives it its group and mode).
  Status prepare();

  const fs::path& root() const { return root_; }
  fs::path path_of(const ContentId& artifact) const { return root_ / artifact.hex(); }
  bool has(const ContentId& artifact) const;
  std::vector<ContentId> list() const;

  // The release a link names, or nullopt when the link is absent or names
  // something that is not a release directory.
  std::optional<ContentId> link(const std::string& name) const;
  Status set_link(const std::string& name, const ContentId& artifact);
  Status remove_link(const std::string& name);

  // Materializes the manifest into its release directory (nothing to do when
  // it is there already).
  // durable: synced before it is renamed into place (act::Unpack::durable).
  Result<store::MaterializeStats> materialize(const format::Manifest& manifest,
                                              const ContentId& artifact, store::LayerSource& source,
                                              bool durable = true);

  // Removes half-built staging trees and temporary links left by a crash.
  void clean_leftovers();
  // Removes every release not in keep; returns how many went.
  std::size_t remove_all_but(const std::set<std::string>& keep_ids);

 private:
  fs::path root_;
  Filesystem& fs_;
  Random& random_;
  std::optional<std::uint32_t> group_;
};

// How to run one release of a service: the agent's config over the artifact's
// drover-service.json (docs/FORMATS.md, "Service hooks").
struct Hooks {
  std::vector<std::string> start, stop;
  std::string health;
  int start_timeout_s = 30, stop_timeout_s = 10;
};

// Reads release_dir/drover-service.json if present and merges: fields from
// the agent's config win. Placeholders are substituted. An error names what
// is wrong with the file; no start command at all is an error too.
struct HookSources {
  std::vector<std::string> start, stop;
  std::string health;
  std::optional<int> start_timeout_s, stop_timeout_s;
};
Result<Hooks> resolve_hooks(Filesystem& fs, const HookSources& config, const fs::path& release_dir,
                            std::uint16_t port, const fs::path& flags_file);

}  // namespace drover::agent
