// Prometheus as a health source, end to end (issue 18): a real Prometheus
// (Debian's) scrapes the demo service on each host (labelled `host`), the
// agents push no health at all, and a pipeline's PromQL checks alone judge
// each batch: against a bound, and against the same hosts before the run
// changed them. An unreachable Prometheus is inconclusive, never a pass.
#include <gtest/gtest.h>

#include <memory>

#include <nlohmann/json.hpp>

#include "tests/support/fleet.hpp"
#include "tests/support/prometheus.hpp"

namespace drover::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const json kErrorRatio = {{"name", "error_ratio"},
                          {"query", "max(demo_error_ratio{host=~\"{{hosts}}\"})"},
                          {"max", 0.05}};
const json kP99 = {{"name", "p99"},
                   {"query", "max(demo_latency_p99_seconds{host=~\"{{hosts}}\"})"},
                   {"max_increase", 0.05}};

class PrometheusHealth : public ::testing::Test {
 protected:
  void SetUp() override {
    prometheus_ = std::make_unique<PrometheusProcess>(dir_.path() / "prometheus",
                                                      std::vector<ScrapeTarget>{});
    ASSERT_TRUE(prometheus_->ok()) << prometheus_->error();
    v1_ = f_.push("v1", {{"error_rate", 0.01}, {"p99_ms", 12}, {"saturation", 0.2}});
    f_.configure_coordinator({{"prometheus", {{"allow", {prometheus_->url()}}}}});
    f_.start_coordinator();
    f_.start_origin();
    AgentShape shape;
    shape.health_push = false;  // the coordinator hears of health from Prometheus only
    f_.start_agents({"a1", "a2", "a3"}, "r1", 2, shape);
    std::vector<ScrapeTarget> targets;
    for (const auto& h : f_.hosts()) {
      targets.push_back({"127.0.0.1:" + std::to_string(f_.service_port(h)), {{"host", h}}});
    }
    prometheus_->set_targets(targets);
    ASSERT_TRUE(f_.registered(v1_));
  }

  // The pipeline, judged by these queries only (no agent sample needed).
  void apply_pipeline(const json& queries, int bake_s, int inconclusive_limit = 3) {
    int status = 0;
    json answer = f_.api("POST", "/pipelines",
                         {{"service", "web"},
                          {"strategy", {{"batch_size", 1}}},
                          {"health_checks",
                           {{"bake_s", bake_s},
                            {"min_samples", 0},
                            {"prometheus",
                             {{"url", prometheus_->url()},
                              {"interval_s", 1},
                              {"failure_limit", 2},
                              {"inconclusive_limit", inconclusive_limit},
                              {"queries", queries}}}}},
                          {"timeouts", {{"ready_s", 60}, {"converge_s", 60}, {"rollback_s", 60}}},
                          {"artifact_ready", "origin"}},
                         &status);
    ASSERT_TRUE(status == 201 || status == 200) << status << " " << answer.dump();
    ASSERT_TRUE(queries.is_array());
  }

  json deploy(const std::string& artifact) {
    int status = 0;
    json d =
        f_.api("POST", "/deploys", {{"pipeline_id", "web"}, {"artifact_id", artifact}}, &status);
    EXPECT_EQ(status, 201) << d.dump();
    return f_.wait_done(d["deploy_id"]);
  }

  // v1 everywhere, judged by Prometheus, once it scrapes every host.
  void first_release() {
    // Prometheus has found the three targets (nothing serves on them yet).
    ASSERT_TRUE(eventually([&] { return prometheus_->query("count(up)") == "3"; }, 60s))
        << prometheus_->log();
    apply_pipeline(json::array({kErrorRatio}), 2);
    json d = deploy(v1_);
    ASSERT_EQ(d["state"], "succeeded") << d.dump() << f_.coordinator_history();
    for (const auto& b : d["batches"]) {
      EXPECT_NE(b["verdict"].get<std::string>().find("Prometheus measurements"), std::string::npos)
          << b.dump();
    }
  }

  TempDir dir_;
  TestFleet f_{dir_.path()};
  std::unique_ptr<PrometheusProcess> prometheus_;  // destroyed before the fleet's directory
  std::string v1_;
};

TEST_F(PrometheusHealth, PromQLAloneCatchesRegressionsTheAgentsNeverReported) {
  const std::string slow = f_.push("v2", {{"error_rate", 0.01}, {"p99_ms", 200}});
  const std::string failing = f_.push("v3", {{"error_rate", 0.5}, {"p99_ms", 12}});
  ASSERT_TRUE(f_.registered(slow));
  ASSERT_TRUE(f_.registered(failing));
  ASSERT_NO_FATAL_FAILURE(first_release());

  // p99 against the baseline: the same hosts before the run changed them.
  apply_pipeline(json::array({kErrorRatio, kP99}), 4);
  json d = deploy(slow);
  ASSERT_EQ(d["state"], "rolled_back") << d.dump();
  EXPECT_NE(d["reason"].get<std::string>().find("Prometheus query 'p99': 0.2 is above the "
                                                "baseline's 0.012 by more than 0.05"),
            std::string::npos)
      << d["reason"];
  // The deploy view shows the measurements: the canary's value beside the
  // baseline's, with the counts of each outcome.
  const json region = d["environments"][0]["waves"][0]["regions"][0];
  ASSERT_TRUE(region.contains("analysis")) << region.dump();
  bool shown = false;
  for (const auto& a : region["analysis"]) {
    if (a["query"] != "p99" || a["batch"] != 0) continue;
    shown = true;
    EXPECT_EQ(a["outcome"], "fail");
    EXPECT_DOUBLE_EQ(a["canary"].get<double>(), 0.2);
    EXPECT_DOUBLE_EQ(a["baseline"].get<double>(), 0.012);
    EXPECT_GE(a["failed"].get<int>(), 2);
  }
  EXPECT_TRUE(shown) << region["analysis"].dump();

  // An error ratio over its bound.
  d = deploy(failing);
  ASSERT_EQ(d["state"], "rolled_back") << d.dump();
  EXPECT_NE(d["reason"].get<std::string>().find("Prometheus query 'error_ratio': 0.5 is above max"),
            std::string::npos)
      << d["reason"];
  for (const auto& h : f_.hosts()) {
    EXPECT_TRUE(eventually([&] { return f_.serving(h).first == v1_; })) << h;
  }
  // None of it came from the agents: without a health endpoint to probe,
  // their samples say only that the service runs, never a figure.
  const json hosts =
      f_.api("GET", "/hosts");  // kept: a range-for over a temporary's element dangles
  for (const auto& h : hosts["hosts"]) {
    for (const auto& [service, sample] : h["health"].items()) {
      EXPECT_EQ(sample["error_rate"], 0.0) << h.dump();
      EXPECT_EQ(sample["p99_ms"], 0.0) << h.dump();
    }
  }
}

TEST_F(PrometheusHealth, AnUnreachablePrometheusIsInconclusiveAndFailsTheBatchPastTheLimit) {
  const std::string good = f_.push("v2", {{"error_rate", 0.01}, {"p99_ms", 12}});
  ASSERT_TRUE(f_.registered(good));
  ASSERT_NO_FATAL_FAILURE(first_release());
  // A long bake: the batch can only end early by failing.
  apply_pipeline(json::array({kErrorRatio}), 60, 2);
  prometheus_->kill();
  json d = deploy(good);
  ASSERT_EQ(d["state"], "rolled_back") << d.dump();
  EXPECT_NE(d["reason"].get<std::string>().find(
                "Prometheus query 'error_ratio' was inconclusive 3 times (inconclusive_limit 2)"),
            std::string::npos)
      << d["reason"];
  const json first = d["batches"][0];
  EXPECT_EQ(first["status"], "failed") << first.dump();
  EXPECT_LT(first["finished_ms"].get<std::int64_t>() - first["converged_ms"].get<std::int64_t>(),
            60'000)
      << first.dump();
  for (const auto& h : f_.hosts()) {
    EXPECT_TRUE(eventually([&] { return f_.serving(h).first == v1_; })) << h;
  }
}

}  // namespace
}  // namespace drover::testing
