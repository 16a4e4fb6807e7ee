// First copies first on the wire: a test peer speaks raw BitTorrent to a
// seeding node, so what the node sends back (PIECE, REJECT, SUGGEST) is
// read byte by byte, with no libtorrent on the asking side to hide it.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <tuple>

#include "core/format/layer_torrent.hpp"
#include "core/hash/bt_merkle.hpp"
#include "mesh/node/first_copy.hpp"
#include "mesh/node/mesh_node.hpp"
#include "tests/support/test_support.hpp"
#include "tests/support/tree_gen.hpp"

namespace drover::mesh {
namespace {

using namespace std::chrono_literals;

constexpr std::uint8_t kUnchoke = 1, kInterested = 2, kPiece = 7, kSuggest = 13, kReject = 16;
constexpr std::uint32_t kBlock = 16 * 1024;

void put_u32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}
std::uint32_t get_u32(const std::string& s, std::size_t at) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<std::uint8_t>(s[at + i]);
  return v;
}

struct Message {
  std::uint8_t id = 0;
  std::string payload;
};

// One raw connection to the node.
class WirePeer {
 public:
  WirePeer(std::uint16_t port, const Digest& info_hash, bool fast, char tag) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    std::string hs;
    hs.push_back(19);
    hs += "BitTorrent protocol";
    std::string reserved(8, '\0');
    if (fast) reserved[7] = 0x04;
    hs += reserved;
    hs.append(reinterpret_cast<const char*>(info_hash.data()), 20);  // truncated v2 hash
    hs += std::string("-XX0001-") + std::string(11, 'a') + tag;
    ok_ = ok_ && send(hs) && read_exact(68).has_value();
  }
  ~WirePeer() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return ok_; }

  bool send(const std::string& bytes) {
    std::size_t at = 0;
    while (at < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
      if (n <= 0) return false;
      at += static_cast<std::size_t>(n);
    }
    return true;
  }
  bool send_message(std::uint8_t id, const std::string& payload = {}) {
    std::string m;
    put_u32(m, static_cast<std::uint32_t>(payload.size() + 1));
    m.push_back(static_cast<char>(id));
    return send(m + payload);
  }
  bool request(std::uint32_t piece, std::uint32_t start) {
    std::string p;
    put_u32(p, piece);
    put_u32(p, start);
    put_u32(p, kBlock);
    return send_message(6, p);
  }
  // The next message whose id is one of `ids` (others are skipped), within
  // the deadline.
  std::optional<Message> next(std::initializer_list<std::uint8_t> ids,
                              std::chrono::seconds deadline = 20s) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < until) {
      auto len = read_exact(4, until);
      if (!len) return std::nullopt;
      const std::uint32_t n = get_u32(*len, 0);
      if (n == 0) continue;  // keep-alive
      if (n > (1u << 20)) return std::nullopt;
      auto body = read_exact(n, until);
      if (!body) return std::nullopt;
      Message m{static_cast<std::uint8_t>((*body)[0]), body->substr(1)};
      for (auto id : ids)
        if (m.id == id) return m;
    }
    return std::nullopt;
  }

 private:
  std::optional<std::string> read_exact(std::size_t n, std::chrono::steady_clock::time_point until =
                                                           std::chrono::steady_clock::now() +
                                                           std::chrono::seconds(20)) {
    std::string out(n, '\0');
    std::size_t at = 0;
    while (at < n) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
      const ssize_t got = ::recv(fd_, out.data() + at, n - at, 0);
      if (got <= 0) return std::nullopt;
      at += static_cast<std::size_t>(got);
    }
    return out;
  }

  int fd_ = -1;
  bool ok_ = false;
};

class FirstCopyWire : public ::testing::Test {
 protected:
  void start(bool first_copies_first) {
    bytes_ = drover::testing::binary_bytes(11, 8 * 32 * 1024);  // 8 pieces
    layer_ = LayerRef{ContentId::of(bytes_), bytes_.size(), BtMerkle::of(bytes_)};
    drover::testing::write_file(dir_.path() / layer_.id.hex(), bytes_);
    NodeOptions o;
    o.role = NodeRole::seed;
    o.host = "seed";
    o.first_copies_first = first_copies_first;
    auto node = MeshNode::start(o, Logger::discard());
    ASSERT_TRUE(node.ok()) << node.error().message;
    node_ = std::move(*node);
    ASSERT_TRUE(node_->seed(layer_, dir_.path() / layer_.id.hex()).ok());
    info_hash_ = format::derive_layer_torrent(format::Layer{layer_.id, layer_.size, layer_.size,
                                                            format::Codec::none, layer_.bt_root})
                     .info_hash;
  }
  // A connection, interested and unchoked.
  std::unique_ptr<WirePeer> connect(bool fast, char tag) {
    auto p = std::make_unique<WirePeer>(node_->port(), info_hash_, fast, tag);
    EXPECT_TRUE(p->ok());
    EXPECT_TRUE(p->send_message(kInterested));
    EXPECT_TRUE(p->next({kUnchoke}).has_value()) << "never unchoked";
    return p;
  }
  // The block's bytes, if the node sent it (a PIECE for piece/start).
  std::optional<std::string> block_of(const Message& m, std::uint32_t piece, std::uint32_t start) {
    if (m.id != kPiece || m.payload.size() < 8 || get_u32(m.payload, 0) != piece ||
        get_u32(m.payload, 4) != start)
      return std::nullopt;
    return m.payload.substr(8);
  }

  drover::testing::TempDir dir_;
  std::string bytes_;
  LayerRef layer_;
  Digest info_hash_{};
  std::unique_ptr<MeshNode> node_;
};

TEST_F(FirstCopyWire, APieceSentToOnePeerIsRefusedToTheNextWithAnotherSuggested) {
  ASSERT_NO_FATAL_FAILURE(start(true));
  auto a = connect(true, 'a');
  auto b = connect(true, 'b');
  ASSERT_TRUE(a->request(3, 0));
  auto got = a->next({kPiece, kReject});
  ASSERT_TRUE(got.has_value());
  ASSERT_EQ(block_of(*got, 3, 0), bytes_.substr(3 * 32 * 1024, kBlock)) << "the first copy";

  // b asks for the same piece: offered one nobody has, then refused.
  ASSERT_TRUE(b->request(3, 0));
  auto offer = b->next({kPiece, kReject, kSuggest});
  ASSERT_TRUE(offer.has_value());
  ASSERT_EQ(offer->id, kSuggest);
  got = b->next({kPiece, kReject});
  ASSERT_TRUE(got.has_value());
  ASSERT_EQ(got->id, kReject);
  EXPECT_EQ(get_u32(got->payload, 0), 3u);
  EXPECT_EQ(get_u32(got->payload, 4), 0u);
  EXPECT_EQ(get_u32(got->payload, 8), kBlock);
  const std::uint32_t instead = get_u32(offer->payload, 0);
  EXPECT_NE(instead, 3u);
  EXPECT_LT(instead, 8u);
  ASSERT_TRUE(b->request(instead, 0));
  got = b->next({kPiece, kReject});
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(block_of(*got, instead, 0), bytes_.substr(instead * 32 * 1024, kBlock));

  // Insisting: the piece is served on the fifth ask, not refused forever.
  int refusals = 1;
  std::optional<std::string> block;
  for (int ask = 0; ask < 8 && !block; ++ask) {
    ASSERT_TRUE(b->request(3, 0));
    got = b->next({kPiece, kReject});
    ASSERT_TRUE(got.has_value());
    if (got->id == kReject)
      ++refusals;
    else
      block = block_of(*got, 3, 0);
  }
  EXPECT_EQ(refusals, 4);
  EXPECT_EQ(block, bytes_.substr(3 * 32 * 1024, kBlock));
  EXPECT_EQ(node_->counters().repeats_refused, 4u);
  // Counted from libtorrent's upload alerts, on the node's alert thread.
  EXPECT_TRUE(drover::testing::eventually([&] { return node_->counters().up_again >= kBlock; }))
      << "the repeat it finally sent";
}

TEST_F(FirstCopyWire, APeerWithoutTheFastExtensionIsServedAsBefore) {
  ASSERT_NO_FATAL_FAILURE(start(true));
  auto a = connect(true, 'a');
  auto old = connect(false, 'o');  // would not understand REJECT or SUGGEST
  ASSERT_TRUE(a->request(2, 0));
  ASSERT_TRUE(a->next({kPiece}).has_value());
  ASSERT_TRUE(old->request(2, 0));
  auto got = old->next({kPiece});
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(block_of(*got, 2, 0), bytes_.substr(2 * 32 * 1024, kBlock));
  EXPECT_EQ(node_->counters().repeats_refused, 0u);
}

TEST_F(FirstCopyWire, WithTheRuleOffEveryRequestIsServed) {
  ASSERT_NO_FATAL_FAILURE(start(false));
  auto a = connect(true, 'a');
  auto b = connect(true, 'b');
  ASSERT_TRUE(a->request(5, 0));
  ASSERT_TRUE(a->next({kPiece}).has_value());
  ASSERT_TRUE(b->request(5, 0));
  auto got = b->next({kPiece, kReject});
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(block_of(*got, 5, 0), bytes_.substr(5 * 32 * 1024, kBlock));
}

// Hostile requests: out of range, a negative index, a block past the end of
// its piece, lengths of 0 and of 1 MiB, and a flood of the same refused
// piece. The node stays up; a request libtorrent refuses hands nothing to
// anyone (another peer still gets those pieces as first copies); the flood
// is refused kMaxRefusals times, then served.
TEST_F(FirstCopyWire, HostileRequestsNeitherKillTheNodeNorHidePieces) {
  ASSERT_NO_FATAL_FAILURE(start(true));
  auto a = connect(true, 'a');
  auto h = connect(true, 'h');
  ASSERT_TRUE(a->request(0, 0));
  ASSERT_TRUE(a->next({kPiece}).has_value());
  for (auto [piece, start, length] :
       {std::tuple<std::uint32_t, std::uint32_t, std::uint32_t>{8, 0, kBlock},
        {0xffffffffu, 0, kBlock},
        {1, 3 * kBlock, kBlock},
        {2, 0, 0},
        {4, 0, 1u << 20}}) {
    std::string p;
    put_u32(p, piece);
    put_u32(p, start);
    put_u32(p, length);
    h->send_message(6, p);
  }
  int rejects = 0, pieces = 0;
  for (int i = 0; i < 20; ++i) h->request(0, 0);
  while (rejects + pieces < 20) {
    auto got = h->next({kPiece, kReject}, 10s);
    ASSERT_TRUE(got.has_value()) << rejects << " refused, " << pieces << " served";
    if (got->id == kReject && get_u32(got->payload, 0) == 0) ++rejects;
    if (got->id == kPiece && get_u32(got->payload, 0) == 0) ++pieces;
  }
  EXPECT_EQ(rejects, FirstCopyRule::kMaxRefusals);

  // Pieces 1, 2 and 4 were only asked for in ways libtorrent refuses: with
  // the hostile peer still connected, a new peer is served them as first
  // copies, nothing refused.
  auto c = connect(true, 'c');
  for (std::uint32_t piece : {1u, 2u, 4u}) {
    ASSERT_TRUE(c->request(piece, 0));
    auto got = c->next({kPiece, kReject});
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(block_of(*got, piece, 0), bytes_.substr(piece * 32 * 1024, kBlock))
        << "piece " << piece;
  }
}

}  // namespace
}  // namespace drover::mesh
