#include "mesh/node/first_copy.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

namespace drover::mesh {
namespace {

// A peer as the rule sees it: what it holds.
struct Asker {
  FirstCopyRule::Grants grants;
  std::set<std::size_t> holds;
  FirstCopyRule::Holds view() const {
    return [this](std::size_t p) { return holds.count(p) > 0; };
  }
};

TEST(FirstCopyRule, APieceHandedToOnePeerIsRefusedToAnotherWhileSomeWentToNobody) {
  FirstCopyRule rule(4);
  Asker a, b, c;
  EXPECT_TRUE(rule.ask(a.grants, 0, a.view()).serve);
  EXPECT_TRUE(rule.ask(a.grants, 0, a.view()).serve) << "its other blocks";
  EXPECT_EQ(rule.not_handed(), 3u);

  auto v = rule.ask(b.grants, 0, b.view());
  EXPECT_FALSE(v.serve);
  EXPECT_EQ(v.instead, 1u) << "offered a piece nobody was handed";
  EXPECT_EQ(rule.not_handed(), 3u) << "an offer hands nothing";
  // A second peer refused at once is offered another piece.
  v = rule.ask(c.grants, 0, c.view());
  EXPECT_FALSE(v.serve);
  EXPECT_EQ(v.instead, 2u);
  EXPECT_TRUE(rule.ask(b.grants, 1, b.view()).serve);
  EXPECT_EQ(rule.not_handed(), 2u);
}

TEST(FirstCopyRule, OnceEveryPieceLeftRepeatsAreServed) {
  FirstCopyRule rule(2);
  Asker a, b;
  EXPECT_TRUE(rule.ask(a.grants, 0, a.view()).serve);
  EXPECT_TRUE(rule.ask(a.grants, 1, a.view()).serve);
  EXPECT_EQ(rule.not_handed(), 0u);
  EXPECT_TRUE(rule.ask(b.grants, 0, b.view()).serve);
  EXPECT_TRUE(rule.ask(b.grants, 1, b.view()).serve);
}

TEST(FirstCopyRule, APeerHoldingEveryPieceNobodyWasHandedGetsTheRepeat) {
  FirstCopyRule rule(3);
  Asker a, b, c;
  EXPECT_TRUE(rule.ask(a.grants, 0, a.view()).serve);
  b.holds = {1, 2};  // it got them elsewhere (the origin, say)
  EXPECT_TRUE(rule.ask(b.grants, 0, b.view()).serve) << "nothing new it could take instead";
  c.holds = {1};
  auto v = rule.ask(c.grants, 0, c.view());
  EXPECT_FALSE(v.serve);
  EXPECT_EQ(v.instead, 2u) << "the one it lacks, not the one it holds";
}

TEST(FirstCopyRule, APieceIsServedAfterTheMostRefusalsSoNoPeerWaitsForever) {
  FirstCopyRule rule(3);
  Asker a, b, c;
  EXPECT_TRUE(rule.ask(a.grants, 0, a.view()).serve);
  for (int i = 0; i < FirstCopyRule::kMaxRefusals; ++i)
    EXPECT_FALSE(rule.ask(b.grants, 0, b.view()).serve) << "refusal " << i + 1;
  EXPECT_TRUE(rule.ask(b.grants, 0, b.view()).serve);
  EXPECT_TRUE(rule.ask(b.grants, 0, b.view()).serve) << "and its other blocks";
  EXPECT_FALSE(rule.ask(c.grants, 0, c.view()).serve) << "the count is per connection";
}

TEST(FirstCopyRule, AChokeGivesBackWhatWasNotDeliveredAndAClosedConnectionEverything) {
  FirstCopyRule rule(3);
  Asker a, b;
  EXPECT_TRUE(rule.ask(a.grants, 0, a.view()).serve);
  EXPECT_TRUE(rule.ask(a.grants, 1, a.view()).serve);
  rule.delivered(a.grants, 0);
  rule.choked(a.grants);
  EXPECT_EQ(rule.not_handed(), 2u) << "piece 1 is back, piece 0 stays out";
  EXPECT_TRUE(rule.ask(b.grants, 1, b.view()).serve) << "piece 1 is new again";
  auto v = rule.ask(b.grants, 0, b.view());
  EXPECT_FALSE(v.serve);
  EXPECT_EQ(v.instead, 2u);
  // Choking twice, or a connection that was handed nothing, changes nothing.
  rule.choked(a.grants);
  Asker idle;
  rule.closed(idle.grants);
  EXPECT_EQ(rule.not_handed(), 1u);
  // Closed, a delivered piece goes back too: a later rollout starts afresh.
  rule.closed(a.grants);
  EXPECT_EQ(rule.not_handed(), 2u);
  EXPECT_TRUE(rule.ask(b.grants, 0, b.view()).serve);
}

TEST(FirstCopyRule, ACancelledOrRejectedRequestGivesItsPieceBack) {
  FirstCopyRule rule(3);
  Asker a, b;
  EXPECT_TRUE(rule.ask(a.grants, 0, a.view()).serve);
  rule.dropped(a.grants, 0);
  EXPECT_EQ(rule.not_handed(), 3u);
  EXPECT_TRUE(rule.ask(b.grants, 0, b.view()).serve) << "nobody holds it any more";
  rule.delivered(b.grants, 0);
  rule.dropped(b.grants, 0);
  EXPECT_EQ(rule.not_handed(), 2u) << "a delivered piece is not taken back by a cancel";
  rule.dropped(b.grants, 9);  // out of range: nothing
  EXPECT_EQ(rule.not_handed(), 2u);
}

TEST(FirstCopyRule, APeerThatReadsNothingCannotHideTheLayer) {
  constexpr std::size_t kPieces = FirstCopyRule::kMaxOutstanding + 8;
  FirstCopyRule rule(kPieces);
  Asker greedy, honest;
  for (std::size_t p = 0; p < kPieces; ++p)
    EXPECT_TRUE(rule.ask(greedy.grants, p, greedy.view()).serve);
  EXPECT_EQ(rule.not_handed(), 8u) << "handed at most kMaxOutstanding undelivered pieces";
  EXPECT_TRUE(rule.ask(honest.grants, kPieces - 1, honest.view()).serve);
}

TEST(FirstCopyRule, AnOfferIsSoughtAmongAFewPiecesOnly) {
  // The asker holds every piece nobody was handed (as far as the seed
  // knows): after kMaxOfferTries looks the repeat is served, not refused.
  constexpr std::size_t kPieces = 1000;
  FirstCopyRule rule(kPieces);
  Asker a, b;
  EXPECT_TRUE(rule.ask(a.grants, 0, a.view()).serve);
  int looked = 0;
  auto v = rule.ask(b.grants, 0, [&](std::size_t) {
    ++looked;
    return true;
  });
  EXPECT_TRUE(v.serve);
  EXPECT_EQ(looked, FirstCopyRule::kMaxOfferTries);
}

TEST(FirstCopyRule, APieceOutOfRangeIsLeftToLibtorrent) {
  FirstCopyRule rule(2);
  Asker a;
  EXPECT_TRUE(rule.ask(a.grants, 2, a.view()).serve);
  EXPECT_TRUE(rule.ask(a.grants, static_cast<std::size_t>(-1), a.view()).serve);
  EXPECT_EQ(rule.not_handed(), 2u);
}

// Many peers asking for random pieces: no piece is served to a second peer
// while one the asker lacks went to nobody, unless that peer was refused it
// kMaxRefusals times; every refusal offers such a piece; every peer completes.
TEST(FirstCopyRule, RandomPeersGetARepeatOnlyWhenNoNewPieceIsLeftOrTheyInsisted) {
  constexpr std::size_t kPieces = 64, kPeers = 12;
  std::mt19937 rng(7);
  for (int round = 0; round < 50; ++round) {
    FirstCopyRule rule(kPieces);
    std::vector<Asker> peers(kPeers);
    std::vector<int> served(kPieces, 0);                         // peers each piece was served to
    std::map<std::pair<std::size_t, std::size_t>, int> refused;  // (peer, piece) -> count
    std::size_t done = 0;
    for (int step = 0; step < 200000 && done < kPeers; ++step) {
      const std::size_t who = rng() % kPeers;
      Asker& p = peers[who];
      if (p.holds.size() == kPieces) continue;
      std::size_t piece = rng() % kPieces;
      if (p.holds.count(piece)) continue;
      bool fresh_left = false;
      for (std::size_t q = 0; q < kPieces; ++q) fresh_left |= served[q] == 0 && !p.holds.count(q);
      auto v = rule.ask(p.grants, piece, p.view());
      if (!v.serve) {
        ++refused[{who, piece}];
        ASSERT_LT(v.instead, kPieces);
        ASSERT_FALSE(p.holds.count(v.instead));
        ASSERT_EQ(served[v.instead], 0) << "offered a piece someone already has";
        if (rng() % 2) continue;  // ignores the offer, for now
        piece = v.instead;
        ASSERT_TRUE(rule.ask(p.grants, piece, p.view()).serve);
      } else if (served[piece] > 0 && fresh_left) {
        ASSERT_GE((refused[{who, piece}]), FirstCopyRule::kMaxRefusals)
            << "a repeat while a new piece was left";
      }
      ++served[piece];
      p.holds.insert(piece);
      rule.delivered(p.grants, piece);
      if (p.holds.size() == kPieces) ++done;
    }
    EXPECT_EQ(done, kPeers) << "round " << round;
  }
}

}  // namespace
}  // namespace drover::mesh
