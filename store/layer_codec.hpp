// Turning a layer's raw bytes into its stored form and back
// (docs/FORMATS.md, "Layers"). Decoding treats the stored bytes as hostile.
#pragma once

#include <string>
#include <string_view>

#include "core/base/bytes.hpp"
#include "core/base/result.hpp"
#include "core/format/manifest.hpp"

namespace drover::store {

struct LayerEncoding {
  int zstd_level = 2;
  bool compress = true;  // false stores every layer raw (benchmarks measure what zstd buys)
};

struct EncodedLayer {
  format::Layer layer;  // id, sizes, codec and pieces root of `stored`
  Bytes stored;
};

// Compresses when that saves at least 1/32 of the bytes; hashes the stored
// bytes (SHA-256 and the BitTorrent v2 pieces root). Thread-safe.
EncodedLayer encode_layer(Bytes raw, const LayerEncoding& encoding);

// Checks size and SHA-256 against the layer before decoding anything, then
// decodes into exactly raw_size bytes. Refuses a frame that declares another
// size, would expand further, or has bytes after it. Thread-safe.
Result<Bytes> decode_layer(const format::Layer& layer, std::string_view stored);

}  // namespace drover::store
