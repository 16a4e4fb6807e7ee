// The batch health judge: thresholds against a baseline, K consecutive
// failures, no pass on too few samples, and the Mann-Whitney mode.
#include <gtest/gtest.h>

#include "coordinator/health/judge.hpp"

namespace drover::coordinator {
namespace {

Sample s(double err, double p99 = 20, double sat = 0.3) {
  return {err, p99, sat, true};
}

BatchJudge with_baseline(HealthThresholds t, double err, double p99 = 20, double sat = 0.3) {
  BatchJudge j(t);
  for (int i = 0; i < 10; ++i) j.add_baseline(s(err, p99, sat));
  return j;
}

TEST(Judge, AZeroBaselineDoesNotFailOnTheFirstError) {
  BatchJudge j = with_baseline({}, 0.0);
  for (int i = 0; i < 5; ++i) j.add_canary(s(0.005));  // under the 0.01 floor
  EXPECT_EQ(j.verdict(true).kind, Verdict::Kind::pass);
  BatchJudge bad = with_baseline({}, 0.0);
  for (int i = 0; i < 3; ++i) bad.add_canary(s(0.02));
  Verdict v = bad.verdict(false);  // fails before the bake ends
  EXPECT_EQ(v.kind, Verdict::Kind::fail);
  EXPECT_NE(v.reason.find("error_rate 0.02 above 0.01"), std::string::npos) << v.reason;
}

TEST(Judge, OnlyKConsecutiveFailuresFailTheBatch) {
  BatchJudge j = with_baseline({}, 0.10);  // limit: max(0.12, 0.11) = 0.12
  for (double e : {0.2, 0.2, 0.1, 0.2, 0.2, 0.1}) j.add_canary(s(e));
  EXPECT_EQ(j.verdict(false).kind, Verdict::Kind::pending);
  EXPECT_EQ(j.verdict(true).kind, Verdict::Kind::pass);
  j.add_canary(s(0.13));
  j.add_canary(s(0.13));
  j.add_canary(s(0.13));
  Verdict v = j.verdict(false);
  EXPECT_EQ(v.kind, Verdict::Kind::fail);
  EXPECT_NE(v.reason.find("3 consecutive"), std::string::npos) << v.reason;
}

TEST(Judge, LatencyAndSaturationHaveTheirOwnDeltas) {
  BatchJudge slow = with_baseline({}, 0.01, 20);
  for (int i = 0; i < 3; ++i) slow.add_canary(s(0.01, 71));
  EXPECT_EQ(slow.verdict(false).kind, Verdict::Kind::fail);
  EXPECT_NE(slow.verdict(false).reason.find("p99_ms 71 above 70"), std::string::npos);
  BatchJudge busy = with_baseline({}, 0.01, 20, 0.3);
  for (int i = 0; i < 3; ++i) busy.add_canary(s(0.01, 20, 0.55));
  EXPECT_NE(busy.verdict(false).reason.find("saturation"), std::string::npos);
  BatchJudge fine = with_baseline({}, 0.01, 20, 0.3);
  for (int i = 0; i < 5; ++i) fine.add_canary(s(0.01, 69, 0.49));
  EXPECT_EQ(fine.verdict(true).kind, Verdict::Kind::pass);
}

TEST(Judge, ASilentCanaryDoesNotPass) {
  BatchJudge j = with_baseline({}, 0.01);
  EXPECT_EQ(j.verdict(false).kind, Verdict::Kind::pending);
  Verdict v = j.verdict(true);
  EXPECT_EQ(v.kind, Verdict::Kind::fail);
  EXPECT_NE(v.reason.find("only 0 health samples"), std::string::npos) << v.reason;
  for (int i = 0; i < 4; ++i) j.add_canary(s(0.01));
  EXPECT_EQ(j.verdict(true).kind, Verdict::Kind::fail);
  j.add_canary(s(0.01));
  EXPECT_EQ(j.verdict(true).kind, Verdict::Kind::pass);
}

TEST(Judge, HostsThatSayTheyAreUnhealthyCount) {
  BatchJudge j = with_baseline({}, 0.01);
  for (int i = 0; i < 3; ++i) j.add_canary({0, 0, 0, false});
  EXPECT_EQ(j.verdict(false).kind, Verdict::Kind::fail);
  EXPECT_NE(j.verdict(false).reason.find("unhealthy"), std::string::npos);
}

TEST(MannWhitney, MatchesTheTextbookApproximation) {
  // No overlap, 5 against 5: U = 25, z = (25 - 12.5 - 0.5) / sqrt(22.917) = 2.507.
  EXPECT_NEAR(mann_whitney_p_greater({6, 7, 8, 9, 10}, {1, 2, 3, 4, 5}), 0.00609, 0.0001);
  // The other way round: no evidence at all.
  EXPECT_GT(mann_whitney_p_greater({1, 2, 3, 4, 5}, {6, 7, 8, 9, 10}), 0.99);
  // Identical samples (all ties).
  EXPECT_GT(mann_whitney_p_greater({3, 3, 3}, {3, 3, 3}), 0.4);
  EXPECT_EQ(mann_whitney_p_greater({}, {1}), 1.0);
  EXPECT_EQ(without_outliers({1, 2, 2, 3, 2, 100}).size(), 5u);
}

TEST(MannWhitney, FailsOnlyOnASignificantAndLargeEnoughDifference) {
  HealthThresholds t;
  t.judge = HealthThresholds::Judge::mann_whitney;
  auto judge = [&](double shift) {
    BatchJudge j(t);
    for (int i = 0; i < 20; ++i) {
      j.add_baseline(s(0.01, 20 + (i % 7), 0.3));
      j.add_canary(s(0.01, 20 + (i % 7) + shift, 0.3));
    }
    return j.verdict(true);
  };
  EXPECT_EQ(judge(0).kind, Verdict::Kind::pass);
  // Always 10 ms slower: significant, but below the 50 ms that matters.
  std::vector<double> base, slower;
  for (int i = 0; i < 20; ++i) {
    base.push_back(20 + (i % 7));
    slower.push_back(30 + (i % 7));
  }
  ASSERT_LT(mann_whitney_p_greater(slower, base), 0.001);
  EXPECT_EQ(judge(10).kind, Verdict::Kind::pass);
  Verdict v = judge(80);
  EXPECT_EQ(v.kind, Verdict::Kind::fail);
  EXPECT_NE(v.reason.find("p99_ms worse than control"), std::string::npos) << v.reason;
  // Too few control samples: no verdict can be trusted, so no pass.
  BatchJudge thin(t);
  for (int i = 0; i < 10; ++i) thin.add_canary(s(0.01));
  EXPECT_EQ(thin.verdict(true).kind, Verdict::Kind::fail);
}

}  // namespace
}  // namespace drover::coordinator
