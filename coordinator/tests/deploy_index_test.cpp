// The store's deploy indexes: the active deploy of each service (what the
// driver's tick, recover and a new deploy read), the newest deploys of a
// service or pipeline (what the listings read), what ran when (the prior
// release of a new deploy), and a format 1 state indexed when opened.
#include <gtest/gtest.h>

#include "coordinator/tests/store_backends.hpp"
#include "core/hash/sha256.hpp"
#include "tests/support/test_support.hpp"

namespace drover::coordinator {
namespace {

using DeployIndex = OnEachBackend;

DeployRecord deploy(const std::string& service, int n, std::int64_t created_ms,
                    const std::string& pipeline = "") {
  DeployRecord d;
  d.id = service + "-" + std::to_string(n);
  d.service = service;
  d.pipeline_id = pipeline.empty() ? service : pipeline;
  d.artifact = "sha256:" + d.id;
  d.created_ms = created_ms;
  EnvRun e;
  e.name = "prod";
  e.waves.push_back(WaveRun{});
  d.environments.push_back(e);
  return d;
}

CoordinatorStore::NewDeploy new_deploy(const DeployRecord& d, std::uint64_t counter) {
  AuditRecord created;
  created.at_ms = d.created_ms;
  created.who = "alice";
  created.what = "deploy.created";
  created.service = d.service;
  created.deploy_id = d.id;
  created.artifact = d.artifact;
  return {d, created, "{\"snapshot\":\"" + d.id + "\"}", counter};
}

// Finishes d: succeeded, with the service.release record it leaves.
Status finish(CoordinatorStore& s, DeployRecord d, std::int64_t at_ms) {
  d.state = DeployState::succeeded;
  d.completed_ms = at_ms;
  AuditRecord release;
  release.at_ms = at_ms;
  release.who = "system";
  release.what = "service.release";
  release.service = d.service;
  release.deploy_id = d.id;
  release.artifact = d.artifact;
  return s.commit_deploy(d, {release});
}

std::vector<std::string> ids(const std::vector<DeployRecord>& all) {
  std::vector<std::string> out;
  for (const auto& d : all) out.push_back(d.id);
  return out;
}

TEST_P(DeployIndex, ActiveRunsFollowTheirStateSeveralPerService) {
  auto s = backend_.open().value();
  ASSERT_TRUE(s->create_deploy(new_deploy(deploy("web", 1, 1000), 1)).ok());
  ASSERT_TRUE(s->create_deploy(new_deploy(deploy("db", 1, 2000), 1)).ok());
  EXPECT_EQ(ids(s->active_deploys().value()), (std::vector<std::string>{"db-1", "web-1"}));
  EXPECT_EQ(ids(s->active_deploys("web").value()), (std::vector<std::string>{"web-1"}));

  DeployRecord paused = deploy("web", 1, 1000);
  paused.state = DeployState::paused;  // paused is still active
  ASSERT_TRUE(s->commit_deploy(paused, {}).ok());
  EXPECT_EQ(s->active_deploys("web").value().at(0).state, DeployState::paused);
  ASSERT_TRUE(finish(*s, deploy("web", 1, 1000), 2500).ok());
  EXPECT_TRUE(s->active_deploys("web").value().empty());
  EXPECT_EQ(ids(s->active_deploys().value()), (std::vector<std::string>{"db-1"}));

  // The number must follow the stored one: a number taken is refused.
  EXPECT_EQ(s->create_deploy(new_deploy(deploy("web", 1, 3000), 1)).error().code,
            Errc::already_exists);
  EXPECT_EQ(s->create_deploy(new_deploy(deploy("web", 3, 3000), 3)).error().code,
            Errc::already_exists);
  ASSERT_TRUE(s->create_deploy(new_deploy(deploy("web", 2, 3000), 2)).ok());
  EXPECT_EQ(s->deploy_counter("web").value(), 2u);
  // Runs of a service queue per environment in the orchestrator; the store
  // keeps each of them active.
  ASSERT_TRUE(s->create_deploy(new_deploy(deploy("web", 3, 3500), 3)).ok());
  EXPECT_EQ(ids(s->active_deploys("web").value()), (std::vector<std::string>{"web-2", "web-3"}));
  // Its config snapshot is kept once and found by the deploy.
  EXPECT_EQ(*s->deploy_config("web-2").value(), "{\"snapshot\":\"web-2\"}");
  EXPECT_EQ(s->running_at("web", 3000).value()->artifact, "sha256:web-1");
}

TEST_P(DeployIndex, ListingsAreNewestFirstAndReadOnlyWhatIsAsked) {
  auto s = backend_.open().value();
  // Created out of id order; web and api share pipeline "shop".
  const std::vector<DeployRecord> all = {deploy("web", 1, 5000, "shop"),
                                         deploy("api", 1, 1000, "shop"),
                                         deploy("web", 2, 9000, "shop"), deploy("db", 1, 7000)};
  std::map<std::string, std::uint64_t> counters;
  for (const auto& d : all) {
    ASSERT_TRUE(s->create_deploy(new_deploy(d, ++counters[d.service])).ok());
    ASSERT_TRUE(finish(*s, d, d.created_ms + 100).ok());
  }
  EXPECT_EQ(ids(s->recent_deploys({}, 10).value()),
            (std::vector<std::string>{"web-2", "db-1", "web-1", "api-1"}));
  EXPECT_EQ(ids(s->recent_deploys({}, 2).value()), (std::vector<std::string>{"web-2", "db-1"}));
  EXPECT_EQ(ids(s->recent_deploys({"web", ""}, 10).value()),
            (std::vector<std::string>{"web-2", "web-1"}));
  EXPECT_EQ(ids(s->recent_deploys({"", "shop"}, 10).value()),
            (std::vector<std::string>{"web-2", "web-1", "api-1"}));
  EXPECT_TRUE(s->recent_deploys({"we", ""}, 10).value().empty());  // a prefix is not a service
  EXPECT_TRUE(s->active_deploys().value().empty());
  EXPECT_EQ(s->running_at("web", 9099).value()->artifact, "sha256:web-1");
  EXPECT_EQ(s->running_at("web", 9100).value()->artifact, "sha256:web-2");
}

TEST_P(DeployIndex, AFormat1StateIsIndexedWhenOpened) {
  {
    auto s = backend_.open().value();
    ASSERT_TRUE(s->create_deploy(new_deploy(deploy("web", 1, 1000), 1)).ok());
    ASSERT_TRUE(finish(*s, deploy("web", 1, 1000), 2000).ok());
    ASSERT_TRUE(s->create_deploy(new_deploy(deploy("web", 2, 3000), 2)).ok());
    ASSERT_TRUE(s->create_deploy(new_deploy(deploy("db", 1, 4000), 1)).ok());
    // Back to what a format 1 coordinator left: no indexes.
    kv::Store& kv = s->kv();
    // Tables are opened before the write transaction (opening one writes).
    const kv::Table meta = kv.table("meta").value();
    std::vector<kv::Table> indexes;
    for (const char* name : {"active_deploys", "deploy_list", "audit_releases"}) {
      indexes.push_back(kv.table(name).value());
    }
    auto txn = kv.begin_write().value();
    ASSERT_TRUE(txn->put(meta, "coordinator_format", "1").ok());
    for (const kv::Table t : indexes) {
      std::vector<std::string> keys;
      {
        auto cursor = txn->cursor(t).value();
        for (bool more = cursor->first().value(); more; more = cursor->next().value()) {
          keys.emplace_back(cursor->key());
        }
      }
      for (const auto& k : keys) ASSERT_TRUE(txn->erase(t, k).value());
    }
    ASSERT_TRUE(txn->commit().ok());
  }
  auto s = backend_.open().value();
  EXPECT_EQ(ids(s->active_deploys().value()), (std::vector<std::string>{"db-1", "web-2"}));
  EXPECT_EQ(ids(s->recent_deploys({"web", ""}, 10).value()),
            (std::vector<std::string>{"web-2", "web-1"}));
  EXPECT_EQ(s->running_at("web", 5000).value()->artifact, "sha256:web-1");
  EXPECT_TRUE(s->verify_audit().value().ok);
}

INSTANTIATE_TEST_SUITE_P(Backends, DeployIndex, ::testing::Values(Backend::lmdb, Backend::memory),
                         backend_name);

}  // namespace
}  // namespace drover::coordinator
