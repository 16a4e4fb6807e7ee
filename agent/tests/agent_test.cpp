// drover-agent as it runs: a real process against the fake coordinator, a
// real origin and mesh on loopback, supervising real demo services.
#include <signal.h>

#include "agent/tests/agent_fixture.hpp"
#include "core/canon/canonical_json.hpp"
#include "tests/support/hostile_artifact.hpp"

namespace drover::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

json good() {
  return {{"error_rate", 0.01}, {"p99_ms", 12}, {"saturation", 0.2}};
}

auto seq_is(std::uint64_t seq) {
  return [seq](const json& j) { return j.value("seq", std::uint64_t{0}) == seq; };
}

TEST_F(AgentTest, UpgradesThenRollsBackWithoutDownloadingAnything) {
  auto v1 = push("web", good(), 256 << 10, 1);
  auto v2 = push("web", good(), 256 << 10, 2);
  start_origin();
  auto agent = start_agent(write_config({}));
  wait_event(*agent, "enrolled");

  coordinator_.publish(plan(v1, 1));
  json applied1 = wait_event(*agent, "applied", seq_is(1));
  EXPECT_EQ(applied1["artifact"], v1.id.str());
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
  EXPECT_EQ(coordinator_.requests("manifest_pull"), manifest_pulls);
  ASSERT_TRUE(wait_serving(ports_["host-1"], v1.id));

  json s = status();
  EXPECT_EQ(s["services"]["web"]["current"], v1.id.str());
  EXPECT_EQ(s["services"]["web"]["previous"][0], v2.id.str());
  EXPECT_EQ(s["services"]["web"]["seq"], 3);
  EXPECT_TRUE(s["coordinator"]["reachable"].get<bool>());

  // The coordinator heard about every step, authenticated, once per seq.
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (coordinator_.events("applied").size() < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(coordinator_.events("applied").size(), 3u);
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
      {"not for this host", [&] { coordinator_.publish(plan(v2, next, {"host-2"})); },
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

}  // namespace
}  // namespace drover::testing
