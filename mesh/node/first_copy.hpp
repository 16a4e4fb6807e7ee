// A seed's rule against sending a piece twice while peers can still trade it
// ("first copies first", docs/MESH.md). The seed's upload is what a rollout
// waits for: every piece it sends a second time, while some piece of the
// layer has not left it once, costs the whole swarm that piece's time.
//
// The rule sees requests, not the wire: for each valid request a connection
// makes it answers serve, or refuse and name a piece to offer instead; the
// node turns a refusal into a BitTorrent SUGGEST of that piece followed by a
// REJECT of the request. A request is refused only when all of these hold:
//   - the piece is handed to another connection;
//   - some piece of the layer is handed to nobody and the asking peer lacks
//     it, so it has something new to take;
//   - this connection was refused this piece fewer than kMaxRefusals times.
// Once every piece is handed out, everything is served: the last pieces a
// peer misses may be held only by peers it is not connected to, and the
// seed is then the only source left. A peer is never starved either: its
// piece picker may ask for the same piece again and again (it may hold the
// piece's other block from a neighbour), and the piece is served on the
// kMaxRefusals + 1-th ask.
//
// A piece is handed to a connection when a request for it is served, and
// delivered once every block of it was sent there. A request that is then
// cancelled or rejected, or a choke (which drops a peer's requests), gives
// back what the connection was handed and not delivered; a connection that
// closes gives back everything, delivered too: a peer that grabs and leaves
// hides nothing, and a later rollout of the same layer (new connections)
// starts with every piece new again. A connection holds at most
// kMaxOutstanding pieces handed and not delivered; past that it is served
// without being handed more, so no peer can hide a layer by asking for all
// of it and reading nothing.
//
// Not thread-safe: the node calls it from libtorrent's network thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <set>
#include <vector>

namespace drover::mesh {

class FirstCopyRule {
 public:
  // Refusals of one piece to one connection before it is served anyway.
  static constexpr int kMaxRefusals = 4;
  // Pieces handed to one connection and not yet delivered, at most.
  static constexpr std::size_t kMaxOutstanding = 256;
  // Pieces looked at for an offer before giving up (the asker holds them).
  static constexpr int kMaxOfferTries = 64;

  // What one connection was handed; owned by the caller, one per connection.
  class Grants {
    friend class FirstCopyRule;
    std::vector<bool> handed_;            // handed here, not yet delivered
    std::vector<bool> delivered_;         // handed here and delivered
    std::vector<std::uint8_t> refusals_;  // per piece, refusals to this connection
    std::size_t outstanding_ = 0;         // pieces in handed_
  };
  // Whether the asking peer holds a piece (as far as the seed knows).
  using Holds = std::function<bool(std::size_t piece)>;

  explicit FirstCopyRule(std::size_t pieces);

  struct Verdict {
    bool serve = true;
    std::size_t instead = 0;  // refused: a piece nobody was handed, to offer instead
  };
  // Whether to serve a request for `piece` on the connection of `grants`.
  // A piece out of range is served: libtorrent refuses it itself.
  Verdict ask(Grants& grants, std::size_t piece, const Holds& holds);
  // Serves `piece` without asking (a request the rule does not judge, from
  // a peer that would not understand a refusal): it is handed all the same.
  void served(Grants& grants, std::size_t piece);
  // Every block of `piece` was sent on this connection, or the peer announced
  // it: it stays handed while the connection lasts.
  void delivered(Grants& grants, std::size_t piece);
  // A request for `piece` on this connection was cancelled or rejected:
  // handed and not delivered, it goes back.
  void dropped(Grants& grants, std::size_t piece);
  // The seed choked the connection: what it was handed and not delivered goes back.
  void choked(Grants& grants);
  // The connection closed: everything it was handed goes back.
  void closed(Grants& grants);

  std::size_t pieces() const { return holders_.size(); }
  // Pieces not handed to any connection.
  std::size_t not_handed() const { return nobodys_.size(); }

 private:
  void hand(Grants& grants, std::size_t piece);
  void release(std::size_t piece);

  // Per piece: connections it is handed to (delivered or not).
  std::vector<std::uint32_t> holders_;
  std::set<std::size_t> nobodys_;  // pieces with holders_ == 0
  std::size_t next_offer_ = 0;     // where the search for a piece to offer starts
};

}  // namespace drover::mesh
