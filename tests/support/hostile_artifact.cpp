#include "tests/support/hostile_artifact.hpp"

#include <zstd.h>

#include <stdexcept>

#include "core/base/hex.hpp"
#include "core/canon/canonical_json.hpp"
#include "core/hash/bt_merkle.hpp"
#include "core/log/log.hpp"
#include "core/world/filesystem.hpp"
#include "store/artifact_index.hpp"
#include "store/blob_store.hpp"

namespace drover::testing {

RawLayer zstd_layer(const std::string& raw) {
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  std::size_t n = ZSTD_compress(out.data(), out.size(), raw.data(), raw.size(), 3);
  if (ZSTD_isError(n)) throw std::runtime_error("zstd failed");
  out.resize(n);
  RawLayer l;
  l.stored = out;
  l.codec = "zstd";
  l.raw_size = raw.size();
  return l;
}

nlohmann::json dir_entry(const std::string& path, unsigned mode) {
  return {{"path", path}, {"type", "dir"}, {"mode", mode}};
}

nlohmann::json file_entry(const std::string& path, const std::string& content, std::uint32_t layer,
                          std::uint64_t offset, unsigned mode) {
  nlohmann::json extents = nlohmann::json::array();
  if (!content.empty()) extents.push_back({layer, offset, content.size()});
  return {{"path", path},
          {"type", "file"},
          {"mode", mode},
          {"size", content.size()},
          {"hash", ContentId::of(content).str()},
          {"extents", extents}};
}

nlohmann::json link_entry(const std::string& path, const std::string& target) {
  return {{"path", path}, {"type", "symlink"}, {"target", target}};
}

ContentId install_raw_artifact(const std::filesystem::path& root,
                               const std::vector<nlohmann::json>& entries,
                               const std::vector<RawLayer>& layers, const std::string& service) {
  PosixFilesystem fs;
  SystemRandom random;
  store::BlobStore blobs(fs, root, random);
  if (!blobs.init().ok()) throw std::runtime_error("blob store init failed");
  nlohmann::json layer_docs = nlohmann::json::array();
  std::vector<store::StagedBlob> staged;
  std::vector<ContentId> ids;
  for (const auto& l : layers) {
    ContentId id = ContentId::of(l.stored);
    Digest root_hash = BtMerkle::of(l.stored);
    layer_docs.push_back({{"id", id.str()},
                          {"size", l.size.value_or(l.stored.size())},
                          {"raw_size", l.raw_size.value_or(l.stored.size())},
                          {"codec", l.codec},
                          {"bt_root", to_hex(root_hash.data(), root_hash.size())}});
    staged.push_back(*blobs.stage(id, l.stored));
    ids.push_back(id);
  }
  nlohmann::json doc = {
      {"format", "drover.manifest.v1"},    {"service", service},   {"git_sha", "0123abcd"},
      {"meta", nlohmann::json::object()},  {"packing", "by-hand"}, {"layers", layer_docs},
      {"entries", nlohmann::json(entries)}};
  std::string bytes = *canon::encode(doc);
  ContentId id = ContentId::of(bytes);
  staged.push_back(*blobs.stage(id, bytes));
  if (!blobs.commit(staged).ok()) throw std::runtime_error("blob commit failed");
  // Opened and closed here: LMDB allows one environment per file per process,
  // so no store may be open on root while this runs.
  auto index = store::ArtifactIndex::open(root / "index", store::ArtifactIndex::kDefaultMapSize);
  if (!index.ok()) throw std::runtime_error(index.error().message);
  store::ArtifactRecord r;
  r.id = id;
  r.service = service;
  r.git_sha = "0123abcd";
  r.layers = ids;
  r.manifest_size = bytes.size();
  if (!(*index)->record_push(r).ok()) throw std::runtime_error("index write failed");
  return id;
}

}  // namespace drover::testing
