// Releases of several services with real parts (issue 16): drover-coordinator,
// an origin, a seed per region and drover-agent processes, each host running
// three services a, b and c where b and c depend on a. Releases go through
// staging and production (a gate for a second person), driven by the drover
// command line. c's release degrades only in production: under the default
// policy c alone goes back; under `all` c, then b, then a go back. Staging
// keeps what it got, and the audit chain verifies.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/support/fleet.hpp"

namespace drover::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const std::vector<std::string> kServices = {"a", "b", "c"};

std::string pipeline(const std::string& service) {
  return "format: drover.pipeline.v2\n"
         "service: " +
         service + "\n" + (service == "a" ? "" : "depends_on: [a]\n") +
         "strategy: {kind: rolling, batch_percent: 100}\n"
         "health_checks: {bake_s: 2, min_samples: 3}\n"
         "timeouts: {ready_s: 60, converge_s: 60, rollback_s: 60, gate_s: 600}\n"
         "watch_s: 2\n"
         "environments:\n"
         "  - name: staging\n"
         "    waves: [{name: all, regions: [stg]}]\n"
         "  - name: production\n"
         "    gate: {approvals: 1}\n"
         "    waves: [{name: all, regions: [prd]}]\n";
}

struct ReleaseFleet {
  TempDir dir;
  TestFleet f{dir.path()};
  std::map<std::string, std::map<std::string, std::string>> v;  // service -> version -> artifact
  std::string bob;

  ReleaseFleet() {
    const json healthy = {{"error_rate", 0.01}, {"p99_ms", 12}, {"saturation", 0.2}};
    json bad_in_production = healthy;
    bad_in_production["by_region"] = {{"prd", {{"error_rate", 0.40}}}};
    for (const auto& s : kServices) {
      for (const std::string version : {"1", "2", "3"}) {
        const bool bad = s == "c" && version != "1";
        v[s][version] = f.push(s + version, bad ? bad_in_production : healthy, "0123abcd", s);
      }
    }
    f.start_coordinator();
    f.start_origin();
    f.start_seed("stg");
    f.start_seed("prd");
    AgentShape three;
    three.services = kServices;
    f.start_agents({"s1"}, "stg", 2, three);
    f.start_agents({"p1", "p2"}, "prd", 2, three);
    for (const auto& [s, versions] : v) {
      for (const auto& [version, id] : versions) {
        if (!f.registered(id)) throw std::runtime_error("not registered: " + s + version);
      }
    }
    for (const auto& s : kServices) {
      write_file(f.dir() / (s + ".yaml"), pipeline(s));
      ProcessResult applied =
          f.drover({"pipeline", "apply", "-f", (f.dir() / (s + ".yaml")).string()});
      if (applied.exit_code != 0) throw std::runtime_error("pipeline " + s + ": " + applied.err);
    }
    bob = f.api("POST", "/tokens", json{{"name", "bob"}, {"role", "approver"}, {"person", "bob"}})
              .value("token", "");
  }

  // Starts a release of version `version` of every service; answers its id.
  std::string create(const std::string& version, const std::string& policy) {
    std::string yaml = "policy: " + policy + "\nservices:\n";
    for (const auto& s : {"c", "b", "a"}) {  // in no particular order
      yaml += "  - {pipeline_id: " + std::string(s) + ", artifact_id: \"" + v[s][version] + "\"}\n";
    }
    const fs::path file = f.dir() / ("release-" + version + ".yaml");
    write_file(file, yaml);
    ProcessResult made = f.drover({"release", "create", "-f", file.string(), "--json"});
    if (made.exit_code != 0) throw std::runtime_error("release create: " + made.err);
    return json::parse(made.out)["release_id"];
  }
  json release(const std::string& id) { return f.api("GET", "/releases/" + id); }
  std::string state_in(const json& r, const std::string& service, const std::string& env) {
    for (const auto& s : r["services"]) {
      if (s["service"] == service) return s["environments"].value(env, "");
    }
    return "";
  }
  // Waits for the release's gate, approves it as bob, then waits for its end.
  json approve_and_finish(const std::string& id) {
    const bool at_gate = eventually(
        [&] { return state_in(release(id), "a", "production") == "awaiting_approval"; }, 180s);
    if (!at_gate) throw std::runtime_error("no gate: " + release(id).dump() + f.agent_failures());
    ProcessResult ok = f.drover({"release", "approve", id, "--token", bob});
    if (ok.exit_code != 0) throw std::runtime_error("approve: " + ok.err);
    ProcessResult done = f.drover({"release", "status", id, "--wait", "--timeout", "240"});
    (void)done;
    return release(id);
  }
  std::string serving(const std::string& host, const std::string& service) {
    return f.serving(host, service).first;
  }
  std::int64_t switched_to(const std::string& host, const std::string& service,
                           const std::string& release) {
    json h = f.api("GET", "/hosts/" + host + "/releases?service=" + service);
    std::int64_t at = -1;
    for (const auto& r : h["releases"]) {
      if (r["artifact_id"] == release) at = r["since_ms"].get<std::int64_t>();
    }
    return at;
  }
};

TEST(ReleasesEndToEnd, ThreeServicesInOrderThenEachFailurePolicyWhenOneDegradesInProduction) {
  ReleaseFleet r;
  TestFleet& f = r.f;

  // Version 1 of all three, in order: b and c enter each environment after a.
  const std::string first = r.create("1", "failed_only");
  // Before the gate, staging is done in dependency order and production waits.
  json one = r.approve_and_finish(first);
  ASSERT_EQ(one["state"], "succeeded") << one.dump() << f.agent_failures();
  for (const auto& h : f.hosts()) {
    for (const auto& s : kServices) EXPECT_EQ(r.serving(h, s), r.v[s]["1"]) << h << " " << s;
  }
  for (const std::string h : {"s1", "p1"}) {
    // a was running its release on each host before b or c switched.
    const std::int64_t a_at = r.switched_to(h, "a", r.v["a"]["1"]);
    EXPECT_GT(a_at, 0);
    EXPECT_LT(a_at, r.switched_to(h, "b", r.v["b"]["1"])) << h;
    EXPECT_LT(a_at, r.switched_to(h, "c", r.v["c"]["1"])) << h;
  }
  // One approval, recorded per service.
  json approvals = f.api("GET", "/audit?env=production&limit=1000");
  int per_service = 0;
  for (const auto& rec : approvals["records"]) {
    if (rec["what"] == "gate.approved" && rec["who"] == "bob") ++per_service;
  }
  EXPECT_EQ(per_service, 3) << approvals.dump();

  // Version 2, default policy: c degrades in production and goes back alone.
  const std::string second = r.create("2", "failed_only");
  json two = r.approve_and_finish(second);
  EXPECT_EQ(two["state"], "failed") << two.dump() << f.agent_failures();
  ASSERT_EQ(two["failures"].size(), 1u) << two.dump();
  EXPECT_EQ(two["failures"][0]["service"], "c");
  EXPECT_EQ(two["failures"][0]["env"], "production");
  EXPECT_EQ(r.state_in(two, "c", "production"), "rolled_back");
  EXPECT_EQ(r.state_in(two, "a", "production"), "passed");
  EXPECT_EQ(r.state_in(two, "b", "production"), "passed");
  for (const std::string h : {"p1", "p2"}) {
    EXPECT_EQ(r.serving(h, "a"), r.v["a"]["2"]) << h;
    EXPECT_EQ(r.serving(h, "b"), r.v["b"]["2"]) << h;
    EXPECT_TRUE(eventually([&] { return r.serving(h, "c") == r.v["c"]["1"]; })) << h;
  }
  for (const auto& s : kServices) EXPECT_EQ(r.serving("s1", s), r.v[s]["2"]) << s;

  // Version 3 under `all`: c degrades again, and c, then b, then a go back.
  const std::string third = r.create("3", "all");
  json three = r.approve_and_finish(third);
  EXPECT_EQ(three["state"], "rolled_back") << three.dump() << f.agent_failures();
  for (const auto& s : kServices) {
    EXPECT_EQ(r.state_in(three, s, "production"), "rolled_back") << s << three.dump();
    EXPECT_EQ(r.state_in(three, s, "staging"), "passed") << s;
    EXPECT_EQ(r.serving("s1", s), r.v[s]["3"]) << "staging keeps " << s;
  }
  for (const std::string h : {"p1", "p2"}) {
    EXPECT_TRUE(eventually([&] { return r.serving(h, "a") == r.v["a"]["2"]; })) << h;
    EXPECT_TRUE(eventually([&] { return r.serving(h, "b") == r.v["b"]["2"]; })) << h;
    EXPECT_TRUE(eventually([&] { return r.serving(h, "c") == r.v["c"]["1"]; })) << h;
    // Dependents first: every host was back on c's and b's earlier release
    // before any took a's back.
    const std::int64_t a_back = r.switched_to(h, "a", r.v["a"]["2"]);
    EXPECT_LT(r.switched_to(h, "b", r.v["b"]["2"]), a_back) << h;
    EXPECT_LT(r.switched_to(h, "c", r.v["c"]["1"]), a_back) << h;
  }

  ProcessResult verify = f.drover({"audit", "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  ProcessResult listed = f.drover({"release", "ls"});
  EXPECT_NE(listed.out.find(third + "\trolled_back"), std::string::npos) << listed.out;
  ProcessResult status = f.drover({"release", "status", second});
  EXPECT_NE(status.out.find("production: rolled_back"), std::string::npos) << status.out;
}

}  // namespace
}  // namespace drover::testing
