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

  std::int64_t now() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock.now().time_since_epoch())
        .count();
  }
  std::unique_ptr<Orchestrator> orchestrator() {
    return std::make_unique<Orchestrator>(
        *store, [this](const DeployRecord&) { return fleet.view(); },
        [this](const DeployRecord&, const std::string& artifact,
               const std::vector<std::string>& hosts) -> Status {
          if (lose_next_plan) {
            lose_next_plan = false;
            return make_error(Errc::io, "lost in a crash");
          }
          ++plans_issued;
          fleet.issue(artifact, hosts, now());
          return Ok{};
        },
        [](const DeployRecord&) {
          DeployParams p;
          p.bake_ms = 20'000;
          return p;
        },
        clock, Logger::discard());
  }
  void step_fleet() { fleet.tick(now()); }
  DeployRecord deploy() {
    DeployRecord d;
    d.id = "d-1";
    d.service = "web";
    d.artifact = "v2";
    d.prior_artifact = "v1";
    d.created_ms = now();
    std::vector<std::string> hosts;
    for (int i = 0; i < 6; ++i) {
      hosts.push_back("h" + std::to_string(i));
      fleet.running["h" + std::to_string(i)] = "v1";
    }
    RolloutShape shape;
    shape.batch_size = 2;
    d.batches = pending_batches(plan_batches(hosts, shape, d.id));
    return d;
  }
};

TEST(Orchestrator, APlanLostInACrashIsIssuedAgainAtStart) {
  World w;
  auto o = w.orchestrator();
  ASSERT_TRUE(o->create(w.deploy(), "alice", "0123abcd", "{\"strategy\":\"rolling\"}").ok());
  // Run until batch 1 is about to start, then lose its plan.
  while (o->get("d-1")->batch == 0 || o->get("d-1")->state != DeployState::deploying) {
    w.step_fleet();
    if (o->get("d-1")->state == DeployState::baking && o->get("d-1")->batch == 0) {
      w.lose_next_plan = true;
    }
    (void)o->tick();
    w.clock.advance(1s);
  }
  ASSERT_EQ(o->get("d-1")->batch, 1u);
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
  for (const auto& b : done.batches) EXPECT_GE(b.finished_ms - b.converged_ms, 20'000);
  int started = 0;
  const auto records = w.store->audit({"web", "", 0, INT64_MAX, 1000}).value();
  for (const auto& r : records) started += r.what == "batch.started";
  EXPECT_EQ(started, 3);
  EXPECT_TRUE(w.store->verify_audit()->ok);
}

TEST(Orchestrator, CommandsAreAuditedAndRefusedWhenTheyMakeNoSense) {
  World w;
  auto o = w.orchestrator();
  ASSERT_TRUE(o->create(w.deploy(), "alice", "0123abcd", "{}").ok());
  EXPECT_EQ(o->create(w.deploy(), "alice", "0123abcd", "{}").error().code, Errc::already_exists);
  EXPECT_EQ(o->resume("d-1", "bob").error().code, Errc::refused);
  ASSERT_TRUE(o->pause("d-1", "bob").ok());
  EXPECT_EQ(o->get("d-1")->state, DeployState::paused);
  EXPECT_EQ(o->pause("d-1", "bob").error().code, Errc::refused);
  w.clock.advance(3600s);
  EXPECT_EQ(*o->tick(), 0);  // a paused deploy waits for a person
  ASSERT_TRUE(o->resume("d-1", "bob").ok());
  ASSERT_TRUE(o->rollback("d-1", "carol", "changed my mind").ok());
  EXPECT_EQ(o->get("d-1")->state, DeployState::rolling_back);
  EXPECT_EQ(o->rollback("d-1", "carol", "again").error().code, Errc::refused);
  EXPECT_EQ(o->pause("d-9", "bob").error().code, Errc::not_found);
  std::vector<std::string> who;
  const auto records = w.store->audit({"web", "", 0, INT64_MAX, 100}).value();
  for (const auto& r : records) who.push_back(r.who + ":" + r.what);
  EXPECT_EQ(who, (std::vector<std::string>{"alice:deploy.created", "bob:deploy.paused",
                                           "bob:deploy.resumed", "carol:rollback.started"}));
}

}  // namespace
}  // namespace drover::coordinator
