// Prometheus metrics (core/metrics): the text format as Prometheus' own
// promtool reads it, bounded label sets, the read-only listener.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "core/http/http.hpp"
#include "core/log/log.hpp"
#include "core/metrics/endpoint.hpp"
#include "core/metrics/metrics.hpp"
#include "core/world/clock.hpp"
#include "tests/support/test_support.hpp"

namespace drover {
namespace {

using metrics::Registry;
namespace fs = std::filesystem;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

fs::path promtool() {
  for (const char* p : {"/usr/bin/promtool", "/usr/local/bin/promtool"}) {
    if (fs::exists(p)) return p;
  }
  return {};
}

// promtool's verdict on a scrape: "" when it finds nothing wrong.
std::string promtool_check(const std::string& text) {
  const fs::path tool = promtool();
  if (tool.empty()) return "promtool is not installed (tools/setup.sh installs prometheus)";
  testing::TempDir dir;
  const fs::path file = dir.path() / "scrape.txt";
  testing::write_file(file, text);
  auto r = testing::run({"/bin/sh", "-c", tool.string() + " check metrics < " + file.string()});
  if (r.exit_code != 0 || !r.out.empty() || !r.err.empty()) return r.out + r.err;
  return "";
}

TEST(Metrics, ATypicalScrapePassesPromtoolsLint) {
  Registry r;
  r.counter("drover_test_reports_total", "Reports ingested, by outcome.", {"outcome"}, {"ok"})
      .inc(3);
  r.counter("drover_test_reports_total", "Reports ingested, by outcome.", {"outcome"}, {"bad_mac"})
      .inc();
  r.gauge("drover_test_queue_depth", "Items waiting.\nSecond line with a \\ too.").set(7);
  auto& h = r.histogram("drover_test_apply_duration_seconds", "Apply durations.",
                        metrics::duration_buckets(), {"kind"}, {"apply"});
  h.observe(0.004);
  h.observe(0.3);
  h.observe(1e6);
  r.declare("drover_test_rollbacks_total", "Rollbacks.", metrics::Type::counter);
  const std::string text = r.expose();
  EXPECT_TRUE(contains(text, "drover_test_reports_total{outcome=\"ok\"} 3\n")) << text;
  EXPECT_TRUE(contains(text, "drover_test_reports_total{outcome=\"bad_mac\"} 1\n")) << text;
  EXPECT_TRUE(contains(text,
                       "# HELP drover_test_queue_depth Items waiting.\\nSecond line with a "
                       "\\\\ too.\n"))
      << text;
  EXPECT_TRUE(contains(text,
                       "drover_test_apply_duration_seconds_bucket{kind=\"apply\",le=\"0.005\"} "
                       "1\n"))
      << text;
  EXPECT_TRUE(
      contains(text, "drover_test_apply_duration_seconds_bucket{kind=\"apply\",le=\"0.5\"} 2\n"))
      << text;
  EXPECT_TRUE(
      contains(text, "drover_test_apply_duration_seconds_bucket{kind=\"apply\",le=\"+Inf\"} 3\n"))
      << text;
  EXPECT_TRUE(contains(text, "drover_test_apply_duration_seconds_count{kind=\"apply\"} 3\n"))
      << text;
  EXPECT_TRUE(contains(text, "# TYPE drover_test_rollbacks_total counter\n")) << text;
  EXPECT_EQ(promtool_check(text), "");
}

TEST(Metrics, PromtoolCatchesWhatItShould) {
  // The lint above can fail: a counter without _total is reported.
  Registry r;
  r.counter("drover_test_reports", "No _total suffix.").inc();
  EXPECT_NE(promtool_check(r.expose()), "");
}

TEST(Metrics, LabelValuesThatAreNotNamesAndTooManySeriesAreFoldedIntoOther) {
  Registry r;
  for (const char* hostile : {"a\"b", "a\nb", "", "x{y}", "\\"}) {
    r.counter("drover_test_total", "t", {"reason"}, {hostile}).inc();
  }
  for (int i = 0; i < 3000; ++i) {
    r.counter("drover_test_total", "t", {"reason"}, {"r" + std::to_string(i)}).inc();
  }
  const std::string text = r.expose();
  std::size_t lines = 0;
  for (char c : text) lines += c == '\n';
  EXPECT_EQ(lines, 2 + metrics::kMaxSeries);
  // 5 hostile values, then 3000 names of which kMaxSeries - 1 found room.
  EXPECT_TRUE(contains(text, "drover_test_total{reason=\"other\"} " +
                                 std::to_string(5 + 3000 - (metrics::kMaxSeries - 1)) + "\n"))
      << text.substr(0, 400);
  EXPECT_EQ(promtool_check(text), "");
}

TEST(Metrics, ACounterNeverGoesDown) {
  Registry r;
  auto& c = r.counter("drover_test_total", "t");
  c.inc(2);
  c.inc(-1);
  c.inc(std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(c.value(), 2);
}

TEST(Metrics, CollectorsSetGaugesAtEachScrape) {
  Registry r;
  int calls = 0;
  r.on_collect([&](Registry& reg) {
    ++calls;
    reg.gauge("drover_test_files", "Files.").set(calls * 10);
  });
  EXPECT_TRUE(contains(r.expose(), "drover_test_files 10\n"));
  EXPECT_TRUE(contains(r.expose(), "drover_test_files 20\n"));
}

// What a listener serves is rebuilt at most once per max_age: a flood of
// scrapes runs the collectors once.
TEST(Metrics, ACachedExpositionRunsTheCollectorsOncePerAge) {
  Registry r;
  int calls = 0;
  r.on_collect([&](Registry& reg) { reg.gauge("drover_test_calls", "Calls.").set(++calls); });
  const std::string first = r.expose_cached(std::chrono::hours(1));
  for (int i = 0; i < 100; ++i) EXPECT_EQ(r.expose_cached(std::chrono::hours(1)), first);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(contains(r.expose_cached(std::chrono::milliseconds(0)), "drover_test_calls 2\n"));
}

TEST(Metrics, ConcurrentUpdatesAreAllCounted) {
  Registry r;
  auto& c = r.counter("drover_test_total", "t");
  auto& h = r.histogram("drover_test_seconds", "t", {1.0});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.inc();
        h.observe(0.5);
        r.counter("drover_test_other_total", "t", {"k"}, {"v"}).inc();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.value(), 40000);
  EXPECT_EQ(h.snapshot().count, 40000u);
  EXPECT_EQ(r.counter("drover_test_other_total", "t", {"k"}, {"v"}).value(), 40000);
}

TEST(Metrics, TheListenerServesOnlyGetMetrics) {
  Registry r;
  r.counter("drover_test_total", "t").inc(5);
  MemorySink sink;
  ManualClock clock;
  Logger log(sink, clock);
  auto server = metrics::serve("127.0.0.1:0", r, log);
  ASSERT_TRUE(server.ok()) << server.error().message;
  const std::string base = "http://127.0.0.1:" + std::to_string((*server)->port());
  auto got = http::request("GET", base + "/metrics", "", std::chrono::seconds(5));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->status, 200);
  EXPECT_TRUE(contains(got->body, "drover_test_total 5\n")) << got->body;
  auto post = http::request("POST", base + "/metrics", "x", std::chrono::seconds(5));
  ASSERT_TRUE(post.ok());
  EXPECT_NE(post->status, 200);
  auto other = http::request("GET", base + "/deploys", "", std::chrono::seconds(5));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->status, 404);
  EXPECT_EQ(promtool_check(got->body), "");
}

// The example configuration and alert rules users start from
// (docs/prometheus): valid for Prometheus, and each alert fires on the series
// its own unit tests give it, and only then.
TEST(Metrics, TheExamplePrometheusConfigAndAlertRulesPassPromtool) {
  const fs::path tool = promtool();
  ASSERT_FALSE(tool.empty()) << "promtool is not installed (tools/setup.sh installs prometheus)";
  const fs::path dir = fs::path(DROVER_SOURCE_DIR) / "docs" / "prometheus";
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"check", "config", "--syntax-only", "prometheus.yml"},
        std::vector<std::string>{"check", "rules", "drover-alerts.yml"},
        std::vector<std::string>{"test", "rules", "drover-alerts-test.yml"}}) {
    std::string line = "cd " + dir.string() + " && " + tool.string();
    for (const auto& a : args) line += " " + a;
    auto r = testing::run({"/bin/sh", "-c", line});
    EXPECT_EQ(r.exit_code, 0) << line << "\n" << r.out << r.err;
  }
}

}  // namespace
}  // namespace drover
