// Strategies on a traffic router in virtual time (issue 15): blue/green
// (a preview at no traffic judged with a minimum of requests, one flip per
// batch or per region, post-promotion analysis, a flip back), and the
// traffic-share canary (each share baked and judged against the other slot
// on the same hosts, an abort at once), inside waves, against a simulated
// fleet whose hosts keep two slots.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <variant>

#include "coordinator/orchestrator/deploy_machine.hpp"
#include "coordinator/orchestrator/orchestrator.hpp"
#include "coordinator/pipelines/pipeline_codec.hpp"

namespace drover::coordinator::strategy_test {
namespace {

constexpr std::int64_t kS = 1000;
using Split = RolloutShape::Split;

// A host with two slots, as an agent with the nginx router keeps them.
struct Host {
  std::string region;
  std::string active = "v1", other;  // releases
  int traffic = 1000;                // per mille to the active slot
  bool preview = false;
  struct Pending {
    std::string release;
    PlanRoute route;
    std::int64_t at;
  };
  std::optional<Pending> pending;
};

struct Issued {
  std::int64_t at;
  std::string artifact;
  std::vector<std::string> hosts;
  PlanRoute route;
};

struct SplitFleet {
  std::map<std::string, Host> hosts;
  // What a slot's release reports, given the share it serves.
  std::function<Sample(const std::string& release, int traffic)> health = [](const std::string&,
                                                                             int) {
    return Sample{0.01, 20, 0.3, true};
  };
  double preview_requests = 50;  // per sample of a previewed slot at no traffic
  // Lying hosts: what one reports of its other slot, or of its preview's requests.
  std::map<std::string, Sample> control_lie;
  std::map<std::string, double> requests_lie;
  std::set<std::string> old_agents;  // hosts that never report their shares
  std::string prior = "v1";          // what the environment ran before the run
  // Flag sets: the environment's set (its seq, the ramped flag's percentage)
  // and when each host applies it.
  std::uint64_t flagset_seq = 0;
  int flag_now = -1;
  std::map<std::string, std::pair<std::uint64_t, std::int64_t>> flags_due;  // host -> (seq, at)
  std::map<std::string, std::uint64_t> flags_seq;
  void issue_flags(int percent, std::int64_t now) {
    ++flagset_seq;
    flag_now = percent;
    for (const auto& [name, h] : hosts) flags_due[name] = {flagset_seq, now + apply_delay};
  }
  std::vector<HostSample> samples;
  std::int64_t apply_delay = 2 * kS, sample_every = 5 * kS, last_sample = 0;

  void issue(const Issued& p) {
    for (const auto& h : p.hosts) hosts.at(h).pending = Host::Pending{p.artifact, p.route, p.at};
  }
  void tick(std::int64_t now) {
    for (const auto& [name, due] : flags_due) {
      if (due.second <= now) flags_seq[name] = due.first;
    }
    for (auto& [name, h] : hosts) {
      if (!h.pending || h.pending->at + apply_delay > now) continue;
      const Host::Pending p = *h.pending;
      h.pending.reset();
      if (p.release != h.active) {
        // The plan's release goes to the idle slot (or is warm there): flip.
        h.other = h.active;
        h.active = p.release;
      }
      h.traffic = p.route.traffic;
      h.preview = p.route.preview;
    }
    if (now - last_sample < sample_every) return;
    last_sample = now;
    for (const auto& [name, h] : hosts) {
      HostSample s{name, h.active, now, health(h.active, h.traffic)};
      s.requests = h.traffic == 0 ? (h.preview ? preview_requests : 0) : h.traffic;
      if (requests_lie.count(name)) s.requests = requests_lie.at(name);
      samples.push_back(s);
      if (h.traffic < 1000 && !h.other.empty()) {
        HostSample c{
            name, h.other, now,
            control_lie.count(name) ? control_lie.at(name) : health(h.other, 1000 - h.traffic)};
        c.requests = 1000 - h.traffic;
        c.other = true;
        samples.push_back(c);
      }
    }
  }
  FleetView view() const {
    FleetView v;
    v.artifact_ready = true;
    for (const auto& [name, h] : hosts) {
      v.hosts.push_back({name, h.region, ""});
      v.running[name] = h.active;
      if (old_agents.count(name)) continue;
      v.traffic[name] = h.traffic;
      if (h.preview) v.previewed.insert(name);
    }
    v.samples = samples;
    v.next_env_prior = prior;
    v.flagset_seq = flagset_seq;
    v.flag_now = flag_now;
    v.flags_seq = flags_seq;
    return v;
  }
};

Strategy strategy(const nlohmann::json& j) {
  auto s = strategy_from_json(j, "strategy");
  EXPECT_TRUE(s.ok()) << s.error().message;
  return *s;
}

struct Rollout {
  SplitFleet fleet;
  RunPlan plan;
  DeployRecord deploy;
  std::vector<Issued> issued;
  std::vector<std::string> audit;
  std::vector<int> flag_steps;  // every flag percentage issued, in order
  std::int64_t now = 1'000 * kS;

  // Regions of two hosts each; one environment whose waves are given.
  Rollout(const nlohmann::json& strat, std::vector<Wave> waves, std::vector<std::string> regions) {
    for (const auto& r : regions) {
      for (int i = 0; i < 2; ++i) fleet.hosts[r + "-" + std::to_string(i)].region = r;
    }
    EnvPlan env;
    env.name = "production";
    env.waves = std::move(waves);
    env.shape = strategy(strat).shape;
    env.params.bake_ms = 20 * kS;
    env.params.converge_timeout_ms = 60 * kS;
    env.params.rollback_timeout_ms = 60 * kS;
    env.params.health.min_samples = 2;
    plan.envs = {env};
    for (const auto& w : plan.envs[0].waves)
      plan.named.insert(plan.named.end(), w.regions.begin(), w.regions.end());
    deploy.id = "web-7";
    deploy.service = "web";
    deploy.artifact = "v2";
    deploy.started_by = "alice";
    deploy.created_ms = now;
    EnvRun run;
    run.name = "production";
    for (const auto& w : plan.envs[0].waves) {
      WaveRun wr;
      wr.name = w.name;
      run.waves.push_back(wr);
    }
    deploy.environments.push_back(run);
    // Ten minutes of v1 before the run: the baseline.
    for (std::int64_t t = now - 60 * kS; t < now; t += 5 * kS) fleet.tick(t);
    fleet.last_sample = now;
  }

  void apply(const Step& s) {
    deploy = s.next;
    for (const auto& a : s.actions) {
      if (a.kind == Action::Kind::issue_plan) {
        issued.push_back({now, a.artifact, a.hosts, a.route});
        fleet.issue(issued.back());
      } else if (a.kind == Action::Kind::issue_flags) {
        flag_steps.push_back(a.flag_percent);
        fleet.issue_flags(a.flag_percent, now);
      } else {
        audit.push_back(a.what);
      }
    }
  }
  void run(std::int64_t limit = 3600 * kS) {
    const std::int64_t end = now + limit;
    while (!is_terminal(deploy.state) && now < end) {
      fleet.tick(now);
      apply(advance(deploy, plan, fleet.view(), now));
      now += kS;
    }
  }
  // The plans issued, as "release@traffic[p] hosts".
  std::vector<std::string> plans() const {
    std::vector<std::string> out;
    for (const auto& p : issued) {
      std::vector<std::string> sorted = p.hosts;
      std::sort(sorted.begin(), sorted.end());
      std::string hosts;
      for (const auto& h : sorted) hosts += (hosts.empty() ? "" : ",") + h;
      out.push_back(p.artifact + "@" + std::to_string(p.route.traffic) +
                    (p.route.preview ? "p " : " ") + hosts);
    }
    return out;
  }
  bool audited(const std::string& what) const {
    return std::find(audit.begin(), audit.end(), what) != audit.end();
  }
};

Wave wave(const std::string& name, std::vector<std::string> regions) {
  Wave w;
  w.name = name;
  for (auto& r : regions) w.regions.push_back({r, ""});
  return w;
}

TEST(Strategies, BlueGreenPreviewsEachBatchAtNoTrafficThenFlipsItInOneRevision) {
  Rollout r({{"kind", "blue_green"}, {"batch_size", 2}, {"scale_down_s", 900}},
            {wave("all", {"us-east-2", "eu-west-1"})}, {"us-east-2", "eu-west-1"});
  r.run();
  ASSERT_EQ(r.deploy.state, DeployState::succeeded) << r.deploy.reason;
  // Each region: its batch previewed at no traffic, then flipped.
  EXPECT_EQ(r.plans(), (std::vector<std::string>{
                           "v2@0p us-east-2-0,us-east-2-1", "v2@0p eu-west-1-0,eu-west-1-1",
                           "v2@1000 us-east-2-0,us-east-2-1", "v2@1000 eu-west-1-0,eu-west-1-1"}))
      << ::testing::PrintToString(r.plans());
  for (const auto& p : r.issued) {
    EXPECT_EQ(p.route.kind, "blue_green");
    // The flip says when the old slot stops; the preview leaves it serving.
    EXPECT_EQ(p.route.scale_down_s,
              p.route.traffic == 1000 ? std::optional<std::int64_t>(900) : std::nullopt);
  }
  // The preview step was baked and judged before the flip went out.
  const auto& b = r.deploy.environments[0].waves[0].regions[0].batches;
  ASSERT_EQ(b.size(), 2u);
  EXPECT_TRUE(b[0].preview);
  EXPECT_EQ(b[0].traffic, 0);
  EXPECT_GE(b[1].started_ms, b[0].converged_ms + 20 * kS);
  for (const auto& [name, h] : r.fleet.hosts) {
    EXPECT_EQ(h.active, "v2");
    EXPECT_EQ(h.other, "v1");  // still warm for a flip back
    EXPECT_EQ(h.traffic, 1000);
  }
}

TEST(Strategies, BlueGreenPerRegionFlipsAWholeRegionAtOnce) {
  Rollout r({{"kind", "blue_green"}, {"batch_size", 1}, {"scope", "region"}},
            {wave("all", {"us-east-2"})}, {"us-east-2"});
  r.run();
  ASSERT_EQ(r.deploy.state, DeployState::succeeded) << r.deploy.reason;
  EXPECT_EQ(r.plans(), (std::vector<std::string>{"v2@0p us-east-2-0,us-east-2-1",
                                                 "v2@1000 us-east-2-0,us-east-2-1"}));
}

TEST(Strategies, AnIdleSlotNobodySentRequestsToNeverPassesAndFlipsNothing) {
  Rollout r({{"kind", "blue_green"}, {"batch_size", 2}, {"preview_min_requests", 200}},
            {wave("all", {"us-east-2"})}, {"us-east-2"});
  r.fleet.preview_requests = 0;
  r.run();
  EXPECT_EQ(r.deploy.state, DeployState::rolled_back);
  EXPECT_NE(r.deploy.reason.find("served 0 requests"), std::string::npos) << r.deploy.reason;
  EXPECT_NE(r.deploy.reason.find("at least 200"), std::string::npos) << r.deploy.reason;
  // No flip went out: the preview, then v1 at all traffic again.
  EXPECT_EQ(r.plans(), (std::vector<std::string>{"v2@0p us-east-2-0,us-east-2-1",
                                                 "v1@1000 us-east-2-0,us-east-2-1"}));
}

TEST(Strategies, ARegressionAfterTheFlipFlipsBackToTheWarmSlot) {
  Rollout r({{"kind", "blue_green"}, {"batch_size", 2}}, {wave("all", {"us-east-2"})},
            {"us-east-2"});
  // v2 is fine with preview traffic and breaks under the full load.
  r.fleet.health = [](const std::string& release, int traffic) {
    return release == "v2" && traffic == 1000 ? Sample{0.4, 20, 0.3, true}
                                              : Sample{0.01, 20, 0.3, true};
  };
  r.run();
  EXPECT_EQ(r.deploy.state, DeployState::rolled_back) << r.deploy.reason;
  EXPECT_NE(r.deploy.reason.find("batch 1"), std::string::npos) << r.deploy.reason;
  EXPECT_EQ(r.plans(), (std::vector<std::string>{"v2@0p us-east-2-0,us-east-2-1",
                                                 "v2@1000 us-east-2-0,us-east-2-1",
                                                 "v1@1000 us-east-2-0,us-east-2-1"}));
  for (const auto& [name, h] : r.fleet.hosts) {
    EXPECT_EQ(h.active, "v1");
    EXPECT_EQ(h.traffic, 1000);
  }
}

TEST(Strategies, ATrafficCanaryBakesEachShareAgainstTheOtherSlotOnTheSameHosts) {
  Rollout r({{"kind", "canary"}, {"traffic_percents", {1, 5, 25}}},
            {wave("canary", {"us-east-2"}), wave("rest", {"eu-west-1", "ap-southeast-1"})},
            {"us-east-2", "eu-west-1", "ap-southeast-1"});
  r.run();
  ASSERT_EQ(r.deploy.state, DeployState::succeeded) << r.deploy.reason;
  const std::string a = "us-east-2-0,us-east-2-1", b = "eu-west-1-0,eu-west-1-1",
                    c = "ap-southeast-1-0,ap-southeast-1-1";
  // The canary region through every share, then the next wave's regions in parallel.
  EXPECT_EQ(r.plans(), (std::vector<std::string>{"v2@10 " + a, "v2@50 " + a, "v2@250 " + a,
                                                 "v2@1000 " + a, "v2@10 " + b, "v2@10 " + c,
                                                 "v2@50 " + b, "v2@50 " + c, "v2@250 " + b,
                                                 "v2@250 " + c, "v2@1000 " + b, "v2@1000 " + c}))
      << ::testing::PrintToString(r.plans());
  for (const auto& p : r.issued) EXPECT_EQ(p.route.kind, "canary");
}

TEST(Strategies, ATrafficCanaryThatDegradesSendsAllTrafficBackAtOnce) {
  Rollout r({{"kind", "canary"}, {"traffic_percents", {1, 5, 25}}}, {wave("all", {"us-east-2"})},
            {"us-east-2"});
  // v2 degrades only once it carries 5%: the 1% step passes, the 5% fails.
  r.fleet.health = [](const std::string& release, int traffic) {
    return release == "v2" && traffic >= 50 ? Sample{0.3, 20, 0.3, true}
                                            : Sample{0.01, 20, 0.3, true};
  };
  r.run();
  EXPECT_EQ(r.deploy.state, DeployState::rolled_back) << r.deploy.reason;
  EXPECT_NE(r.deploy.reason.find("batch 1"), std::string::npos) << r.deploy.reason;
  const std::string a = "us-east-2-0,us-east-2-1";
  EXPECT_EQ(r.plans(), (std::vector<std::string>{"v2@10 " + a, "v2@50 " + a, "v1@1000 " + a}));
  // The abort goes out in the very step that judged the failure.
  const auto& batches = r.deploy.environments[0].waves[0].regions[0].batches;
  EXPECT_EQ(r.issued.back().at, batches[1].finished_ms);
  for (const auto& [name, h] : r.fleet.hosts) {
    EXPECT_EQ(h.active, "v1");
    EXPECT_EQ(h.traffic, 1000);
  }
}

TEST(Strategies, TheControlIsTheOtherSlotOnTheSameHostsNotTheHoursBefore) {
  // The fleet got worse for reasons of its own since the baseline (both
  // slots at 8% errors): a canary at 8% is as good as its control and passes.
  Rollout r({{"kind", "canary"}, {"traffic_percents", {1}}}, {wave("all", {"us-east-2"})},
            {"us-east-2"});
  r.fleet.health = [](const std::string&, int) { return Sample{0.08, 20, 0.3, true}; };
  r.run();
  const auto& batches = r.deploy.environments[0].waves[0].regions[0].batches;
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[0].traffic, 10);
  EXPECT_EQ(batches[0].status, "passed");
  // At all traffic there is no other slot: judged against the fleet before
  // the run, whose 1% the release no longer meets.
  EXPECT_EQ(batches[1].status, "failed");
  EXPECT_EQ(r.deploy.state, DeployState::rolled_back);
}

TEST(Strategies, HostsThatDoNotReportSplittingAreNamedAndSentNothing) {
  Rollout r({{"kind", "blue_green"}, {"batch_size", 2}}, {wave("all", {"us-east-2"})},
            {"us-east-2"});
  r.fleet.old_agents = {"us-east-2-1"};
  r.run();
  EXPECT_EQ(r.deploy.state, DeployState::failed);
  EXPECT_NE(r.deploy.reason.find("us-east-2-1 do not report splitting"), std::string::npos)
      << r.deploy.reason;
  EXPECT_TRUE(r.issued.empty());
}

TEST(Strategies, AHostRunningNothingYetTakesTheReleaseWholeFirstThenTheOthersSplit) {
  Rollout r({{"kind", "blue_green"}, {"batch_size", 2}}, {wave("all", {"us-east-2"})},
            {"us-east-2"});
  r.fleet.hosts["us-east-2-2"].region = "us-east-2";  // enrolled since: runs nothing
  r.fleet.hosts["us-east-2-2"].active.clear();
  r.fleet.old_agents.insert("us-east-2-2");  // and so reports no share
  r.run();
  ASSERT_EQ(r.deploy.state, DeployState::succeeded) << r.deploy.reason;
  EXPECT_EQ(r.plans(),
            (std::vector<std::string>{"v2@1000 us-east-2-2", "v2@0p us-east-2-0,us-east-2-1",
                                      "v2@1000 us-east-2-0,us-east-2-1"}));
}

TEST(Strategies, AFirstReleaseHasNothingToSplitWithAndGoesOutInPlainBatches) {
  Rollout r({{"kind", "blue_green"}, {"batch_size", 1}}, {wave("all", {"us-east-2"})},
            {"us-east-2"});
  for (auto& [name, h] : r.fleet.hosts) h.active.clear();
  r.fleet.samples.clear();
  r.fleet.prior.clear();
  r.run();
  for (const auto& p : r.issued) {
    EXPECT_EQ(p.route.traffic, 1000);
    EXPECT_FALSE(p.route.preview);
  }
  EXPECT_EQ(r.issued.size(), 2u);
}

TEST(Strategies, ARestartedCoordinatorReissuesTheStepWithItsShare) {
  Rollout r({{"kind", "canary"}, {"traffic_percents", {1, 5}}}, {wave("all", {"us-east-2"})},
            {"us-east-2"});
  while (r.issued.size() < 2) {
    r.fleet.tick(r.now);
    r.apply(advance(r.deploy, r.plan, r.fleet.view(), r.now));
    r.now += kS;
  }
  const auto again = implied_plans(r.deploy, r.plan);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].route, r.issued.back().route);
  EXPECT_EQ(again[0].route.traffic, 50);
}

TEST(Strategies, TheStrategyRoundTripsThroughItsJson) {
  const Strategy bg = strategy({{"kind", "blue_green"},
                                {"batch_percent", 50},
                                {"scope", "region"},
                                {"preview_min_requests", 30},
                                {"scale_down_s", 60}});
  EXPECT_EQ(bg.shape.split.kind, Split::Kind::blue_green);
  EXPECT_TRUE(bg.shape.split.per_region);
  const Strategy again = strategy(strategy_to_json(bg));
  EXPECT_EQ(strategy_to_json(again), strategy_to_json(bg));
  const Strategy tc = strategy({{"kind", "canary"}, {"traffic_percents", {0.5, 5, 25}}});
  EXPECT_EQ(tc.shape.split.steps, (std::vector<int>{5, 50, 250}));
  EXPECT_TRUE(tc.shape.canary_percents.empty());
  EXPECT_EQ(strategy(strategy_to_json(tc)).shape.split.steps, tc.shape.split.steps);
}

// ---- what one lying host can do: nothing for another ----

TEST(Strategies, OneHostsInflatedRequestCountPassesNoOtherHostsPreview) {
  Rollout r({{"kind", "blue_green"}, {"batch_size", 2}, {"preview_min_requests", 20}},
            {wave("all", {"us-east-2"})}, {"us-east-2"});
  r.fleet.preview_requests = 0;  // the preview route reaches nothing
  r.fleet.requests_lie["us-east-2-0"] = 1e6;
  r.run();
  EXPECT_EQ(r.deploy.state, DeployState::rolled_back);
  EXPECT_NE(r.deploy.reason.find("host us-east-2-1: the previewed release served 0"),
            std::string::npos)
      << r.deploy.reason;
}

TEST(Strategies, OneHostsFakeBadControlPassesNoOtherHostsCanary) {
  Rollout r({{"kind", "canary"}, {"traffic_percents", {1, 5}}}, {wave("all", {"us-east-2"})},
            {"us-east-2"});
  r.fleet.health = [](const std::string& release, int) {
    return release == "v2" ? Sample{0.3, 20, 0.3, true} : Sample{0.01, 20, 0.3, true};
  };
  // us-east-2-0 claims its stable slot fails even more: its own canary
  // passes against that, the other host's does not.
  r.fleet.control_lie["us-east-2-0"] = Sample{0.95, 20, 0.3, true};
  r.run();
  EXPECT_EQ(r.deploy.state, DeployState::rolled_back);
  EXPECT_NE(r.deploy.reason.find("host us-east-2-1"), std::string::npos) << r.deploy.reason;
  EXPECT_NE(r.deploy.reason.find("batch 0"), std::string::npos) << r.deploy.reason;
}

// ---- flag ramps ----

Rollout ramp(int target, const nlohmann::json& strat = {{"kind", "rolling"}, {"batch_size", 1}}) {
  Rollout r(strat, {wave("all", {"us-east-2"}), wave("rest", {"eu-west-1"})},
            {"us-east-2", "eu-west-1"});
  r.deploy.flag = "checkout";
  r.deploy.flag_percent = target;
  r.deploy.artifact = "v1";  // the release the environment runs: the ramp changes none
  return r;
}

TEST(Strategies, AFlagRampStepsThroughItsPercentagesOnEveryHostAndChangesNoRelease) {
  Rollout r = ramp(25);
  r.run();
  ASSERT_EQ(r.deploy.state, DeployState::succeeded) << r.deploy.reason;
  EXPECT_EQ(r.flag_steps, (std::vector<int>{1, 5, 25}));
  EXPECT_TRUE(r.issued.empty()) << "a ramp issues no plan";
  EXPECT_FALSE(r.audited("service.release"));
  // One step of every host of the environment at a time, in its first wave.
  const auto& w = r.deploy.environments[0].waves;
  ASSERT_EQ(w[0].regions.size(), 1u);
  EXPECT_EQ(w[0].regions[0].batches.size(), 3u);
  EXPECT_EQ(w[0].regions[0].batches[0].hosts.size(), 4u);
  EXPECT_EQ(w[1].status, "pending");
  // Each step waited for every host to apply its flag set, then baked.
  for (const auto& b : w[0].regions[0].batches) {
    EXPECT_EQ(b.status, "passed");
    EXPECT_GE(b.converged_ms, b.started_ms + r.fleet.apply_delay);
  }
}

TEST(Strategies, ARampWhoseStepDegradesSetsTheFlagBackToZeroOnItsOwn) {
  Rollout r = ramp(100, {{"kind", "rolling"}, {"batch_size", 1}, {"ramp_percents", {1, 5, 25}}});
  // The flag's path fails: health degrades once 5% of users take it.
  r.fleet.health = [&](const std::string&, int) {
    return r.fleet.flag_now >= 5 ? Sample{0.2, 20, 0.3, true} : Sample{0.01, 20, 0.3, true};
  };
  r.run();
  EXPECT_EQ(r.deploy.state, DeployState::rolled_back) << r.deploy.reason;
  EXPECT_EQ(r.flag_steps, (std::vector<int>{1, 5, 0}));
  EXPECT_NE(r.deploy.reason.find("error_rate"), std::string::npos) << r.deploy.reason;
  EXPECT_TRUE(r.issued.empty());
  EXPECT_EQ(r.fleet.flag_now, 0);
}

TEST(Strategies, ARampFromAHeldValueStepsOnlyAboveItAndFallsBackToIt) {
  Rollout r = ramp(100, {{"kind", "rolling"}, {"batch_size", 1}, {"ramp_percents", {10, 50, 75}}});
  r.deploy.flag_before = 50;
  r.fleet.health = [&](const std::string&, int) {
    return r.fleet.flag_now == 100 ? Sample{0.2, 20, 0.3, true} : Sample{0.01, 20, 0.3, true};
  };
  r.run();
  EXPECT_EQ(r.deploy.state, DeployState::rolled_back) << r.deploy.reason;
  EXPECT_EQ(r.flag_steps, (std::vector<int>{75, 100, 50}));  // back to 50, not to 0
}

TEST(Strategies, AnEndedRampWritesNoFlagAndNeverRaisesItAgain) {
  Rollout r = ramp(25);
  while (r.flag_steps.empty()) {
    r.fleet.tick(r.now);
    r.apply(advance(r.deploy, r.plan, r.fleet.view(), r.now));
    r.now += kS;
  }
  auto ended = end_ramp(r.deploy, "flag 'checkout' killed (by bob)", r.now);
  ASSERT_TRUE(std::holds_alternative<Step>(ended));
  r.apply(std::get<Step>(ended));
  EXPECT_EQ(r.deploy.state, DeployState::superseded);
  EXPECT_TRUE(r.audited("ramp.ended"));
  EXPECT_EQ(r.flag_steps, std::vector<int>{1});
  EXPECT_TRUE(implied_plans(r.deploy, r.plan).empty());
  EXPECT_TRUE(std::holds_alternative<Refusal>(end_ramp(r.deploy, "again", r.now)));
  // A queued ramp ends the same way.
  Rollout q = ramp(25);
  q.deploy.state = DeployState::queued;
  EXPECT_TRUE(std::holds_alternative<Step>(end_ramp(q.deploy, "killed", q.now)));
}

TEST(Strategies, ARampWaitsItsTurnLikeADeploy) {
  Rollout r = ramp(25);
  r.apply(advance(r.deploy, r.plan, r.fleet.view(), r.now));  // pending -> artifact_ready
  FleetView held = r.fleet.view();
  held.next_env_holder = "web-6";  // a deploy holds the environment
  r.apply(advance(r.deploy, r.plan, held, r.now));
  EXPECT_EQ(r.deploy.state, DeployState::queued);
  EXPECT_EQ(r.deploy.queued_behind, "web-6");
  EXPECT_TRUE(r.flag_steps.empty());
}

TEST(Strategies, ARestartedCoordinatorReissuesTheRampsStep) {
  Rollout r = ramp(25);
  while (r.flag_steps.size() < 2) {
    r.fleet.tick(r.now);
    r.apply(advance(r.deploy, r.plan, r.fleet.view(), r.now));
    r.now += kS;
  }
  const auto again = implied_plans(r.deploy, r.plan);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].kind, Action::Kind::issue_flags);
  EXPECT_EQ(again[0].flag, "checkout");
  EXPECT_EQ(again[0].flag_percent, 5);
}

}  // namespace
}  // namespace drover::coordinator::strategy_test
