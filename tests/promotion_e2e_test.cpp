// Promotion with real parts (issue 13): drover-coordinator, an origin, a seed
// per region and drover-agent processes in two environments of four regions
// each, driven by the drover command line as release engineers would. The
// pipeline comes from a YAML file; a release passes staging, waits at the
// production gate for a second person, and rolls through production wave by
// wave. A release, started by a signed push, that degrades only in the
// second wave is rolled back in production alone, newest wave first, and the
// audit chain names both people.
#include <gtest/gtest.h>
#include <set>

#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

#include "tests/support/fleet.hpp"
#include "tests/support/notify_receiver.hpp"

namespace drover::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const std::vector<std::string> kStagingRegions = {"stg-1", "stg-2", "stg-3", "stg-4"};
const std::vector<std::string> kProductionRegions = {"us-east-2", "us-west-2", "eu-west-1",
                                                     "ap-southeast-1"};

// Production: the canary region, then two regions in parallel, then the rest.
constexpr const char* kPipeline = R"(format: drover.pipeline.v2
service: web
source_repo: org/web
branch: main
strategy: {kind: rolling, batch_percent: 50}
health_checks: {bake_s: 2, min_samples: 3}
timeouts: {ready_s: 60, converge_s: 60, rollback_s: 60, gate_s: 600, pause_s: 600}
watch_s: 2
environments:
  - name: staging
    strategy: {kind: rolling, batch_percent: 100}
    waves:
      - name: all
        regions: [stg-1, stg-2, stg-3, stg-4]
  - name: production
    gate: {approvals: 1}
    waves:
      - {name: canary, regions: [us-east-2], bake_s: 2}
      - {name: continents, regions: [us-west-2, eu-west-1], bake_s: 2}
      - {name: rest, regions: ["*"]}
)";

struct PromotionFleet {
  TempDir dir;
  TestFleet f{dir.path()};
  std::map<std::string, std::string> region_of;  // host -> region
  std::map<std::string, std::string> tokens;     // name -> token

  std::string token(const std::string& name, const std::string& role, const std::string& person) {
    json t = f.api("POST", "/tokens", json{{"name", name}, {"role", role}, {"person", person}});
    return tokens[name] = t.value("token", "");
  }

  ProcessResult as(const std::string& who, std::vector<std::string> args) {
    args.push_back("--token");
    args.push_back(tokens.at(who));
    return f.drover(args);
  }

  std::vector<std::string> hosts_in(const std::vector<std::string>& regions) const {
    std::vector<std::string> out;
    for (const auto& [h, r] : region_of) {
      if (std::find(regions.begin(), regions.end(), r) != regions.end()) out.push_back(h);
    }
    return out;
  }

  // When host last switched to release (its newest change to it), or -1.
  std::int64_t switched_to(const std::string& host, const std::string& release) {
    json h = f.api("GET", "/hosts/" + host + "/releases?service=web");
    std::int64_t at = -1;
    for (const auto& r : h["releases"]) {
      if (r["artifact_id"] == release) at = r["since_ms"].get<std::int64_t>();
    }
    return at;
  }

  json deploy(const std::string& id) { return f.api("GET", "/deploys/" + id); }

  bool reaches(const std::string& id, const std::string& state, std::chrono::seconds timeout) {
    return eventually([&] { return deploy(id).value("state", "") == state; }, timeout);
  }
};

TEST(PromotionEndToEnd, StagingThenAGateForASecondPersonThenWavesAndAScopedRollback) {
  PromotionFleet p;
  TestFleet& f = p.f;
  const json healthy = {{"error_rate", 0.01}, {"p99_ms", 12}, {"saturation", 0.2}};
  const std::string v1 = f.push("v1", healthy);
  json bad_in_eu = healthy;
  bad_in_eu["by_region"] = {{"eu-west-1", {{"error_rate", 0.40}}}};
  const std::string v2_commit = "c0ffee0" + std::string(33, '2');
  const std::string v2 = f.push("v2", bad_in_eu, v2_commit.substr(0, 12));
  f.start_coordinator();
  f.start_origin();
  for (const auto& r : kStagingRegions) {
    f.start_seed(r);
    const std::string h = "s" + r.substr(4);
    f.start_agents({h}, r);
    p.region_of[h] = r;
  }
  int n = 0;
  for (const auto& r : kProductionRegions) {
    f.start_seed(r);
    const std::vector<std::string> hosts = {"p" + std::to_string(++n) + "a",
                                            "p" + std::to_string(n) + "b"};
    f.start_agents(hosts, r);
    for (const auto& h : hosts) p.region_of[h] = r;
  }
  ASSERT_EQ(f.hosts().size(), 12u);
  for (const auto& a : {v1, v2}) ASSERT_TRUE(f.registered(a)) << a;

  p.token("alice", "deployer", "alice");
  p.token("alice-approver", "approver", "alice");  // the same person, another token
  p.token("bob", "approver", "bob");

  // A bad file is refused naming its line and field, and nothing is stored.
  std::string broken = kPipeline;
  broken.replace(broken.find("bake_s: 2}\n      - {name: continents"), 9, "bake_s: -1");
  write_file(f.dir() / "broken.yaml", broken);
  ProcessResult refused = f.drover({"pipeline", "apply", "-f", (f.dir() / "broken.yaml").string()});
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("line 18"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("environments[1].waves[0].bake_s"), std::string::npos) << refused.err;
  ProcessResult none = f.drover({"pipeline", "ls"});
  ASSERT_EQ(none.exit_code, 0) << none.err;
  EXPECT_EQ(none.out, "");

  write_file(f.dir() / "pipeline.yaml", kPipeline);
  ProcessResult applied =
      f.drover({"pipeline", "apply", "-f", (f.dir() / "pipeline.yaml").string()});
  ASSERT_EQ(applied.exit_code, 0) << applied.err;
  // People hear about the pipeline's runs (issue 14): the admin allows the
  // release channel's receiver, and the pipeline posts to it, signed.
  NotifyReceiver receiver("promotion-notify-secret");
  write_file(f.dir() / "notify.secret", "promotion-notify-secret\n", 0600);
  ProcessResult allow = f.drover({"notify", "allow", receiver.url("/hooks/")});
  ASSERT_EQ(allow.exit_code, 0) << allow.err;
  ProcessResult added =
      f.drover({"notify", "add", "web", "release-channel", "--url", receiver.url("/hooks/web"),
                "--secret-file", (f.dir() / "notify.secret").string()});
  ASSERT_EQ(added.exit_code, 0) << added.err;
  ProcessResult outside =
      f.drover({"notify", "add", "web", "elsewhere", "--url", f.api_url() + "/tokens",
                "--secret-file", (f.dir() / "notify.secret").string()});
  EXPECT_EQ(outside.exit_code, 1) << "a destination outside the allow-list: " << outside.out;
  ProcessResult listed = f.drover({"notify", "ls", "web"});
  EXPECT_NE(listed.out.find("release-channel\t" + receiver.url("")), std::string::npos)
      << listed.out;
  EXPECT_EQ(listed.out.find("promotion-notify-secret"), std::string::npos);

  ProcessResult shown = f.drover({"pipeline", "show", "web"});
  EXPECT_NE(shown.out.find("wave continents: [\"us-west-2\",\"eu-west-1\"]"), std::string::npos)
      << shown.out;

  // v1 everywhere: staging, the gate (bob), production wave by wave.
  ProcessResult first = p.as("alice", {"deploy", "web", v1, "--json"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const std::string d1 = json::parse(first.out)["deploy_id"];
  ASSERT_TRUE(p.reaches(d1, "awaiting_approval", 120s)) << p.deploy(d1).dump();
  ASSERT_EQ(p.as("bob", {"approve", d1}).exit_code, 0);
  json one = f.wait_done(d1);
  ASSERT_EQ(one["state"], "succeeded") << one.dump() << f.agent_failures();
  for (const auto& h : f.hosts()) EXPECT_EQ(f.serving(h).first, v1) << h;

  // v2 starts with alice's push to main (issue 14): the event signed with
  // the repository's secret, her login mapped to her person.
  const std::string secret = "org-web-push-secret";
  write_file(f.dir() / "scm.secret", secret + "\n", 0600);
  ProcessResult source =
      f.drover({"scm", "source", "org/web", "--secret-file", (f.dir() / "scm.secret").string()});
  ASSERT_EQ(source.exit_code, 0) << source.err;
  ASSERT_EQ(f.drover({"scm", "login", "alice-gh", "alice"}).exit_code, 0);
  ProcessResult sources = f.drover({"scm", "sources", "--json"});
  EXPECT_NE(sources.out.find("org/web"), std::string::npos) << sources.out;
  EXPECT_EQ(sources.out.find(secret), std::string::npos) << "the secret is never read back";
  const json event = {{"ref", "refs/heads/main"},
                      {"after", v2_commit},
                      {"repository", {{"full_name", "org/web"}}},
                      {"pusher", {{"name", "alice-gh"}}}};
  EXPECT_EQ(f.scm_push(event, "delivery-1", "not-the-secret-at-all"), 401);
  json pushed;
  ASSERT_EQ(f.scm_push(event, "delivery-1", secret, &pushed), 202) << pushed.dump();
  ASSERT_EQ(pushed["triggers"].size(), 1u) << pushed.dump();
  ASSERT_EQ(pushed["triggers"][0]["state"], "started") << pushed.dump();
  const std::string d2 = pushed["triggers"][0]["deploy_id"];
  EXPECT_EQ(f.scm_push(event, "delivery-2", secret), 200);  // the same commit: nothing more
  // Staging passes; production waits at its gate.
  ASSERT_TRUE(p.reaches(d2, "awaiting_approval", 120s)) << p.deploy(d2).dump();
  for (const auto& h : p.hosts_in(kStagingRegions)) EXPECT_EQ(f.serving(h).first, v2) << h;
  for (const auto& h : p.hosts_in(kProductionRegions)) EXPECT_EQ(f.serving(h).first, v1) << h;

  // The starter's own approval is refused, whichever token she uses.
  ProcessResult own = p.as("alice-approver", {"approve", d2});
  EXPECT_EQ(own.exit_code, 1) << own.out;
  EXPECT_NE(own.err.find("alice"), std::string::npos) << own.err;
  ProcessResult deployer = p.as("alice", {"approve", d2});
  EXPECT_EQ(deployer.exit_code, 8) << "a deployer's token cannot approve: unauthorized (403)";
  EXPECT_EQ(p.deploy(d2)["state"], "awaiting_approval");
  ProcessResult bob = p.as("bob", {"approve", d2, "--comment", "staging looks good"});
  ASSERT_EQ(bob.exit_code, 0) << bob.err;

  // The canary region passes, the second wave degrades in eu-west-1: production rolls back.
  json two = f.wait_done(d2);
  ASSERT_EQ(two["state"], "rolled_back") << two.dump() << f.agent_failures();
  EXPECT_NE(two["reason"].get<std::string>().find("error_rate"), std::string::npos)
      << two["reason"];
  const json& envs = two["environments"];
  ASSERT_EQ(envs.size(), 2u);
  EXPECT_EQ(envs[0]["status"], "passed");
  EXPECT_EQ(envs[1]["status"], "rolled_back");
  const json& waves = envs[1]["waves"];
  EXPECT_EQ(waves[0]["status"], "rolled_back") << waves.dump();
  EXPECT_EQ(waves[1]["status"], "rolled_back") << waves.dump();
  EXPECT_EQ(waves[2]["status"], "pending") << waves.dump();

  // Staging keeps v2; production is back on v1 everywhere.
  for (const auto& h : p.hosts_in(kStagingRegions)) EXPECT_EQ(f.serving(h).first, v2) << h;
  for (const auto& h : p.hosts_in(kProductionRegions)) {
    EXPECT_TRUE(eventually([&] { return f.serving(h).first == v1; })) << h;
  }
  // Newest wave first: every host of the second wave was back on v1 before
  // any host of the canary wave switched back.
  std::int64_t wave2_back = 0, wave1_back = std::numeric_limits<std::int64_t>::max();
  for (const auto& h : p.hosts_in({"us-west-2", "eu-west-1"})) {
    if (p.switched_to(h, v2) < 0) continue;  // never took v2
    wave2_back = std::max(wave2_back, p.switched_to(h, v1));
  }
  for (const auto& h : p.hosts_in({"us-east-2"})) {
    ASSERT_GT(p.switched_to(h, v2), 0) << h;
    wave1_back = std::min(wave1_back, p.switched_to(h, v1));
  }
  EXPECT_GT(wave2_back, 0);
  EXPECT_LT(wave2_back, wave1_back);

  // What ran: per environment, and per host at a moment inside the release.
  EXPECT_EQ(f.api("GET", "/audit/running?service=web&env=staging")["artifact_id"], v2);
  EXPECT_EQ(f.api("GET", "/audit/running?service=web&env=production")["artifact_id"], v1);
  const std::string canary_host = p.hosts_in({"us-east-2"}).front();
  const std::int64_t during = p.switched_to(canary_host, v2) + 1;
  EXPECT_EQ(f.api("GET", "/audit/running?service=web&host=" + canary_host +
                             "&at=" + std::to_string(during))["artifact_id"],
            v2);

  // The record: the chain verifies and names both people.
  ProcessResult verify = f.drover({"audit", "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  json history = f.api("GET", "/audit?service=web&limit=1000");
  bool started_by_alice = false, approved_by_bob = false;
  for (const auto& r : history["records"]) {
    if (r.value("deploy_id", "") != d2) continue;
    // Started by alice's push: the record is the SCM trigger's, the run hers.
    started_by_alice |= r["what"] == "deploy.created" && r["who"] == "scm" &&
                        r["detail"].is_object() && r["detail"].value("started_by", "") == "alice";
    if (r["what"] == "gate.approved") {
      approved_by_bob = r["detail"].is_object() && r["detail"].value("person", "") == "bob";
    }
  }
  EXPECT_TRUE(started_by_alice) << history.dump();
  EXPECT_TRUE(approved_by_bob) << history.dump();
  ProcessResult runs = f.drover({"pipeline", "runs", "web"});
  EXPECT_NE(runs.out.find(d2 + "\trolled_back"), std::string::npos) << runs.out;

  // Issue 14: the deploy's whole record, and a redeploy of it that enters
  // production through the gate again.
  ProcessResult shown_record = f.drover({"audit", "show", d2});
  ASSERT_EQ(shown_record.exit_code, 0) << shown_record.err;
  EXPECT_NE(shown_record.out.find("started   by alice in staging"), std::string::npos)
      << shown_record.out;
  EXPECT_NE(shown_record.out.find("gate.approved [production]"), std::string::npos)
      << shown_record.out;
  EXPECT_NE(shown_record.out.find("\"person\":\"bob\""), std::string::npos) << shown_record.out;
  ProcessResult again = p.as("alice", {"redeploy", d2, "--json"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const std::string d3 = json::parse(again.out)["deploy_id"];
  ASSERT_TRUE(p.reaches(d3, "awaiting_approval", 120s)) << p.deploy(d3).dump();
  EXPECT_EQ(p.deploy(d3)["redeploy_of"], d2);

  // The notifications: every event of d2 a person needs, in the audit's
  // order, signed, once each; the push that started it; the gate with who
  // may approve it (bob, never alice, who started it); and d3's gate.
  const std::set<std::string> notifiable = {"gate.waiting",  "gate.approved", "gate.rejected",
                                            "gate.expired",  "wave.started",  "rollback.started",
                                            "rollback.done", "deploy.failed", "deploy.succeeded"};
  std::vector<std::string> expected;
  for (const auto& r : history["records"]) {
    if (r.value("deploy_id", "") == d2 && notifiable.contains(r["what"].get<std::string>())) {
      expected.push_back(r["what"]);
    }
  }
  ASSERT_GE(expected.size(), 6u) << history.dump();
  auto of = [&](const std::string& deploy) {
    std::map<std::uint64_t, NotifyReceiver::Delivery> out;  // by audit seq
    for (const auto& heard : receiver.accepted()) {
      if (heard.body.value("deploy_id", "") == deploy)
        out[heard.body["audit_seq"].get<std::uint64_t>()] = heard;
    }
    return out;
  };
  auto d3_at_gate = [&] {
    for (const auto& [seq, heard] : of(d3)) {
      if (heard.kind == "gate.waiting") return true;
    }
    return false;
  };
  ASSERT_TRUE(eventually([&] { return of(d2).size() >= expected.size() && d3_at_gate(); }, 30s))
      << receiver.deliveries().size() << " deliveries";
  std::vector<std::string> got;
  for (const auto& [seq, heard] : of(d2)) {
    got.push_back(heard.kind);
    EXPECT_TRUE(heard.signature_ok) << heard.kind;
    if (heard.kind == "gate.waiting") {
      EXPECT_EQ(heard.body["env"], "production");
      const json may = heard.body["may_approve"];
      EXPECT_NE(std::find(may.begin(), may.end(), "bob"), may.end()) << may.dump();
      EXPECT_EQ(std::find(may.begin(), may.end(), "alice"), may.end()) << may.dump();
    }
    if (heard.kind == "gate.approved") {
      EXPECT_EQ(heard.body["detail"]["person"], "bob");
    }
  }
  EXPECT_EQ(got, expected);
  bool push_heard = false;
  for (const auto& heard : receiver.accepted()) {
    push_heard |= heard.kind == "scm.started" && heard.body["detail"].value("deploy_id", "") == d2;
  }
  EXPECT_TRUE(push_heard);
  std::map<std::uint64_t, std::set<std::string>> ids;
  for (const auto& heard : receiver.deliveries()) {
    ids[heard.body.value("audit_seq", std::uint64_t{0})].insert(heard.event_id);
  }
  for (const auto& [seq, distinct] : ids) EXPECT_EQ(distinct.size(), 1u) << "audit record " << seq;

  // d3 waits at production's gate: bob turns it down from the command line.
  ProcessResult rejected = p.as("bob", {"reject", d3, "--reason", "not during the sale"});
  ASSERT_EQ(rejected.exit_code, 0) << rejected.out << rejected.err;
  EXPECT_EQ(p.deploy(d3)["state"], "rejected");
  EXPECT_NE(p.deploy(d3)["reason"].get<std::string>().find("not during the sale"),
            std::string::npos)
      << p.deploy(d3).dump();
  // d1 can no longer be rolled back: later runs entered production after it
  // (as a new user tried on the landed code, which moved every host back).
  ProcessResult older = p.as("alice", {"rollback", d1, "--reason", "by hand"});
  EXPECT_EQ(older.exit_code, 1) << older.out << older.err;
  EXPECT_NE(older.err.find("entered environment 'production' after this one"), std::string::npos)
      << older.err;
  EXPECT_EQ(p.deploy(d1)["state"], "succeeded");
  for (const auto& h : p.hosts_in(kProductionRegions)) EXPECT_EQ(f.serving(h).first, v1) << h;
  for (const auto& h : p.hosts_in(kStagingRegions)) EXPECT_EQ(f.serving(h).first, v2) << h;
}

}  // namespace
}  // namespace drover::testing
