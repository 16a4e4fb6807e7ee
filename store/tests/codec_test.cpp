#include <gtest/gtest.h>
#include <zstd.h>

#include "core/hash/bt_merkle.hpp"
#include "core/world/random.hpp"
#include "store/layer_codec.hpp"
#include "tests/support/tree_gen.hpp"

namespace drover::store {
namespace {

Bytes bytes_of(const std::string& s) {
  return Bytes(s.begin(), s.end());
}
std::string str(const Bytes& b) {
  return std::string(b.data(), b.size());
}

TEST(LayerCodec, CompressesWhenItPaysAndRoundTrips) {
  std::string text = drover::testing::text_bytes(1, 1 << 20);
  EncodedLayer el = encode_layer(bytes_of(text), {});
  EXPECT_EQ(el.layer.codec, format::Codec::zstd);
  EXPECT_LT(el.layer.size, text.size() / 2);
  EXPECT_EQ(el.layer.raw_size, text.size());
  EXPECT_EQ(el.layer.id, ContentId::of(view(el.stored)));
  EXPECT_EQ(el.layer.bt_root, BtMerkle::of(view(el.stored)));
  auto raw = decode_layer(el.layer, view(el.stored));
  ASSERT_TRUE(raw.ok()) << raw.error().message;
  EXPECT_EQ(str(*raw), text);
}

TEST(LayerCodec, StoresIncompressibleBytesRaw) {
  SeededRandom rnd(4);
  std::string noise = rnd.bytes(300'000);
  EncodedLayer el = encode_layer(bytes_of(noise), {});
  EXPECT_EQ(el.layer.codec, format::Codec::none);
  EXPECT_EQ(str(el.stored), noise);
  EXPECT_EQ(str(*decode_layer(el.layer, view(el.stored))), noise);
}

TEST(LayerCodec, EncodingIsDeterministic) {
  std::string text = drover::testing::text_bytes(2, 3 << 20);
  EXPECT_EQ(encode_layer(bytes_of(text), {}).layer.id, encode_layer(bytes_of(text), {}).layer.id);
}

format::Layer layer_of(const std::string& stored, format::Codec codec, std::uint64_t raw_size) {
  format::Layer l;
  l.id = ContentId::of(stored);
  l.size = stored.size();
  l.raw_size = raw_size;
  l.codec = codec;
  return l;
}

std::string zstd(const std::string& raw, bool with_size = true) {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, with_size ? 1 : 0);
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  std::size_t n;
  if (with_size) {
    n = ZSTD_compress2(c, out.data(), out.size(), raw.data(), raw.size());
  } else {
    // Streaming without a pledged size leaves the size out of the header.
    ZSTD_inBuffer in{raw.data(), raw.size(), 0};
    ZSTD_outBuffer o{out.data(), out.size(), 0};
    ZSTD_compressStream2(c, &o, &in, ZSTD_e_end);
    n = o.pos;
  }
  ZSTD_freeCCtx(c);
  out.resize(n);
  return out;
}

TEST(LayerCodec, RefusesBytesThatAreNotTheLayer) {
  std::string raw(1000, 'a');
  std::string stored = zstd(raw);
  format::Layer l = layer_of(stored, format::Codec::zstd, raw.size());
  std::string flipped = stored;
  flipped[flipped.size() / 2] ^= 1;
  auto r = decode_layer(l, flipped);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::corrupt);
  EXPECT_NE(r.error().message.find(l.id.str()), std::string::npos);
  EXPECT_FALSE(decode_layer(l, stored + "x").ok());
  EXPECT_FALSE(decode_layer(l, stored.substr(1)).ok());
}

TEST(LayerCodec, RefusesFramesThatDoNotDecodeToTheDeclaredSize) {
  // A 64 MiB bomb declared as 1 KiB: refused before anything is decoded.
  std::string bomb = zstd(std::string(64 << 20, '\0'));
  auto r = decode_layer(layer_of(bomb, format::Codec::zstd, 1024), bomb);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("declares"), std::string::npos);
  // No declared size at all.
  std::string unsized = zstd(std::string(5000, 'b'), false);
  EXPECT_FALSE(decode_layer(layer_of(unsized, format::Codec::zstd, 5000), unsized).ok());
  // Two frames, or bytes after the frame.
  std::string two = zstd("abc") + zstd("def");
  auto r2 = decode_layer(layer_of(two, format::Codec::zstd, 3), two);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().message.find("follow"), std::string::npos);
  // Not zstd at all.
  std::string junk = "not a frame";
  EXPECT_FALSE(decode_layer(layer_of(junk, format::Codec::zstd, 11), junk).ok());
}

}  // namespace
}  // namespace drover::store
