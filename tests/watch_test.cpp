// The watch view of a deploy (tools/drover/watch): frames rendered from a
// deploy's view and its audit records, the lines of the plain view, and the
// exit status each end state maps to.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tools/drover/cli.hpp"
#include "tools/drover/watch.hpp"

namespace drover::cli {
namespace {

using nlohmann::json;

const std::string kNew = "sha256:1f65cac92769aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const std::string kOld = "sha256:d144a3d69458bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

// production/canary baking its second of three batches in us-east-2, with
// a host on the new release and two on the old.
json view() {
  json v = json::parse(R"({
    "deploy_id": "web-7", "state": "baking", "env": "production", "wave": "canary",
    "artifact_id": "NEW", "prior_artifact_id": "OLD", "started_by": "alice", "now_ms": 1000000,
    "environments": [
      {"name": "staging", "status": "passed", "waves": []},
      {"name": "production", "status": "deploying",
       "gate": {"required": 1, "approvals": [{"person": "bob"}], "rejection": null,
                "deadline_ms": 0},
       "waves": [{"name": "canary", "status": "running", "regions": [
         {"region": "us-east-2", "cluster": "", "status": "baking", "batch": 1,
          "bake_until_ms": 1012000, "verdict": "",
          "batches": [{"status": "passed"}, {"status": "baking"}, {"status": "pending"}],
          "hosts_by_version": {}}]},
         {"name": "continents", "status": "pending", "regions": []}]}],
    "hosts": [
      {"host": "h1", "env": "production", "region": "us-east-2", "running": "NEW",
       "health": {"error_rate": 0.02, "p99_ms": 14, "ok": true}},
      {"host": "h2", "env": "production", "region": "us-east-2", "running": "OLD",
       "health": {"error_rate": 0.01, "p99_ms": 12, "ok": true}}]})");
  v["artifact_id"] = kNew;
  v["prior_artifact_id"] = kOld;
  v["hosts"][0]["running"] = kNew;
  v["hosts"][1]["running"] = kOld;
  v["environments"][1]["waves"][0]["regions"][0]["hosts_by_version"] = {{kNew, 1}, {kOld, 2}};
  return v;
}

json records() {
  return {{{"at", 999'000},
           {"who", "system"},
           {"what", "batch.passed"},
           {"env", "production"},
           {"detail", {{"region", "us-east-2"}, {"batch", 0}, {"samples", 5}}}},
          {{"at", 999'500},
           {"who", "system"},
           {"what", "batch.started"},
           {"env", "production"},
           {"detail", {{"region", "us-east-2"}, {"batch", 1}, {"hosts", 1}}}}};
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

TEST(Watch, AFrameShowsEachEnvironmentWaveAndRegionWithItsProgressHealthAndBake) {
  const auto frame = render_frame(view(), records(), {1'000'000, 120, 6});
  const std::string text = joined(frame);
  EXPECT_EQ(frame[0], "web-7  baking  production/canary  1f65cac92769 (was d144a3d69458)");
  EXPECT_NE(text.find("staging      passed"), std::string::npos) << text;
  EXPECT_NE(text.find("gate: 1 of 1 approvals [bob]"), std::string::npos) << text;
  // One batch of three passed; baking, 12 s of bake left on the coordinator's clock.
  EXPECT_NE(text.find("[######--------------] 1/3 baking       bake 12 s left"), std::string::npos)
      << text;
  EXPECT_NE(text.find("1x 1f65cac92769, 2x d144a3d69458"), std::string::npos) << text;
  EXPECT_NE(text.find("health err 2.0% p99 14 ms vs base err 1.0% p99 12 ms"), std::string::npos)
      << text;
  EXPECT_NE(text.find("production/us-east-2"), std::string::npos) << text;
  // A wave not started yet is named, with its state.
  EXPECT_NE(text.find("\n  continents  pending\n"), std::string::npos) << text;
  EXPECT_NE(text.find("batch 2 started (1 hosts)"), std::string::npos) << text;
  for (const auto& line : frame) EXPECT_LE(line.size(), 120u) << line;
  // A narrow terminal cuts lines, never wraps them (a wrapped line would
  // break the redraw).
  for (const auto& line : render_frame(view(), records(), {1'000'000, 50, 6})) {
    EXPECT_LE(line.size(), 50u) << line;
  }
}

// Prometheus queries (issue 18): the current batch's, beside the baseline
// where the query compares; an earlier batch's are not shown.
TEST(Watch, TheCurrentBatchsPrometheusMeasurementsAreShown) {
  json v = view();
  v["environments"][1]["waves"][0]["regions"][0]["analysis"] = json::parse(R"([
    {"batch": 0, "query": "old", "outcome": "pass", "canary": 1, "passed": 3, "failed": 0,
     "inconclusive": 0},
    {"batch": 1, "query": "p99", "outcome": "fail", "canary": 0.2, "baseline": 0.012,
     "passed": 1, "failed": 2, "inconclusive": 0, "detail": "0.2 is above the baseline's 0.012"},
    {"batch": 1, "query": "errors", "outcome": "inconclusive", "canary": null, "baseline": null,
     "passed": 0, "failed": 0, "inconclusive": 1, "detail": "canary: connection refused"}])");
  const std::string text = joined(render_frame(v, json::array(), {1'000'000, 200, 6}));
  EXPECT_NE(text.find("promql p99: 0.2 (baseline 0.012) fail [1 pass, 2 fail, 0 inconclusive] "
                      "0.2 is above the baseline's 0.012"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("promql errors: - inconclusive [0 pass, 0 fail, 1 inconclusive] canary: "
                      "connection refused"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("promql old"), std::string::npos) << text;
}

TEST(Watch, AGateWaitingNamesWhoMayApproveAndTheCommand) {
  json v = view();
  v["state"] = "awaiting_approval";
  v["environments"][1]["status"] = "awaiting_approval";
  v["environments"][1]["gate"]["approvals"] = json::array();
  v["environments"][1]["gate"]["deadline_ms"] = 1'000'000 + 90'000;
  const std::string text = joined(render_frame(v, json::array(), {1'000'000, 200, 6}));
  EXPECT_NE(text.find("gate: 0 of 1 approvals; waiting for an approver other than alice "
                      "(drover approve web-7), 90 s left"),
            std::string::npos)
      << text;
}

TEST(Watch, BatchesAreNumberedFromOneInEveryLine) {
  EXPECT_NE(record_line(records()[0]).find("batch 1 passed (5 samples)"), std::string::npos);
  json v = view();
  v["environments"][1]["waves"][0]["regions"][0]["status"] = "deploying";
  const std::string text = joined(render_frame(v, records(), {1'000'000, 120, 6}));
  EXPECT_NE(text.find("batch 2 of 3"), std::string::npos) << text;
}

TEST(Watch, HostileViewsRenderWithoutThrowing) {
  const json odd_analysis = json::parse(R"({"environments": [{"waves": [{"regions": [
      {"batch": 0, "analysis": [7, null, {"batch": 0, "canary": "x"}]}]}]}]})");
  for (const json& v : {json(nullptr), json::array(), json{{"environments", 5}},
                        json{{"environments", {{{"waves", {{{"regions", {7}}}}}}}}},
                        json{{"state", 3}, {"hosts", {nullptr}}}, odd_analysis}) {
    EXPECT_NO_THROW(render_frame(v, json{{"x", 1}}, {0, 80, 6})) << v.dump();
  }
  EXPECT_NO_THROW(record_line(json{{"detail", {{"batch", "x"}}}}));
}

TEST(Watch, EachEndStateHasItsExitStatus) {
  EXPECT_EQ(exit_for_state("succeeded"), 0);
  EXPECT_EQ(exit_for_state("rolled_back"), kExitRolledBack);
  EXPECT_EQ(exit_for_state("failed"), kExitDeployFailed);
  EXPECT_EQ(exit_for_state("rejected"), kExitRejected);
  EXPECT_EQ(exit_for_state("expired"), kExitExpired);
  EXPECT_EQ(exit_for_state("superseded"), kExitSuperseded);
  EXPECT_EQ(exit_for_state("cancelled"), kExitSuperseded);
  EXPECT_EQ(progress_bar(0, 0, 4), "[----]");
  EXPECT_EQ(progress_bar(3, 3, 4), "[####]");
}

}  // namespace
}  // namespace drover::cli
