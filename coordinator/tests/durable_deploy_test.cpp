// A deploy whose every transition is committed (record and audit together)
// and which is resumed from the store after a "crash" at each transition:
// no batch started twice, no bake shortened, the audit chain intact.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "coordinator/orchestrator/batches.hpp"
#include "coordinator/store/deploy_record.hpp"
#include "coordinator/tests/sim_fleet.hpp"
#include "coordinator/tests/store_backends.hpp"
#include "core/hash/sha256.hpp"
#include "tests/support/test_support.hpp"

namespace drover::coordinator {
namespace {

constexpr std::int64_t kOneSecond = 1000;

// One environment of one wave: the machine cuts the batches when it starts.
DeployRecord sample_deploy() {
  DeployRecord d;
  d.id = "d-7";
  d.pipeline_id = "p-1";
  d.service = "web";
  d.artifact = "v2";
  d.created_ms = 1'000'000;
  EnvRun e;
  e.name = "prod";
  e.waves.push_back(WaveRun{});
  e.waves[0].name = "all";
  d.environments.push_back(e);
  return d;
}

RunPlan sample_plan(const DeployParams& params) {
  RunPlan plan;
  EnvPlan env;
  env.name = "prod";
  Wave all;
  all.name = "all";
  all.regions.push_back({"", ""});
  env.waves.push_back(all);
  env.shape.batch_size = 2;
  env.params = params;
  plan.envs.push_back(env);
  return plan;
}

AuditRecord record_of(std::int64_t at, const std::string& who, const std::string& what,
                      const std::string& detail) {
  AuditRecord r;
  r.at_ms = at;
  r.who = who;
  r.what = what;
  r.service = "web";
  r.deploy_id = "d-7";
  r.artifact = "v2";
  r.detail = detail;
  return r;
}

TEST(DeployCodec, RoundTripsEveryField) {
  DeployRecord d = sample_deploy();
  d.state = DeployState::paused;
  d.paused_from = DeployState::baking;
  d.paused_at_ms = 1234;
  d.started_by = "alice";
  RegionRun r;
  r.region = "eu-west-1";
  r.batches = pending_batches({{"h1", "h2"}, {"h3"}});
  r.batches[0].status = "passed";
  r.batches[0].verdict = "passed with 7 samples";
  d.environments[0].waves[0].regions.push_back(r);
  d.environments[0].gate.required = 2;
  d.environments[0].gate.approvals.push_back({"bob", "bob-laptop", 5, "fine"});
  d.environments[0].gate.rejection = GateAct{"carol", "carol-1", 6, "no"};
  d.environments[0].freeze_override = GateAct{"dave", "dave-1", 7, "hotfix"};
  d.reason = "why not";
  auto back = decode_deploy(encode_deploy(d));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(encode_deploy(*back), encode_deploy(d));
  EXPECT_EQ(back->paused_from, DeployState::baking);
  EXPECT_FALSE(decode_deploy("{}").ok());
}

using DurableDeploy = OnEachBackend;

TEST_P(DurableDeploy, ResumesAfterACrashAtEveryTransition) {
  DeployParams params;
  params.bake_ms = 20 * kOneSecond;
  SimFleet fleet;  // hosts converge 2 s after a plan and report health every second
  fleet.apply_delay = 2 * kOneSecond;
  fleet.sample_every = kOneSecond;
  for (int i = 0; i < 6; ++i) fleet.running["h" + std::to_string(i)] = "v1";
  DeployRecord d = sample_deploy();
  auto store = backend_.open().value();
  ASSERT_TRUE(store
                  ->create_deploy({d, record_of(d.created_ms, "alice", "deploy.created", "{}"),
                                   "{\"pipeline\":\"p-1\"}", 0})
                  .ok());
  std::int64_t now = d.created_ms;
  int transitions = 0;
  while (true) {
    // Every step starts from what is on disk, as after a restart.
    store.reset();
    store = backend_.open().value();
    DeployRecord current = **store->deploy("d-7");
    if (is_terminal(current.state)) break;
    fleet.tick(now);
    FleetView view = fleet.view();
    for (int i = 0; i < 6; ++i) view.hosts.push_back({"h" + std::to_string(i), "r1", ""});
    view.next_env_prior = "v1";
    Step s = advance(current, sample_plan(params), view, now);
    if (s.changed) {
      std::vector<AuditRecord> audits;
      for (const auto& a : s.actions) {
        if (a.kind == Action::Kind::audit) {
          audits.push_back(record_of(now, "system", a.what, a.detail));
        }
      }
      ASSERT_TRUE(store->commit_deploy(s.next, audits).ok());
      ++transitions;
      // Plans are issued after the commit.
      for (const auto& a : s.actions) {
        if (a.kind == Action::Kind::issue_plan) fleet.issue(a.artifact, a.hosts, now);
      }
    }
    now += kOneSecond;
    ASSERT_LT(now, d.created_ms + 3600 * kOneSecond);
  }
  DeployRecord done = **store->deploy("d-7");
  EXPECT_EQ(done.state, DeployState::succeeded);
  EXPECT_GT(transitions, 6);
  for (const auto& b : done.environments[0].waves[0].regions.at(0).batches) {
    EXPECT_GE(b.finished_ms - b.converged_ms, params.bake_ms);
  }
  auto records = store->audit({"web", "", 0, INT64_MAX, 1000});
  ASSERT_TRUE(records.ok());
  int started = 0;
  for (const auto& r : *records) started += r.what == "batch.started";
  EXPECT_EQ(started, 3);  // once per batch
  AuditCheck check = *store->verify_audit();
  EXPECT_TRUE(check.ok) << check.problem;
  EXPECT_EQ(check.records, records->size());
  EXPECT_EQ((*records)[0].config_hash, ContentId::of("{\"pipeline\":\"p-1\"}").str());
  EXPECT_EQ((*store->running_at("web", now))->what, "service.release");
}

INSTANTIATE_TEST_SUITE_P(Backends, DurableDeploy, ::testing::Values(Backend::lmdb, Backend::memory),
                         backend_name);

}  // namespace
}  // namespace drover::coordinator
