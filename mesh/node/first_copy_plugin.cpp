#include "mesh/node/first_copy_plugin.hpp"

#include <algorithm>
#include <array>
#include <libtorrent/peer_connection_handle.hpp>
#include <libtorrent/peer_request.hpp>
#include <optional>
#include <vector>

#include "core/format/layer_torrent.hpp"
#include "mesh/node/first_copy.hpp"

namespace drover::mesh {
namespace {

constexpr std::uint64_t kPieceLength = format::kLayerPieceLength;
constexpr std::uint64_t kBlock = 16 * 1024;  // libtorrent's block
static_assert(kPieceLength / kBlock <= 8, "a piece's blocks fit one byte's bits");

// Everything here runs on libtorrent's network thread.
struct LayerState {
  LayerState(std::uint64_t size, bool done, std::atomic<std::uint64_t>& r)
      : bytes(size),
        rule(static_cast<std::size_t>((size + kPieceLength - 1) / kPieceLength)),
        complete(done),
        refused(r) {}
  std::uint64_t piece_size(std::size_t piece) const {
    return std::min<std::uint64_t>(kPieceLength, bytes - piece * kPieceLength);
  }
  // The piece a request is for, if it is one libtorrent would serve: a
  // whole block of a piece of the layer (what its own checks require).
  std::optional<std::size_t> valid(const lt::peer_request& r) const {
    const int piece = static_cast<int>(r.piece);
    if (piece < 0 || static_cast<std::size_t>(piece) >= rule.pieces()) return std::nullopt;
    const auto p = static_cast<std::size_t>(piece);
    const std::uint64_t size = piece_size(p);
    if (r.start < 0 || static_cast<std::uint64_t>(r.start) >= size ||
        static_cast<std::uint64_t>(r.start) % kBlock != 0)
      return std::nullopt;
    if (r.length < 0 ||
        static_cast<std::uint64_t>(r.length) !=
            std::min<std::uint64_t>(kBlock, size - static_cast<std::uint64_t>(r.start)))
      return std::nullopt;
    return p;
  }
  std::uint8_t all_blocks(std::size_t piece) const {
    const auto blocks = static_cast<int>((piece_size(piece) + kBlock - 1) / kBlock);
    return static_cast<std::uint8_t>((1u << blocks) - 1);
  }

  std::uint64_t bytes;
  FirstCopyRule rule;
  bool complete;
  std::atomic<std::uint64_t>& refused;
};

void put_u32(char* at, std::uint32_t v) {
  at[0] = static_cast<char>(v >> 24);
  at[1] = static_cast<char>(v >> 16);
  at[2] = static_cast<char>(v >> 8);
  at[3] = static_cast<char>(v);
}

class FirstCopyPeer final : public lt::peer_plugin {
 public:
  FirstCopyPeer(std::shared_ptr<LayerState> layer, lt::peer_connection_handle pc)
      : layer_(std::move(layer)), pc_(std::move(pc)) {}

  lt::string_view type() const override { return "drover_first_copy"; }

  bool on_handshake(lt::span<char const> reserved) override {
    // BEP 6: the fast extension is bit 0x04 of the last reserved byte. Only
    // a peer that has it understands REJECT and SUGGEST.
    fast_ = reserved.size() >= 8 && (static_cast<unsigned char>(reserved[7]) & 0x04) != 0;
    return true;
  }

  bool on_request(lt::peer_request const& r) override {
    if (!layer_->complete) return false;
    const auto piece = layer_->valid(r);
    if (!piece) return false;  // libtorrent refuses it
    // A peer that would not understand a refusal, or one we choke (whose
    // request libtorrent refuses or serves from its allowed-fast set), is
    // left to libtorrent; what it is served counts as handed all the same.
    if (!fast_ || pc_.is_choked()) {
      layer_->rule.served(grants_, *piece);
      return false;
    }
    const auto verdict = layer_->rule.ask(grants_, *piece, [this](std::size_t q) {
      return pc_.has_piece(lt::piece_index_t(static_cast<int>(q)));
    });
    if (verdict.serve) return false;
    // SUGGEST_PIECE (id 13) first, so the peer knows the offer when the
    // REJECT_REQUEST (id 16) makes it pick again.
    std::array<char, 9 + 17> msg{};
    put_u32(msg.data(), 5);
    msg[4] = 13;
    put_u32(msg.data() + 5, static_cast<std::uint32_t>(verdict.instead));
    put_u32(msg.data() + 9, 13);
    msg[13] = 16;
    put_u32(msg.data() + 14, static_cast<std::uint32_t>(*piece));
    put_u32(msg.data() + 18, static_cast<std::uint32_t>(r.start));
    put_u32(msg.data() + 22, static_cast<std::uint32_t>(r.length));
    pc_.send_buffer(msg.data(), static_cast<int>(msg.size()));
    layer_->refused.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  // Peers do not announce pieces to a seed (drover's peers turn send_redundant_have
  // off), so a piece counts as delivered once every block was sent here.
  void sent_piece(lt::peer_request const& r) override {
    const auto piece = layer_->valid(r);
    if (!piece) return;
    if (blocks_sent_.size() <= *piece) blocks_sent_.resize(layer_->rule.pieces(), 0);
    blocks_sent_[*piece] |= static_cast<std::uint8_t>(1u << (r.start / kBlock));
    if (blocks_sent_[*piece] == layer_->all_blocks(*piece)) layer_->rule.delivered(grants_, *piece);
  }

  bool on_have(lt::piece_index_t piece) override {
    if (static_cast<int>(piece) >= 0)
      layer_->rule.delivered(grants_, static_cast<std::size_t>(static_cast<int>(piece)));
    return false;
  }

  bool on_cancel(lt::peer_request const& r) override {
    if (auto piece = layer_->valid(r)) drop(*piece);
    return false;
  }
  void sent_reject_request(lt::peer_request const& r) override {
    if (auto piece = layer_->valid(r)) drop(*piece);
  }
  // libtorrent drops a choked peer's outstanding requests.
  void sent_choke() override {
    layer_->rule.choked(grants_);
    std::fill(blocks_sent_.begin(), blocks_sent_.end(), 0);
  }
  void on_disconnect(lt::error_code const&) override { layer_->rule.closed(grants_); }

 private:
  void drop(std::size_t piece) {
    layer_->rule.dropped(grants_, piece);
    if (piece < blocks_sent_.size()) blocks_sent_[piece] = 0;
  }

  std::shared_ptr<LayerState> layer_;
  lt::peer_connection_handle pc_;
  FirstCopyRule::Grants grants_;
  std::vector<std::uint8_t> blocks_sent_;  // per piece, bits of the blocks sent here
  bool fast_ = false;
};

class FirstCopyTorrent final : public lt::torrent_plugin {
 public:
  explicit FirstCopyTorrent(std::shared_ptr<LayerState> layer) : layer_(std::move(layer)) {}

  std::shared_ptr<lt::peer_plugin> new_connection(const lt::peer_connection_handle& pc) override {
    if (pc.type() != lt::connection_type::bittorrent) return nullptr;
    return std::make_shared<FirstCopyPeer>(layer_, pc);
  }

  void on_state(lt::torrent_status::state_t state) override {
    layer_->complete =
        state == lt::torrent_status::seeding || state == lt::torrent_status::finished;
  }

 private:
  std::shared_ptr<LayerState> layer_;
};

}  // namespace

TorrentExtension first_copy_extension(std::uint64_t layer_size, bool complete,
                                      std::atomic<std::uint64_t>& refused) {
  return [layer_size, complete, &refused](const lt::torrent_handle&, lt::client_data_t) {
    return std::make_shared<FirstCopyTorrent>(
        std::make_shared<LayerState>(layer_size, complete, refused));
  };
}

}  // namespace drover::mesh
