// Strategies on a traffic router with real parts (issue 15): drover-coordinator,
// an origin, a seed and drover-agent processes whose service runs in
// blue/green slots behind a real nginx per host. A blue/green release
// previews the idle slot (the agent's probe sends it requests), flips in one
// revision and flips back with nothing downloaded and the old slot's same
// process; a traffic canary at 5% is measured in nginx's own access log,
// then aborted.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/http/http.hpp"
#include "tests/support/fleet.hpp"

namespace drover::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const json kHealthy = {{"error_rate", 0.0}, {"p99_ms", 12}, {"saturation", 0.2}};

std::string pipeline(const std::string& strategy, int bake_s) {
  return R"(format: drover.pipeline.v2
service: web
source_repo: org/web
strategy: )" +
         strategy + R"(
health_checks: {bake_s: )" +
         std::to_string(bake_s) + R"(, min_samples: 3}
timeouts: {ready_s: 60, converge_s: 60, rollback_s: 60, gate_s: 600, pause_s: 600}
watch_s: 0
environments:
  - name: production
    waves:
      - {name: all, regions: [r1], bake_s: 2}
)";
}

struct SplitFleet {
  TempDir dir;
  TestFleet f{dir.path()};
  std::string v1, v2;

  explicit SplitFleet(const std::string& strategy, int bake_s = 2) {
    v1 = f.push("v1", kHealthy);
    v2 = f.push("v2", kHealthy);
    f.start_coordinator();
    f.start_origin();
    f.start_seed("r1");
    // h1's previews are sent requests by a verify hook, h2's by the agent's probe.
    f.start_agents({"h1", "h2"}, "r1", 2, AgentShape{true, true});
    for (const auto& a : {v1, v2}) EXPECT_TRUE(f.registered(a)) << a;
    write_file(f.dir() / "pipeline.yaml", pipeline(strategy, bake_s));
    ProcessResult applied =
        f.drover({"pipeline", "apply", "-f", (f.dir() / "pipeline.yaml").string()});
    EXPECT_EQ(applied.exit_code, 0) << applied.err;
  }

  std::string deploy(const std::string& artifact) {
    ProcessResult r = f.drover({"deploy", "web", artifact, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out, nullptr, false).value("deploy_id", "");
  }
  // What nginx's live port answers on host: the release behind it.
  std::string live(const std::string& host) {
    auto r = http::request(
        "GET", "http://127.0.0.1:" + std::to_string(f.router(host).listen) + "/version", "", 2s);
    if (!r.ok() || r->status != 200) return "";
    return json::parse(r->body, nullptr, false).value("release", "");
  }
  // The applied events of host's agent so far.
  std::vector<json> applied(const std::string& host) {
    std::vector<json> out;
    for (const auto& l : f.agent(host).lines()) {
      if (l.value("event", "") == "applied") out.push_back(l);
    }
    return out;
  }
};

TEST(StrategiesEndToEnd, BlueGreenPreviewsFlipsAndFlipsBackWithNothingDownloaded) {
  SplitFleet s(
      "{kind: blue_green, scope: region, preview_min_requests: 20, scale_down_s: 600, "
      "batch_percent: 100}");
  TestFleet& f = s.f;
  // The first release has nothing to split with: it goes out at all traffic.
  const std::string d1 = s.deploy(s.v1);
  json one = f.wait_done(d1);
  ASSERT_EQ(one["state"], "succeeded") << one.dump() << f.agent_failures();
  std::map<std::string, int> v1_pid;
  for (const auto& h : f.hosts()) {
    ASSERT_TRUE(eventually([&] { return s.live(h) == s.v1; })) << h;
    const auto [release, pid] = f.slot_serving(h, 0);
    EXPECT_EQ(release, s.v1) << h;
    v1_pid[h] = pid;
  }

  const std::string d2 = s.deploy(s.v2);
  json two = f.wait_done(d2);
  ASSERT_EQ(two["state"], "succeeded")
      << two.dump() << f.agent_failures() << f.coordinator_history();
  const json& batches = two["environments"][0]["waves"][0]["regions"][0]["batches"];
  ASSERT_EQ(batches.size(), 2u) << batches.dump();
  EXPECT_EQ(batches[0]["traffic"], 0);
  EXPECT_EQ(batches[0]["preview"], true);
  EXPECT_EQ(batches[0]["status"], "passed") << batches.dump();
  EXPECT_FALSE(batches[1].contains("traffic"));  // all of it
  for (const auto& h : f.hosts()) {
    EXPECT_EQ(s.live(h), s.v2) << h;
    // The old slot is still warm: the same process as before.
    EXPECT_EQ(f.slot_serving(h, 0), std::make_pair(s.v1, v1_pid[h])) << h;
  }

  // The flip back: v1 again on every host, nothing downloaded, nothing started.
  std::map<std::string, std::size_t> applies;
  for (const auto& h : f.hosts()) applies[h] = s.applied(h).size();
  ProcessResult back = f.drover({"rollback", d2, "--reason", "flip back", "--wait"});
  EXPECT_EQ(back.exit_code, 0) << back.out << back.err;  // the rollback did what was asked
  json three = f.wait_done(d2);
  ASSERT_EQ(three["state"], "rolled_back") << three.dump() << f.agent_failures();
  for (const auto& h : f.hosts()) {
    EXPECT_TRUE(eventually([&] { return s.live(h) == s.v1; })) << h;
    EXPECT_EQ(f.slot_serving(h, 0), std::make_pair(s.v1, v1_pid[h])) << h;
    const auto events = s.applied(h);
    ASSERT_GT(events.size(), applies[h]) << h;
    EXPECT_EQ(events.back()["artifact"], s.v1);
    EXPECT_EQ(events.back()["downloaded"], 0) << events.back().dump();
  }
}

// nginx's access log lines: "$msec $status $upstream_addr $request_time "$request"".
std::map<std::string, int> upstreams(const fs::path& log, std::size_t from_line) {
  std::map<std::string, int> out;
  std::istringstream in(read_file(log));
  std::string line;
  for (std::size_t n = 0; std::getline(in, line); ++n) {
    if (n < from_line || line.find("/work?user=load") == std::string::npos) continue;
    std::istringstream fields(line);
    std::string msec, status, upstream;
    fields >> msec >> status >> upstream;
    ++out[upstream];
  }
  return out;
}

std::size_t lines_in(const fs::path& log) {
  const std::string text = read_file(log);
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

TEST(StrategiesEndToEnd, ATrafficCanaryAtFivePercentReachesTheNewSlotThenAnAbortEndsIt) {
  // A long bake at 5% (the batch bake; the wave's last step bakes 2 s): the
  // test measures it, then aborts.
  SplitFleet s("{kind: canary, traffic_percents: [5], batch_percent: 100}", 600);
  TestFleet& f = s.f;
  json one = f.wait_done(s.deploy(s.v1));
  ASSERT_EQ(one["state"], "succeeded") << one.dump() << f.agent_failures();
  for (const auto& h : f.hosts()) ASSERT_TRUE(eventually([&] { return s.live(h) == s.v1; }));

  // The canary's share holds for minutes (its bake), long enough to measure.
  ProcessResult r = f.drover({"deploy", "web", s.v2, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string d2 = json::parse(r.out)["deploy_id"];
  ASSERT_TRUE(eventually(
      [&] {
        json d = f.api("GET", "/deploys/" + d2);
        const json& b = d["environments"][0]["waves"][0]["regions"][0]["batches"];
        return b.is_array() && !b.empty() && b[0]["status"] == "baking";
      },
      120s))
      << f.api("GET", "/deploys/" + d2).dump() << f.agent_failures();
  const std::string host = "h1";
  const TestFleet::Router& router = f.router(host);
  const std::size_t from = lines_in(router.access_log);
  constexpr int kRequests = 4000;
  for (int i = 0; i < kRequests; ++i) {
    auto a = http::request("GET",
                           "http://127.0.0.1:" + std::to_string(router.listen) +
                               "/work?user=load-" + std::to_string(i),
                           "", 2s);
    ASSERT_TRUE(a.ok() && a->status == 200) << i;
  }
  // nginx writes its log as each request ends: wait for all of them.
  std::map<std::string, int> seen;
  ASSERT_TRUE(eventually([&] {
    seen = upstreams(router.access_log, from);
    int n = 0;
    for (const auto& [u, c] : seen) n += c;
    return n >= kRequests;
  }));
  const std::string green = "127.0.0.1:" + std::to_string(router.slots[1]);
  const std::string blue = "127.0.0.1:" + std::to_string(router.slots[0]);
  const double share = double(seen[green]) / kRequests;
  // 5% of 4,000 is 200; nginx's smooth weighted round robin per worker keeps
  // it within a point.
  EXPECT_NEAR(share, 0.05, 0.01) << "green " << seen[green] << ", blue " << seen[blue];
  EXPECT_EQ(seen[green] + seen[blue], kRequests);

  // The abort: all traffic back to the stable slot at once.
  ProcessResult aborted = f.drover({"rollback", d2, "--reason", "abort the canary", "--wait"});
  EXPECT_EQ(aborted.exit_code, 0) << aborted.out << aborted.err;
  json done = f.wait_done(d2);
  ASSERT_EQ(done["state"], "rolled_back") << done.dump() << f.agent_failures();
  const std::size_t after = lines_in(router.access_log);
  for (int i = 0; i < 400; ++i) {
    auto a = http::request("GET",
                           "http://127.0.0.1:" + std::to_string(router.listen) +
                               "/work?user=load-after-" + std::to_string(i),
                           "", 2s);
    ASSERT_TRUE(a.ok() && a->status == 200);
  }
  ASSERT_TRUE(eventually([&] {
    seen = upstreams(router.access_log, after);
    return seen[blue] + seen[green] >= 400;
  }));
  EXPECT_EQ(seen[green], 0) << "the new slot still gets traffic after the abort";
  EXPECT_EQ(s.live(host), s.v1);
}

// Feature flags travel in flag sets of their own (issue 15). Shipped dark
// (the release everywhere, the flag off), a flag is ramped 1, 5, 25% with a
// bake and a verdict per step, without a plan, a restart or a download; a
// kill turns it off everywhere at once; a ramp whose step degrades health is
// set back to 0 by the coordinator on its own.
TEST(StrategiesEndToEnd, AFlagRampsKillsAndADegradingRampIsSetBackToZero) {
  TempDir dir;
  TestFleet f{dir.path()};
  json demo = kHealthy;
  demo["flag_paths"] = {{"checkout", {{"error_rate", 0.0}}}, {"bad-path", {{"error_rate", 0.5}}}};
  const std::string v1 = f.push("v1", demo);
  f.start_coordinator();
  f.start_origin();
  f.start_seed("r1");
  f.start_agents({"h1", "h2"}, "r1");
  ASSERT_TRUE(f.registered(v1));
  write_file(f.dir() / "pipeline.yaml", pipeline("{kind: rolling, batch_percent: 100}", 2));
  ASSERT_EQ(f.drover({"pipeline", "apply", "-f", (f.dir() / "pipeline.yaml").string()}).exit_code,
            0);
  ProcessResult d = f.drover({"deploy", "web", v1, "--wait"});
  ASSERT_EQ(d.exit_code, 0) << d.out << d.err << f.agent_failures();
  std::map<std::string, int> pid;
  for (const auto& h : f.hosts()) pid[h] = f.serving(h).second;
  auto flags_of = [&](const std::string& host) {
    auto r = http::request(
        "GET", "http://127.0.0.1:" + std::to_string(f.service_port(host)) + "/version", "", 2s);
    if (!r.ok()) return json();
    return json::parse(r->body, nullptr, false)["flags"]["flags"];
  };

  ProcessResult bad = f.drover({"flag", "set", "web", "checkout", "125", "--env", "production"});
  EXPECT_EQ(bad.exit_code, 2) << bad.out << bad.err;
  ProcessResult nowhere = f.drover({"flag", "set", "web", "checkout", "25", "--env", "mars"});
  EXPECT_EQ(nowhere.exit_code, 1) << nowhere.out;
  EXPECT_NE(nowhere.err.find("has an environment 'mars'"), std::string::npos) << nowhere.err;

  // The ramp: 1, 5, then 25%, each step baked and judged.
  ProcessResult ramp =
      f.drover({"flag", "set", "web", "checkout", "25", "--env", "production", "--wait"});
  ASSERT_EQ(ramp.exit_code, 0) << ramp.out << ramp.err << f.agent_failures();
  for (const auto& h : f.hosts()) {
    EXPECT_TRUE(eventually([&] {
      return flags_of(h) == json{{"checkout", 25}};
    })) << h
        << ": " << flags_of(h).dump() << f.agent_failures();
    EXPECT_EQ(f.serving(h), std::make_pair(v1, pid[h])) << "a flag change restarts nothing";
  }
  // Each step a revision of the flag set, audited.
  ProcessResult audit = f.drover({"audit", "--service", "web", "--limit", "200", "--json"});
  std::vector<int> steps;
  const json records = json::parse(audit.out, nullptr, false)["records"];
  for (const auto& rec : records) {
    if (rec.value("what", "") != "flag.ramped") continue;
    steps.push_back(rec["detail"].value("value", -1));
  }
  EXPECT_EQ(steps, (std::vector<int>{1, 5, 25})) << audit.out;

  // The kill: off everywhere at once, no ramp.
  ProcessResult kill = f.drover({"flag", "kill", "web", "checkout", "--env", "production"});
  ASSERT_EQ(kill.exit_code, 0) << kill.err;
  for (const auto& h : f.hosts()) {
    EXPECT_TRUE(eventually([&] { return flags_of(h)["checkout"] == false; })) << h;
    EXPECT_EQ(f.serving(h), std::make_pair(v1, pid[h]));
  }

  // A flag whose path fails half its requests: the 5% step degrades health
  // and the coordinator sets the flag back to 0 on its own.
  ProcessResult degrading =
      f.drover({"flag", "set", "web", "bad-path", "25", "--env", "production", "--wait"});
  EXPECT_EQ(degrading.exit_code, 3) << degrading.out << degrading.err;
  EXPECT_NE(degrading.out.find("rolled_back"), std::string::npos) << degrading.out;
  for (const auto& h : f.hosts()) {
    EXPECT_TRUE(eventually([&] { return flags_of(h)["bad-path"] == 0; }))
        << h << ": " << flags_of(h).dump();
    EXPECT_EQ(f.serving(h), std::make_pair(v1, pid[h]));
  }
  ProcessResult ls = f.drover({"flag", "ls", "web"});
  EXPECT_NE(ls.out.find("bad-path=0"), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find("checkout=false"), std::string::npos) << ls.out;
  ProcessResult verify = f.drover({"audit", "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

}  // namespace
}  // namespace drover::testing
