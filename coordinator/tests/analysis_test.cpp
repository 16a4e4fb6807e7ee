// Prometheus as a health source, without a Prometheus: the answer parser
// against hostile bodies, one round of a check against a scripted server,
// the verdict of a batch's measurements, the query templates, and the
// pipeline field that declares a check.
#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "coordinator/analysis/prometheus.hpp"
#include "coordinator/health/analysis.hpp"
#include "coordinator/pipelines/pipeline_codec.hpp"

namespace drover::coordinator {
namespace {

using nlohmann::json;
using Outcome = Measurement::Outcome;

std::string vector_of(std::initializer_list<const char*> values) {
  json result = json::array();
  int i = 0;
  for (const char* v : values) {
    result.push_back({{"metric", {{"host", "h" + std::to_string(i++)}}}, {"value", {1.5, v}}});
  }
  return json{{"status", "success"}, {"data", {{"resultType", "vector"}, {"result", result}}}}
      .dump();
}

TEST(PrometheusAnswer, AScalarOrTheWorstSeriesOfAVector) {
  auto scalar = parse_prometheus_answer(
      200, R"({"status":"success","data":{"resultType":"scalar","result":[1.5,"0.25"]}})");
  ASSERT_TRUE(scalar.ok()) << scalar.error().message;
  EXPECT_DOUBLE_EQ(*scalar, 0.25);
  auto worst = parse_prometheus_answer(200, vector_of({"0.1", "0.7", "0.3"}));
  ASSERT_TRUE(worst.ok());
  EXPECT_DOUBLE_EQ(*worst, 0.7);
  // A series without a number hides no other's.
  auto some_nan = parse_prometheus_answer(200, vector_of({"NaN", "0.4", "NaN"}));
  ASSERT_TRUE(some_nan.ok());
  EXPECT_DOUBLE_EQ(*some_nan, 0.4);
}

TEST(PrometheusAnswer, EveryHostileOrEmptyAnswerIsRefusedNamingWhy) {
  const std::pair<std::string, std::string> cases[] = {
      {"not json at all", "no JSON document"},
      {"[]", "no JSON document"},
      {R"({"status":"error","errorType":"bad_data","error":"parse error at char 4"})",
       "parse error at char 4"},
      {R"({"status":"success"})", "no data object"},
      {R"({"status":"success","data":{"resultType":"vector","result":[]}})", "no data"},
      {R"({"status":"success","data":{"resultType":"matrix","result":[]}})", "instant vector"},
      {R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}})",
       "without a value"},
      {R"({"status":"success","data":{"resultType":"scalar","result":[1,2]}})", "not [time"},
      {R"({"status":"success","data":{"resultType":"scalar","result":[1,"12abc"]}})",
       "not a number"},
      {R"({"status":"success","data":{"resultType":"scalar","result":[1,"NaN"]}})", "NaN"},
      // An infinite value bounds nothing: -Inf would pass every max, +Inf
      // as a baseline every max_increase.
      {R"({"status":"success","data":{"resultType":"scalar","result":[1,"-Inf"]}})", "-Inf"},
      {R"({"status":"success","data":{"resultType":"scalar","result":[1,"1e999"]}})", "1e999"},
      {vector_of({"NaN", "+Inf"}), "+Inf"},
      {R"({"status":"success","data":{"resultType":"vector","result":{"a":1}}})", "not an array"},
      {R"({"status":"success","data":{"resultType":7,"result":[]}})", "no resultType"},
  };
  for (const auto& [body, why] : cases) {
    auto r = parse_prometheus_answer(200, body);
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_NE(r.error().message.find(why), std::string::npos) << body << ": " << r.error().message;
  }
}

PromCheck two_queries() {
  PromCheck c;
  c.url = "http://127.0.0.1:9090";
  c.queries.push_back({"errors", R"(max(err{host=~"{{hosts}}"}))", 0.05, std::nullopt});
  c.queries.push_back(
      {"p99", R"(max(p99{host=~"{{hosts}}",release="{{release}}"}))", std::nullopt, 0.05});
  return c;
}

AnalysisRound round_of() {
  AnalysisRound r;
  r.now_ms = 50'000;
  r.baseline_ms = 10'000;
  r.canary = {{"web-1.eu"}, "new", "web", "prod", "eu-west-1"};
  r.baseline = {{"web-1.eu", "web-2.eu"}, "old", "web", "prod", "eu-west-1"};
  return r;
}

TEST(PrometheusRound, CanaryNowBaselineBeforeTheEnvironmentChanged) {
  PrometheusOptions o;
  o.allow = {"http://127.0.0.1:9090"};
  std::vector<std::tuple<std::string, std::int64_t>> asked;
  auto ms =
      measure(two_queries(), round_of(), o,
              [&](const std::string&, const std::string& q, std::int64_t at) -> Result<double> {
                asked.emplace_back(q, at);
                if (q.find("err") != std::string::npos) return 0.01;
                return q.find("new") != std::string::npos ? 0.200 : 0.012;
              });
  ASSERT_EQ(ms.size(), 2u);
  EXPECT_EQ(ms[0].outcome, Outcome::pass);
  EXPECT_EQ(ms[1].outcome, Outcome::fail);
  EXPECT_EQ(ms[1].canary, 0.2);
  EXPECT_EQ(ms[1].baseline, 0.012);
  EXPECT_NE(ms[1].detail.find("above the baseline's 0.012"), std::string::npos) << ms[1].detail;
  // The canary scope now, with its hosts' names escaped; the baseline the
  // region's hosts when the environment was entered, on the prior release.
  ASSERT_EQ(asked.size(), 3u);
  EXPECT_EQ(std::get<0>(asked[0]), R"(max(err{host=~"web-1\\.eu"}))");
  EXPECT_EQ(std::get<1>(asked[0]), 50'000);
  EXPECT_EQ(std::get<0>(asked[2]), R"(max(p99{host=~"web-1\\.eu|web-2\\.eu",release="old"}))");
  EXPECT_EQ(std::get<1>(asked[2]), 10'000);
}

// The baseline is a past instant: asked once per region, then kept; and
// an answer's text, whatever bytes it holds, reaches the records printable.
TEST(PrometheusRound, TheBaselineIsAskedOnceAndAnswersAreMadePrintable) {
  PrometheusOptions o;
  o.allow = {"http://127.0.0.1:9090"};
  std::map<std::string, double> baselines;
  int asked_baseline = 0;
  auto ask = [&](const std::string&, const std::string& q, std::int64_t) -> Result<double> {
    if (q.find("old") != std::string::npos) {
      ++asked_baseline;
      return 0.012;
    }
    return 0.0;
  };
  for (int i = 0; i < 3; ++i) {
    auto ms = measure(two_queries(), round_of(), o, ask, &baselines);
    EXPECT_EQ(ms[1].baseline, 0.012);
  }
  EXPECT_EQ(asked_baseline, 1);
  auto odd = measure(two_queries(), round_of(), o,
                     [](const std::string&, const std::string&, std::int64_t) -> Result<double> {
                       return make_error(Errc::refused, "bad \xc3 query \n\x01 at \xe2\x82");
                     });
  EXPECT_EQ(odd[0].detail, "canary: bad ? query ?? at ??");
  auto long_error = parse_prometheus_answer(
      400, R"({"status":"error","error":")" + std::string(5000, 'x') + "\\u00e9" + R"("})");
  ASSERT_FALSE(long_error.ok());
  EXPECT_LT(long_error.error().message.size(), 400u);
}

TEST(PrometheusRound, AnUnansweredQueryIsInconclusiveNeverAPass) {
  PrometheusOptions o;
  o.allow = {"http://127.0.0.1:9090"};
  auto down = measure(two_queries(), round_of(), o,
                      [](const std::string&, const std::string&, std::int64_t) -> Result<double> {
                        return make_error(Errc::io, "connection refused");
                      });
  for (const auto& m : down) {
    EXPECT_EQ(m.outcome, Outcome::inconclusive);
    EXPECT_NE(m.detail.find("connection refused"), std::string::npos);
  }
  // A baseline with no data leaves a comparison inconclusive too.
  auto no_base =
      measure(two_queries(), round_of(), o,
              [](const std::string&, const std::string& q, std::int64_t) -> Result<double> {
                if (q.find("old") != std::string::npos) {
                  return make_error(Errc::not_found, "the query returned no data");
                }
                return 0.0;
              });
  EXPECT_EQ(no_base[1].outcome, Outcome::inconclusive);
  EXPECT_NE(no_base[1].detail.find("baseline: the query returned no data"), std::string::npos);
  // A first release into the environment has no baseline to compare with.
  AnalysisRound first = round_of();
  first.baseline.release = "";
  auto no_prior = measure(
      two_queries(), first, o,
      [](const std::string&, const std::string&, std::int64_t) -> Result<double> { return 0.0; });
  EXPECT_EQ(no_prior[1].outcome, Outcome::inconclusive);
  EXPECT_NE(no_prior[1].detail.find("ran no release before"), std::string::npos);
  // A server the coordinator's config no longer allows is never asked.
  int calls = 0;
  auto refused =
      measure(two_queries(), round_of(), PrometheusOptions{},
              [&](const std::string&, const std::string&, std::int64_t) -> Result<double> {
                ++calls;
                return 0.0;
              });
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(refused[0].outcome, Outcome::inconclusive);
  EXPECT_NE(refused[0].detail.find("prometheus.allow"), std::string::npos);
}

Measurement taken(const std::string& query, Outcome o, const std::string& detail = "x") {
  Measurement m;
  m.query = query;
  m.outcome = o;
  m.detail = detail;
  return m;
}

Verdict verdict_of(const PromCheck& c, const std::vector<Measurement>& ms, bool over) {
  BatchAnalysis bake;
  for (const auto& m : ms) bake.add(m);
  return analysis_verdict(c, &bake, over);
}

TEST(AnalysisVerdict, LimitsFailABatchAndOnlyPassingMeasurementsPassIt) {
  PromCheck c = two_queries();
  c.failure_limit = 2;
  c.inconclusive_limit = 1;
  std::vector<Measurement> ms = {taken("errors", Outcome::pass), taken("p99", Outcome::pass)};
  EXPECT_EQ(verdict_of(c, ms, false).kind, Verdict::Kind::pending);
  EXPECT_EQ(verdict_of(c, ms, true).kind, Verdict::Kind::pass);
  // One failure is within failure_limit 2; the second fails the batch.
  ms.push_back(taken("p99", Outcome::fail, "0.2 is above max 0.1"));
  EXPECT_EQ(verdict_of(c, ms, false).kind, Verdict::Kind::pending);
  ms.push_back(taken("p99", Outcome::fail, "0.3 is above max 0.1"));
  Verdict v = verdict_of(c, ms, false);
  ASSERT_EQ(v.kind, Verdict::Kind::fail);
  EXPECT_EQ(
      v.reason,
      "Prometheus query 'p99': 0.3 is above max 0.1 (2 failed measurements, failure_limit 2)");
  EXPECT_FALSE(v.starved);
  // Inconclusive answers: one is tolerated, the second fails.
  std::vector<Measurement> dark = {taken("errors", Outcome::inconclusive, "canary: refused")};
  EXPECT_EQ(verdict_of(c, dark, false).kind, Verdict::Kind::pending);
  dark.push_back(taken("errors", Outcome::inconclusive, "canary: refused"));
  v = verdict_of(c, dark, false);
  ASSERT_EQ(v.kind, Verdict::Kind::fail);
  EXPECT_NE(v.reason.find("inconclusive 2 times (inconclusive_limit 1): canary: refused"),
            std::string::npos)
      << v.reason;
  // At the bake's end, a query without a passing measurement is no pass:
  // starved, so the machine may wait for one.
  std::vector<Measurement> half = {taken("errors", Outcome::pass)};
  v = verdict_of(c, half, true);
  ASSERT_EQ(v.kind, Verdict::Kind::fail);
  EXPECT_TRUE(v.starved);
  EXPECT_NE(v.reason.find("'p99' has no passing measurement"), std::string::npos);
}

TEST(QueryTemplate, UnknownOrUnclosedPlaceholdersAreRefused) {
  EXPECT_TRUE(check_query_template(R"(up{host=~"{{hosts}}",env="{{env}}"})", "q").ok());
  auto unknown = check_query_template(R"(up{host=~"{{host}}"})", "queries[0].query");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(
      unknown.error().message.find("queries[0].query names an unknown placeholder '{{host}}'"),
      std::string::npos);
  EXPECT_FALSE(check_query_template("up{{hosts", "q").ok());
  QueryScope s{{"a", "b.c"}, "rel", "web", "prod", "us"};
  EXPECT_EQ(expand_query("{{service}}/{{env}}/{{region}}/{{release}}/{{hosts}}", s),
            R"(web/prod/us/rel/a|b\\.c)");
}

json pipeline_with(const json& prometheus) {
  return {{"id", "web"},
          {"service", "web"},
          {"envs", {{{"name", "prod"}}}},
          {"health_checks", {{"bake_s", 30}, {"prometheus", prometheus}}}};
}

TEST(PipelinePrometheus, ReadWithDefaultsStoredOnlyWhenGivenAndRefusalsNameTheField) {
  const json check = {
      {"url", "http://127.0.0.1:9090"},
      {"queries",
       {{{"name", "errors"}, {"query", "max(err{host=~\"{{hosts}}\"})"}, {"max", 0.05}}}}};
  auto p = pipeline_from_json(pipeline_with(check));
  ASSERT_TRUE(p.ok()) << p.error().message;
  ASSERT_TRUE(p->params.prometheus);
  EXPECT_EQ(p->params.prometheus->interval_ms, 30'000);
  EXPECT_EQ(p->params.prometheus->failure_limit, 1);
  EXPECT_EQ(p->params.prometheus->inconclusive_limit, 3);
  const json stored = pipeline_to_json(*p);
  EXPECT_EQ(stored["health_checks"]["prometheus"]["queries"][0]["max"], 0.05);
  auto again = decode_pipeline_record(encode_pipeline_record(*p));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(pipeline_to_json(*again), stored);
  // Without a check, the record encodes as it always did.
  json plain = pipeline_with(check);
  plain["health_checks"].erase("prometheus");
  EXPECT_FALSE(
      pipeline_to_json(*pipeline_from_json(plain))["health_checks"].contains("prometheus"));

  const std::pair<json, std::string> bad[] = {
      {{{"url", "ftp://x"}, {"queries", check["queries"]}}, "health_checks.prometheus.url"},
      {{{"url", "http://p:9090/?a=1"}, {"queries", check["queries"]}}, "without a query"},
      {{{"url", "http://p:9090"}, {"queries", json::array()}}, "1 to 16 queries"},
      {{{"url", "http://p:9090"}, {"queries", {{{"name", "e"}, {"query", "up"}}}}},
       "needs a bound"},
      {{{"url", "http://p:9090"},
        {"queries", {{{"name", "e"}, {"query", "{{nope}}"}, {"max", 1}}}}},
       "unknown placeholder"},
      {{{"url", "http://p:9090"},
        {"queries",
         {{{"name", "e"}, {"query", "up"}, {"max", 1}},
          {{"name", "e"}, {"query", "up"}, {"max", 1}}}}},
       "names a query twice"},
      {{{"url", "http://p:9090"}, {"interval_s", 0}, {"queries", check["queries"]}}, "interval_s"},
      {{{"url", "http://p:9090"}, {"queries", check["queries"]}, {"step", 1}}, "step"},
  };
  for (const auto& [prometheus, why] : bad) {
    auto r = pipeline_from_json(pipeline_with(prometheus));
    ASSERT_FALSE(r.ok()) << prometheus.dump();
    EXPECT_NE(r.error().message.find(why), std::string::npos)
        << prometheus.dump() << ": " << r.error().message;
  }
}

}  // namespace
}  // namespace drover::coordinator
