// The layer torrent derivation checked against libtorrent itself: what every
// node derives from the manifest must be the torrent libtorrent makes from the
// bytes, or swarms would never meet.
#include <gtest/gtest.h>

#include <libtorrent/create_torrent.hpp>
#include <libtorrent/torrent_info.hpp>

#include "core/format/layer_torrent.hpp"
#include "core/hash/bt_merkle.hpp"
#include "core/world/random.hpp"
#include "tests/support/test_support.hpp"

namespace drover::format {
namespace {

TEST(LayerTorrent, MatchesLibtorrentV2TorrentOfTheBytes) {
  drover::testing::TempDir dir;
  SeededRandom rnd(21);
  for (std::uint64_t size : {1ull, 16384ull, 16385ull, 262144ull, 262145ull, 1000000ull, 4194304ull}) {
    std::string bytes = rnd.bytes(size);
    Layer layer;
    layer.id = ContentId::of(bytes);
    layer.size = size;
    layer.raw_size = size;
    layer.bt_root = BtMerkle::of(bytes);
    LayerTorrent derived = derive_layer_torrent(layer);

    drover::testing::write_file(dir / derived.name, bytes, 0644);
    lt::file_storage files;
    files.add_file(derived.name, static_cast<std::int64_t>(size));
    lt::create_torrent ct(files, static_cast<int>(kLayerPieceLength), lt::create_torrent::v2_only);
    lt::set_piece_hashes(ct, dir.path().string());
    std::vector<char> buf;
    lt::bencode(std::back_inserter(buf), ct.generate());
    lt::error_code ec;
    lt::torrent_info ti(buf, ec, lt::from_span);
    ASSERT_FALSE(ec) << ec.message();

    auto info = ti.info_section();
    EXPECT_EQ(std::string(info.data(), static_cast<std::size_t>(info.size())), derived.info_dict)
        << "size " << size;
    const auto v2 = ti.info_hashes().v2;
    EXPECT_TRUE(std::equal(derived.info_hash.begin(), derived.info_hash.end(),
                           reinterpret_cast<const std::uint8_t*>(v2.data())))
        << "size " << size;
    std::filesystem::remove(dir / derived.name);
  }
}

TEST(LayerTorrent, DependsOnlyOnIdSizeAndRoot) {
  Layer a;
  a.id = ContentId::of("x");
  a.size = 10;
  a.raw_size = 99;  // raw size and codec are not part of the torrent
  a.codec = Codec::zstd;
  Layer b = a;
  b.raw_size = 10;
  b.codec = Codec::none;
  EXPECT_EQ(derive_layer_torrent(a).info_hash, derive_layer_torrent(b).info_hash);
  b.size = 11;
  EXPECT_NE(derive_layer_torrent(a).info_hash, derive_layer_torrent(b).info_hash);
}

}  // namespace
}  // namespace drover::format
