#include "mesh/node/first_copy.hpp"

namespace drover::mesh {

FirstCopyRule::FirstCopyRule(std::size_t pieces) : holders_(pieces, 0) {
  for (std::size_t p = 0; p < pieces; ++p) nobodys_.insert(nobodys_.end(), p);
}

void FirstCopyRule::hand(Grants& grants, std::size_t piece) {
  if (grants.handed_.size() < holders_.size()) {
    grants.handed_.resize(holders_.size(), false);
    grants.delivered_.resize(holders_.size(), false);
  }
  if (grants.handed_[piece] || grants.delivered_[piece]) return;
  if (grants.outstanding_ >= kMaxOutstanding) return;  // served, not handed
  grants.handed_[piece] = true;
  ++grants.outstanding_;
  if (holders_[piece]++ == 0) nobodys_.erase(piece);
}

void FirstCopyRule::release(std::size_t piece) {
  if (--holders_[piece] == 0) nobodys_.insert(piece);
}

FirstCopyRule::Verdict FirstCopyRule::ask(Grants& grants, std::size_t piece, const Holds& holds) {
  if (piece >= holders_.size()) return {};
  if (piece < grants.handed_.size() && (grants.handed_[piece] || grants.delivered_[piece]))
    return {};  // its other blocks, or asked again
  if (holders_[piece] == 0 || nobodys_.empty()) {
    hand(grants, piece);
    return {};
  }
  if (grants.refusals_.size() < holders_.size()) grants.refusals_.resize(holders_.size(), 0);
  if (grants.refusals_[piece] >= kMaxRefusals) {
    hand(grants, piece);  // its picker insists: a repeat rather than a stall
    return {};
  }
  // Handed to someone else: refuse if this peer can take a new piece. Offers
  // go round the pieces, so peers refused at once are offered different ones.
  auto it = nobodys_.lower_bound(next_offer_);
  for (int tries = 0; tries < kMaxOfferTries; ++tries, ++it) {
    if (it == nobodys_.end()) it = nobodys_.begin();
    if (holds(*it)) continue;
    next_offer_ = *it + 1;
    ++grants.refusals_[piece];
    return {false, *it};
  }
  hand(grants, piece);  // it seems to hold what is new: a repeat is what it can use
  return {};
}

void FirstCopyRule::served(Grants& grants, std::size_t piece) {
  if (piece < holders_.size()) hand(grants, piece);
}

void FirstCopyRule::delivered(Grants& grants, std::size_t piece) {
  if (piece >= holders_.size()) return;
  if (piece < grants.handed_.size() && grants.handed_[piece]) {
    grants.handed_[piece] = false;
    grants.delivered_[piece] = true;
    --grants.outstanding_;
  }
}

void FirstCopyRule::dropped(Grants& grants, std::size_t piece) {
  if (piece >= grants.handed_.size() || !grants.handed_[piece]) return;
  grants.handed_[piece] = false;
  --grants.outstanding_;
  release(piece);
}

void FirstCopyRule::choked(Grants& grants) {
  for (std::size_t p = 0; p < grants.handed_.size() && grants.outstanding_ > 0; ++p)
    dropped(grants, p);
}

void FirstCopyRule::closed(Grants& grants) {
  choked(grants);
  for (std::size_t p = 0; p < grants.delivered_.size(); ++p) {
    if (!grants.delivered_[p]) continue;
    grants.delivered_[p] = false;
    release(p);
  }
}

}  // namespace drover::mesh
