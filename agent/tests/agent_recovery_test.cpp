// The agent under kill -9, key trouble, an absent coordinator and hostile
// layers: what it promises is that `current` always names a complete release,
// the service comes back from local state alone, and it converges afterwards.
#include <signal.h>

#include <fstream>

#include "agent/tests/agent_fixture.hpp"
#include "tests/support/hostile_artifact.hpp"

namespace drover::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

RawLayer layer_of(const std::string& bytes) {
  RawLayer l;
  l.stored = bytes;
  return l;
}

struct KillPoint {
  std::string event;  // the agent line after which it is killed
  std::string step;   // the intent the restarted agent must find
};

void PrintTo(const KillPoint& p, std::ostream* os) {
  *os << "kill after '" << p.event << "'";
}

class AgentKill : public AgentTest, public ::testing::WithParamInterface<KillPoint> {};

TEST_P(AgentKill, RestartServesFromLocalStateThenConverges) {
  const KillPoint point = GetParam();
  auto v1 = push("web", good(), 64 << 10, 1);
  json v2_demo = good();
  if (point.step == "switch") v2_demo["start_delay_ms"] = 2000;  // a switch that lasts
  // Large enough that fetching (rate-limited) and unpacking take a while.
  auto v2 = push("web", v2_demo, point.step == "unpack" ? 48 << 20 : 4 << 20, 2);
  start_origin();
  AgentOptions o;
  if (point.step == "fetch") o.download_rate = std::to_string(1 << 20);
  const fs::path config = write_config(o);
  auto agent = start_agent(config);
  coordinator_.publish(plan(v1, 1));
  wait_event(*agent, "applied", seq_is(1));
  ASSERT_TRUE(wait_serving(ports_["host-1"], v1.id));

  coordinator_.publish(plan(v2, 2));
  wait_event(*agent, point.event,
             [&](const json& j) { return j.value("artifact", "") == v2.id.str(); });
  if (point.step == "fetch") {
    // Some bytes in, most still to come.
    ASSERT_TRUE(eventually([&] {
      json s = status();
      return s["services"]["web"]["fetch"]["layers_held"].get<int>() > 0;
    }));
  }
  agent->kill();

  // Whatever the moment, `current` names a complete release.
  const fs::path current = state_of() / "releases" / "web" / "current";
  const auto current_id = *ContentId::parse("sha256:" + fs::read_symlink(current).string());
  const fs::path tree = current_id == v1.id ? v1.tree : v2.tree;
  ASSERT_TRUE(current_id == v1.id || current_id == v2.id);
  EXPECT_EQ(diff(snapshot(tree), snapshot(fs::canonical(current))), "");

  // Restarted without the coordinator: the service runs again from local state.
  coordinator_.set_reachable(false);
  auto again = start_agent(config);
  ASSERT_TRUE(wait_serving(ports_["host-1"], v1.id)) << again->stderr_tail();
  EXPECT_NE(again->stderr_tail(1 << 20).find("step=" + point.step), std::string::npos)
      << "the agent was not killed during " << point.step;
  for (const auto& e : fs::directory_iterator(state_of() / "releases" / "web")) {
    EXPECT_EQ(e.path().filename().string().find(".staging-"), std::string::npos) << e.path();
  }

  // Then, with the coordinator back, it converges to the plan.
  coordinator_.set_reachable(true);
  wait_event(*again, "applied", seq_is(2), 90s);
  ASSERT_TRUE(wait_serving(ports_["host-1"], v2.id));
  EXPECT_EQ(fs::read_symlink(current), v2.id.hex());
  EXPECT_EQ(diff(snapshot(v2.tree), snapshot(fs::canonical(current))), "");
}

INSTANTIATE_TEST_SUITE_P(Phases, AgentKill,
                         ::testing::Values(KillPoint{"fetching", "fetch"},
                                           KillPoint{"unpacking", "unpack"},
                                           KillPoint{"switching", "switch"}),
                         [](const ::testing::TestParamInfo<KillPoint>& p) { return p.param.step; });

TEST_F(AgentTest, TemporariesLeftByAKillDoNotBlockTheNextStartOrPlan) {
  auto v1 = push("web", good(), 64 << 10, 1);
  auto v2 = push("web", good(), 64 << 10, 2);
  start_origin();
  const fs::path config = write_config({});
  auto agent = start_agent(config);
  coordinator_.publish(plan(v1, 1));
  wait_event(*agent, "applied", seq_is(1));
  agent->kill();
  // What a kill between creating a state file's temporary and renaming it
  // leaves behind, for every state file the agent writes that way.
  for (const fs::path& p :
       {state_of() / "control.json.tmp", state_of() / "keys" / "report.key.tmp",
        state_of() / "manifests" / (v2.id.hex() + ".tmp"),
        state_of() / "run" / "web.flags.json.tmp", state_of() / "run" / "web.pid.tmp"}) {
    std::ofstream(p) << "half";
  }
  auto again = start_agent(config);
  coordinator_.publish(plan(v2, 2));
  wait_event(*again, "applied", seq_is(2));
  ASSERT_TRUE(wait_serving(ports_["host-1"], v2.id));
}

TEST_F(AgentTest, AHostIdStaysBoundToItsFirstKey) {
  auto first = start_agent(write_config({}));
  wait_event(*first, "enrolled");
  const auto key = coordinator_.host_key("host-1");
  ASSERT_TRUE(key);
  // Another machine (another key) claiming the same host id is refused.
  AgentOptions impostor;
  impostor.host = "host-1";
  impostor.extra = {{"state_dir", (dir_ / "impostor-state").string()}};
  auto second = start_agent(write_config(impostor));
  json refused = wait_event(*second, "enroll_failed");
  EXPECT_NE(refused["error"].get<std::string>().find("bound to another key"), std::string::npos)
      << refused.dump();
  EXPECT_EQ(*coordinator_.host_key("host-1"), *key);
  // A join token the coordinator never issued is refused too.
  AgentOptions stranger;
  stranger.host = "host-9";
  stranger.join_token = "guessed";
  auto third = start_agent(write_config(stranger));
  json bad_token = wait_event(*third, "enroll_failed");
  EXPECT_NE(bad_token["error"].get<std::string>().find("join token"), std::string::npos);
}

TEST_F(AgentTest, AfterARotationPlansSignedByTheOldKeyAreRefused) {
  auto v1 = push("web", good(), 64 << 10, 1);
  auto v2 = push("web", good(), 64 << 10, 2);
  start_origin();
  auto agent = start_agent(write_config({}));
  const sign::KeyPair old_key = coordinator_.online();
  const sign::Envelope old_cert = coordinator_.cert();
  coordinator_.publish(plan(v1, 1));
  wait_event(*agent, "applied", seq_is(1));

  coordinator_.rotate_online_key();
  coordinator_.publish(plan(v2, 2));
  wait_event(*agent, "applied", seq_is(2));

  // The old key signs a newer plan: refused, the certificate is rotated out.
  coordinator_.serve("web", *proto::sign_plan(plan(v1, 3), old_key, old_cert));
  json refused = wait_event(*agent, "plan_refused", seq_is(0));
  EXPECT_NE(refused["reason"].get<std::string>().find("version"), std::string::npos)
      << refused.dump();
  ASSERT_TRUE(wait_serving(ports_["host-1"], v2.id));
}

TEST_F(AgentTest, ReportsWaitOutAnOutageAndArriveOnce) {
  auto v1 = push("web", good(), 64 << 10, 1);
  start_origin();
  auto agent = start_agent(write_config({}));
  coordinator_.publish(plan(v1, 1));
  wait_event(*agent, "applied", seq_is(1));
  ASSERT_TRUE(eventually([&] { return !coordinator_.health("web").empty(); }));

  coordinator_.set_reachable(false);
  const auto gone = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  ASSERT_TRUE(eventually([&] { return !status()["coordinator"]["reachable"].get<bool>(); }));
  ASSERT_TRUE(eventually([&] { return status()["reports"]["buffered"].get<int>() >= 5; }));
  const auto back = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  coordinator_.set_reachable(true);
  // Samples taken during the outage arrive afterwards.
  ASSERT_TRUE(eventually(
      [&] {
        int during = 0;
        for (const auto& h : coordinator_.health("web")) during += h.at_ms > gone && h.at_ms < back;
        return during >= 5;
      },
      30s));
  std::set<std::uint64_t> seqs;
  for (const auto& r : coordinator_.reports()) EXPECT_TRUE(seqs.insert(r.body.seq).second);
  EXPECT_EQ(coordinator_.refused_macs(), 0);
  ASSERT_TRUE(wait_serving(ports_["host-1"], v1.id));  // the service never noticed
}

TEST_F(AgentTest, AHostileLayerIsRefusedAtUnpack) {
  auto v1 = push("web", good(), 64 << 10, 1);
  // A layer that is what its id says, but whose file is not what the manifest
  // says it is: the build machine lied.
  const ContentId hostile =
      install_raw_artifact(dir_ / "store", {file_entry("demo.json", "{\"health\":\"ok\"}", 0, 0)},
                           {layer_of("{\"health\":\"no\"}")}, "web");
  start_origin();
  auto agent = start_agent(write_config({}));
  coordinator_.publish(plan(v1, 1));
  wait_event(*agent, "applied", seq_is(1));
  coordinator_.publish(plan(from_store(hostile, "web"), 2));
  json failed = wait_event(*agent, "apply_failed", seq_is(2));
  EXPECT_NE(failed["error"].get<std::string>().find("does not match its hash"), std::string::npos)
      << failed.dump();
  ASSERT_TRUE(wait_serving(ports_["host-1"], v1.id));
  EXPECT_FALSE(fs::exists(state_of() / "releases" / "web" / hostile.hex()));
}

TEST_F(AgentTest, ACorruptLayerNobodyCanServeFailsTheFetchAndNothingElse) {
  auto v1 = push("web", good(), 64 << 10, 1);
  auto v2 = push("web", good(), 256 << 10, 2);
  // The store's copy of v2's layer rots: the origin cannot seed it, and no
  // peer holds it.
  const auto& layer = v2.plan_template.layers[0];
  const fs::path blob =
      dir_ / "store" / "blobs" / "sha256" / layer.id.hex().substr(0, 2) / layer.id.hex();
  fs::permissions(blob, fs::perms::owner_write, fs::perm_options::add);
  std::string bytes = read_file(blob);
  bytes[bytes.size() / 2] ^= 0x20;
  write_file(blob, bytes, 0444);
  start_origin();
  AgentOptions o;
  o.extra = {{"fetch_stall_timeout_s", 2}};
  auto agent = start_agent(write_config(o));
  coordinator_.publish(plan(v1, 1));
  wait_event(*agent, "applied", seq_is(1));
  coordinator_.publish(plan(v2, 2));
  json failed = wait_event(*agent, "fetch_failed");
  EXPECT_NE(failed["error"].get<std::string>().find(layer.id.str()), std::string::npos)
      << failed.dump();
  EXPECT_TRUE(eventually([&] { return !coordinator_.events("fetch_failed").empty(); }));
  ASSERT_TRUE(wait_serving(ports_["host-1"], v1.id));
  EXPECT_FALSE(fs::exists(state_of() / "cache" / "complete" / layer.id.hex()));
  // What an operator sees.
  ProcessResult r =
      run({binary("drover-agent").string(), "status", "--state", state_of().string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("current   " + v1.id.str()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(layer.id.str()), std::string::npos) << r.out;  // the last error
  EXPECT_NE(r.out.find("coordinator: reachable, enrolled"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace drover::testing
