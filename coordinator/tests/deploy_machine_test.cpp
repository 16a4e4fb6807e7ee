// The deploy state machine in virtual time, against a simulated fleet: hosts
// take the plan a few seconds after it is issued and report health according
// to the release they run. No sleeps, no processes.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <set>
#include <variant>

#include <nlohmann/json.hpp>

#include "coordinator/orchestrator/batches.hpp"
#include "coordinator/orchestrator/deploy_machine.hpp"
#include "coordinator/tests/sim_fleet.hpp"

namespace drover::coordinator {
namespace {

constexpr std::int64_t kSecond = 1000;
using Outcome = Measurement::Outcome;

// One environment ("prod"), one wave of every host: the version-1 shape.
struct Rollout {
  SimFleet fleet;
  RunPlan plan;
  DeployRecord deploy;
  std::string prior = "v1";  // what the environment ran before
  std::vector<std::string> names;
  RolloutShape shape;
  std::int64_t now = 1'000 * kSecond;
  std::vector<std::string> audit;  // "what" of every audit action, in order

  Rollout(int hosts, RolloutShape s) : shape(s) {
    EnvPlan env;
    env.name = "prod";
    Wave all;
    all.name = "all";
    all.regions.push_back({"", ""});
    env.waves.push_back(all);
    env.shape = shape;
    env.params.bake_ms = 30 * kSecond;
    env.params.converge_timeout_ms = 60 * kSecond;
    env.params.rollback_timeout_ms = 60 * kSecond;
    plan.envs.push_back(env);
    for (int i = 0; i < hosts; ++i) {
      names.push_back("h" + std::to_string(i));
      fleet.running["h" + std::to_string(i)] = "v1";
    }
    deploy.id = "d-1";
    deploy.service = "web";
    deploy.artifact = "v2";
    deploy.created_ms = now;
    EnvRun e;
    e.name = "prod";
    e.waves.push_back(WaveRun{});
    e.waves[0].name = "all";
    deploy.environments.push_back(e);
    // A pre-deploy window of healthy samples.
    for (std::int64_t t = now - 60 * kSecond; t < now; t += 5 * kSecond) {
      for (const auto& h : names) fleet.samples.push_back({h, "v1", t, {0.01, 20, 0.3, true}});
    }
    fleet.last_sample = now;
  }
  DeployParams& params() { return plan.envs[0].params; }
  // The batches the run will cut (the machine cuts them when the wave starts).
  std::vector<std::vector<std::string>> planned() const {
    return plan_batches(names, shape, "d-1/prod//");
  }
  RegionRun& region() { return deploy.environments[0].waves[0].regions.at(0); }
  std::vector<BatchRecord>& batches() { return region().batches; }
  const EnvRun& env() const { return deploy.environments[0]; }
  FleetView view() const {
    FleetView v = fleet.view();
    for (const auto& h : names) v.hosts.push_back({h, "r1", ""});
    v.next_env_prior = prior;
    return v;
  }
  void apply(const Step& s) {
    deploy = s.next;
    for (const auto& a : s.actions) {
      if (a.kind == Action::Kind::issue_plan) fleet.issue(a.artifact, a.hosts, now);
      if (a.kind == Action::Kind::audit) audit.push_back(a.what);
    }
  }
  void apply(const Command& c) { apply(std::get<Step>(c)); }
  void step() { apply(advance(deploy, plan, view(), now)); }
  // Runs until the deploy ends or `limit` of virtual time passes.
  void run(std::int64_t limit = 3600 * kSecond) {
    const std::int64_t end = now + limit;
    while (!is_terminal(deploy.state) && now < end) {
      fleet.tick(now);
      step();
      now += kSecond;
    }
  }
};

bool refused(const Command& c) {
  return std::holds_alternative<Refusal>(c);
}

RolloutShape rolling(double percent) {
  RolloutShape s;
  s.batch_percent = percent;
  return s;
}

TEST(Batches, CanaryStepsThenRollingAndDeterministic) {
  std::vector<std::string> hosts;
  for (int i = 0; i < 100; ++i) hosts.push_back("h" + std::to_string(i));
  RolloutShape s;
  s.canary_percents = {1, 5, 25};
  s.batch_percent = 25;
  auto b = plan_batches(hosts, s, "d-9");
  std::vector<std::size_t> sizes;
  for (const auto& x : b) sizes.push_back(x.size());
  EXPECT_EQ(sizes, (std::vector<std::size_t>{1, 4, 20, 25, 25, 25}));
  EXPECT_EQ(plan_batches(hosts, s, "d-9"), b);  // the same deploy picks the same hosts
  EXPECT_NE(plan_batches(hosts, s, "d-10")[0], b[0]);
  s.max_unavailable = 10;
  // 1, 4, 20 = 10+10, and each 25 = 10+10+5.
  EXPECT_EQ(plan_batches(hosts, s, "d-9").size(), 1u + 1 + 2 + 3 + 3 + 3);
  RolloutShape bad;
  EXPECT_FALSE(validate_shape(bad).ok());
  bad.batch_size = 2;
  bad.canary_percents = {5, 1};
  EXPECT_FALSE(validate_shape(bad).ok());
}

TEST(DeployMachine, ARollingDeployBakesEveryBatchAndSucceeds) {
  Rollout r(10, rolling(30));
  r.run();
  ASSERT_EQ(r.deploy.state, DeployState::succeeded) << r.deploy.reason;
  ASSERT_EQ(r.batches().size(), 4u);
  for (const auto& b : r.batches()) {
    EXPECT_EQ(b.status, "passed");
    EXPECT_GE(b.finished_ms - b.converged_ms, r.params().bake_ms);  // no bake shortened
  }
  for (const auto& [host, release] : r.fleet.running) EXPECT_EQ(release, "v2") << host;
  // Each revision names its own batch: 3, 3, 3, 1 hosts, each host once.
  ASSERT_EQ(r.fleet.plans.size(), 4u);
  std::set<std::string> named;
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(r.fleet.plans[i].hosts, r.batches()[i].hosts);
    for (const auto& h : r.fleet.plans[i].hosts) EXPECT_TRUE(named.insert(h).second) << h;
  }
  EXPECT_EQ(named.size(), 10u);
  EXPECT_EQ(r.audit.back(), "deploy.succeeded");
  EXPECT_NE(std::find(r.audit.begin(), r.audit.end(), "service.release"), r.audit.end());
}

TEST(DeployMachine, BadHealthRollsBackTheMovedHostsNewestFirst) {
  RolloutShape s = rolling(25);
  s.canary_percents = {10};
  Rollout r(20, s);
  r.fleet.health_of["v2"] = {0.30, 20, 0.3, true};  // 30x the baseline's errors
  r.run();
  ASSERT_EQ(r.deploy.state, DeployState::rolled_back);
  EXPECT_NE(r.deploy.reason.find("error_rate"), std::string::npos) << r.deploy.reason;
  EXPECT_EQ(r.batches()[0].status, "failed");
  EXPECT_EQ(r.region().batch, 0u);  // caught in the canary
  for (const auto& [host, release] : r.fleet.running) EXPECT_EQ(release, "v1") << host;
  EXPECT_GT(r.env().rollback_done_ms, r.env().rollback_started_ms);
  EXPECT_LE(r.env().rollback_done_ms - r.env().rollback_started_ms, 5 * kSecond);
  EXPECT_EQ(r.fleet.plans.back().artifact, "v1");
}

TEST(DeployMachine, ASilentCanaryDoesNotPass) {
  Rollout r(10, rolling(20));
  r.fleet.silent.insert("v2");
  r.run();
  ASSERT_EQ(r.deploy.state, DeployState::rolled_back);
  EXPECT_NE(r.deploy.reason.find("only 0 health samples"), std::string::npos) << r.deploy.reason;
}

// Found by drover-chaos sim (issue 17): a bake that ended short of samples
// because the batch's health had not reached the coordinator (a partition,
// lost reports) failed a healthy release. It now waits for the health, up to
// the converge timeout past the bake's end, and then fails naming the silence.
TEST(DeployMachine, ABakeShortOfHealthWaitsForItThenJudges) {
  Rollout r(10, rolling(20));
  r.fleet.silent.insert("v2");
  // Run past the first batch's bake, its health still missing.
  r.run(45 * kSecond);
  ASSERT_FALSE(is_terminal(r.deploy.state)) << r.deploy.reason;
  EXPECT_EQ(r.batches()[0].status, "baking");
  r.fleet.silent.clear();  // the partition heals
  r.run();
  EXPECT_EQ(r.deploy.state, DeployState::succeeded) << r.deploy.reason;
}

// Issue 11, item 3: samples dated after now never count in a bake (before,
// a host's samples dated tomorrow made a silent canary pass).
TEST(DeployMachine, SamplesDatedAfterNowNeverCountInABake) {
  Rollout r(10, rolling(20));
  r.fleet.silent.insert("v2");
  const auto planned = r.planned();
  for (const auto& h : planned[0]) {
    for (int i = 0; i < 50; ++i) {
      r.fleet.samples.push_back({h, "v2", r.now + 3600 * kSecond + i, {0.0, 10, 0.1, true}});
    }
  }
  r.run();
  ASSERT_EQ(r.deploy.state, DeployState::rolled_back);
  EXPECT_EQ(r.batches()[0].status, "failed");  // caught in the first batch
  EXPECT_NE(r.deploy.reason.find("batch 0: only 0 health samples"), std::string::npos)
      << r.deploy.reason;
}

// Found in review: one host flooding the pre-deploy window with bad samples
// set the baseline, so a bad release passed against it. Each host now weighs
// the same.
TEST(DeployMachine, OneHostCannotSetTheBaseline) {
  Rollout r(10, rolling(20));
  r.fleet.health_of["v2"] = {0.30, 20, 0.3, true};  // 30x the honest baseline's errors
  const std::string mallory = r.planned().back().back();
  for (int i = 0; i < 5000; ++i) {
    r.fleet.samples.push_back({mallory, "v1", r.now - 59 * kSecond + i, {0.50, 20, 0.3, true}});
  }
  r.run();
  ASSERT_EQ(r.deploy.state, DeployState::rolled_back);
  EXPECT_EQ(r.batches()[0].status, "failed");
  EXPECT_NE(r.deploy.reason.find("error_rate"), std::string::npos) << r.deploy.reason;
}

TEST(DeployMachine, HostsThatNeverConvergeFailTheBatchAtItsDeadline) {
  Rollout r(10, rolling(50));
  r.fleet.never_applies.insert(r.planned()[0][0]);
  r.run();
  ASSERT_EQ(r.deploy.state, DeployState::rolled_back);
  EXPECT_NE(r.deploy.reason.find(r.planned()[0][0]), std::string::npos);
  EXPECT_NE(r.deploy.reason.find("deadline"), std::string::npos);
}

TEST(DeployMachine, APauseWaitsForThePersonAndNeverShortensTheBake) {
  Rollout r(4, rolling(50));
  // Run into the first bake.
  while (r.deploy.state != DeployState::baking) {
    r.fleet.tick(r.now);
    r.step();
    r.now += kSecond;
  }
  r.now += 10 * kSecond;
  const std::int64_t left = r.region().bake_until_ms - r.now;
  auto paused = pause(r.deploy, r.plan, r.now);
  ASSERT_FALSE(refused(paused));
  r.apply(paused);
  // Hours pass; nothing moves.
  for (int i = 0; i < 7200; ++i) {
    r.fleet.tick(r.now);
    EXPECT_FALSE(advance(r.deploy, r.plan, r.view(), r.now).changed);
    r.now += kSecond;
  }
  auto resumed = resume(r.deploy, r.now);
  ASSERT_FALSE(refused(resumed));
  r.apply(resumed);
  EXPECT_EQ(r.region().bake_until_ms - r.now, left);
  EXPECT_TRUE(refused(resume(r.deploy, r.now)));  // not paused any more
  r.run();
  EXPECT_EQ(r.deploy.state, DeployState::succeeded);
}

TEST(DeployMachine, AManualRollbackOfAFinishedDeploy) {
  Rollout r(6, rolling(50));
  r.run();
  ASSERT_EQ(r.deploy.state, DeployState::succeeded);
  auto back = rollback(r.deploy, r.plan, r.now, "requested by alice");
  ASSERT_FALSE(refused(back));
  r.apply(back);
  r.run();
  EXPECT_EQ(r.deploy.state, DeployState::rolled_back);
  for (const auto& [host, release] : r.fleet.running) EXPECT_EQ(release, "v1");
  EXPECT_TRUE(refused(rollback(r.deploy, r.plan, r.now, "again")));
}

TEST(DeployMachine, AHostThatCannotApplyRollsBackAtOnce) {
  Rollout r(6, rolling(50));
  r.fleet.tick(r.now);
  r.step();  // ready
  r.step();  // batch 0 issued
  FleetView v = r.view();
  v.apply_failed.insert(r.batches()[0].hosts[0]);
  r.apply(advance(r.deploy, r.plan, v, r.now));
  EXPECT_EQ(r.deploy.state, DeployState::rolling_back);
  EXPECT_NE(r.deploy.reason.find("could not apply"), std::string::npos);
}

TEST(DeployMachine, TheFirstDeployOfAServiceFailsInsteadOfRollingBack) {
  Rollout r(4, rolling(50));
  r.prior.clear();
  r.fleet.health_of["v2"] = {0.5, 20, 0.3, true};
  r.run();
  EXPECT_EQ(r.deploy.state, DeployState::failed);
  EXPECT_NE(r.deploy.reason.find("error_rate"), std::string::npos);
}

// Prometheus as a health source (issue 18): the machine joins the
// measurements of a baking batch with the agents' samples. Here the
// analysis is scripted: while a batch bakes, one measurement a second of
// whatever `outcome` says for the release the batch runs.
struct Analysed {
  Rollout r{10, rolling(20)};
  std::function<Outcome(const std::string& release)> outcome;
  std::vector<BatchAnalysis> taken;

  Analysed() {
    PromCheck c;
    c.url = "http://127.0.0.1:9090";
    c.interval_ms = kSecond;
    c.failure_limit = 2;
    c.inconclusive_limit = 3;
    c.queries.push_back({"errors", "max(err{host=~\"{{hosts}}\"})", 0.05, std::nullopt});
    r.params().prometheus = c;
    r.params().health.min_samples = 0;  // Prometheus alone may judge
    r.fleet.silent.insert("v2");        // no agent pushes health
  }
  void run(std::int64_t limit = 3600 * kSecond) {
    const std::int64_t end = r.now + limit;
    while (!is_terminal(r.deploy.state) && r.now < end) {
      r.fleet.tick(r.now);
      FleetView v = r.view();
      v.analysis = taken;
      r.apply(advance(r.deploy, r.plan, v, r.now));
      const auto& regions = r.deploy.environments[0].waves[0].regions;
      if (!regions.empty() && regions[0].status == "baking" && outcome) {
        const RegionRun& region = regions[0];
        Measurement m;
        m.query = "errors";
        m.at_ms = r.now;
        m.outcome = outcome(r.deploy.artifact);
        m.detail = m.outcome == Outcome::fail ? "0.5 is above max 0.05" : "canary: refused";
        auto bake = std::find_if(taken.begin(), taken.end(), [&](const BatchAnalysis& b) {
          return b.batch == region.batch && b.from_ms == region.judge_from_ms;
        });
        if (bake == taken.end()) {
          taken.push_back({"prod", "", region.batch, region.judge_from_ms, {}});
          bake = std::prev(taken.end());
        }
        bake->add(m);
      }
      r.now += kSecond;
    }
  }
};

TEST(DeployMachineAnalysis, ABadReleaseSeenByPrometheusAloneIsRolledBack) {
  Analysed a;
  a.outcome = [](const std::string&) { return Outcome::fail; };
  a.run();
  ASSERT_EQ(a.r.deploy.state, DeployState::rolled_back);
  EXPECT_NE(a.r.deploy.reason.find("Prometheus query 'errors': 0.5 is above max 0.05 (2 failed"),
            std::string::npos)
      << a.r.deploy.reason;
  EXPECT_EQ(a.r.batches()[0].status, "failed");
  // Caught at the second failed measurement, long before the bake's end.
  EXPECT_LT(a.r.env().rollback_started_ms - a.r.batches()[0].converged_ms, 5 * kSecond);
  for (const auto& [host, release] : a.r.fleet.running) EXPECT_EQ(release, "v1") << host;
}

TEST(DeployMachineAnalysis, PassingMeasurementsPassEachBatchAfterItsFullBake) {
  Analysed a;
  a.outcome = [](const std::string&) { return Outcome::pass; };
  a.run();
  ASSERT_EQ(a.r.deploy.state, DeployState::succeeded) << a.r.deploy.reason;
  for (const auto& b : a.r.batches()) {
    EXPECT_GE(b.finished_ms - b.converged_ms, a.r.params().bake_ms);
    EXPECT_NE(b.verdict.find("Prometheus measurements"), std::string::npos) << b.verdict;
  }
}

TEST(DeployMachineAnalysis, AnUnreachablePrometheusNeverPassesAndFailsPastTheLimit) {
  Analysed a;
  a.outcome = [](const std::string&) { return Outcome::inconclusive; };
  a.run();
  ASSERT_EQ(a.r.deploy.state, DeployState::rolled_back);
  EXPECT_NE(a.r.deploy.reason.find("'errors' was inconclusive 4 times (inconclusive_limit 3)"),
            std::string::npos)
      << a.r.deploy.reason;
  EXPECT_EQ(a.r.batches()[0].status, "failed");
}

TEST(DeployMachineAnalysis, NoMeasurementAtAllWaitsPastTheBakeThenFails) {
  Analysed a;  // no outcome: the analysis never measured (a coordinator without it)
  // Passes of another bake of the same batch (before a restart, say) never
  // count for this one.
  BatchAnalysis earlier{"prod", "", 0, 1, {}};
  Measurement pass;
  pass.query = "errors";
  pass.outcome = Outcome::pass;
  for (int i = 0; i < 10; ++i) earlier.add(pass);
  a.taken.push_back(earlier);
  a.run(a.r.params().bake_ms + 20 * kSecond);
  ASSERT_FALSE(is_terminal(a.r.deploy.state));
  EXPECT_EQ(a.r.batches()[0].status, "baking");  // the bake is over; it waits
  a.run();
  ASSERT_EQ(a.r.deploy.state, DeployState::rolled_back);
  EXPECT_NE(a.r.deploy.reason.find("'errors' has no passing measurement"), std::string::npos)
      << a.r.deploy.reason;
}

}  // namespace
}  // namespace drover::coordinator
