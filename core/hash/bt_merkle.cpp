#include "core/hash/bt_merkle.hpp"

#include <algorithm>

namespace drover {

void BtMerkle::update(const void* data, std::size_t size) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    std::size_t take = std::min(size, kBlockSize - block_fill_);
    block_.update(p, take);
    block_fill_ += take;
    p += take;
    size -= take;
    if (block_fill_ == kBlockSize) {
      leaves_.push_back(block_.finish());
      block_fill_ = 0;
    }
  }
}

Digest BtMerkle::finish() {
  if (block_fill_ > 0) {
    leaves_.push_back(block_.finish());
    block_fill_ = 0;
  }
  std::vector<Digest> level;
  level.swap(leaves_);
  if (level.empty()) return Digest{};
  std::size_t width = 1;
  while (width < level.size()) width *= 2;
  level.resize(width, Digest{});
  Sha256 node;
  while (level.size() > 1) {
    for (std::size_t i = 0; i < level.size() / 2; ++i) {
      node.update(level[2 * i].data(), level[2 * i].size());
      node.update(level[2 * i + 1].data(), level[2 * i + 1].size());
      level[i] = node.finish();
    }
    level.resize(level.size() / 2);
  }
  return level[0];
}

Digest BtMerkle::of(std::string_view bytes) {
  BtMerkle m;
  m.update(bytes);
  return m.finish();
}

}  // namespace drover
