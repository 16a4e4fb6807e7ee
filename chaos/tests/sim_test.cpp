// The seeded simulation (docs/CHAOS.md): random fault schedules keep every
// invariant; a run replays exactly from its seed; a planted bug is caught.
#include <gtest/gtest.h>

#include "chaos/sim/sim.hpp"

namespace drover::chaos {
namespace {

std::string describe(const SimResult& r) {
  std::string out = "seed " + std::to_string(r.seed) + ":\n";
  for (const auto& v : r.violations) {
    out += "  " + v.invariant + " " + v.subject + " t=" + std::to_string(v.at_ms) + ": " +
           v.detail + "\n";
  }
  for (const auto& s : r.schedule) out += "  " + s + "\n";
  return out;
}

// CI's few hundred schedules, in four cases of 50 seeds that CTest runs in
// parallel (each about 70 s in the optimized build).
class ChaosSimSeeds : public ::testing::TestWithParam<std::uint64_t> {};

TEST_P(ChaosSimSeeds, RandomFaultSchedulesKeepEveryInvariant) {
  int deploys = 0, crashes = 0;
  const std::uint64_t first = GetParam();
  for (std::uint64_t seed = first; seed < first + 50; ++seed) {
    SimOptions o;
    o.seed = seed;
    const SimResult r = run_sim(o);
    EXPECT_TRUE(r.violations.empty()) << describe(r);
    deploys += r.deploys;
    crashes += r.coordinator_crashes + r.agent_crashes;
  }
  // The schedules did something: deploys ran, and processes crashed under them.
  EXPECT_GT(deploys, 250);
  EXPECT_GT(crashes, 50);
}

INSTANTIATE_TEST_SUITE_P(Seeds, ChaosSimSeeds, ::testing::Values(1, 51, 101, 151));

TEST(ChaosSim, ASeedReplaysExactly) {
  SimOptions o;
  o.seed = 7;
  const SimResult a = run_sim(o), b = run_sim(o);
  EXPECT_EQ(a.schedule, b.schedule);
  EXPECT_EQ(a.virtual_ms, b.virtual_ms);
  EXPECT_EQ(a.messages, b.messages);
  EXPECT_EQ(a.dropped, b.dropped);
  EXPECT_EQ(a.deploys, b.deploys);
  EXPECT_EQ(a.succeeded, b.succeeded);
  EXPECT_EQ(a.rolled_back, b.rolled_back);
  EXPECT_EQ(a.superseded, b.superseded);
  EXPECT_EQ(a.coordinator_crashes, b.coordinator_crashes);
  EXPECT_EQ(a.agent_crashes, b.agent_crashes);
  ASSERT_EQ(a.violations.size(), b.violations.size());
  for (std::size_t i = 0; i < a.violations.size(); ++i) {
    EXPECT_EQ(a.violations[i].invariant, b.violations[i].invariant);
    EXPECT_EQ(a.violations[i].subject, b.violations[i].subject);
    EXPECT_EQ(a.violations[i].at_ms, b.violations[i].at_ms);
  }
}

// A planted bug in the deploy machine (test only): each batch passes, and
// the next starts, 5 s before its bake ends. The bake checker must see it.
TEST(ChaosSim, ABatchStartedBeforeTheBakeEndsIsCaught) {
  int caught = 0;
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    SimOptions o;
    o.seed = seed;
    o.plant_early_batch = true;
    for (const auto& v : run_sim(o).violations) caught += v.invariant == "bake";
  }
  EXPECT_GT(caught, 0);
}

}  // namespace
}  // namespace drover::chaos
