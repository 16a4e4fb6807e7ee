// The BitTorrent v2 (BEP 52) "pieces root" of a byte stream: the root of a
// SHA-256 merkle tree over 16 KiB blocks, leaves padded with zero hashes to a
// power of two. A layer's torrent identity is derived from it (docs/FORMATS.md),
// so the store computes it at push time and the mesh never has to rehash.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "core/hash/sha256.hpp"

namespace drover {

class BtMerkle {
 public:
  static constexpr std::size_t kBlockSize = 16 * 1024;

  void update(const void* data, std::size_t size);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  // Root of everything fed so far (all zero for empty input, which has no
  // pieces root in BEP 52; callers never derive torrents of empty layers).
  // Resets the state for reuse.
  Digest finish();

  static Digest of(std::string_view bytes);

 private:
  Sha256 block_;
  std::size_t block_fill_ = 0;
  std::vector<Digest> leaves_;
};

}  // namespace drover
