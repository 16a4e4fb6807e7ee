// The promotion path of a version-2 pipeline (issue 13; docs/FORMATS.md,
// "Pipelines, version 2"): the example the issue asks for reads as written,
// and every malformed path is refused naming its field.
#include <gtest/gtest.h>

#include "coordinator/pipelines/pipeline_codec.hpp"
#include "coordinator/promotion/promotion.hpp"

namespace drover::coordinator {
namespace {

using nlohmann::json;

const json kExample = json::parse(R"([
  {"name": "staging", "waves": [{"name": "all", "regions": ["staging"]}]},
  {"name": "production",
   "gate": {"approvals": 2, "deadline_s": 86400},
   "freeze": [{"weekly": {"from": "Fri 16:00", "to": "Mon 08:00"}, "time_zone": "Europe/Berlin"},
              {"from": "2026-12-24T00:00:00Z", "to": "2026-12-27T00:00:00+01:00"}],
   "watch_s": 900,
   "waves": [{"name": "canary", "regions": ["us-east-2"], "bake_s": 1800},
             {"name": "continents", "regions": ["us-west-2", "eu-west-1/a", "ap-southeast-1"],
              "bake_s": 600},
             {"name": "rest", "regions": ["*"]}]}])");

TEST(Promotion, TheIssuesExampleReadsAsWritten) {
  auto envs = environments_from_json(kExample, 3600'000);
  ASSERT_TRUE(envs.ok()) << envs.error().message;
  ASSERT_EQ(envs->size(), 2u);
  const Environment& staging = (*envs)[0];
  EXPECT_EQ(staging.name, "staging");
  EXPECT_FALSE(staging.gate);
  ASSERT_EQ(staging.waves.size(), 1u);
  EXPECT_EQ(staging.waves[0].regions[0].region, "staging");
  const Environment& prod = (*envs)[1];
  ASSERT_TRUE(prod.gate);
  EXPECT_EQ(prod.gate->approvals, 2);
  EXPECT_EQ(prod.gate->deadline_ms, 86400'000);
  ASSERT_EQ(prod.waves.size(), 3u);
  EXPECT_EQ(prod.waves[0].bake_ms, 1800'000);
  EXPECT_EQ(prod.waves[1].regions[1].region, "eu-west-1");
  EXPECT_EQ(prod.waves[1].regions[1].cluster, "a");
  EXPECT_TRUE(prod.waves[2].rest);
  EXPECT_FALSE(prod.waves[2].bake_ms);
  EXPECT_EQ(prod.watch_ms, 900'000);
  ASSERT_EQ(prod.freeze.size(), 2u);
  EXPECT_EQ(prod.freeze[0].weekly_from_min, 4 * 1440 + 16 * 60);  // Friday 16:00
  EXPECT_EQ(prod.freeze[0].weekly_to_min, 8 * 60);                // Monday 08:00 (wraps)
  EXPECT_EQ(prod.freeze[0].time_zone, "Europe/Berlin");
  EXPECT_EQ(prod.freeze[1].from_ms, 1'798'070'400'000);  // 2026-12-24T00:00:00Z
  EXPECT_EQ(prod.freeze[1].to_ms, 1'798'326'000'000);    // 2026-12-27T00:00:00+01:00
  // Stored as read: written back, it reads the same.
  auto again = environments_from_json(environments_to_json(*envs), 3600'000);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(environments_to_json(*again), environments_to_json(*envs));
  // A gate without a deadline takes the pipeline's.
  auto gated = environments_from_json(
      json::parse(R"([{"name":"p","gate":{},"waves":[{"name":"w","regions":["r"]}]}])"), 7000);
  ASSERT_TRUE(gated.ok());
  EXPECT_EQ((*gated)[0].gate->approvals, 1);
  EXPECT_EQ((*gated)[0].gate->deadline_ms, 7000);
}

TEST(Promotion, EveryMalformedPathIsRefusedNamingItsField) {
  auto refused = [](const std::string& text, const std::string& needle) {
    auto envs = environments_from_json(json::parse(text), 3600'000);
    ASSERT_FALSE(envs.ok()) << text;
    EXPECT_NE(envs.error().message.find(needle), std::string::npos) << envs.error().message;
  };
  const std::string w = R"("waves":[{"name":"w","regions":["r1"]}])";
  refused("[]", "1 to 16 environments");
  refused(R"([{"name":"a",)" + w + R"(},{"name":"a","waves":[{"name":"w","regions":["r2"]}]}])",
          "environments[1].name: environment 'a' is listed twice");
  refused(R"([{"name":"a","waves":[]}])", "environments[0].waves must list 1 to 16 waves");
  refused(R"([{"name":"a","waves":[{"name":"w","regions":["r1"]},{"name":"w","regions":["r2"]}]}])",
          "environments[0].waves[1].name: wave 'w' is listed twice");
  // A region belongs to one place in the path.
  refused(R"([{"name":"a",)" + w + R"(},{"name":"b",)" + w + "}]",
          "environments[1].waves[0].regions[0]: 'r1' overlaps environments[0].waves[0].regions[0]");
  refused(R"([{"name":"a","waves":[{"name":"w","regions":["r1/c1","r1"]}]}])", "'r1' overlaps");
  refused(R"([{"name":"a","waves":[{"name":"w","regions":["r1","r1/c1"]}]}])", "'r1/c1' overlaps");
  refused(R"([{"name":"a","waves":[{"name":"w","regions":["*","r1"]}]}])",
          "regions[0]: \"*\" stands alone");
  refused(
      R"([{"name":"a","waves":[{"name":"w","regions":["*"]}]},{"name":"b","waves":[{"name":"w","regions":["*"]}]}])",
      "only one wave of a pipeline is \"*\"");
  refused(R"([{"name":"a","waves":[{"name":"w","regions":["../x"]}]}])", "regions[0] (region)");
  refused(R"([{"name":"a","waves":[{"name":"w","regions":[]}]}])", "1 to 256 regions");
  refused(R"([{"name":"a","gate":{"approvals":6},)" + w + "}]", "environments[0].gate.approvals");
  refused(R"([{"name":"a","colour":1,)" + w + "}]", "colour");
  // Freeze windows.
  refused(
      R"([{"name":"a","freeze":[{"weekly":{"from":"Friday 4pm","to":"Mon 08:00"},"time_zone":"UTC"}],)" +
          w + "}]",
      "environments[0].freeze[0].weekly.from must be a day and a time");
  refused(R"([{"name":"a","freeze":[{"weekly":{"from":"Fri 16:00","to":"Mon 08:00"}}],)" + w + "}]",
          "environments[0].freeze[0].time_zone");
  refused(
      R"([{"name":"a","freeze":[{"weekly":{"from":"Fri 16:00","to":"Mon 08:00"},"time_zone":"../etc"}],)" +
          w + "}]",
      "is not a time zone name");
  refused(
      R"([{"name":"a","freeze":[{"from":"2026-12-27T00:00:00Z","to":"2026-12-24T00:00:00Z"}],)" +
          w + "}]",
      "freeze[0].to must be after");
  refused(R"([{"name":"a","freeze":[{"from":"tomorrow","to":"2026-12-24T00:00:00Z"}],)" + w + "}]",
          "freeze[0].from must be an RFC 3339 time");
  // Near misses: letters or signs where digits go, an offset out of range.
  for (const char* from : {"2026-12-24T00:00:00+ab:cd", "2026-12-24T00:00:00+01:0x",
                           "2026-12-24T-1:00:00Z", "2026-12-24T 1:00:00Z", "+026-12-24T00:00:00Z",
                           "2026-12-24T00:00:00+99:00", "2026-12-24T00:00:00", "2026-12-24"}) {
    refused(std::string(R"([{"name":"a","freeze":[{"from":")") + from +
                R"(","to":"2026-12-27T00:00:00Z"}],)" + w + "}]",
            "freeze[0].from must be an RFC 3339 time");
  }
}

}  // namespace
}  // namespace drover::coordinator

namespace drover::coordinator {
namespace {

json v2_pipeline() {
  return {{"format", "drover.pipeline.v2"},
          {"service", "web"},
          {"strategy", {{"kind", "rolling"}, {"batch_size", 2}}},
          {"health_checks", {{"bake_s", 60}}},
          {"environments", kExample}};
}

// A whole version-2 pipeline: each environment's overrides replace the
// pipeline's field as a whole, the stored form reads back the same, and the
// run's plan carries every setting resolved.
TEST(PipelineV2, OverridesResolvePerEnvironmentAndTheRecordReadsBack) {
  json body = v2_pipeline();
  body["environments"][1]["strategy"] = {{"kind", "canary"}, {"canary_percents", {5, 25}}};
  body["environments"][1]["health_checks"] = {{"bake_s", 300}};
  auto p = pipeline_from_json(body);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->format, 2);
  ASSERT_EQ(p->settings.size(), 2u);
  EXPECT_EQ(p->settings[0].strategy.shape.batch_size, 2u);  // the pipeline's
  EXPECT_EQ(p->settings[0].params.bake_ms, 60'000);
  EXPECT_EQ(p->settings[0].watch_ms, 600'000);  // the default watch
  EXPECT_EQ(p->settings[1].strategy.kind, "canary");
  EXPECT_EQ(p->settings[1].params.bake_ms, 300'000);
  EXPECT_EQ(p->settings[1].watch_ms, 900'000);
  const std::string stored = encode_pipeline_record(*p);
  auto back = decode_pipeline_record(stored);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(encode_pipeline_record(*back), stored);

  auto plan = run_plan(*p);
  ASSERT_TRUE(plan.ok()) << plan.error().message;
  ASSERT_EQ(plan->envs.size(), 2u);
  EXPECT_EQ(plan->envs[1].shape.canary_percents, (std::vector<double>{5, 25}));
  ASSERT_TRUE(plan->envs[1].frozen);
  // Friday 2026-12-04 17:00 in Berlin (16:00 UTC): inside the weekly window;
  // the Wednesday before: outside; Christmas: the absolute window.
  EXPECT_NE(plan->envs[1].frozen(1'796'400'000'000), "");
  EXPECT_EQ(plan->envs[1].frozen(1'796'200'000'000), "");
  EXPECT_NE(plan->envs[1].frozen(1'798'200'000'000), "");
  EXPECT_FALSE(plan->envs[0].frozen);
}

// Releases of several services (issue 16): dependencies name services with
// a pipeline and never lead back.
TEST(PipelineV2, DependenciesNameKnownServicesAndMakeNoCycle) {
  std::map<std::string, std::vector<std::string>> g = {{"a", {}}, {"b", {"a"}}, {"c", {"a", "b"}}};
  EXPECT_TRUE(check_dependencies(g, "c").ok());
  g["a"] = {"c"};
  auto cycle = check_dependencies(g, "a");
  ASSERT_FALSE(cycle.ok());
  EXPECT_NE(cycle.error().message.find("a -> c -> a"), std::string::npos) << cycle.error().message;
  g["a"] = {"d"};
  auto unknown = check_dependencies(g, "a");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("service 'd', which no pipeline deploys"),
            std::string::npos);
  // The field: a list of distinct services, never the pipeline's own.
  json b = v2_pipeline();
  b["depends_on"] = {"db", "cache"};
  auto p = pipeline_from_json(b);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->depends_on, (std::vector<std::string>{"db", "cache"}));
  EXPECT_EQ(pipeline_to_json(*p)["depends_on"], b["depends_on"]);
  EXPECT_FALSE(pipeline_to_json(*pipeline_from_json(v2_pipeline())).contains("depends_on"));
  b["depends_on"] = {"web"};
  EXPECT_NE(pipeline_from_json(b).error().message.find("cannot depend on itself"),
            std::string::npos);
  b["depends_on"] = {"db", "db"};
  EXPECT_NE(pipeline_from_json(b).error().message.find("appears twice"), std::string::npos);
}

TEST(PipelineV2, BadVersion2FieldsAreRefusedNamingThem) {
  auto refused = [](json body, const std::string& expect) {
    auto p = pipeline_from_json(body);
    ASSERT_FALSE(p.ok()) << body.dump();
    EXPECT_NE(p.error().message.find(expect), std::string::npos) << p.error().message;
  };
  json b = v2_pipeline();
  b["format"] = "drover.pipeline.v9";
  refused(b, "format must be 'drover.pipeline.v2'");
  b = v2_pipeline();
  b.erase("format");
  refused(b, "environments is a field of format");
  b = v2_pipeline();
  b["envs"] = json::array();
  refused(b, "envs");
  b = v2_pipeline();
  b.erase("environments");
  refused(b, "environments is required");
  b = v2_pipeline();
  b["environments"][1]["strategy"] = {{"kind", "feature_flag"}};
  refused(b, "environments[1].strategy.kind");
  b = v2_pipeline();
  b["environments"][1]["strategy"] = {{"kind", "blue_green"}, {"scope", "host"}};
  refused(b, "environments[1].strategy.scope");
  b = v2_pipeline();
  b["environments"][1]["strategy"] = {{"kind", "canary"}, {"traffic_percents", {1, 0.5}}};
  refused(b, "environments[1].strategy.traffic_percents[1]");
  b = v2_pipeline();
  b["environments"][1]["strategy"] = {{"kind", "canary"}, {"traffic_percents", {0.05}}};
  refused(b, "environments[1].strategy.traffic_percents[0]");
  b = v2_pipeline();
  b["environments"][1]["strategy"] = {
      {"kind", "canary"}, {"traffic_percents", {1}}, {"canary_percents", {1}}};
  refused(b, "exclude each other");
  b = v2_pipeline();
  b["environments"][1]["strategy"] = {{"kind", "rolling"}, {"scale_down_s", 60}};
  refused(b, "environments[1].strategy.scale_down_s");
  b = v2_pipeline();
  b["environments"][0]["health_checks"] = {{"bake_s", -1}};
  refused(b, "environments[0].health_checks.bake_s");
  b = v2_pipeline();
  b["environments"][0]["timeouts"] = {{"gate_s", 600}};
  refused(b, "environments[0].timeouts");
  b = v2_pipeline();
  b["environments"][1]["freeze"][0]["time_zone"] = "Mars/Olympus_Mons";
  refused(b, "environments[1].freeze[0].time_zone");
  b = v2_pipeline();
  b["environments"][1]["freeze"][0]["time_zone"] = "../../etc/passwd";
  refused(b, "environments[1].freeze[0].time_zone");
  b = v2_pipeline();
  b["watch_s"] = "soon";
  refused(b, "watch_s");
}

}  // namespace
}  // namespace drover::coordinator
