// Promotion in virtual time (issue 13): a release through staging and a
// gated production of three waves over five regions, against a simulated
// fleet. Each gate outcome, freeze windows and their override, the queue,
// the post-release watch, the scope and order of a rollback, a pause past
// its deadline and an outage of the coordinator longer than a bake.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <variant>

#include "coordinator/orchestrator/deploy_machine.hpp"
#include "coordinator/tests/sim_fleet.hpp"

namespace drover::coordinator {
namespace {

constexpr std::int64_t kS = 1000;

struct Issued {
  std::int64_t at;
  std::string artifact;
  std::vector<std::string> hosts;
};

struct Path {
  SimFleet fleet;
  RunPlan plan;
  DeployRecord deploy;
  std::map<std::string, std::string> prior = {{"staging", "v1"}, {"production", "v1"}};
  std::string holder;  // another run holding the environment this one enters next
  std::vector<HostPlace> places;
  std::vector<Issued> issued;
  std::vector<std::string> audit;
  std::int64_t now = 1'000 * kS;

  Path() {
    auto region = [&](const std::string& name, int n) {
      for (int i = 0; i < n; ++i) {
        const std::string h = name + "-" + std::to_string(i);
        places.push_back({h, name, ""});
        fleet.running[h] = "v1";
      }
    };
    region("staging", 2);
    for (const char* r : {"us-east-2", "us-west-2", "eu-west-1", "ap-southeast-1", "sa-east-1"}) {
      region(r, 2);
    }
    DeployParams params;
    params.bake_ms = 10 * kS;
    params.converge_timeout_ms = 60 * kS;
    params.rollback_timeout_ms = 60 * kS;
    params.health.min_samples = 2;
    EnvPlan staging;
    staging.name = "staging";
    staging.waves = {Wave{"all", {{"staging", ""}}, false, std::nullopt}};
    staging.shape.batch_size = 1;
    staging.params = params;
    EnvPlan production;
    production.name = "production";
    production.gate = Gate{1, 3600 * kS};
    production.waves = {Wave{"canary", {{"us-east-2", ""}}, false, 60 * kS},
                        Wave{"continents",
                             {{"us-west-2", ""}, {"eu-west-1", ""}, {"ap-southeast-1", ""}},
                             false,
                             30 * kS},
                        Wave{"rest", {}, true, std::nullopt}};
    production.shape.batch_size = 1;
    production.params = params;
    plan.envs = {staging, production};
    for (const auto& e : plan.envs) {
      for (const auto& w : e.waves)
        plan.named.insert(plan.named.end(), w.regions.begin(), w.regions.end());
    }
    deploy.id = "web-5";
    deploy.service = "web";
    deploy.artifact = "v2";
    deploy.started_by = "alice";
    deploy.created_ms = now;
    for (const auto& e : plan.envs) {
      EnvRun run;
      run.name = e.name;
      for (const auto& w : e.waves) {
        WaveRun wr;
        wr.name = w.name;
        run.waves.push_back(wr);
      }
      deploy.environments.push_back(run);
    }
    for (std::int64_t t = now - 60 * kS; t < now; t += 5 * kS) {
      for (const auto& p : places)
        fleet.samples.push_back({p.host, "v1", t, {0.01, 20, 0.3, true}});
    }
    fleet.last_sample = now;
  }

  EnvRun& env(const std::string& name) {
    for (auto& e : deploy.environments) {
      if (e.name == name) return e;
    }
    throw std::out_of_range(name);
  }
  std::vector<std::string> hosts_of(const std::string& region) const {
    std::vector<std::string> out;
    for (const auto& p : places) {
      if (p.region == region) out.push_back(p.host);
    }
    return out;
  }
  FleetView view() const {
    FleetView v = fleet.view();
    v.hosts = places;
    const bool before = deploy.state == DeployState::pending ||
                        deploy.state == DeployState::artifact_ready ||
                        deploy.state == DeployState::queued;
    const std::size_t target = before ? deploy.env : deploy.env + 1;
    if (target < deploy.environments.size()) {
      v.next_env_prior = prior.at(deploy.environments[target].name);
      v.next_env_holder = holder;
    }
    return v;
  }
  void apply(const Step& s) {
    deploy = s.next;
    for (const auto& a : s.actions) {
      if (a.kind == Action::Kind::issue_plan) {
        fleet.issue(a.artifact, a.hosts, now);
        issued.push_back({now, a.artifact, a.hosts});
      }
      if (a.kind == Action::Kind::audit)
        audit.push_back(a.what + (a.env.empty() ? "" : "@" + a.env));
    }
  }
  void apply(const Command& c) { apply(std::get<Step>(c)); }
  // Steps a second at a time until stop() holds, the run ends or limit passes.
  template <class Stop>
  void run_until(Stop stop, std::int64_t limit = 3600 * kS) {
    const std::int64_t end = now + limit;
    while (!stop() && !is_terminal(deploy.state) && now < end) {
      fleet.tick(now);
      // The judge looks back ten minutes at most (the baseline window): older
      // samples only slow the simulation.
      if (now % (300 * kS) == 0) {
        std::erase_if(fleet.samples,
                      [&](const HostSample& hs) { return hs.at_ms < now - 1200 * kS; });
      }
      apply(advance(deploy, plan, view(), now));
      now += kS;
    }
  }
  void run(std::int64_t limit = 3600 * kS) {
    run_until([] { return false; }, limit);
  }
  void to_gate() {
    run_until([&] { return deploy.state == DeployState::awaiting_approval; });
    ASSERT_EQ(deploy.state, DeployState::awaiting_approval) << deploy.reason;
  }
  std::string running(const std::string& host) const { return fleet.running.at(host); }
};

bool refused(const Command& c) {
  return std::holds_alternative<Refusal>(c);
}

std::string why(const Command& c) {
  return std::holds_alternative<Refusal>(c) ? std::get<Refusal>(c).why : "";
}

TEST(Promotion, StagingThenTheGateThenProductionWaveByWave) {
  Path p;
  p.to_gate();
  EXPECT_EQ(p.env("staging").status, "passed");
  for (const auto& h : p.hosts_of("staging")) EXPECT_EQ(p.running(h), "v2");
  for (const auto& h : p.hosts_of("us-east-2")) EXPECT_EQ(p.running(h), "v1");  // behind the gate
  EXPECT_EQ(p.env("production").prior_artifact, "v1");

  p.apply(approve(p.deploy, {"bob", "bob-laptop", p.now, "looks good"}));
  p.run();
  ASSERT_EQ(p.deploy.state, DeployState::succeeded) << p.deploy.reason;
  for (const auto& pl : p.places) EXPECT_EQ(p.running(pl.host), "v2") << pl.host;

  const auto& waves = p.env("production").waves;
  ASSERT_EQ(waves.size(), 3u);
  // In order: a wave starts once the one before it passed.
  EXPECT_GE(waves[1].started_ms, waves[0].finished_ms);
  EXPECT_GE(waves[2].started_ms, waves[1].finished_ms);
  // The canary's last batch baked the wave's 60 s.
  const auto& canary = waves[0].regions.at(0).batches.back();
  EXPECT_GE(canary.finished_ms - canary.converged_ms, 60 * kS);
  // The continents in parallel: each region started at the wave's start.
  ASSERT_EQ(waves[1].regions.size(), 3u);
  for (const auto& r : waves[1].regions) {
    EXPECT_EQ(r.batches.at(0).started_ms, waves[1].started_ms) << r.region;
  }
  // "*": the region no environment names.
  ASSERT_EQ(waves[2].regions.size(), 1u);
  EXPECT_EQ(waves[2].regions[0].region, "sa-east-1");
  EXPECT_EQ(std::count(p.audit.begin(), p.audit.end(), "service.release@staging"), 1);
  EXPECT_EQ(std::count(p.audit.begin(), p.audit.end(), "service.release@production"), 1);
}

TEST(Promotion, TheStarterCannotApproveNorOnePersonTwice) {
  Path p;
  p.plan.envs[1].gate = Gate{2, 3600 * kS};
  p.to_gate();
  const Command own = approve(p.deploy, {"alice", "alice-ci", p.now, ""});
  ASSERT_TRUE(refused(own));
  EXPECT_NE(why(own).find("started deploy 'web-5'"), std::string::npos) << why(own);
  p.apply(approve(p.deploy, {"bob", "bob-laptop", p.now, ""}));
  const Command twice = approve(p.deploy, {"bob", "bob-phone", p.now, ""});
  ASSERT_TRUE(refused(twice));
  EXPECT_NE(why(twice).find("already approved"), std::string::npos) << why(twice);
  // One approval of two: the gate holds.
  p.run_until([] { return false; }, 60 * kS);
  EXPECT_EQ(p.deploy.state, DeployState::awaiting_approval);
  p.apply(approve(p.deploy, {"carol", "carol-1", p.now, ""}));
  p.run();
  EXPECT_EQ(p.deploy.state, DeployState::succeeded) << p.deploy.reason;
  const auto& approvals = p.env("production").gate.approvals;
  ASSERT_EQ(approvals.size(), 2u);
  EXPECT_EQ(approvals[0].person, "bob");
  EXPECT_EQ(approvals[1].person, "carol");
  EXPECT_TRUE(refused(approve(p.deploy, {"dave", "dave-1", p.now, ""})));  // not at a gate
}

TEST(Promotion, ARejectionEndsTheRunAndChangesNothingInProduction) {
  Path p;
  p.to_gate();
  p.apply(reject(p.deploy, {"bob", "bob-laptop", p.now, "not this week"}));
  EXPECT_EQ(p.deploy.state, DeployState::rejected);
  EXPECT_NE(p.deploy.reason.find("not this week"), std::string::npos);
  ASSERT_TRUE(p.env("production").gate.rejection);
  EXPECT_EQ(p.env("production").gate.rejection->person, "bob");
  for (const auto& h : p.hosts_of("staging")) EXPECT_EQ(p.running(h), "v2");  // it passed
  for (const auto& h : p.hosts_of("us-east-2")) EXPECT_EQ(p.running(h), "v1");
}

TEST(Promotion, AGatePastItsDeadlineExpires) {
  Path p;
  p.to_gate();
  const std::int64_t deadline = p.env("production").gate.deadline_ms;
  p.run();
  EXPECT_EQ(p.deploy.state, DeployState::expired);
  EXPECT_GE(p.deploy.completed_ms, deadline);
  EXPECT_LT(p.deploy.completed_ms, deadline + 2 * kS);
  for (const auto& h : p.hosts_of("us-east-2")) EXPECT_EQ(p.running(h), "v1");
}

TEST(Promotion, AFreezeWindowHoldsEveryWaveUntilItEndsOrIsOverridden) {
  Path p;
  std::int64_t until = 0;
  p.plan.envs[1].frozen = [&until](std::int64_t now_ms) {
    return now_ms < until ? std::string("Fri 16:00 to Mon 08:00 Europe/Berlin") : std::string();
  };
  until = p.now + 3 * 3600 * kS;
  p.to_gate();
  p.apply(approve(p.deploy, {"bob", "bob-laptop", p.now, ""}));
  p.run_until([] { return false; }, 600 * kS);
  EXPECT_EQ(p.deploy.state, DeployState::deploying);
  EXPECT_EQ(p.env("production").frozen, "Fri 16:00 to Mon 08:00 Europe/Berlin");
  for (const auto& h : p.hosts_of("us-east-2")) EXPECT_EQ(p.running(h), "v1");
  // An approver's override, with a reason: the waves go.
  p.apply(override_freeze(p.deploy, {"carol", "carol-1", p.now, "security fix"}));
  p.run();
  EXPECT_EQ(p.deploy.state, DeployState::succeeded) << p.deploy.reason;
  ASSERT_TRUE(p.env("production").freeze_override);
  EXPECT_EQ(p.env("production").freeze_override->comment, "security fix");
  EXPECT_NE(std::find(p.audit.begin(), p.audit.end(), "freeze.overridden@production"),
            p.audit.end());

  // Without an override the run waits for the window's end.
  Path q;
  q.plan.envs[1].frozen = p.plan.envs[1].frozen;
  until = q.now + 2 * 3600 * kS;
  q.to_gate();
  q.apply(approve(q.deploy, {"bob", "bob-laptop", q.now, ""}));
  q.run(4 * 3600 * kS);
  ASSERT_EQ(q.deploy.state, DeployState::succeeded) << q.deploy.reason;
  EXPECT_GE(q.env("production").waves[0].started_ms, until);
  EXPECT_LT(q.env("production").waves[0].started_ms, until + 2 * kS);
}

TEST(Promotion, ARegressionInWaveTwoRollsBackProductionNewestWaveFirst) {
  Path p;
  p.to_gate();
  p.apply(approve(p.deploy, {"bob", "bob-laptop", p.now, ""}));
  p.run_until([&] { return p.env("production").wave == 1; });
  p.fleet.health_of["v2"] = {0.40, 20, 0.3, true};  // bad from here on
  p.run();
  ASSERT_EQ(p.deploy.state, DeployState::rolled_back) << p.deploy.reason;
  EXPECT_NE(p.deploy.reason.find("error_rate"), std::string::npos) << p.deploy.reason;
  EXPECT_EQ(p.env("staging").status, "passed");  // staging stays on the new release
  for (const auto& h : p.hosts_of("staging")) EXPECT_EQ(p.running(h), "v2");
  for (const char* r : {"us-east-2", "us-west-2", "eu-west-1", "ap-southeast-1", "sa-east-1"}) {
    for (const auto& h : p.hosts_of(r)) EXPECT_EQ(p.running(h), "v1") << h;
  }
  EXPECT_EQ(p.env("production").waves[2].status, "pending");  // never started
  // The order: every continents host was sent back (and ran v1) before the
  // canary's revision went out.
  std::int64_t continents_back = 0, canary_back = 0;
  for (const auto& i : p.issued) {
    if (i.artifact != "v1") continue;
    const bool canary = std::find(i.hosts.begin(), i.hosts.end(), "us-east-2-0") != i.hosts.end();
    if (canary && canary_back == 0) canary_back = i.at;
    if (!canary && continents_back == 0) continents_back = i.at;
  }
  ASSERT_GT(continents_back, 0);
  EXPECT_GT(canary_back, continents_back + p.fleet.apply_delay - kS);
  const auto& order = p.audit;
  const auto first_wave = std::find(order.begin(), order.end(), "rollback.wave@production");
  ASSERT_NE(first_wave, order.end());
  EXPECT_NE(std::find(first_wave, order.end(), "rollback.wave_done@production"), order.end());
}

TEST(Promotion, ARegressionDuringTheWatchRollsTheEnvironmentBack) {
  Path p;
  p.plan.envs[1].watch_ms = 120 * kS;
  p.to_gate();
  p.apply(approve(p.deploy, {"bob", "bob-laptop", p.now, ""}));
  p.run_until([&] { return p.deploy.state == DeployState::watching; });
  ASSERT_EQ(p.deploy.state, DeployState::watching);
  p.fleet.health_of["v2"] = {0.40, 20, 0.3, true};
  p.run();
  ASSERT_EQ(p.deploy.state, DeployState::rolled_back) << p.deploy.reason;
  EXPECT_NE(p.deploy.reason.find("post-release watch"), std::string::npos) << p.deploy.reason;
  for (const auto& h : p.hosts_of("sa-east-1")) EXPECT_EQ(p.running(h), "v1");
  for (const auto& h : p.hosts_of("staging")) EXPECT_EQ(p.running(h), "v2");

  // A quiet watch passes at its end.
  Path q;
  q.plan.envs[1].watch_ms = 120 * kS;
  q.to_gate();
  q.apply(approve(q.deploy, {"bob", "bob-laptop", q.now, ""}));
  q.run();
  ASSERT_EQ(q.deploy.state, DeployState::succeeded) << q.deploy.reason;
  EXPECT_GE(q.env("production").finished_ms - q.env("production").waves[2].finished_ms, 120 * kS);
}

TEST(Promotion, AnEnvironmentHeldByAnotherRunQueuesTheRun) {
  Path p;
  p.holder = "web-4";
  p.run_until([] { return false; }, 120 * kS);
  EXPECT_EQ(p.deploy.state, DeployState::queued);
  EXPECT_EQ(p.deploy.queued_behind, "web-4");
  for (const auto& h : p.hosts_of("staging")) EXPECT_EQ(p.running(h), "v1");
  p.holder.clear();
  p.to_gate();
  EXPECT_TRUE(p.deploy.queued_behind.empty());
  EXPECT_TRUE(refused(supersede(p.deploy, "web-6", p.now)));  // only a queued run
  Path q;
  q.holder = "web-4";
  q.run_until([&] { return q.deploy.state == DeployState::queued; });
  q.apply(supersede(q.deploy, "web-6", q.now));
  EXPECT_EQ(q.deploy.state, DeployState::superseded);
  EXPECT_NE(q.deploy.reason.find("web-6"), std::string::npos);
}

TEST(Promotion, APausePastItsDeadlineRollsTheEnvironmentBack) {
  Path p;
  p.plan.envs[1].params.pause_timeout_ms = 600 * kS;
  p.to_gate();
  p.apply(approve(p.deploy, {"bob", "bob-laptop", p.now, ""}));
  p.run_until([&] { return p.env("production").wave == 1; });
  p.apply(pause(p.deploy, p.plan, p.now));
  ASSERT_EQ(p.deploy.state, DeployState::paused);
  const std::int64_t deadline = p.deploy.deadline_ms;
  p.run();
  ASSERT_EQ(p.deploy.state, DeployState::rolled_back) << p.deploy.reason;
  EXPECT_NE(p.deploy.reason.find("paused past its deadline"), std::string::npos);
  EXPECT_GE(p.env("production").rollback_started_ms, deadline);
  for (const auto& h : p.hosts_of("us-east-2")) EXPECT_EQ(p.running(h), "v1");
}

TEST(Promotion, AnOutageLongerThanABakeRestartsItAndNeverFailsAHealthyRelease) {
  Path p;
  p.plan.envs[0].params.bake_ms = 30 * kS;
  p.run_until([&] { return p.deploy.state == DeployState::baking; });
  ASSERT_EQ(p.deploy.state, DeployState::baking);
  // The coordinator is down for five minutes: the hosts report, but their
  // reports are not received (none arrives dated in the outage).
  const std::int64_t down = p.now;
  p.now += 300 * kS;
  p.fleet.last_sample = p.now;
  auto restarted = after_restart(p.deploy, p.plan, p.now);
  ASSERT_TRUE(restarted);
  p.apply(*restarted);
  const RegionRun& r = p.env("staging").waves[0].regions[0];
  EXPECT_EQ(r.judge_from_ms, p.now);
  EXPECT_EQ(r.bake_until_ms, p.now + 30 * kS);
  p.to_gate();
  const auto& b = p.env("staging").waves[0].regions[0].batches[0];
  EXPECT_EQ(b.status, "passed");
  EXPECT_GE(b.finished_ms, down + 300 * kS + 30 * kS);
}

TEST(Promotion, AManualRollbackIsRefusedWhereItWouldChangeNothing) {
  Path p;
  p.prior["staging"] = "";  // the first release of staging
  p.run_until([&] { return p.deploy.state == DeployState::baking; });
  const Command first = rollback(p.deploy, p.plan, p.now, "by hand");
  ASSERT_TRUE(refused(first));
  EXPECT_NE(why(first).find("ran nothing before"), std::string::npos) << why(first);
  Path q;
  q.to_gate();  // at production's gate: production changed nothing yet
  EXPECT_TRUE(refused(rollback(q.deploy, q.plan, q.now, "by hand")));

  // A succeeded first release of an environment stays succeeded: a rollback
  // has nothing to go back to (it once turned the run into "failed").
  Path r;
  r.prior["production"] = "";
  r.to_gate();
  r.apply(approve(r.deploy, {"bob", "bob-laptop", r.now, ""}));
  r.run();
  ASSERT_EQ(r.deploy.state, DeployState::succeeded) << r.deploy.reason;
  // A refusal is a command with no next record: nothing to apply, so the
  // run and its hosts stay as they are.
  const Command again = rollback(r.deploy, r.plan, r.now, "by hand");
  ASSERT_TRUE(refused(again));
  EXPECT_NE(why(again).find("production"), std::string::npos) << why(again);
  EXPECT_NE(why(again).find("ran nothing before"), std::string::npos) << why(again);
}

// A freeze holds new waves, never a rollback: one that starts inside a
// window (automatic, or asked for by hand) goes at once.
TEST(Promotion, AFreezeWindowNeverHoldsARollback) {
  Path p;
  std::int64_t from = INT64_MAX;
  p.plan.envs[1].frozen = [&from](std::int64_t now_ms) {
    return now_ms >= from ? std::string("Fri 16:00 to Mon 08:00 Europe/Berlin") : std::string();
  };
  p.to_gate();
  p.apply(approve(p.deploy, {"bob", "bob-laptop", p.now, ""}));
  p.run_until([&] { return p.env("production").wave == 1; });
  from = p.now;  // the window opens while wave 2 runs
  p.fleet.health_of["v2"] = {0.40, 20, 0.3, true};
  p.run(600 * kS);
  ASSERT_EQ(p.deploy.state, DeployState::rolled_back) << p.deploy.reason;
  EXPECT_LT(p.env("production").rollback_started_ms - from, 120 * kS);
  for (const char* r : {"us-east-2", "us-west-2", "eu-west-1", "ap-southeast-1"}) {
    for (const auto& h : p.hosts_of(r)) EXPECT_EQ(p.running(h), "v1") << h;
  }

  // By hand, inside the window, right after the canary wave.
  Path q;
  std::int64_t q_from = INT64_MAX;
  q.plan.envs[1].frozen = [&q_from](std::int64_t now_ms) {
    return now_ms >= q_from ? std::string("2026-12-24T00:00:00Z to 2026-12-27T00:00:00Z")
                            : std::string();
  };
  q.to_gate();
  q.apply(approve(q.deploy, {"bob", "bob-laptop", q.now, ""}));
  q.run_until([&] { return q.env("production").wave == 1; });
  q_from = q.now;
  q.run_until([&] { return !q.env("production").frozen.empty(); }, 1800 * kS);
  ASSERT_FALSE(q.env("production").frozen.empty());  // the last wave waits
  const Command back = rollback(q.deploy, q.plan, q.now, "by hand");
  ASSERT_FALSE(refused(back)) << why(back);
  q.apply(back);
  q.run(600 * kS);
  ASSERT_EQ(q.deploy.state, DeployState::rolled_back) << q.deploy.reason;
  for (const auto& h : q.hosts_of("us-east-2")) EXPECT_EQ(q.running(h), "v1") << h;
}

}  // namespace
}  // namespace drover::coordinator
