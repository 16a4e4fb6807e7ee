#include "store/blob_store.hpp"

#include <unistd.h>

#include <set>

#include "core/base/hex.hpp"

namespace drover::store {

BlobStore::BlobStore(Filesystem& fs, fs::path root, Random& random)
    : fs_(fs),
      root_(std::move(root)),
      blobs_(root_ / "blobs" / "sha256"),
      tmp_(root_ / "tmp"),
      random_(random) {}

Status BlobStore::init() {
  DROVER_TRY(fs_.make_dirs(blobs_));
  return fs_.make_dirs(tmp_);
}

fs::path BlobStore::path_of(const ContentId& id) const {
  std::string hex = id.hex();
  return blobs_ / hex.substr(0, 2) / hex;
}

Result<std::optional<std::uint64_t>> BlobStore::size_of(const ContentId& id) {
  auto info = fs_.lstat(path_of(id));
  if (!info.ok()) {
    if (info.error().code == Errc::not_found) return std::optional<std::uint64_t>();
    return info.error();
  }
  if (info->type != FileType::regular) {
    return make_error(Errc::corrupt, "blob " + path_of(id).string() + " is not a regular file");
  }
  return std::optional<std::uint64_t>(info->size);
}

Result<StagedBlob> BlobStore::stage(const ContentId& id, std::string_view bytes) {
  StagedBlob staged{id, bytes.size(), {}};
  DROVER_ASSIGN(auto present, size_of(id));
  if (present && *present == bytes.size()) return staged;
  // A blob of the wrong size is damaged; the rename in commit() replaces it.
  staged.tmp = tmp_ / (std::to_string(::getpid()) + "-" + to_hex(random_.bytes(8)) + ".tmp");
  DROVER_ASSIGN(auto file, fs_.create_new(staged.tmp, 0444));
  Status st = file->write(bytes);
  file->start_writeback();  // made durable in commit(), all files together
  Status closed = file->close();
  if (st.ok()) st = closed;
  if (!st.ok()) {
    (void)fs_.remove(staged.tmp);
    return std::move(st).error();
  }
  return staged;
}

Result<std::uint64_t> BlobStore::commit(const std::vector<StagedBlob>& staged) {
  // Every staged file reaches the disk before any is renamed into place.
  for (const auto& s : staged) {
    if (!s.tmp.empty() && !s.durable) DROVER_TRY(fs_.sync_file(s.tmp));
  }
  std::set<fs::path> dirs;
  std::set<ContentId> seen;
  std::uint64_t placed = 0;
  for (const auto& s : staged) {
    fs::path dest = path_of(s.id);
    if (!seen.insert(s.id).second) {
      // Equal layers encoded at once were staged twice: place one.
      if (!s.tmp.empty()) (void)fs_.remove(s.tmp);
      continue;
    }
    if (!dirs.contains(dest.parent_path())) {
      DROVER_TRY(fs_.make_dirs(dest.parent_path()));
      dirs.insert(dest.parent_path());
    }
    if (s.tmp.empty()) {
      // Already present, perhaps placed by a concurrent or killed push that
      // had not yet made it durable: make sure of it before the index may
      // name it.
      DROVER_TRY(fs_.sync_file(dest));
      continue;
    }
    DROVER_TRY(fs_.rename(s.tmp, dest));
    placed += s.size;
  }
  for (const auto& d : dirs) DROVER_TRY(fs_.sync_dir(d));
  if (!dirs.empty()) DROVER_TRY(fs_.sync_dir(blobs_));
  return placed;
}

Status BlobStore::make_durable(StagedBlob& staged) {
  if (staged.tmp.empty() || staged.durable) return Ok{};
  DROVER_TRY(fs_.sync_file(staged.tmp));
  staged.durable = true;
  return Ok{};
}

void BlobStore::discard(const std::vector<StagedBlob>& staged) {
  for (const auto& s : staged) {
    if (!s.tmp.empty()) (void)fs_.remove(s.tmp);
  }
}

Result<std::string> BlobStore::read(const ContentId& id, std::uint64_t max_bytes) {
  return fs_.read_file(path_of(id), max_bytes);
}

Result<std::vector<ContentId>> BlobStore::list() {
  std::vector<ContentId> ids;
  DROVER_ASSIGN(auto shards, fs_.list_dir(blobs_));
  for (const auto& shard : shards) {
    DROVER_ASSIGN(auto names, fs_.list_dir(blobs_ / shard));
    for (const auto& name : names) {
      auto id = ContentId::parse("sha256:" + name);
      if (id.ok() && name.substr(0, 2) == shard) ids.push_back(*id);
    }
  }
  return ids;
}

Status BlobStore::remove(const ContentId& id) {
  return fs_.remove(path_of(id));
}

Result<std::size_t> BlobStore::clean_tmp() {
  DROVER_ASSIGN(auto names, fs_.list_dir(tmp_));
  for (const auto& name : names) DROVER_TRY(fs_.remove(tmp_ / name));
  return names.size();
}

}  // namespace drover::store
