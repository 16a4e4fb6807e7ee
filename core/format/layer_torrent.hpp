// The BitTorrent v2 identity of a layer, drover.layer-torrent.v1
// (docs/FORMATS.md, "Layer torrents"): derived from the layer's id, size and
// pieces root alone, so every node names the same swarm without the bytes.
#pragma once

#include <cstdint>
#include <string>

#include "core/format/manifest.hpp"

namespace drover::format {

inline constexpr std::uint64_t kLayerPieceLength = 32 * 1024;

struct LayerTorrent {
  std::string name;       // the layer id's 64 hex digits
  std::string info_dict;  // bencoded info dictionary
  Digest info_hash{};     // SHA-256 of info_dict: the v2 info-hash
};

LayerTorrent derive_layer_torrent(const Layer& layer);

}  // namespace drover::format
