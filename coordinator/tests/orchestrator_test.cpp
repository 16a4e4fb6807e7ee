// The durable driver in virtual time: transitions committed before plans go
// out, plans that a crash lost issued again at start, commands refused where
// they make no sense.
#include <gtest/gtest.h>

#include "coordinator/orchestrator/batches.hpp"
#include "coordinator/orchestrator/orchestrator.hpp"
#include "coordinator/store/lmdb_coordinator_store.hpp"
#include "coordinator/tests/sim_fleet.hpp"
#include "tests/support/test_support.hpp"

namespace drover::coordinator {
namespace {

using drover::testing::TempDir;
using namespace std::chrono_literals;

struct World {
  TempDir dir;
  ManualClock clock{SystemTime(std::chrono::seconds(1'800'000'000))};
  std::unique_ptr<CoordinatorStore> store = LmdbCoordinatorStore::open(dir / "state").value();
  SimFleet fleet = [] {
    SimFleet f;  // hosts converge 2 s after a plan and report health every second
    f.apply_delay = 2000;
    f.sample_every = 1000;
    return f;
  }();
  int plans_issued = 0;
  bool lose_next_plan = false;  // the process dies after the commit, before the plan
  // Reading the fleet of a deploying run takes this long (a store under load).
  std::chrono::milliseconds slow_read_while_deploying{0};

  // The region of the one wave (once it started).
  static const RegionRun* region(const DeployRecord& d) {
    const auto& regions = d.environments.at(0).waves.at(0).regions;
    return regions.empty() ? nullptr : &regions[0];
  }

  std::int64_t now() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock.now().time_since_epoch())
        .count();
  }
  std::unique_ptr<Orchestrator> orchestrator() {
    return std::make_unique<Orchestrator>(
        *store,
        [this](const DeployRecord& d, const RunPlan&) {
          if (d.state == DeployState::deploying) clock.advance(slow_read_while_deploying);
          FleetView v = fleet.view();
          for (int i = 0; i < 6; ++i) v.hosts.push_back({"h" + std::to_string(i), "r1", ""});
          return v;
        },
        [this](const DeployRecord&, const std::string& artifact,
               const std::vector<std::string>& hosts, const PlanRoute&) -> Status {
          if (lose_next_plan) {
            lose_next_plan = false;
            return make_error(Errc::io, "lost in a crash");
          }
          ++plans_issued;
          fleet.issue(artifact, hosts, now());
          return Ok{};
        },
        [](const DeployRecord&) {
          RunPlan plan;
          EnvPlan env;
          env.name = "prod";
          Wave all;
          all.name = "all";
          all.regions.push_back({"", ""});
          env.waves.push_back(all);
          env.shape.batch_size = 2;
          env.params.bake_ms = 20'000;
          plan.envs.push_back(env);
          return plan;
        },
        clock, Logger::discard());
  }
  void step_fleet() { fleet.tick(now()); }
  // What the environment ran before: v1, released an hour ago.
  void released_v1() {
    AuditRecord r;
    r.at_ms = now() - 3'600'000;
    r.who = "system";
    r.what = "service.release";
    r.service = "web";
    r.env = "prod";
    r.artifact = "v1";
    EXPECT_TRUE(store->append_audit(r).ok());
  }
  DeployRecord deploy() {
    DeployRecord d;
    d.id = "d-1";
    d.service = "web";
    d.artifact = "v2";
    d.created_ms = now();
    for (int i = 0; i < 6; ++i) fleet.running["h" + std::to_string(i)] = "v1";
    EnvRun e;
    e.name = "prod";
    e.waves.push_back(WaveRun{});
    e.waves[0].name = "all";
    d.environments.push_back(e);
    return d;
  }
  // A run of artifact under id, started by alice.
  DeployRecord run(const std::string& id, const std::string& artifact) {
    DeployRecord d = deploy();
    d.id = id;
    d.artifact = artifact;
    d.started_by = "alice";
    return d;
  }
};

TEST(Orchestrator, APlanLostInACrashIsIssuedAgainAtStart) {
  World w;
  auto o = w.orchestrator();
  ASSERT_TRUE(o->create(w.deploy(), "alice", "0123abcd", "{\"strategy\":\"rolling\"}").ok());
  // Run until batch 1 is about to start, then lose its plan.
  auto batch = [&] {
    const DeployRecord d = *o->get("d-1");
    const RegionRun* r = World::region(d);
    return r ? r->batch : 0;
  };
  while (batch() == 0 || o->get("d-1")->state != DeployState::deploying) {
    w.step_fleet();
    if (o->get("d-1")->state == DeployState::baking && batch() == 0) {
      w.lose_next_plan = true;
    }
    (void)o->tick();
    w.clock.advance(1s);
  }
  ASSERT_EQ(batch(), 1u);
  const int before = w.plans_issued;
  // Without the plan batch 1 never converges... until a restarted
  // coordinator issues it again.
  o = w.orchestrator();
  ASSERT_TRUE(o->recover().ok());
  EXPECT_EQ(w.plans_issued, before + 1);
  for (int i = 0; i < 600 && !is_terminal(o->get("d-1")->state); ++i) {
    w.step_fleet();
    ASSERT_TRUE(o->tick().ok());
    w.clock.advance(1s);
  }
  DeployRecord done = *o->get("d-1");
  EXPECT_EQ(done.state, DeployState::succeeded) << done.reason;
  // The restart restarted the bake running then: no bake is shorter.
  for (const auto& b : World::region(done)->batches) {
    EXPECT_GE(b.finished_ms - b.converged_ms, 20'000);
  }
  int started = 0;
  const auto records = w.store->audit({"web", "", 0, INT64_MAX, 1000}).value();
  for (const auto& r : records) started += r.what == "batch.started";
  EXPECT_EQ(started, 3);
  EXPECT_TRUE(w.store->verify_audit()->ok);
}

// The audit records of a step carry the time it was decided at, so a bake
// read back from the audit log lasts the bake the machine timed, however
// long the tick took to get to its commit.
TEST(Orchestrator, AuditRecordsCarryTheTimeTheirStepWasDecided) {
  World w;
  w.slow_read_while_deploying = 300ms;
  auto o = w.orchestrator();
  ASSERT_TRUE(o->create(w.deploy(), "alice", "0123abcd", "{\"strategy\":\"rolling\"}").ok());
  for (int i = 0; i < 2000 && !is_terminal(o->get("d-1")->state); ++i) {
    w.step_fleet();
    ASSERT_TRUE(o->tick().ok());
    w.clock.advance(100ms);
  }
  ASSERT_EQ(o->get("d-1")->state, DeployState::succeeded) << o->get("d-1")->reason;
  std::map<std::int64_t, std::int64_t> baking;
  int passed = 0;
  const auto records = w.store->audit({"web", "", 0, INT64_MAX, 1000}).value();
  for (const auto& r : records) {
    const auto batch = nlohmann::json::parse(r.detail).value("batch", std::int64_t{-1});
    if (r.what == "batch.baking") baking[batch] = r.at_ms;
    if (r.what != "batch.passed") continue;
    ++passed;
    ASSERT_TRUE(baking.count(batch)) << batch;
    EXPECT_GE(r.at_ms - baking[batch], 20'000) << "batch " << batch;
  }
  EXPECT_EQ(passed, 3);
}

TEST(Orchestrator, CommandsAreAuditedAndRefusedWhenTheyMakeNoSense) {
  World w;
  auto o = w.orchestrator();
  const Actor bob{"bob-token", "bob"}, carol{"carol-token", "carol"};
  w.released_v1();
  ASSERT_TRUE(o->create(w.deploy(), "alice", "0123abcd", "{}").ok());
  EXPECT_EQ(o->create(w.deploy(), "alice", "0123abcd", "{}").error().code, Errc::already_exists);
  EXPECT_EQ(o->resume("d-1", bob).error().code, Errc::refused);
  EXPECT_EQ(o->rollback("d-1", carol, "early").error().code, Errc::refused);
  for (int i = 0; i < 10 && o->get("d-1")->state != DeployState::deploying; ++i) {
    w.step_fleet();
    ASSERT_TRUE(o->tick().ok());
  }
  ASSERT_EQ(o->get("d-1")->state, DeployState::deploying);
  ASSERT_TRUE(o->pause("d-1", bob).ok());
  EXPECT_EQ(o->get("d-1")->state, DeployState::paused);
  EXPECT_EQ(o->pause("d-1", bob).error().code, Errc::refused);
  w.clock.advance(3600s);
  EXPECT_EQ(*o->tick(), 0);  // a paused deploy waits for a person (until its deadline)
  ASSERT_TRUE(o->resume("d-1", bob).ok());
  ASSERT_TRUE(o->rollback("d-1", carol, "changed my mind").ok());
  EXPECT_EQ(o->get("d-1")->state, DeployState::rolling_back);
  EXPECT_EQ(o->rollback("d-1", carol, "again").error().code, Errc::refused);
  EXPECT_EQ(o->pause("d-9", bob).error().code, Errc::not_found);
  std::vector<std::string> who;
  const auto records = w.store->audit({"web", "", 0, INT64_MAX, 100}).value();
  for (const auto& r : records) {
    if (r.who != "system" && !r.deploy_id.empty()) who.push_back(r.who + ":" + r.what);
  }
  EXPECT_EQ(who, (std::vector<std::string>{
                     "alice:deploy.created", "bob-token:deploy.paused", "bob-token:deploy.resumed",
                     "carol-token:rollback.started", "carol-token:rollback.wave"}));
}

// One run per service and environment: later runs queue behind the holder,
// the newest queued one supersedes the others, and once a newer run entered
// the environment the older one can no longer be rolled back.
TEST(Orchestrator, RunsQueuePerEnvironmentAndTheNewestQueuedOneWins) {
  World w;
  w.released_v1();
  auto o = w.orchestrator();
  ASSERT_TRUE(o->create(w.run("web-1", "v2"), "alice", "", "{}").ok());
  auto state = [&](const std::string& id) { return o->get(id)->state; };
  for (int i = 0; i < 10 && state("web-1") != DeployState::deploying; ++i) {
    w.step_fleet();
    ASSERT_TRUE(o->tick().ok());
    w.clock.advance(1s);
  }
  ASSERT_EQ(state("web-1"), DeployState::deploying);
  ASSERT_TRUE(o->create(w.run("web-2", "v3"), "alice", "", "{}").ok());
  w.clock.advance(1s);
  ASSERT_TRUE(o->create(w.run("web-3", "v4"), "alice", "", "{}").ok());
  for (int i = 0; i < 5; ++i) {
    w.step_fleet();
    ASSERT_TRUE(o->tick().ok());
    w.clock.advance(1s);
  }
  EXPECT_EQ(state("web-2"), DeployState::superseded);
  EXPECT_EQ(o->get("web-2")->reason, "superseded by 'web-3'");
  EXPECT_EQ(state("web-3"), DeployState::queued);
  EXPECT_EQ(o->get("web-3")->queued_behind, "web-1");
  for (int i = 0; i < 600 && state("web-3") == DeployState::queued; ++i) {
    w.step_fleet();
    ASSERT_TRUE(o->tick().ok());
    w.clock.advance(1s);
  }
  EXPECT_EQ(state("web-1"), DeployState::succeeded) << o->get("web-1")->reason;
  EXPECT_NE(state("web-3"), DeployState::queued);
  EXPECT_EQ(o->get("web-3")->environments[0].prior_artifact, "v2");  // what web-1 left
  const Status back = o->rollback("web-1", {"carol-token", "carol"}, "too late");
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.error().code, Errc::refused);
  EXPECT_NE(back.error().message.find("'web-3'"), std::string::npos) << back.error().message;
}

// The run that entered an environment last owns it, whenever it was created:
// an older run held back (paused) that enters after a newer one finished
// makes a rollback of the newer one refused, naming it.
TEST(Orchestrator, ARollbackIsRefusedOnceAnyRunEnteredTheEnvironmentAfterIt) {
  World w;
  w.released_v1();
  auto o = w.orchestrator();
  auto state = [&](const std::string& id) { return o->get(id)->state; };
  auto run_until = [&](const std::string& id, DeployState want) {
    for (int i = 0; i < 600 && state(id) != want; ++i) {
      w.step_fleet();
      ASSERT_TRUE(o->tick().ok());
      w.clock.advance(1s);
    }
  };
  ASSERT_TRUE(o->create(w.run("web-1", "v2"), "alice", "", "{}").ok());
  ASSERT_TRUE(o->pause("web-1", {"alice-token", "alice"}).ok());  // held before it enters
  ASSERT_EQ(o->get("web-1")->environments[0].entered_ms, 0);
  w.clock.advance(1s);
  ASSERT_TRUE(o->create(w.run("web-2", "v3"), "alice", "", "{}").ok());
  run_until("web-2", DeployState::succeeded);
  ASSERT_EQ(state("web-2"), DeployState::succeeded) << o->get("web-2")->reason;
  ASSERT_TRUE(o->resume("web-1", {"alice-token", "alice"}).ok());
  run_until("web-1", DeployState::succeeded);
  ASSERT_EQ(state("web-1"), DeployState::succeeded) << o->get("web-1")->reason;
  EXPECT_EQ(o->get("web-1")->environments[0].prior_artifact, "v3");
  const Status back = o->rollback("web-2", {"carol-token", "carol"}, "v3 was bad");
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.error().code, Errc::refused);
  EXPECT_NE(back.error().message.find("'web-1'"), std::string::npos) << back.error().message;
  EXPECT_EQ(state("web-2"), DeployState::succeeded);
  for (const auto& [host, release] : w.fleet.running) EXPECT_EQ(release, "v2") << host;
}

}  // namespace
}  // namespace drover::coordinator
