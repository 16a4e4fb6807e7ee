// The whole loop with real parts, as a person would run it: drover-coordinator
// (hosting the tracker), an origin, one regional seed and six drover-agent
// processes supervising drover-demo-service, driven by the drover command
// line. v1 everywhere, v2 through canary batches, then a v3 whose error rate
// is bad: rolled back on its own, every host on v2 again, the rollback's
// time recorded, the audit chain intact.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "core/http/http.hpp"
#include "tests/support/fleet.hpp"
#include "tests/support/tree_gen.hpp"

namespace drover::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// The value of one series in a scrape ("name{labels}" exactly as written);
// -1 when the scrape has no such series.
double metric(const std::string& scrape, const std::string& series) {
  std::size_t at = 0;
  while ((at = scrape.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || scrape[at - 1] == '\n') {
      return std::strtod(scrape.c_str() + at + series.size() + 1, nullptr);
    }
    at += series.size();
  }
  return -1;
}

// promtool's verdict on a scrape: "" when it finds nothing wrong.
std::string promtool_check(const std::string& text) {
  TempDir dir;
  write_file(dir.path() / "scrape.txt", text);
  auto r =
      run({"/bin/sh", "-c", "promtool check metrics < " + (dir.path() / "scrape.txt").string()});
  if (r.exit_code != 0 || !r.out.empty() || !r.err.empty()) return r.out + r.err;
  return "";
}

TEST(EndToEnd, CanaryRolloutThenABadReleaseIsRolledBackOnItsOwn) {
  TempDir dir;
  TestFleet f(dir.path());
  const std::string v1 = f.push("v1", {{"error_rate", 0.01}, {"p99_ms", 12}, {"saturation", 0.2}});
  const std::string v2 = f.push("v2", {{"error_rate", 0.01}, {"p99_ms", 14}, {"saturation", 0.2}});
  const std::string v3 = f.push("v3", {{"error_rate", 0.40}, {"p99_ms", 14}, {"saturation", 0.2}});
  f.start_coordinator();
  f.start_origin();
  f.start_seed("r1");
  f.start_agents({"h1", "h2", "h3", "h4", "h5", "h6"});

  write_file(
      dir.path() / "pipeline.json",
      json{{"service", "web"},
           {"envs", {{{"name", "prod"}, {"region", "r1"}}}},
           {"strategy", {{"kind", "canary"}, {"batch_size", 3}, {"canary_percents", {16, 50}}}},
           {"health_checks", {{"bake_s", 3}, {"min_samples", 5}}},
           {"timeouts", {{"ready_s", 60}, {"converge_s", 60}, {"rollback_s", 60}}}}
          .dump());
  ProcessResult p = f.drover({"pipeline", "apply", (dir.path() / "pipeline.json").string()});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  for (const auto& a : {v1, v2, v3}) ASSERT_TRUE(f.registered(a)) << a;

  // v1 to every host at once (the service's first release).
  ProcessResult first = f.drover({"deploy", "web", v1, "--batch-size", "6", "--wait", "--json"});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err << f.agent_failures();
  for (const auto& h : f.hosts()) EXPECT_EQ(f.serving(h).first, v1) << h;
  // As root (CI), each service runs as the unprivileged user, not as root.
  if (::geteuid() == 0) {
    const passwd* user = ::getpwnam(kServiceUser);
    ASSERT_NE(user, nullptr) << kServiceUser;
    const std::string uid = std::to_string(user->pw_uid);
    for (const auto& h : f.hosts()) {
      const int pid = f.serving(h).second;
      std::ifstream status("/proc/" + std::to_string(pid) + "/status");
      std::string line;
      while (std::getline(status, line) && line.rfind("Uid:", 0) != 0) {
      }
      EXPECT_EQ(line, "Uid:\t" + uid + "\t" + uid + "\t" + uid + "\t" + uid) << h;
    }
  }

  // v2 through the canary: 1 host (16% of 6, rounded up), 2 more (to 50%), then the other 3,
  // watched live on a terminal as a person would (issue 18): the view is
  // redrawn in place, frame after frame, until the deploy ends.
  ProcessResult second =
      run_on_terminal({binary("drover").string(), "deploy", "web", v2, "--watch"}, 300s,
                      {{"DROVER_COORDINATOR", f.api_url()}, {"DROVER_TOKEN", f.admin_token()}});
  ASSERT_EQ(second.exit_code, 0) << second.out << f.agent_failures();
  std::size_t frames = 0;
  for (std::size_t at = 0; (at = second.out.find("\x1b[J", at)) != std::string::npos; ++at) {
    ++frames;
  }
  EXPECT_GE(frames, 3u) << second.out;
  EXPECT_NE(second.out.find("[####################] 3/3"), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("succeeded"), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("batch 2 passed"), std::string::npos) << second.out;
  json d2 =
      f.api("GET", "/deploys/" + f.api("GET", "/deploys?service=web&limit=1")["deploys"][0].value(
                                     "deploy_id", ""));
  ASSERT_EQ(d2["state"], "succeeded");
  ASSERT_EQ(d2["batches"].size(), 3u);
  EXPECT_EQ(d2["batches"][0]["hosts"].size(), 1u);
  EXPECT_EQ(d2["batches"][1]["hosts"].size(), 2u);
  EXPECT_EQ(d2["batches"][2]["hosts"].size(), 3u);
  for (const auto& b : d2["batches"]) {
    EXPECT_GE(b["finished_ms"].get<std::int64_t>() - b["converged_ms"].get<std::int64_t>(), 3000);
    EXPECT_EQ(b["status"], "passed");
  }
  for (const auto& h : f.hosts()) EXPECT_EQ(f.serving(h).first, v2) << h;

  // v3 errors 40x more: its canary fails, and everything goes back to v2.
  // Artifact ids may be short, like git's: a unique prefix of a registered one.
  ProcessResult malformed = f.drover({"deploy", "web", "v3-please", "--wait"});
  EXPECT_EQ(malformed.exit_code, 2) << malformed.err;
  EXPECT_NE(malformed.err.find("prefix of at least 6 hex digits"), std::string::npos)
      << malformed.err;
  const std::string unknown = v3.substr(7, 6) == "ffffff" ? "eeeeee" : "ffffff";
  ProcessResult no_such = f.drover({"deploy", "web", unknown});
  EXPECT_EQ(no_such.exit_code, 1) << no_such.err;
  EXPECT_NE(no_such.err.find("no registered artifact of service 'web' starts with"),
            std::string::npos)
      << no_such.err;
  ProcessResult third = f.drover({"deploy", "web", v3.substr(7, 10), "--wait", "--json"});
  EXPECT_EQ(third.exit_code, 3) << "rolled back (docs/CLI.md, exit codes)\n"
                                << third.out << third.err;
  json d3 = json::parse(third.out);
  ASSERT_EQ(d3["state"], "rolled_back") << d3.dump();
  EXPECT_NE(d3["reason"].get<std::string>().find("error_rate"), std::string::npos) << d3["reason"];
  EXPECT_EQ(d3["batch"], 0);
  ASSERT_TRUE(d3["rollback"]["duration_ms"].is_number()) << d3.dump();
  EXPECT_GT(d3["rollback"]["duration_ms"].get<std::int64_t>(), 0);
  for (const auto& h : d3["hosts"]) EXPECT_EQ(h["running"], v2) << h.dump();
  for (const auto& h : f.hosts()) {
    EXPECT_TRUE(eventually([&] { return f.serving(h).first == v2; })) << h;
  }

  // The record: what ran, who did what, and a chain that verifies.
  ProcessResult verify = f.drover({"audit", "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  json running = f.api("GET", "/audit/running?service=web");
  EXPECT_EQ(running["artifact_id"], v2) << running.dump();
  json history = f.api("GET", "/audit?service=web&limit=1000");
  std::size_t rollbacks = 0, created = 0;
  for (const auto& r : history["records"]) {
    rollbacks += r["what"] == "rollback.done";
    created += r["what"] == "deploy.created" && r["who"] == "admin";
  }
  EXPECT_EQ(rollbacks, 1u);
  EXPECT_EQ(created, 3u);
  ProcessResult status = f.drover({"status", d3["deploy_id"]});
  EXPECT_EQ(status.exit_code, 0);
  EXPECT_NE(status.out.find("rolled_back"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("rollback took"), std::string::npos) << status.out;

  // On a pipe, --watch prints lines as things happen, never a redraw; a
  // service's name means its newest deploy; the exit status says how it ended.
  ProcessResult piped = f.drover({"status", "web", "--watch"});
  EXPECT_EQ(piped.exit_code, 3) << piped.out << piped.err;
  EXPECT_EQ(piped.out.find('\x1b'), std::string::npos) << piped.out;
  EXPECT_NE(piped.out.find("batch 1 started (1 hosts)"), std::string::npos) << piped.out;
  EXPECT_NE(piped.out.find("rollback.started reason="), std::string::npos) << piped.out;
  EXPECT_NE(piped.out.find(d3["deploy_id"].get<std::string>() + ": rolled_back ("),
            std::string::npos)
      << piped.out;
  // The inventory as a table: sorted hosts, where each is, what it runs and
  // how it is doing.
  ProcessResult hosts = f.drover({"hosts"});
  EXPECT_EQ(hosts.exit_code, 0) << hosts.err;
  EXPECT_EQ(hosts.out.rfind("HOST", 0), 0u) << hosts.out;
  EXPECT_NE(hosts.out.find("h1            r1/c1                 web         " + v2.substr(7, 12)),
            std::string::npos)
      << hosts.out;
  EXPECT_LT(hosts.out.find("\nh1 "), hosts.out.find("\nh6 ")) << hosts.out;
  EXPECT_NE(hosts.out.find(" s ago"), std::string::npos) << hosts.out;
  EXPECT_NE(hosts.out.find("ok err 1.0% p99 14 ms"), std::string::npos) << hosts.out;
  // The audit's newest records, each with its place, batch (from 1) and reason.
  ProcessResult newest = f.drover({"audit", "--service", "web", "--limit", "3"});
  EXPECT_EQ(newest.exit_code, 0) << newest.err;
  EXPECT_EQ(std::count(newest.out.begin(), newest.out.end(), '\n'), 3) << newest.out;
  EXPECT_NE(newest.out.find("rollback.done"), std::string::npos) << newest.out;
  EXPECT_EQ(newest.out.find("deploy.created"), std::string::npos) << "the oldest\n" << newest.out;
  ProcessResult listed = f.drover({"deploys", "--service", "web"});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(listed.out.rfind("DEPLOY", 0), 0u) << listed.out;
  EXPECT_EQ(std::count(listed.out.begin(), listed.out.end(), '\n'), 4) << listed.out;
  EXPECT_NE(listed.out.find("rolled_back"), std::string::npos) << listed.out;
  // What a person gets wrong, told locally and clearly.
  ProcessResult typo = f.drover({"depoly", "web", v2});
  EXPECT_EQ(typo.exit_code, 2);
  EXPECT_NE(typo.err.find("did you mean 'deploy'"), std::string::npos) << typo.err;
  ProcessResult no_token = run({binary("drover").string(), "deploys"}, 30s,
                               {{"DROVER_COORDINATOR", f.api_url()}, {"DROVER_TOKEN", ""}});
  EXPECT_EQ(no_token.exit_code, 8) << no_token.err;
  EXPECT_NE(no_token.err.find("--token"), std::string::npos) << no_token.err;
  EXPECT_NE(no_token.err.find("DROVER_TOKEN"), std::string::npos) << no_token.err;
  ProcessResult wrong_token = f.drover({"deploys", "--token", "not-a-token"});
  EXPECT_EQ(wrong_token.exit_code, 8) << wrong_token.err;
  ProcessResult nobody_there =
      run({binary("drover").string(), "deploys"}, 30s,
          {{"DROVER_COORDINATOR", "http://127.0.0.1:" + std::to_string(free_port())},
           {"DROVER_TOKEN", f.admin_token()}});
  EXPECT_EQ(nobody_there.exit_code, 9) << nobody_there.err;
  EXPECT_NE(nobody_there.err.find("cannot reach the coordinator"), std::string::npos)
      << nobody_there.err;

  // Issue 18: every daemon's metrics, checked by Prometheus' own promtool,
  // tell the same story: two deploys succeeded, one rolled back.
  std::map<std::string, std::string> scraped;
  for (const auto& [name, url] : f.metrics_targets()) {
    ASSERT_FALSE(url.empty()) << name << " named no metrics listener";
    auto got = http::request("GET", url, "", 5s);
    ASSERT_TRUE(got.ok()) << name << ": " << got.error().message;
    ASSERT_EQ(got->status, 200) << name;
    EXPECT_EQ(promtool_check(got->body), "") << name;
    scraped[name] = got->body;
  }
  const std::string& c = scraped["coordinator"];
  EXPECT_EQ(metric(c, "drover_coordinator_deploys_finished_total{outcome=\"succeeded\"}"), 2) << c;
  EXPECT_EQ(metric(c, "drover_coordinator_deploys_finished_total{outcome=\"rolled_back\"}"), 1);
  EXPECT_EQ(metric(c, "drover_coordinator_rollbacks_total"), 1);
  EXPECT_EQ(metric(c, "drover_coordinator_rollback_duration_seconds_count"), 1);
  EXPECT_NEAR(metric(c, "drover_coordinator_rollback_duration_seconds_sum"),
              d3["rollback"]["duration_ms"].get<double>() / 1000.0, 0.001);
  EXPECT_GE(metric(c, "drover_coordinator_bake_duration_seconds_count"), 3);
  EXPECT_GE(metric(c, "drover_coordinator_plan_pulls_total{answer=\"plan\"}"), 6);
  EXPECT_GT(metric(c, "drover_coordinator_reports_total{outcome=\"ingested\"}"), 0);
  EXPECT_EQ(metric(c, "drover_coordinator_agent_requests_refused_total{reason=\"bad_mac\"}"), 0);
  EXPECT_EQ(metric(c, "drover_coordinator_deploys{state=\"deploying\"}"), 0);
  EXPECT_GT(metric(c, "drover_tracker_announces_total"), 0);
  EXPECT_GT(metric(c, "drover_coordinator_store_used_bytes"), 0);
  double from_peers_and_seed = 0, applied = 0, kept = 0;
  for (const auto& h : f.hosts()) {
    const std::string& a = scraped["agent-" + h];
    // A series not there yet counts 0 (metric() says -1).
    applied +=
        std::max(0.0, metric(a, "drover_agent_applies_total{service=\"web\",outcome=\"applied\"}"));
    kept += std::max(0.0, metric(a, "drover_agent_apply_duration_seconds_count{source=\"kept\"}"));
    from_peers_and_seed +=
        std::max(0.0, metric(a, "drover_mesh_bytes_total{direction=\"down\",from=\"peer\"}")) +
        std::max(0.0, metric(a, "drover_mesh_bytes_total{direction=\"down\",from=\"seed\"}"));
    EXPECT_GT(metric(a, "drover_agent_health_samples_total{service=\"web\",result=\"ok\"}"), 0);
    EXPECT_EQ(metric(a, "drover_agent_coordinator_reachable"), 1) << h;
  }
  // v1 and v2 on 6 hosts, v3 on the canary's one, and back to v2 there:
  // the way back used the release the host kept.
  EXPECT_GE(applied, 6 + 6 + 1 + 1);
  EXPECT_EQ(kept, 1);
  EXPECT_GT(from_peers_and_seed, 0);
  EXPECT_GT(metric(scraped["seed-1"], "drover_seed_artifacts_replicated_total"), 0);
  EXPECT_GT(metric(scraped["origin"], "drover_mesh_bytes_total{direction=\"up\",from=\"seed\"}"),
            0);
  // On the API, metrics need a viewer's token.
  auto anonymous = http::request("GET", f.api_url() + "/metrics", "", 5s);
  ASSERT_TRUE(anonymous.ok());
  EXPECT_EQ(anonymous->status, 401);
  http::ClientOptions as_admin;
  as_admin.headers.emplace_back("Authorization", "Bearer " + f.admin_token());
  auto with_token = http::request("GET", f.api_url() + "/metrics", "", as_admin);
  ASSERT_TRUE(with_token.ok());
  EXPECT_EQ(with_token->status, 200);
  EXPECT_EQ(metric(with_token->body, "drover_coordinator_rollbacks_total"), 1);
}

// drover artifact push with a coordinator configured (issue 18): it ends
// with the artifact registered there (a deploy right after never meets "not
// registered"), names the deploy to run next, and shows its progress on a
// terminal; without a token it stores nothing.
TEST(EndToEnd, APushEndsRegisteredAtTheCoordinatorAndNamesTheDeployToRunNext) {
  TempDir dir;
  TestFleet f(dir.path());
  f.start_coordinator();
  f.start_origin();
  int status = 0;
  f.api("POST", "/pipelines",
        {{"service", "web"}, {"envs", {{{"name", "prod"}, {"region", "r1"}}}}}, &status);
  ASSERT_EQ(status, 201);
  const fs::path tree = dir.path() / "tree";
  write_file(tree / "demo.json", R"({"error_rate":0.01})");
  write_file(tree / "data", binary_bytes(7, 6 << 20));
  const std::string store = (dir.path() / "store").string();
  const std::map<std::string, std::string> env = {
      {"DROVER_COORDINATOR", f.api_url()},
      {"DROVER_TOKEN", f.admin_token()},
      {"DROVER_CONTEXT", ""},
      {"DROVER_CONFIG", (dir.path() / "none").string()}};

  // Without a token, or with one the coordinator refuses: found out before
  // packing, nothing stored.
  auto nothing_stored = [&] {
    return json::parse(
               run({binary("drover").string(), "artifact", "ls", "--store", store, "--json"})
                   .out) == json::array();
  };
  for (const std::string token : {"", "not-a-token"}) {
    std::map<std::string, std::string> with = env;
    with["DROVER_TOKEN"] = token;
    ProcessResult refused = run({binary("drover").string(), "artifact", "push", tree.string(),
                                 "--service", "web", "--git-sha", "0123abcd", "--store", store},
                                60s, with);
    EXPECT_EQ(refused.exit_code, 8) << token << refused.err;
    EXPECT_THAT(refused.err,
                ::testing::HasSubstr(token.empty() ? "--no-register" : "nothing stored"));
    EXPECT_TRUE(nothing_stored()) << token;
  }

  ProcessResult pushed =
      run({binary("drover").string(), "artifact", "push", tree.string(), "--service", "web",
           "--git-sha", "0123abcd", "--store", store, "--json"},
          60s, env);
  ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  const json result = json::parse(pushed.out);
  const std::string id = result["artifact_id"];
  EXPECT_EQ(result["registered"]["coordinator"], f.api_url());
  EXPECT_EQ(result["next"], json::array({"drover deploy web " + id.substr(7, 12)}));
  // Registered already: no waiting for the origin's feed.
  f.api("GET", "/artifacts/" + id, nullptr, &status);
  EXPECT_EQ(status, 200);

  // On a terminal: the packing's progress, then the next command.
  write_file(tree / "more", binary_bytes(9, 4 << 20));
  ProcessResult shown =
      run_on_terminal({binary("drover").string(), "artifact", "push", tree.string(), "--service",
                       "web", "--git-sha", "0123abcd", "--store", store},
                      60s, env);
  ASSERT_EQ(shown.exit_code, 0) << shown.out;
  EXPECT_THAT(shown.out, ::testing::HasSubstr(" stored, "));
  EXPECT_THAT(shown.out, ::testing::HasSubstr("/s"));
  EXPECT_THAT(shown.out, ::testing::HasSubstr("registered at " + f.api_url()));
  EXPECT_THAT(shown.out, ::testing::HasSubstr("next: drover deploy web "));
}

// Issue 12: a fleet upgrades host by host. Agents of protocol 1 (plain TCP,
// on the coordinator's legacy listener) and of protocol 2 (TLS, answers
// authenticated) take the same deploy, and the coordinator tells them apart
// only by the listener they use.
TEST(EndToEnd, AFleetHalfwayThroughItsUpgradeToProtocol2CompletesADeploy) {
  TempDir dir;
  TestFleet f(dir.path(), /*mesh_tokens=*/false);  // protocol 1 carries no mesh token
  const std::string v1 = f.push("v1", {{"error_rate", 0.01}, {"p99_ms", 12}, {"saturation", 0.2}});
  f.start_coordinator();
  f.start_origin();
  f.start_seed("r1");
  f.start_agents({"old-1", "old-2"}, "r1", 1);
  f.start_agents({"new-1", "new-2"}, "r1", 2);
  write_file(dir.path() / "pipeline.json",
             json{{"service", "web"},
                  {"envs", {{{"name", "prod"}, {"region", "r1"}}}},
                  {"strategy", {{"kind", "rolling"}, {"batch_size", 2}}},
                  {"health_checks", {{"bake_s", 1}, {"min_samples", 2}}},
                  {"timeouts", {{"ready_s", 60}, {"converge_s", 60}, {"rollback_s", 60}}}}
                 .dump());
  ProcessResult p = f.drover({"pipeline", "apply", (dir.path() / "pipeline.json").string()});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  ASSERT_TRUE(f.registered(v1));
  ProcessResult d = f.drover({"deploy", "web", v1, "--wait", "--json"});
  ASSERT_EQ(d.exit_code, 0) << d.out << d.err << f.agent_failures();
  EXPECT_EQ(json::parse(d.out)["state"], "succeeded");
  for (const auto& h : f.hosts()) EXPECT_EQ(f.serving(h).first, v1) << h;
}

// Issue 12, item 8: hosts installed with the first root key meet a
// coordinator two root rotations later; each walks the chain (1 -> 2 -> 3)
// and enrolls under the online key the newest root certified.
TEST(EndToEnd, AgentsPinnedToTheFirstRootCatchUpThroughTwoRootRotations) {
  TempDir dir;
  TestFleet f(dir.path());
  const fs::path d = f.dir();
  const std::string drover = binary("drover").string();
  auto must = [](const ProcessResult& r) { ASSERT_EQ(r.exit_code, 0) << r.err << r.out; };
  for (const char* k : {"root-2.key", "root-3.key"}) {
    must(run({drover, "keygen", "--out", (d / k).string()}));
  }
  must(run({drover, "key", "rotate-root", "--root", (d / "root.key").string(), "--new-root",
            (d / "root-2.key").string(), "--version", "2", "--out", (d / "root-2.json").string()}));
  must(run({drover, "key", "rotate-root", "--root", (d / "root-2.key").string(), "--new-root",
            (d / "root-3.key").string(), "--version", "3", "--out", (d / "root-3.json").string()}));
  must(run({drover, "key", "certify", "--root", (d / "root-3.key").string(), "--subject",
            (d / "online.key.pub").string(), "--version", "2", "--out",
            (d / "online-3.cert").string()}));
  json config = json::parse(read_file(d / "coordinator.json"));
  config["online_cert"] = (d / "online-3.cert").string();
  config["root_chain"] = {(d / "root-2.json").string(), (d / "root-3.json").string()};
  write_file(d / "coordinator.json", config.dump(2));
  f.start_coordinator();
  f.start_agents({"h1", "h2"});  // pinned to root.key.pub: version 1
  // Enrolled (start_agents waits for it) only because each walked to root 3:
  // the certificate does not chain to root 1.
  for (const auto& h : f.hosts()) {
    auto last = f.agent(h).wait_for(
        [](const json& l) { return l.value("event", "") == "root_rotated" && l["version"] == 3; },
        10s);
    EXPECT_TRUE(last.has_value()) << h << f.agent_failures();
  }
}

}  // namespace
}  // namespace drover::testing
