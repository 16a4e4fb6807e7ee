// The audit log: a chain that verifies, and that names the record when one
// is edited, removed, or cut from the end.
#include <gtest/gtest.h>

#include "coordinator/audit/audit_log.hpp"
#include "coordinator/kv/lmdb_kv.hpp"
#include "core/hash/sha256.hpp"
#include "tests/support/test_support.hpp"

namespace drover::coordinator {
namespace {

using drover::testing::TempDir;

struct Log {
  TempDir dir;
  std::unique_ptr<kv::Store> db = kv::LmdbKv::open(dir.path(), {64 << 20, 8, false}).value();
  AuditTables t{db->table("audit").value(), db->table("snapshots").value(),
                db->table("meta").value(), db->table("releases").value(),
                db->table("by_time").value()};

  AuditRecord append(std::int64_t at, const std::string& what, const std::string& service,
                     const std::string& artifact = "", const std::string& snapshot = "") {
    auto txn = db->begin_write().value();
    AuditRecord r;
    r.at_ms = at;
    r.who = "alice";
    r.what = what;
    r.service = service;
    r.artifact = artifact;
    auto out = audit_append(*txn, t, r, snapshot);
    EXPECT_TRUE(out.ok());
    EXPECT_TRUE(txn->commit().ok());
    return *out;
  }
  AuditCheck verify() {
    auto txn = db->begin_read().value();
    return audit_verify(*txn, t).value();
  }
  std::string raw(std::uint64_t seq) {
    auto txn = db->begin_read().value();
    return **txn->get(t.records, key(seq));
  }
  void put_raw(std::uint64_t seq, const std::string& bytes) {
    auto txn = db->begin_write().value();
    ASSERT_TRUE(txn->put(t.records, key(seq), bytes).ok());
    ASSERT_TRUE(txn->commit().ok());
  }
  void erase(std::uint64_t seq) {
    auto txn = db->begin_write().value();
    ASSERT_TRUE(*txn->erase(t.records, key(seq)));
    ASSERT_TRUE(txn->commit().ok());
  }
  static std::string key(std::uint64_t seq) {
    std::string k;
    for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>((seq >> (8 * i)) & 0xff));
    return k;
  }
  void fill() {
    append(1000, "deploy.created", "web", "sha256:a", "{\"envs\":[\"prod\"]}");
    append(2000, "service.release", "web", "sha256:a");
    append(3000, "service.release", "db", "sha256:d");
    append(4000, "rollback.started", "web", "sha256:b");
    append(5000, "service.release", "web", "sha256:b");
  }
};

TEST(Audit, AChainOfRecordsVerifies) {
  Log log;
  log.fill();
  AuditCheck c = log.verify();
  EXPECT_TRUE(c.ok) << c.problem;
  EXPECT_EQ(c.records, 5u);
  EXPECT_EQ(c.head, ContentId::of(log.raw(5)).str());
  auto first = decode_audit_record(log.raw(1));
  EXPECT_EQ(first->config_hash, ContentId::of("{\"envs\":[\"prod\"]}").str());
  EXPECT_EQ(decode_audit_record(log.raw(2))->prev, ContentId::of(log.raw(1)).str());
}

TEST(Audit, AnEditedRecordIsNamed) {
  Log log;
  log.fill();
  AuditRecord r = *decode_audit_record(log.raw(2));
  r.who = "mallory";  // someone rewrites who did it
  log.put_raw(2, encode_audit_record(r));
  AuditCheck c = log.verify();
  EXPECT_FALSE(c.ok);
  EXPECT_NE(c.problem.find("record 3"), std::string::npos) << c.problem;
}

TEST(Audit, ARemovedRecordIsNamed) {
  Log log;
  log.fill();
  log.erase(3);
  AuditCheck c = log.verify();
  EXPECT_FALSE(c.ok);
  EXPECT_NE(c.problem.find("record 3 is missing"), std::string::npos) << c.problem;
}

TEST(Audit, CuttingOrEditingTheNewestRecordIsCaughtByTheHead) {
  Log log;
  log.fill();
  log.erase(5);
  EXPECT_FALSE(log.verify().ok);
  Log other;
  other.fill();
  AuditRecord r = *decode_audit_record(other.raw(5));
  r.artifact = "sha256:evil";
  other.put_raw(5, encode_audit_record(r));
  AuditCheck c = other.verify();
  EXPECT_FALSE(c.ok);
  EXPECT_NE(c.problem.find("head"), std::string::npos) << c.problem;
}

TEST(Audit, QueriesByServiceAndTimeAndWhatRanWhen) {
  Log log;
  log.fill();
  auto txn = log.db->begin_read().value();
  auto web = audit_query(*txn, log.t, {"web", "", 1500, 10'000, 100});
  ASSERT_TRUE(web.ok());
  ASSERT_EQ(web->size(), 3u);
  EXPECT_EQ((*web)[0].seq, 2u);
  EXPECT_EQ(audit_query(*txn, log.t, {"", "", 0, 10'000, 2})->size(), 2u);
  EXPECT_FALSE(*audit_running_at(*txn, log.t, "web", "", 1999));
  EXPECT_EQ((*audit_running_at(*txn, log.t, "web", "", 4999))->artifact, "sha256:a");
  EXPECT_EQ((*audit_running_at(*txn, log.t, "web", "", 5000))->artifact, "sha256:b");
  EXPECT_EQ((*audit_running_at(*txn, log.t, "db", "", 99'999))->artifact, "sha256:d");
}

TEST(Audit, WhatRanWhenGoesByTimeAndTheIndexCanBeRebuilt) {
  Log log;
  log.append(5000, "service.release", "web", "sha256:late");
  log.append(3000, "service.release", "web", "sha256:early");  // the wall clock stepped back
  log.append(3000, "service.release", "web", "sha256:again");  // same time: the last one counts
  log.append(4000, "service.release", "web-2", "sha256:other");
  auto answers = [&] {
    auto txn = log.db->begin_read().value();
    std::vector<std::string> out;
    for (std::int64_t at : {2999, 3000, 4999, 5000, 9000}) {
      auto r = audit_running_at(*txn, log.t, "web", "", at).value();
      out.push_back(r ? r->artifact : "-");
    }
    return out;
  };
  const std::vector<std::string> expected = {"-", "sha256:again", "sha256:again", "sha256:late",
                                             "sha256:late"};
  EXPECT_EQ(answers(), expected);
  {
    auto txn = log.db->begin_write().value();
    std::vector<std::string> keys;
    {
      auto cursor = txn->cursor(log.t.releases).value();  // gone before the commit
      for (bool more = cursor->first().value(); more; more = cursor->next().value()) {
        keys.emplace_back(cursor->key());
      }
    }
    for (const auto& k : keys) ASSERT_TRUE(txn->erase(log.t.releases, k).value());
    ASSERT_TRUE(txn->commit().ok());
  }
  EXPECT_EQ(answers(), std::vector<std::string>(5, "-"));
  {
    auto txn = log.db->begin_write().value();
    EXPECT_EQ(audit_index_releases(*txn, log.t).value(), 4u);
    ASSERT_TRUE(txn->commit().ok());
  }
  EXPECT_EQ(answers(), expected);
}

}  // namespace
}  // namespace drover::coordinator
