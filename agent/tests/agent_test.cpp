// drover-agent as it runs: a real process against the fake coordinator, a
// real origin and mesh on loopback, supervising real demo services.
#include <signal.h>

#include "agent/tests/agent_fixture.hpp"
#include "core/canon/canonical_json.hpp"
#include "core/http/http.hpp"
#include "tests/support/hostile_artifact.hpp"
#include "tests/support/nginx.hpp"

namespace drover::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

TEST_F(AgentTest, UpgradesThenRollsBackWithoutDownloadingAnything) {
  auto v1 = push("web", good(), 256 << 10, 1);
  auto v2 = push("web", good(), 256 << 10, 2);
  start_origin();
  AgentOptions o;
  o.extra = {{"metrics_listen", "127.0.0.1:0"}};
  auto agent = start_agent(write_config(o));
  wait_event(*agent, "enrolled");

  coordinator_.publish(plan(v1, 1));
  json applied1 = wait_event(*agent, "applied", seq_is(1));
  EXPECT_EQ(applied1["artifact"], v1.id.str());
  EXPECT_EQ(applied1["source"], "fetched");
  // Every layer came through the mesh: the payload counters add up to them.
  EXPECT_GE(applied1["downloaded"].get<std::uint64_t>(), v1.plan_template.layer_bytes());
  ASSERT_TRUE(wait_serving(ports_["host-1"], v1.id));

  coordinator_.publish(plan(v2, 2));
  json applied2 = wait_event(*agent, "applied", seq_is(2));
  EXPECT_GE(applied2["downloaded"].get<std::uint64_t>(), v2.plan_template.layer_bytes());
  ASSERT_TRUE(wait_serving(ports_["host-1"], v2.id));
  EXPECT_EQ(fs::read_symlink(state_of() / "releases" / "web" / "current"), v2.id.hex());

  // Rollback: v1 is still kept, so nothing is fetched, not even its manifest.
  const int manifest_pulls = coordinator_.requests("manifest_pull");
  coordinator_.publish(plan(v1, 3));
  json back = wait_event(*agent, "applied", seq_is(3));
  EXPECT_EQ(back["downloaded"], 0);
  EXPECT_EQ(back["source"], "kept");
  EXPECT_EQ(coordinator_.requests("manifest_pull"), manifest_pulls);
  ASSERT_TRUE(wait_serving(ports_["host-1"], v1.id));

  // The metrics listener tells the same: two releases fetched through the
  // mesh, one taken back from what the host kept.
  auto ready = agent->wait_for_event("ready", 5s);
  ASSERT_TRUE(ready);
  const int metrics_port = (*ready)["metrics_port"];
  ASSERT_GT(metrics_port, 0);
  auto scrape =
      http::request("GET", "http://127.0.0.1:" + std::to_string(metrics_port) + "/metrics", "", 5s);
  ASSERT_TRUE(scrape.ok());
  const std::string& m = scrape->body;
  EXPECT_NE(m.find("drover_agent_apply_duration_seconds_count{source=\"fetched\"} 2\n"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("drover_agent_apply_duration_seconds_count{source=\"kept\"} 1\n"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("drover_agent_applies_total{service=\"web\",outcome=\"applied\"} 3\n"),
            std::string::npos)
      << m;
  EXPECT_EQ(m.find("drover_mesh_bytes_total{direction=\"down\",from=\"origin\"} 0\n"),
            std::string::npos)
      << "the layers came from the origin, and the metric says so\n"
      << m;
  // Its control port serves no metrics, and the metrics port no control.
  auto not_here =
      http::request("GET", "http://127.0.0.1:" + std::to_string(metrics_port) + "/status", "", 5s);
  ASSERT_TRUE(not_here.ok());
  EXPECT_EQ(not_here->status, 404);
  auto no_post = http::request(
      "POST", "http://127.0.0.1:" + std::to_string(metrics_port) + "/metrics", "", 5s);
  ASSERT_TRUE(no_post.ok());
  EXPECT_EQ(no_post->status, 405);

  json s = status();
  EXPECT_EQ(s["services"]["web"]["current"], v1.id.str());
  EXPECT_EQ(s["services"]["web"]["previous"][0], v2.id.str());
  EXPECT_EQ(s["services"]["web"]["seq"], 3);
  EXPECT_TRUE(s["coordinator"]["reachable"].get<bool>());

  // The coordinator heard about every step, authenticated, once per seq.
  EXPECT_TRUE(eventually([&] { return coordinator_.events("applied").size() == 3; }));
  EXPECT_EQ(coordinator_.refused_macs(), 0);
  std::set<std::uint64_t> seqs;
  for (const auto& r : coordinator_.reports()) EXPECT_TRUE(seqs.insert(r.body.seq).second);
}

TEST_F(AgentTest, RefusesBadPlansAndLeavesTheRunningVersionAlone) {
  auto v1 = push("web", good(), 64 << 10, 1);
  auto v2 = push("web", good(), 64 << 10, 2);
  start_origin();
  auto agent = start_agent(write_config({}));
  coordinator_.publish(plan(v1, 5));
  wait_event(*agent, "applied", seq_is(5));
  ASSERT_TRUE(wait_serving(ports_["host-1"], v1.id));
  const auto pid = (*version(ports_["host-1"]))["pid"];

  struct Case {
    std::string name;
    std::function<void()> serve;
    std::string reason;  // expected in the refusal
  };
  SeededRandom rnd(9);
  const sign::KeyPair stranger = sign::KeyPair::generate(rnd);
  std::uint64_t next = 6;
  std::vector<Case> cases = {
      {"forged", [&] { coordinator_.publish(plan(v2, next), &stranger); }, "signature"},
      {"expired",
       [&] {
         proto::Plan p = plan(v2, next);
         p.issued_at -= 7200;
         p.expires_at = p.issued_at + 60;
         coordinator_.publish(p);
       },
       "expired"},
      {"replayed", [&] { coordinator_.publish(plan(v2, 4)); }, "replay"},
      {"not for this host", [&] { coordinator_.publish_to_everyone(plan(v2, next, {"host-2"})); },
       "does not list this host"},
      {"layer sizes other than the manifest's",
       [&] {
         proto::Plan p = plan(v2, next);
         p.layers[0].size += 1;
         coordinator_.publish(p);
       },
       "is not the plan's"},
      {"manifest larger than signed",
       [&] {
         proto::Plan p = plan(v2, next);
         p.manifest_size -= 1;
         coordinator_.publish(p);
       },
       "the plan signs"},
  };
  for (auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::uint64_t seq = c.name == "replayed" ? 4 : next;
    c.serve();
    json refused = wait_event(
        *agent,
        c.name == "layer sizes other than the manifest's" || c.name == "manifest larger than signed"
            ? "apply_failed"
            : "plan_refused",
        [&](const json& j) {
          return j.value("seq", std::uint64_t{0}) == seq || c.name == "forged";
        });
    const std::string text = refused.value("reason", refused.value("error", ""));
    EXPECT_NE(text.find(c.reason), std::string::npos) << text;
    ++next;
  }
  // Still v1, the same process.
  auto v = version(ports_["host-1"]);
  ASSERT_TRUE(v);
  EXPECT_EQ((*v)["release"], v1.id.str());
  EXPECT_EQ((*v)["pid"], pid);
  // And each was reported.
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (coordinator_.events("plan_refused").size() + coordinator_.events("replay_refused").size() <
             6 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_GE(coordinator_.events("replay_refused").size(), 1u);
  EXPECT_GE(
      coordinator_.events("plan_refused").size() + coordinator_.events("replay_refused").size(),
      6u);
}

TEST_F(AgentTest, BlueGreenFlipsOnlyOnceTheNewSlotIsHealthy) {
  auto v1 = push("web", good(), 64 << 10, 1);
  json slow = good();
  slow["start_delay_ms"] = 1500;  // the new slot is unhealthy for 1.5 s
  auto v2 = push("web", slow, 64 << 10, 2);
  json garbage = good();
  garbage["health"] = "garbage";
  auto v3 = push("web", garbage, 64 << 10, 3);
  start_origin();
  AgentOptions o;
  o.blue_green = true;
  auto agent = start_agent(write_config(o));
  const fs::path router = state_of() / "run" / "web.router.json";
  auto active = [&] { return json::parse(read_file(router))["active"].get<std::string>(); };

  coordinator_.publish(plan(v1, 1));
  wait_event(*agent, "switched", [](const json& j) { return j["slot"] == "blue"; });
  EXPECT_EQ(active(), "blue");
  ASSERT_TRUE(wait_serving(ports_["host-1"], v1.id));

  coordinator_.publish(plan(v2, 2));
  wait_event(*agent, "started", [](const json& j) { return j["slot"] == "green"; });
  // Green runs but does not answer yet: traffic stays on blue.
  EXPECT_FALSE(version(green_ports_["host-1"]));
  EXPECT_EQ(active(), "blue");
  wait_event(*agent, "switched", [](const json& j) { return j["slot"] == "green"; });
  EXPECT_EQ(active(), "green");
  EXPECT_EQ(json::parse(read_file(router))["release"], v2.id.str());
  ASSERT_TRUE(wait_serving(green_ports_["host-1"], v2.id));
  // Blue keeps the old release running: flipping back needs no start.
  ASSERT_TRUE(version(ports_["host-1"]));

  // A release whose health endpoint answers garbage never takes traffic.
  coordinator_.publish(plan(v3, 3));
  json failed = wait_event(*agent, "apply_failed", seq_is(3));
  EXPECT_NE(failed["error"].get<std::string>().find("not a JSON object"), std::string::npos)
      << failed.dump();
  EXPECT_EQ(active(), "green");
  ASSERT_TRUE(wait_serving(green_ports_["host-1"], v2.id));

  // Flipping back to v1 is a switch of the router file: blue still runs it.
  coordinator_.publish(plan(v1, 4));
  json back = wait_event(*agent, "applied", seq_is(4));
  EXPECT_EQ(back["downloaded"], 0);
  EXPECT_EQ(active(), "blue");
}

// Issue 15: the same flips through a real nginx on the host. The agent
// renders its drop-in, nginx takes it, and live traffic on nginx's port
// follows each flip; flipping back starts nothing (blue's same process).
TEST_F(AgentTest, BlueGreenFlipsLiveTrafficThroughNginx) {
  drover::testing::NginxProcess nginx(dir_ / "nginx");
  ASSERT_TRUE(nginx.ok()) << nginx.error();
  auto v1 = push("web", good(), 64 << 10, 1);
  auto v2 = push("web", good(), 64 << 10, 2);
  start_origin();
  const std::uint16_t live = free_port();
  AgentOptions o;
  o.blue_green = true;
  o.service_extra = {{"router",
                      {{"kind", "nginx"},
                       {"conf_file", (nginx.conf_d() / "drover-web.conf").string()},
                       {"listen", "127.0.0.1:" + std::to_string(live)},
                       {"command", nginx.command()}}}};
  auto agent = start_agent(write_config(o));
  auto blue_pid = [&] {
    return json::parse(read_file(state_of() / "run" / "web-blue.pid"))["pid"].get<int>();
  };

  coordinator_.publish(plan(v1, 1));
  wait_event(*agent, "applied", seq_is(1));
  ASSERT_TRUE(wait_serving(live, v1.id)) << "nginx does not send live traffic to blue";
  const int blue = blue_pid();

  coordinator_.publish(plan(v2, 2));
  wait_event(*agent, "applied", seq_is(2));
  ASSERT_TRUE(wait_serving(live, v2.id)) << "nginx does not send live traffic to green";
  EXPECT_NE(
      read_file(nginx.conf_d() / "drover-web.conf")
          .find("server 127.0.0.1:" + std::to_string(green_ports_["host-1"]) + " weight=1000"),
      std::string::npos);

  coordinator_.publish(plan(v1, 3));
  json back = wait_event(*agent, "applied", seq_is(3));
  EXPECT_EQ(back["downloaded"], 0);
  ASSERT_TRUE(wait_serving(live, v1.id));
  EXPECT_EQ(blue_pid(), blue) << "flipping back restarted blue";
}

TEST_F(AgentTest, ACrashLoopingServiceIsReportedUnhealthy) {
  auto v1 = push("web", good(), 64 << 10, 1);
  json crashing = good();
  crashing["exit_after_ms"] = 1200;  // healthy at first, then dies, again and again
  auto v2 = push("web", crashing, 64 << 10, 2);
  start_origin();
  auto agent = start_agent(write_config({}));
  coordinator_.publish(plan(v1, 1));
  wait_event(*agent, "applied", seq_is(1));
  coordinator_.publish(plan(v2, 2));
  wait_event(*agent, "applied", seq_is(2));
  wait_event(*agent, "crash_loop", {}, 60s);
  wait_event(
      *agent, "health", [](const json& j) { return j["ok"] == false; }, 30s);
  EXPECT_TRUE(eventually([&] {
    for (const auto& h : coordinator_.health("web")) {
      if (h.state == "crash_loop" && !h.ok && h.release == v2.id.str()) return true;
    }
    return false;
  }));
  EXPECT_FALSE(coordinator_.events("crash_loop").empty());
  json s = status();
  EXPECT_EQ(s["services"]["web"]["processes"][0]["state"], "crash_loop");
}

TEST_F(AgentTest, AFailingStartPutsThePreviousReleaseBack) {
  auto v1 = push("web", good(), 64 << 10, 1);
  json dying = good();
  dying["exit_after_ms"] = 0;  // exits at once
  auto v2 = push("web", dying, 64 << 10, 2);
  start_origin();
  auto agent = start_agent(write_config({}));
  coordinator_.publish(plan(v1, 1));
  wait_event(*agent, "applied", seq_is(1));
  ASSERT_TRUE(wait_serving(ports_["host-1"], v1.id));
  coordinator_.publish(plan(v2, 2));
  json failed = wait_event(*agent, "apply_failed", seq_is(2));
  EXPECT_NE(failed["error"].get<std::string>().find("during start"), std::string::npos)
      << failed.dump();
  ASSERT_TRUE(wait_serving(ports_["host-1"], v1.id));
  EXPECT_EQ(fs::read_symlink(state_of() / "releases" / "web" / "current"), v1.id.hex());
  json s = status();
  EXPECT_EQ(s["services"]["web"]["current"], v1.id.str());
  EXPECT_EQ(s["services"]["web"]["seq_state"], "failed");
}

TEST_F(AgentTest, HooksFromTheArtifactAndAHangingStartThatTimesOut) {
  const std::string demo = binary("drover-demo-service").string();
  auto v1 = push("web", good(), 64 << 10, 1,
                 {{"format", "drover.service.v1"},
                  {"start", {demo, "--port", "{port}"}},
                  {"health", "http://127.0.0.1:{port}/health"},
                  {"start_timeout_s", 10}});
  // Starts, but never answers its health endpoint.
  auto v2 = push("web", good(), 64 << 10, 2,
                 {{"format", "drover.service.v1"},
                  {"start", {"/bin/sleep", "600"}},
                  {"health", "http://127.0.0.1:{port}/health"},
                  {"start_timeout_s", 2}});
  start_origin();
  AgentOptions o;
  o.artifact_hooks = true;
  auto agent = start_agent(write_config(o));
  coordinator_.publish(plan(v1, 1));
  wait_event(*agent, "applied", seq_is(1));
  ASSERT_TRUE(wait_serving(ports_["host-1"], v1.id));
  coordinator_.publish(plan(v2, 2));
  json failed = wait_event(*agent, "apply_failed", seq_is(2));
  EXPECT_NE(failed["error"].get<std::string>().find("not healthy within 2 s"), std::string::npos)
      << failed.dump();
  ASSERT_TRUE(wait_serving(ports_["host-1"], v1.id));
  EXPECT_TRUE(eventually([&] { return !coordinator_.events("apply_failed").empty(); }));
}

TEST_F(AgentTest, ServesItsLayersToAPeerWithNoCoordinatorAtAll) {
  auto v1 = push("web", good(), 2 << 20, 1);
  start_origin(/*separate_tracker=*/true);
  AgentOptions o;
  o.coordinator = "tcp://127.0.0.1:" + std::to_string(free_port());  // nobody there
  auto agent = start_agent(write_config(o));
  // A forged plan handed over is refused at the door: its signature is
  // checked before it is queued.
  SeededRandom rnd(3);
  proto::PlanBundle forged =
      *proto::sign_plan(plan(v1, 1), sign::KeyPair::generate(rnd), coordinator_.cert());
  write_file(dir_ / "forged.json", proto::encode_bundle(forged));
  ProcessResult refused = run({binary("drover-agent").string(), "hand-over", "--state",
                               state_of().string(), (dir_ / "forged.json").string()});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE((refused.out + refused.err).find("signature"), std::string::npos)
      << refused.out << refused.err;
  // A peer (here: the test) hands the agent a signed plan with its manifest.
  proto::PlanBundle bundle =
      *proto::sign_plan(plan(v1, 1), coordinator_.online(), coordinator_.cert());
  bundle.manifest = v1.manifest;
  write_file(dir_ / "bundle.json", proto::encode_bundle(bundle));
  ProcessResult r = run({binary("drover-agent").string(), "hand-over", "--state",
                         state_of().string(), (dir_ / "bundle.json").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  wait_event(*agent, "applied", seq_is(1));
  ASSERT_TRUE(wait_serving(ports_["host-1"], v1.id));
  EXPECT_FALSE(status()["coordinator"]["reachable"].get<bool>());

  // The origin goes away too; a new host still gets every layer, from the agent.
  origin_->kill();
  write_file(dir_ / "v1.manifest", v1.manifest);
  DaemonProcess peer(
      {binary("drover-peer").string(), "--cache", (dir_ / "peer-cache").string(), "--tracker",
       tracker_, "--region", "r1", "--cluster", "c1", "--host", "newcomer", "--manifest",
       (dir_ / "v1.manifest").string(), "--announce-interval", "1", "--exit-when-done"},
      (dir_ / "peer.err").string());
  auto done = peer.wait_for_event("done", 60s);
  ASSERT_TRUE(done) << peer.stderr_tail();
  EXPECT_EQ((*done)["counters"]["down"]["peer"], v1.plan_template.layer_bytes())
      << done->dump() << "\n"
      << peer.stderr_tail();
  EXPECT_EQ((*done)["counters"]["down"]["origin"], 0);
  // The service never stopped.
  ASSERT_TRUE(wait_serving(ports_["host-1"], v1.id));
}

TEST_F(AgentTest, FlagsFollowThePlanWithoutARestart) {
  json release = good();
  release["flag_paths"] = {{"ramp", {{"error_rate", 0.5}, {"p99_ms", 400}}}};  // a bad code path
  auto v1 = push("web", release, 64 << 10, 1);
  start_origin();
  AgentOptions o;
  o.service_extra = {{"flags_format", "flagd"}};
  auto agent = start_agent(write_config(o));
  proto::Plan p1 = plan(v1, 1);
  p1.strategy_kind = "feature_flag";
  p1.flags["new-checkout"] = proto::FlagValue{false, true, 0};
  coordinator_.publish(p1);
  wait_event(*agent, "applied", seq_is(1));
  ASSERT_TRUE(wait_serving(ports_["host-1"], v1.id));
  auto before = version(ports_["host-1"]);
  ASSERT_TRUE(before);
  // flagd's format (issue 15): a boolean flag with variants on and off.
  EXPECT_EQ((*before)["flags"]["$schema"], "https://flagd.dev/schema/v0/flags.json");
  EXPECT_EQ((*before)["flags"]["flags"]["new-checkout"]["defaultVariant"], "on");
  EXPECT_EQ((*before)["flags"]["metadata"]["drover"], "drover.flags.v2");
  auto health = [&] {
    auto r =
        http::request("GET", "http://127.0.0.1:" + std::to_string(ports_["host-1"]) + "/health", "",
                      std::chrono::seconds(5));
    return r.ok() ? json::parse(r->body, nullptr, false) : json();
  };
  EXPECT_NEAR(health()["error_rate"].get<double>(), 0.01, 1e-9);

  // A ramp, then the flag off: the file changes, the process stays.
  proto::Plan p2 = plan(v1, 2);
  p2.strategy_kind = "feature_flag";
  p2.flags["new-checkout"] = proto::FlagValue{false, false, 0};
  p2.flags["ramp"] = proto::FlagValue{true, false, 25};
  coordinator_.publish(p2);
  wait_event(*agent, "applied", seq_is(2));
  auto after = version(ports_["host-1"]);
  ASSERT_TRUE(after);
  EXPECT_EQ((*after)["flags"]["flags"]["new-checkout"]["defaultVariant"], "off");
  EXPECT_EQ((*after)["flags"]["flags"]["ramp"]["targeting"],
            json::parse(R"({"fractional":[["on",25],["off",75]]})"));
  EXPECT_EQ((*after)["flags"]["metadata"]["seq"], 2);
  EXPECT_EQ((*after)["pid"], (*before)["pid"]);
  // The service reads the ramp as flagd would: a quarter of its users take
  // the bad path, and its health says so.
  const json degraded = health();
  EXPECT_GT(degraded["error_rate"].get<double>(), 0.09) << degraded.dump();
  EXPECT_LT(degraded["error_rate"].get<double>(), 0.17) << degraded.dump();
  EXPECT_EQ(degraded["p99_ms"], 400);
}

TEST_F(AgentTest, KeepsTheLastKReleasesAndCollectsTheRest) {
  auto v1 = push("web", good(), 256 << 10, 1);
  auto v2 = push("web", good(), 256 << 10, 2);
  auto v3 = push("web", good(), 256 << 10, 3);
  start_origin();
  AgentOptions o;
  o.extra = {{"keep_releases", 2}};
  auto agent = start_agent(write_config(o));
  std::uint64_t seq = 0;
  for (const auto* a : {&v1, &v2, &v3}) {
    coordinator_.publish(plan(*a, ++seq));
    wait_event(*agent, "applied", seq_is(seq));
  }
  // Garbage is collected after each apply.
  wait_event(*agent, "gc", [](const json& j) { return j["releases_removed"] == 1; });
  const fs::path releases = state_of() / "releases" / "web";
  EXPECT_FALSE(fs::exists(releases / v1.id.hex()));
  EXPECT_TRUE(fs::exists(releases / v2.id.hex()));
  EXPECT_TRUE(fs::exists(releases / v3.id.hex()));
  EXPECT_FALSE(fs::exists(state_of() / "manifests" / v1.id.hex()));
  for (const auto& l : v1.plan_template.layers) {
    EXPECT_FALSE(fs::exists(state_of() / "cache" / "layers" / l.id.hex())) << l.id.str();
    EXPECT_FALSE(fs::exists(state_of() / "cache" / "complete" / l.id.hex())) << l.id.str();
  }
  for (const auto& l : v2.plan_template.layers) {
    EXPECT_TRUE(fs::exists(state_of() / "cache" / "complete" / l.id.hex())) << l.id.str();
  }
  // v2 is still a local rollback away; v1 must be fetched again.
  coordinator_.publish(plan(v2, ++seq));
  EXPECT_EQ(wait_event(*agent, "applied", seq_is(seq))["downloaded"], 0);
  coordinator_.publish(plan(v1, ++seq));
  EXPECT_GT(wait_event(*agent, "applied", seq_is(seq))["downloaded"].get<std::uint64_t>(), 0u);
  ASSERT_TRUE(wait_serving(ports_["host-1"], v1.id));
}

}  // namespace
}  // namespace drover::testing
