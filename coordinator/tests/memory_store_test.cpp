// The in-memory state keeps what was committed and nothing else: a
// transaction's writes are visible to it (cursors included) and to no one
// else until it commits; a crash loses the transaction in flight and stops
// the instance; a reopened instance sees exactly what was committed.
#include <gtest/gtest.h>

#include "coordinator/kv/memory_kv.hpp"
#include "coordinator/store/memory_coordinator_store.hpp"

namespace drover::coordinator {
namespace {

std::vector<std::string> keys(kv::Txn& txn, kv::Table t) {
  std::vector<std::string> out;
  auto cursor = txn.cursor(t).value();
  for (bool more = cursor->first().value(); more; more = cursor->next().value()) {
    out.emplace_back(cursor->key());
  }
  return out;
}

TEST(MemoryKv, ATransactionSeesItsOwnWritesAndOthersOnlyCommittedOnes) {
  kv::MemoryKv db;
  const kv::Table t = db.table("t").value();
  {
    auto w = db.begin_write().value();
    ASSERT_TRUE(w->put(t, "b", "1").ok());
    ASSERT_TRUE(w->put(t, "d", "1").ok());
    ASSERT_TRUE(w->commit().ok());
  }
  auto w = db.begin_write().value();
  ASSERT_TRUE(w->put(t, "a", "2").ok());
  ASSERT_TRUE(w->put(t, "c", "2").ok());
  EXPECT_TRUE(w->erase(t, "b").value());
  EXPECT_FALSE(w->erase(t, "zz").value());
  EXPECT_FALSE(w->put_new(t, "d", "3").value());
  EXPECT_EQ(keys(*w, t), (std::vector<std::string>{"a", "c", "d"}));
  {
    auto cursor = w->cursor(t).value();
    ASSERT_TRUE(cursor->seek("b").value());
    EXPECT_EQ(cursor->key(), "c");
    EXPECT_EQ(cursor->value(), "2");
  }
  {
    auto r = db.begin_read().value();  // (another thread's view; one writer only)
    EXPECT_EQ(keys(*r, t), (std::vector<std::string>{"b", "d"}));
  }
  w.reset();  // not committed: aborted
  auto r = db.begin_read().value();
  EXPECT_EQ(keys(*r, t), (std::vector<std::string>{"b", "d"}));
  EXPECT_FALSE(r->get(t, "a").value());
}

TEST(MemoryCoordinatorStore, ACrashLosesTheTransactionInFlightAndReopeningSeesTheCommitted) {
  auto s = MemoryCoordinatorStore::create();
  DeployRecord d;
  d.id = "web-1";
  d.service = "web";
  d.pipeline_id = "web";
  d.artifact = "sha256:a";
  EnvRun e;
  e.name = "prod";
  e.waves.push_back(WaveRun{});
  d.environments.push_back(e);
  AuditRecord created;
  created.what = "deploy.created";
  created.service = "web";
  ASSERT_TRUE(s->create_deploy({d, created, "{}", 1}).ok());

  s->crash_after_commits(1);
  DeployRecord next = d;
  next.state = DeployState::artifact_ready;
  ASSERT_TRUE(s->commit_deploy(next, {}).ok());  // the one allowed
  next.state = DeployState::deploying;
  auto lost = s->commit_deploy(next, {});  // the crash: lost
  ASSERT_FALSE(lost.ok());
  EXPECT_EQ(lost.error().code, Errc::io);
  EXPECT_TRUE(s->crashed());
  EXPECT_FALSE(s->deploy("web-1").ok());  // a dead process answers nothing

  auto restarted = s->reopen();
  EXPECT_FALSE(restarted->crashed());
  EXPECT_EQ(restarted->deploy("web-1").value()->state, DeployState::artifact_ready);
  EXPECT_EQ(restarted->active_deploys("web").value().at(0).id, "web-1");
  EXPECT_TRUE(restarted->verify_audit().value().ok);
  next.state = DeployState::deploying;
  ASSERT_TRUE(restarted->commit_deploy(next, {}).ok());
  EXPECT_EQ(restarted->reopen()->deploy("web-1").value()->state, DeployState::deploying);
}

}  // namespace
}  // namespace drover::coordinator
