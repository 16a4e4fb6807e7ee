// Faults against a real fleet (docs/CHAOS.md): CI's short subset of
// `drover-chaos run all`. Two scenarios on real processes (in network
// namespaces when the tests run as root, as CI does), and the planted early
// batch, which the real fleet's bake checker must catch.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/support/test_support.hpp"

namespace drover::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

struct Report {
  ProcessResult process;
  json scenario;  // the report's one scenario
  // Where a failing run kept its logs ("" none). Not under the test's own
  // temporary directory: that one is 0700, and the fleet's services run as
  // an unprivileged user who must reach their releases.
  fs::path logs;
};

Report run_chaos(const std::vector<std::string>& args) {
  TempDir dir;
  std::vector<std::string> argv = {binary("drover-chaos").string(), "run"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("--json");
  argv.push_back((dir / "report.json").string());
  Report r;
  r.process = run(argv, 600s);
  const std::string out = r.process.out;
  if (const auto at = out.find("logs: /tmp/drover-chaos-"); at != std::string::npos) {
    const auto from = at + 6;
    r.logs = out.substr(from, out.find('\n', from) - from);
  }
  json j = json::parse(read_file(dir / "report.json"), nullptr, false);
  if (j.is_object() && j.value("format", "") == "drover.chaos-report.v1" &&
      j["scenarios"].size() == 1) {
    r.scenario = j["scenarios"][0];
  }
  return r;
}

std::string why(const Report& r) {
  return r.process.out + r.process.err;
}

TEST(ChaosRun, TheCoordinatorKilledMidRollbackStillRollsBackTheRightScopeInTime) {
  const Report r = run_chaos({"coordinator-kill-mid-rollback", "--seed", "7"});
  ASSERT_TRUE(r.scenario.is_object()) << why(r);
  EXPECT_EQ(r.process.exit_code, 0) << why(r);
  EXPECT_TRUE(r.scenario["pass"].get<bool>()) << why(r);
  EXPECT_EQ(r.scenario["outcome"], "rolled_back") << why(r);
  EXPECT_GE(r.scenario["rollback_ms"].get<std::int64_t>(), 0) << why(r);
  // The crash point was reached: the fault happened (the run's log says so).
  EXPECT_NE(r.scenario["log"].dump().find("coordinator crashed after 'rollback.started'"),
            std::string::npos)
      << r.scenario["log"].dump(1);
}

TEST(ChaosRun, ARegionPartitionedDuringItsWaveConvergesAfterHealing) {
  const Report r = run_chaos({"region-partition", "--seed", "3"});
  ASSERT_TRUE(r.scenario.is_object()) << why(r);
  if (r.scenario["skipped"].get<bool>()) {
    GTEST_SKIP() << r.scenario["skip_reason"].get<std::string>();
  }
  EXPECT_EQ(r.process.exit_code, 0) << why(r);
  EXPECT_TRUE(r.scenario["pass"].get<bool>()) << why(r);
  EXPECT_EQ(r.scenario["mode"], "namespaces");
  EXPECT_EQ(r.scenario["outcome"], "succeeded") << why(r);
}

TEST(ChaosRun, ABatchStartedBeforeTheBakeEndsIsCaughtOnARealFleet) {
  const Report r = run_chaos({"no-faults", "--plant-early-batch", "1500"});
  ASSERT_TRUE(r.scenario.is_object()) << why(r);
  EXPECT_EQ(r.process.exit_code, 1) << why(r);
  bool caught = false;
  for (const auto& v : r.scenario["violations"]) caught |= v["invariant"] == "bake";
  EXPECT_TRUE(caught) << why(r);
  // It failed on purpose: its logs are not kept.
  ASSERT_FALSE(r.logs.empty()) << why(r);
  std::error_code ec;
  fs::remove_all(r.logs, ec);
  EXPECT_FALSE(ec) << r.logs;
}

TEST(ChaosRun, ListNamesEveryScenarioAndAnUnknownOneIsAUsageError) {
  ProcessResult list = run({binary("drover-chaos").string(), "list"});
  EXPECT_EQ(list.exit_code, 0);
  for (const char* name : {"agents-kill-mid-fetch", "coordinator-kill-mid-rollback",
                           "region-partition", "disk-full-mid-fetch", "forged-plans"}) {
    EXPECT_NE(list.out.find(name), std::string::npos) << name;
  }
  ProcessResult bad = run({binary("drover-chaos").string(), "run", "no-such-scenario"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("no scenario 'no-such-scenario'"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace drover::testing
