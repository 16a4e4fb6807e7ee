#include <gtest/gtest.h>

#include "core/base/hex.hpp"
#include "core/hash/bt_merkle.hpp"
#include "core/hash/sha256.hpp"
#include "core/world/random.hpp"

namespace drover {
namespace {

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(ContentId::of("").str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(ContentId::of("abc").hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, StreamingEqualsOneShot) {
  SeededRandom rnd(7);
  std::string data = rnd.bytes(1 << 20);
  Sha256 h;
  for (std::size_t off = 0; off < data.size();) {
    std::size_t n = std::min<std::size_t>(rnd.uniform(70'000) + 1, data.size() - off);
    h.update(data.data() + off, n);
    off += n;
  }
  EXPECT_EQ(h.finish(), Sha256::of(data));
  // finish() resets the hasher.
  h.update("abc");
  EXPECT_EQ(ContentId(h.finish()), ContentId::of("abc"));
}

TEST(ContentId, ParseRoundTripAndErrors) {
  ContentId id = ContentId::of("hello");
  auto back = ContentId::parse(id.str());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, id);
  EXPECT_EQ(id.short_str().size(), 12u);
  for (std::string bad : std::vector<std::string>{std::string("sha1:") + id.hex(), id.hex(), "sha256:abc",
                          "sha256:" + id.hex().substr(0, 63) + "G",
                          "sha256:" + std::string(64, 'A')}) {
    auto r = ContentId::parse(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().message.find("not a content id"), std::string::npos);
  }
}

// A pieces root computed by hand from the BEP 52 definition, for comparison.
Digest reference_root(const std::string& data) {
  std::vector<Digest> level;
  for (std::size_t off = 0; off < data.size(); off += BtMerkle::kBlockSize) {
    level.push_back(Sha256::of(data.substr(off, BtMerkle::kBlockSize)));
  }
  std::size_t width = 1;
  while (width < level.size()) width *= 2;
  level.resize(width, Digest{});
  while (level.size() > 1) {
    std::vector<Digest> up;
    for (std::size_t i = 0; i < level.size(); i += 2) {
      std::string pair(reinterpret_cast<const char*>(level[i].data()), 32);
      pair.append(reinterpret_cast<const char*>(level[i + 1].data()), 32);
      up.push_back(Sha256::of(pair));
    }
    level = up;
  }
  return level[0];
}

TEST(BtMerkle, MatchesDefinitionAtBlockBoundaries) {
  SeededRandom rnd(11);
  for (std::size_t size : {1ul, 16383ul, 16384ul, 16385ul, 3 * 16384ul, 5 * 16384ul + 7, 1ul << 20}) {
    std::string data = rnd.bytes(size);
    EXPECT_EQ(BtMerkle::of(data), reference_root(data)) << size;
    // Streaming in odd pieces gives the same root.
    BtMerkle m;
    for (std::size_t off = 0; off < data.size(); off += 1000) m.update(data.substr(off, 1000));
    EXPECT_EQ(m.finish(), reference_root(data)) << size;
  }
  // One block: the root is the block's hash.
  EXPECT_EQ(BtMerkle::of("x"), Sha256::of("x"));
}

TEST(Hex, RoundTripAndRejects) {
  EXPECT_EQ(to_hex(std::string("\x00\xff\x10", 3)), "00ff10");
  EXPECT_EQ(*from_hex("00FF10"), std::string("\x00\xff\x10", 3));
  EXPECT_FALSE(from_hex("abc").has_value());
  EXPECT_FALSE(from_hex("zz").has_value());
}

}  // namespace
}  // namespace drover
