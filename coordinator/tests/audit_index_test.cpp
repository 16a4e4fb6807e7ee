// The audit log's indexes: records by service, environment and time read
// from an index (a query reads the records it returns and one index entry
// more, counted here through a counting kv layer), what ran at T per
// environment with its fallback to records written before environments, a
// log written before the index indexed once when opened, and a record
// without an env keeping its exact bytes.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include "coordinator/audit/audit_log.hpp"
#include "coordinator/kv/lmdb_kv.hpp"
#include "coordinator/kv/memory_kv.hpp"
#include "coordinator/tests/store_backends.hpp"
#include "tests/support/test_support.hpp"

namespace drover::coordinator::audit_index_test {
namespace {

constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

// What was read from each table: gets, and cursor positionings (first, next,
// seek). A query that walked the log would count one step per record.
struct Reads {
  std::map<kv::Table, std::uint64_t> gets, steps;
};

class CountingCursor final : public kv::Cursor {
 public:
  CountingCursor(std::unique_ptr<kv::Cursor> inner, std::uint64_t& steps)
      : inner_(std::move(inner)), steps_(steps) {}
  Result<bool> first() override {
    ++steps_;
    return inner_->first();
  }
  Result<bool> next() override {
    ++steps_;
    return inner_->next();
  }
  Result<bool> seek(std::string_view key) override {
    ++steps_;
    return inner_->seek(key);
  }
  Result<bool> prev() override {
    ++steps_;
    return inner_->prev();
  }
  Result<bool> before(std::string_view key) override {
    ++steps_;
    return inner_->before(key);
  }
  std::string_view key() const override { return inner_->key(); }
  std::string_view value() const override { return inner_->value(); }

 private:
  std::unique_ptr<kv::Cursor> inner_;
  std::uint64_t& steps_;  // an entry of a std::map: stable
};

class CountingTxn final : public kv::Txn {
 public:
  CountingTxn(std::unique_ptr<kv::Txn> inner, Reads& reads)
      : inner_(std::move(inner)), reads_(reads) {}
  Result<std::optional<std::string>> get(kv::Table table, std::string_view key) override {
    ++reads_.gets[table];
    return inner_->get(table, key);
  }
  Status put(kv::Table table, std::string_view key, std::string_view value) override {
    return inner_->put(table, key, value);
  }
  Result<bool> put_new(kv::Table table, std::string_view key, std::string_view value) override {
    return inner_->put_new(table, key, value);
  }
  Result<bool> erase(kv::Table table, std::string_view key) override {
    return inner_->erase(table, key);
  }
  Result<std::unique_ptr<kv::Cursor>> cursor(kv::Table table) override {
    DROVER_ASSIGN(auto c, inner_->cursor(table));
    return std::unique_ptr<kv::Cursor>(
        std::make_unique<CountingCursor>(std::move(c), reads_.steps[table]));
  }
  Status commit() override { return inner_->commit(); }

 private:
  std::unique_ptr<kv::Txn> inner_;
  Reads& reads_;
};

class CountingKv final : public kv::Store {
 public:
  Reads reads;
  Result<kv::Table> table(std::string_view name) override { return inner_.table(name); }
  Result<std::unique_ptr<kv::Txn>> begin_write() override {
    DROVER_ASSIGN(auto txn, inner_.begin_write());
    return std::unique_ptr<kv::Txn>(std::make_unique<CountingTxn>(std::move(txn), reads));
  }
  Result<std::unique_ptr<kv::Txn>> begin_read() override {
    DROVER_ASSIGN(auto txn, inner_.begin_read());
    return std::unique_ptr<kv::Txn>(std::make_unique<CountingTxn>(std::move(txn), reads));
  }

 private:
  kv::MemoryKv inner_;
};

AuditRecord record(std::int64_t at_ms, const std::string& what, const std::string& service,
                   const std::string& env, const std::string& artifact = "") {
  AuditRecord r;
  r.at_ms = at_ms;
  r.who = "alice";
  r.what = what;
  r.service = service;
  r.env = env;
  r.artifact = artifact;
  return r;
}

std::vector<std::uint64_t> seqs(const std::vector<AuditRecord>& records) {
  std::vector<std::uint64_t> out;
  for (const auto& r : records) out.push_back(r.seq);
  return out;
}

// A log on its own tables, over the counting layer.
struct IndexedLog {
  CountingKv db;
  AuditTables t{db.table("audit").value(), db.table("snapshots").value(), db.table("meta").value(),
                db.table("releases").value(), db.table("by_time").value()};

  void append(const std::vector<AuditRecord>& records) {
    auto txn = db.begin_write().value();
    for (const auto& r : records) ASSERT_TRUE(audit_append(*txn, t, r).ok());
    ASSERT_TRUE(txn->commit().ok());
  }
  std::vector<AuditRecord> query(const AuditQuery& q) {
    auto txn = db.begin_read().value();
    return audit_query(*txn, t, q).value();
  }
  std::optional<AuditRecord> running(const std::string& service, const std::string& env,
                                     std::int64_t at_ms) {
    auto txn = db.begin_read().value();
    return audit_running_at(*txn, t, service, env, at_ms).value();
  }
  // Every record, read from the log itself (not the index).
  std::vector<AuditRecord> all() {
    auto txn = db.begin_read().value();
    auto cursor = txn->cursor(t.records).value();
    std::vector<AuditRecord> out;
    for (bool more = cursor->first().value(); more; more = cursor->next().value()) {
      out.push_back(decode_audit_record(cursor->value()).value());
    }
    return out;
  }
  // What a query answers, found by filtering every record: the reference.
  static std::vector<AuditRecord> scan(const std::vector<AuditRecord>& all, const AuditQuery& q) {
    std::vector<AuditRecord> out;
    for (const auto& r : all) {
      if ((q.service.empty() || r.service == q.service) && (q.env.empty() || r.env == q.env) &&
          r.at_ms >= q.since_ms && r.at_ms < q.until_ms) {
        out.push_back(r);
      }
    }
    // Oldest first: by time (before 0 as 0), then seq.
    std::sort(out.begin(), out.end(), [](const AuditRecord& a, const AuditRecord& b) {
      return std::pair(std::max<std::int64_t>(a.at_ms, 0), a.seq) <
             std::pair(std::max<std::int64_t>(b.at_ms, 0), b.seq);
    });
    if (out.size() > q.limit) {
      if (q.newest) out.erase(out.begin(), out.end() - static_cast<std::ptrdiff_t>(q.limit));
      out.resize(q.limit);
    }
    return out;
  }
  AuditCheck verify() {
    auto txn = db.begin_read().value();
    return audit_verify(*txn, t).value();
  }
};

// Both stores walk backwards alike (what a newest-first query reads): a
// write transaction's own puts and erases included.
TEST(AuditIndex, BothStoresWalkBackwardsOverPendingChangesAlike) {
  drover::testing::TempDir dir;
  std::vector<std::unique_ptr<kv::Store>> stores;
  stores.push_back(std::make_unique<kv::MemoryKv>());
  lmdb::Options options;
  options.map_size = 64 << 20;
  stores.push_back(kv::LmdbKv::open(dir.path(), options).value());
  for (auto& db : stores) {
    const kv::Table t = db->table("t").value();
    {
      auto txn = db->begin_write().value();
      for (const char* k : {"a", "b", "c", "d"}) ASSERT_TRUE(txn->put(t, k, k).ok());
      ASSERT_TRUE(txn->commit().ok());
    }
    auto txn = db->begin_write().value();
    ASSERT_TRUE(txn->put(t, "bb", "bb").ok());
    ASSERT_TRUE(txn->erase(t, "c").value());
    auto c = txn->cursor(t).value();
    std::vector<std::string> walked;
    for (bool at = c->before("zz").value(); at; at = c->prev().value()) {
      walked.emplace_back(c->key());
    }
    EXPECT_EQ(walked, (std::vector<std::string>{"d", "bb", "b", "a"}));
    ASSERT_TRUE(c->before("d").value());
    EXPECT_EQ(c->key(), "bb");  // c is erased
    ASSERT_TRUE(c->before("bb").value());
    EXPECT_EQ(c->key(), "b");
    EXPECT_FALSE(c->before("a").value());
    ASSERT_TRUE(c->seek("b").value());
    ASSERT_TRUE(c->prev().value());
    EXPECT_EQ(c->key(), "a");
  }
}

// Records before time 0 share the index's time 0: a newest-first query that
// ends at or before 0 still finds them.
TEST(AuditIndex, TheNewestBeforeTimeZeroAreFound) {
  IndexedLog log;
  log.append({record(-10, "a", "web", ""), record(-5, "b", "web", ""), record(0, "c", "web", ""),
              record(3, "d", "web", "")});
  const std::vector<AuditRecord> all = log.all();
  for (std::int64_t until : {-6, -5, 0, 1, 4}) {
    AuditQuery q;
    q.service = "web";
    q.until_ms = until;
    q.limit = 10;
    q.newest = true;
    EXPECT_EQ(seqs(log.query(q)), seqs(IndexedLog::scan(all, q))) << "until " << until;
  }
}

TEST(AuditIndex, QueriesByServiceEnvAndTimeAreOldestFirstAndBounded) {
  IndexedLog log;
  log.append({
      record(1000, "deploy.created", "web", ""),        // 1
      record(2000, "batch.started", "web", "staging"),  // 2
      record(2000, "deploy.created", "db", "production"),
      record(3000, "service.release", "web", "production"),  // 4
      record(1500, "batch.passed", "web", "staging"),        // 5: the clock stepped back
      record(3000, "token.created", "", ""),                 // 6: no service
      record(4000, "service.release", "web", ""),            // 7
      record(5000, "batch.started", "web-2", "staging"),     // 8: "web" is not its prefix
      record(-50, "batch.started", "web", "staging"),        // 9: before 0
      record(0, "approval", "web", ""),                      // 10
  });
  using V = std::vector<std::uint64_t>;
  EXPECT_EQ(seqs(log.query({"web", "", kMin, kMax, 100})), (V{9, 10, 1, 5, 2, 4, 7}));
  EXPECT_EQ(seqs(log.query({"web", "staging", kMin, kMax, 100})), (V{9, 5, 2}));
  EXPECT_EQ(seqs(log.query({"", "staging", kMin, kMax, 100})), (V{9, 5, 2, 8}));
  EXPECT_EQ(seqs(log.query({"", "", kMin, kMax, 100})), (V{9, 10, 1, 5, 2, 3, 4, 6, 7, 8}));
  // since is inclusive, until exclusive.
  EXPECT_EQ(seqs(log.query({"web", "", 1500, 3000, 100})), (V{5, 2}));
  EXPECT_EQ(seqs(log.query({"web", "", 1500, 3001, 100})), (V{5, 2, 4}));
  EXPECT_EQ(seqs(log.query({"web", "production", 3000, 3001, 100})), (V{4}));
  EXPECT_EQ(seqs(log.query({"web", "", -100, 0, 100})), (V{9}));
  EXPECT_EQ(seqs(log.query({"web", "", 0, 1, 100})), (V{10}));
  // At most limit, the oldest.
  EXPECT_EQ(seqs(log.query({"web", "", kMin, kMax, 3})), (V{9, 10, 1}));
  EXPECT_EQ(seqs(log.query({"", "", 2000, kMax, 2})), (V{2, 3}));
  EXPECT_TRUE(log.query({"web", "", kMin, kMax, 0}).empty());
  EXPECT_TRUE(log.query({"web", "", 3000, 3000, 100}).empty());
  EXPECT_TRUE(log.query({"we", "", kMin, kMax, 100}).empty());
  EXPECT_TRUE(log.query({"web", "qa", kMin, kMax, 100}).empty());
  EXPECT_TRUE(log.query({"", "staging", 5001, kMax, 100}).empty());
  // Records keep their env through the index.
  EXPECT_EQ(log.query({"web", "production", kMin, kMax, 100}).at(0).env, "production");
  EXPECT_TRUE(log.verify().ok);
}

TEST(AuditIndex, QueriesAnswerWhatReadingEveryRecordAnswers) {
  IndexedLog log;
  std::mt19937_64 rng(20261202);
  const std::vector<std::string> services = {"", "web", "web-2", "db", "api"};
  const std::vector<std::string> envs = {"", "staging", "production"};
  auto pick = [&](const std::vector<std::string>& from) { return from[rng() % from.size()]; };
  std::vector<AuditRecord> records;
  for (int i = 0; i < 2000; ++i) {
    // Times from -20 to 5000, in no order: clocks step back, hosts disagree.
    records.push_back(record(static_cast<std::int64_t>(rng() % 5021) - 20, "batch.started",
                             pick(services), pick(envs)));
  }
  log.append(records);
  const std::vector<AuditRecord> all = log.all();
  ASSERT_EQ(all.size(), records.size());
  for (int i = 0; i < 400; ++i) {
    AuditQuery q;
    q.service = pick(services);
    q.env = pick(envs);
    q.since_ms = rng() % 8 == 0 ? kMin : static_cast<std::int64_t>(rng() % 5100) - 50;
    q.until_ms = rng() % 8 == 0 ? kMax : static_cast<std::int64_t>(rng() % 5100) - 50;
    q.limit = 1 + rng() % 60;
    q.newest = rng() % 2 == 0;
    EXPECT_EQ(seqs(log.query(q)), seqs(IndexedLog::scan(all, q)))
        << "service '" << q.service << "' env '" << q.env << "' " << q.since_ms << ".."
        << q.until_ms << " limit " << q.limit << (q.newest ? " newest" : "");
  }
}

// The index is what is read: the counts are those of the records returned,
// whatever the length of the log (a walk of the log would read 5,000).
TEST(AuditIndex, AQueryReadsOnlyTheRecordsItReturns) {
  IndexedLog log;
  constexpr int kRecords = 5'000;
  constexpr std::int64_t kStepMs = 3600;  // 5,000 records over 5 hours
  std::vector<AuditRecord> batch;
  for (int i = 0; i < kRecords; ++i) {
    const std::string service = "svc-" + std::to_string(i % 50);
    const std::string env = (i / 50) % 2 == 0 ? "staging" : "production";
    const std::string what = i % 10 == 9 ? "service.release" : "batch.started";
    batch.push_back(record(i * kStepMs, what, service, env, "sha256:" + std::to_string(i)));
    if (batch.size() == 1000) {
      log.append(batch);
      batch.clear();
    }
  }
  const std::vector<AuditRecord> all = log.all();
  const std::int64_t hour = 3'600'000;
  struct Case {
    AuditQuery q;
    std::size_t expect;
  };
  const std::vector<Case> cases = {
      // One service in one env over an hour: 1,000 records an hour, 100 pairs.
      {{"svc-7", "production", 4 * hour, 5 * hour, 1000}, 10},
      {{"svc-7", "", 4 * hour, 5 * hour, 1000}, 20},
      {{"", "staging", 4 * hour, 5 * hour, 1000}, 500},
      {{"", "", 4 * hour, 5 * hour, 5}, 5},
      {{"svc-7", "production", 4 * hour, kMax, 3}, 3},
      {{"svc-7", "qa", kMin, kMax, 1000}, 0},
      // The newest few, read backwards from until: as few as returned.
      {{"svc-7", "production", kMin, kMax, 3, true}, 3},
      {{"", "", kMin, 4 * hour, 7, true}, 7},
  };
  for (const auto& c : cases) {
    log.db.reads = {};
    const auto got = log.query(c.q);
    const Reads reads = log.db.reads;
    EXPECT_EQ(got.size(), c.expect) << c.q.service << "/" << c.q.env;
    EXPECT_EQ(seqs(got), seqs(IndexedLog::scan(all, c.q)));
    EXPECT_EQ(reads.gets.count(log.t.records) ? reads.gets.at(log.t.records) : 0u, got.size())
        << c.q.service << "/" << c.q.env;
    EXPECT_FALSE(reads.steps.count(log.t.records)) << "the log itself was walked";
    // One seek, then one step per record returned (the last lands past them).
    EXPECT_LE(reads.steps.at(log.t.by_time), got.size() + 1) << c.q.service << "/" << c.q.env;
  }
  // What ran at T: one seek and one record; a second seek when it falls back.
  log.db.reads = {};
  auto ran = log.running("svc-9", "production", 5 * hour);
  ASSERT_TRUE(ran);
  EXPECT_EQ(ran->env, "production");
  EXPECT_LE(ran->at_ms, 5 * hour);
  EXPECT_GT(ran->at_ms, 5 * hour - 100 * kStepMs);  // the newest: one every 100 records
  EXPECT_EQ(log.db.reads.gets.at(log.t.records), 1u);
  EXPECT_EQ(log.db.reads.steps.at(log.t.releases), 1u);
  EXPECT_FALSE(log.db.reads.steps.count(log.t.records));
  log.db.reads = {};
  EXPECT_FALSE(log.running("svc-9", "qa", 5 * hour));
  EXPECT_EQ(log.db.reads.steps.at(log.t.releases), 2u);
  EXPECT_FALSE(log.db.reads.gets.count(log.t.records));
}

TEST(AuditIndex, RunningAtLooksAtItsEnvThenAtRecordsWithoutOneAndWithoutEnvAtAll) {
  IndexedLog log;
  log.append({
      record(1000, "service.release", "web", "", "sha256:a"),  // before environments
      record(2000, "service.release", "web", "staging", "sha256:b"),
      record(3000, "service.release", "web", "production", "sha256:c"),
      record(4000, "service.release", "web", "staging", "sha256:d"),
      record(4500, "batch.started", "web", "production", "sha256:x"),  // not a release
      record(2500, "service.release", "web-2", "production", "sha256:other"),
  });
  auto ran = [&](const std::string& env, std::int64_t at) {
    auto r = log.running("web", env, at);
    return r ? r->artifact : std::string("-");
  };
  EXPECT_EQ(ran("staging", 999), "-");
  EXPECT_EQ(ran("staging", 1500), "sha256:a");  // none in staging yet: the one without env
  EXPECT_EQ(ran("staging", 2000), "sha256:b");
  EXPECT_EQ(ran("staging", 3999), "sha256:b");
  EXPECT_EQ(ran("staging", 4000), "sha256:d");
  EXPECT_EQ(ran("production", 2999), "sha256:a");
  EXPECT_EQ(ran("production", 3000), "sha256:c");
  EXPECT_EQ(ran("production", 9000), "sha256:c");
  EXPECT_EQ(ran("qa", 9000), "sha256:a");
  // Without env: the newest in any environment (or recorded without one).
  EXPECT_EQ(ran("", 9000), "sha256:d");
  EXPECT_EQ(ran("", 3500), "sha256:c");
  EXPECT_EQ(ran("", 2999), "sha256:b");
  EXPECT_EQ(ran("", 1500), "sha256:a");
  EXPECT_EQ(ran("", 999), "-");
  EXPECT_EQ(log.running("web-2", "production", 9000)->artifact, "sha256:other");
  EXPECT_EQ(log.running("web-2", "", 9000)->artifact, "sha256:other");
  EXPECT_FALSE(log.running("web-2", "", 2000));
  EXPECT_FALSE(log.running("we", "", 9000));
  EXPECT_FALSE(log.running("we", "production", 9000));
}

TEST(AuditIndex, ARecordWithoutEnvKeepsItsBytes) {
  AuditRecord r = record(1000, "deploy.created", "web", "", "sha256:a");
  r.seq = 1;
  r.deploy_id = "d-1";
  r.prev = "sha256:" + std::string(64, '0');
  // The bytes a record had before env existed, to the byte.
  const std::string old =
      R"({"artifact":"sha256:a","at":1000,"config_hash":"","deploy_id":"d-1","detail":{},)"
      R"("format":"drover.audit.v1","git_sha":"","prev":"sha256:)" +
      std::string(64, '0') + R"(","seq":1,"service":"web","what":"deploy.created","who":"alice"})";
  EXPECT_EQ(encode_audit_record(r), old);
  EXPECT_EQ(decode_audit_record(old).value().env, "");
  r.env = "production";
  const std::string with_env = encode_audit_record(r);
  EXPECT_NE(with_env.find(R"("detail":{},"env":"production","format")"), std::string::npos)
      << with_env;
  EXPECT_EQ(decode_audit_record(with_env).value().env, "production");
  EXPECT_EQ(encode_audit_record(decode_audit_record(with_env).value()), with_env);
  // "no env" has one spelling: an empty one is refused.
  std::string empty_env = with_env;
  empty_env.replace(empty_env.find("production"), 10, "");
  EXPECT_FALSE(decode_audit_record(empty_env).ok());
}

// Names that break the rule (none should reach the log) do not leak into
// another name's scope: "web" with env "x" is not "web/x", nor "web" in "x/y".
TEST(AuditIndex, NamesOutsideTheRuleKeepToTheirOwnScope) {
  IndexedLog log;
  log.append({record(1000, "a", "web", "x"), record(1000, "b", "web/x", ""),
              record(1000, "c", "web", "x/y"), record(1000, "d", "web/x/y", "")});
  using V = std::vector<std::uint64_t>;
  EXPECT_EQ(seqs(log.query({"web", "", kMin, kMax, 100})), (V{1, 3}));
  EXPECT_EQ(seqs(log.query({"web", "x", kMin, kMax, 100})), (V{1}));
  EXPECT_EQ(seqs(log.query({"web/x", "", kMin, kMax, 100})), (V{2}));
  EXPECT_EQ(seqs(log.query({"web", "x/y", kMin, kMax, 100})), (V{3}));
  EXPECT_EQ(seqs(log.query({"", "x", kMin, kMax, 100})), (V{1}));
}

// An index built from a log with a record that does not read leaves that
// record out and still opens; verification names it.
TEST(AuditIndex, AnUnreadableRecordIsLeftOutOfARebuild) {
  IndexedLog log;
  log.append({record(1000, "a", "web", ""), record(2000, "b", "web", "staging"),
              record(3000, "service.release", "web", "staging", "sha256:c")});
  {
    auto txn = log.db.begin_write().value();
    std::string seq2(8, '\0');
    seq2[7] = 2;
    ASSERT_TRUE(txn->put(log.t.records, seq2, "not json").ok());
    // No marks (this log never had them): both indexes are built again.
    EXPECT_EQ(audit_index_current(*txn, log.t).value(), 3u);
    EXPECT_EQ(audit_index_current(*txn, log.t).value(), 0u);  // current now: nothing to do
    ASSERT_TRUE(txn->commit().ok());
  }
  EXPECT_EQ(seqs(log.query({"web", "", kMin, kMax, 100})), (std::vector<std::uint64_t>{1, 3}));
  EXPECT_EQ(log.running("web", "staging", 9000)->artifact, "sha256:c");
  const AuditCheck check = log.verify();
  EXPECT_FALSE(check.ok);
  EXPECT_NE(check.problem.find("record 2"), std::string::npos) << check.problem;
}

using AuditIndexStore = OnEachBackend;

void append_each(CoordinatorStore& s, const std::vector<AuditRecord>& records) {
  for (const auto& r : records) ASSERT_TRUE(s.append_audit(r).ok());
}

TEST_P(AuditIndexStore, RunningAtPerEnvThroughTheStore) {
  auto s = backend_.open().value();
  append_each(*s, {record(1000, "service.release", "web", "", "sha256:a"),
                   record(2000, "service.release", "web", "staging", "sha256:b"),
                   record(3000, "service.release", "web", "production", "sha256:c")});
  EXPECT_EQ(s->running_at("web", "staging", 1999).value()->artifact, "sha256:a");
  EXPECT_EQ(s->running_at("web", "staging", 2000).value()->artifact, "sha256:b");
  EXPECT_EQ(s->running_at("web", "production", 2500).value()->artifact, "sha256:a");
  EXPECT_EQ(s->running_at("web", "production", 3000).value()->artifact, "sha256:c");
  // Without env (the old form): the newest in any environment.
  EXPECT_EQ(s->running_at("web", 9000).value()->artifact, "sha256:c");
  EXPECT_EQ(s->running_at("web", 2500).value()->artifact, "sha256:b");
  EXPECT_EQ(s->running_at("web", 1500).value()->artifact, "sha256:a");
  EXPECT_FALSE(s->running_at("web", 999).value());
  EXPECT_FALSE(s->running_at("web", "staging", 999).value());
  EXPECT_EQ(seqs(s->audit({"web", "staging", kMin, kMax, 10}).value()),
            (std::vector<std::uint64_t>{2}));
  EXPECT_TRUE(s->verify_audit().value().ok);
}

// A log written before the by-time index (and under the releases index's
// first layout, "<service>/" without env) is indexed when the store is
// opened, once: the marks in meta say it is done.
TEST_P(AuditIndexStore, ALogWrittenBeforeTheIndexIsIndexedOnceWhenOpened) {
  const std::vector<AuditQuery> queries = {
      {"web", "", kMin, kMax, 100}, {"web", "staging", kMin, kMax, 100},
      {"", "", 1500, 4000, 100},    {"db", "", kMin, kMax, 100},
      {"", "", kMin, kMax, 3},      {"", "production", kMin, kMax, 100},
  };
  auto answers = [&](CoordinatorStore& s) {
    std::vector<std::vector<std::uint64_t>> out;
    for (const auto& q : queries) out.push_back(seqs(s.audit(q).value()));
    for (const char* env : {"", "staging", "production"}) {
      for (std::int64_t at : {999, 1000, 2500, 3500, 9000}) {
        auto r = s.running_at("web", env, at).value();
        out.push_back({r ? r->seq : 0});
      }
    }
    return out;
  };
  std::vector<std::vector<std::uint64_t>> expected;
  {
    auto s = backend_.open().value();
    append_each(*s, {record(1000, "service.release", "web", "", "sha256:a"),
                     record(2000, "deploy.created", "db", "", "sha256:d"),
                     record(2500, "service.release", "web", "", "sha256:b"),
                     record(3000, "service.release", "web", "staging", "sha256:c"),
                     record(3500, "batch.started", "web", "production", "sha256:e"),
                     record(4000, "token.created", "", "")});
    expected = answers(*s);
    ASSERT_EQ(expected[0], (std::vector<std::uint64_t>{1, 3, 4, 5}));

    // Back to what a coordinator before the index left: no by-time entries,
    // releases keyed "<service>/" + (~at, ~seq), no marks.
    kv::Store& kv = s->kv();
    // Tables are opened before the write transaction (opening one writes).
    const kv::Table meta = kv.table("meta").value();
    const kv::Table by_time = kv.table("audit_by_time").value();
    const kv::Table releases = kv.table("audit_releases").value();
    auto txn = kv.begin_write().value();
    for (const kv::Table t : {by_time, releases}) {
      std::vector<std::string> keys;
      {
        auto cursor = txn->cursor(t).value();
        for (bool more = cursor->first().value(); more; more = cursor->next().value()) {
          keys.emplace_back(cursor->key());
        }
      }
      for (const auto& k : keys) ASSERT_TRUE(txn->erase(t, k).value());
    }
    ASSERT_TRUE(txn->erase(meta, kAuditByTimeMark).value());
    ASSERT_TRUE(txn->erase(meta, kAuditReleasesMark).value());
    auto be = [](std::string k, std::uint64_t v) {
      for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
      return k;
    };
    ASSERT_TRUE(
        txn->put(releases, be(be("web/", ~std::uint64_t{2500}), ~std::uint64_t{3}), be("", 3))
            .ok());
    ASSERT_TRUE(txn->commit().ok());
    // Queries read the index alone: with it gone they find nothing.
    EXPECT_TRUE(s->audit(queries[0]).value().empty());
    EXPECT_FALSE(s->running_at("web", "staging", 9000).value());
  }
  {
    auto s = backend_.open().value();
    EXPECT_EQ(answers(*s), expected);
    EXPECT_TRUE(s->verify_audit().value().ok);
    kv::Store& kv = s->kv();
    const kv::Table meta = kv.table("meta").value();
    const kv::Table by_time = kv.table("audit_by_time").value();
    const kv::Table releases = kv.table("audit_releases").value();
    auto txn = kv.begin_write().value();
    EXPECT_EQ(txn->get(meta, kAuditByTimeMark).value().value_or("-"), kAuditByTimeLayout);
    EXPECT_EQ(txn->get(meta, kAuditReleasesMark).value().value_or("-"), kAuditReleasesLayout);
    auto count = [&](kv::Table t) {
      std::size_t n = 0;
      auto cursor = txn->cursor(t).value();
      for (bool more = cursor->first().value(); more; more = cursor->next().value()) ++n;
      return n;
    };
    EXPECT_EQ(count(releases), 3u);  // the first layout's entry is gone
    // 6 records under "a/", 5 with a service, 2 with an env (by env and by both).
    EXPECT_EQ(count(by_time), 6u + 5u + 2u + 2u);
    // Take one entry out, leaving the mark: the next open does not index again.
    std::string first;
    {
      auto cursor = txn->cursor(by_time).value();
      ASSERT_TRUE(cursor->first().value());
      first = std::string(cursor->key());
    }
    ASSERT_TRUE(txn->erase(by_time, first).value());
    ASSERT_TRUE(txn->commit().ok());
  }
  auto s = backend_.open().value();
  EXPECT_NE(answers(*s), expected);
  EXPECT_EQ(s->audit({"", "", kMin, kMax, 100}).value().size(), 5u);
}

INSTANTIATE_TEST_SUITE_P(Backends, AuditIndexStore,
                         ::testing::Values(Backend::lmdb, Backend::memory), backend_name);

}  // namespace
}  // namespace drover::coordinator::audit_index_test
