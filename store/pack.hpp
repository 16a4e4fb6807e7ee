// Packing a directory tree into layers and a manifest, by the rule
// drover.pack.v1 (docs/FORMATS.md, "Packing").
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/base/result.hpp"
#include "core/format/manifest.hpp"
#include "core/world/filesystem.hpp"
#include "store/layer_codec.hpp"

namespace drover::store {

inline constexpr std::string_view kPackingName = "drover.pack.v1";

// The parameters of drover.pack.v1. Other values produce valid manifests with
// other ids; only benchmarks change them, to measure the trade-off.
struct PackParams {
  std::uint64_t layer_target = 4ull << 20;  // L
  std::uint64_t pack_cap = 16ull << 20;     // 4 L
  LayerEncoding encoding;
  unsigned threads = 2;  // layers encoded at once (not part of the rule)
};

// An entry of the tree being packed and where its bytes come from.
struct SourceEntry {
  format::Entry entry;  // files: size and mode set; hash and extents filled by pack_tree
  fs::path source;
};

// Walks root and returns its entries sorted by raw path bytes. Refuses, with
// the entry's path in the message, anything that could not be materialized:
// devices, FIFOs, sockets, set-id or sticky bits, symlinks leaving the tree,
// paths or counts over the limits.
Result<std::vector<SourceEntry>> scan_tree(Filesystem& fs, const fs::path& root,
                                           const format::Limits& limits = {});

// One piece of a layer: bytes [file_offset, file_offset + length) of an entry.
struct Piece {
  std::size_t entry = 0;
  std::uint64_t file_offset = 0;
  std::uint64_t length = 0;
};

struct LayerPlan {
  std::vector<Piece> pieces;  // in layer order
  std::uint64_t raw_size = 0;
};

// The layering of drover.pack.v1: a pure function of paths and sizes.
std::vector<LayerPlan> plan_layers(const std::vector<format::Entry>& entries,
                                   const PackParams& params);

// Receives each encoded layer once, from worker threads: must be thread-safe.
class LayerSink {
 public:
  virtual ~LayerSink() = default;
  virtual Status put(const EncodedLayer& layer) = 0;
};

struct PackInput {
  std::string service;
  std::string git_sha;
  std::map<std::string, std::string> meta;
};

// Reads, hashes and encodes every layer of the tree (handing each to sink)
// and returns the manifest. Fails if a file changes size while being read.
Result<format::Manifest> pack_tree(Filesystem& fs, std::vector<SourceEntry> tree,
                                   const PackInput& input, const PackParams& params,
                                   LayerSink& sink);

}  // namespace drover::store
