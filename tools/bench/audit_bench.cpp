// drover-bench-audit: audit queries over a long log (docs/BENCHMARKS.md,
// "Audit queries over a long log"). Fills a coordinator state (LMDB) with
// --records audit records over --deploys deploys (each deploy of one of
// --services services into one of --envs environments, in turn), then
// measures in process, each figure the median of --iterations calls:
//   - a query by service and env over a one-hour window (CoordinatorStore::audit,
//     from the by-time index);
//   - what ran at T in each env (CoordinatorStore::running_at);
//   - the same query by reading every record, as audit_query did before the
//     index: the baseline (its answer must be the index's);
//   - opening the state when its audit indexes must be built (a log written
//     before them), and when they are current.
// Prints one JSON line per figure.
//
//   drover-bench-audit [--records 100000] [--deploys 10000] [--services 50] [--envs 2]
//                      [--iterations 50] [--scan-iterations 5] [--dir DIR]
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cxxopts.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "coordinator/audit/audit_log.hpp"
#include "coordinator/store/lmdb_coordinator_store.hpp"

namespace drover::bench {
namespace {

namespace fs = std::filesystem;
using namespace drover::coordinator;
using nlohmann::json;
using Steady = std::chrono::steady_clock;

constexpr std::int64_t kStart = 1'700'000'000'000;  // ms: the first deploy's creation
constexpr std::int64_t kDeployGapMs = 60'000;       // a deploy starts every minute
constexpr std::int64_t kStepMs = 30'000;            // between a deploy's records
constexpr std::int64_t kHourMs = 3'600'000;

double ms_since(Steady::time_point t0) {
  return std::chrono::duration<double, std::milli>(Steady::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct Shape {
  int records = 0, deploys = 0, services = 0, envs = 0;
  std::string service(int deploy) const { return "svc-" + std::to_string(deploy % services); }
  std::string env(int deploy) const {
    const int e = (deploy / services) % envs;
    return e == 0 ? "staging" : e == 1 ? "production" : "env-" + std::to_string(e);
  }
  std::int64_t created_ms(int deploy) const { return kStart + deploy * kDeployGapMs; }
};

// The records of deploy n: created, the batches' steps, succeeded, and the
// release it leaves.
std::vector<AuditRecord> records_of(const Shape& shape, int n) {
  const int per = shape.records / shape.deploys;
  std::vector<AuditRecord> out;
  for (int j = 0; j < per; ++j) {
    AuditRecord r;
    r.at_ms = shape.created_ms(n) + j * kStepMs;
    r.who = j == 0 ? "alice" : "system";
    r.what = j == 0         ? "deploy.created"
             : j == per - 1 ? "service.release"
             : j == per - 2 ? "deploy.succeeded"
             : j % 2 == 1   ? "batch.started"
                            : "batch.passed";
    r.service = shape.service(n);
    r.env = shape.env(n);
    r.deploy_id = r.service + "-" + std::to_string(n);
    r.artifact = "sha256:" + std::string(60, '0') + std::to_string(1000 + n % 9000);
    r.git_sha = "0123abcd";
    r.detail = "{\"batch\":" + std::to_string(j / 2) + ",\"hosts\":20}";
    out.push_back(std::move(r));
  }
  return out;
}

Status fill(KvCoordinatorStore& store, const Shape& shape) {
  kv::Store& kv = store.kv();
  const AuditTables& t = store.audit_tables();
  constexpr int kDeploysPerTxn = 1000;
  for (int first = 0; first < shape.deploys; first += kDeploysPerTxn) {
    DROVER_ASSIGN(auto txn, kv.begin_write());
    for (int n = first; n < std::min(shape.deploys, first + kDeploysPerTxn); ++n) {
      for (auto& r : records_of(shape, n)) DROVER_TRY(audit_append(*txn, t, std::move(r)));
    }
    DROVER_TRY(txn->commit());
  }
  return Ok{};
}

// What audit_query did before the index: every record read and decoded
// until limit match (in seq order; these are the same here).
Result<std::vector<AuditRecord>> query_by_scan(KvCoordinatorStore& store, const AuditQuery& q) {
  DROVER_ASSIGN(auto txn, store.kv().begin_read());
  DROVER_ASSIGN(auto cursor, txn->cursor(store.audit_tables().records));
  std::vector<AuditRecord> out;
  DROVER_ASSIGN(bool more, cursor->first());
  while (more && out.size() < q.limit) {
    DROVER_ASSIGN(AuditRecord r, decode_audit_record(cursor->value()));
    if ((q.service.empty() || r.service == q.service) && (q.env.empty() || r.env == q.env) &&
        r.at_ms >= q.since_ms && r.at_ms < q.until_ms) {
      out.push_back(std::move(r));
    }
    DROVER_ASSIGN(more, cursor->next());
  }
  return out;
}

std::uint64_t bytes_under(const fs::path& dir) {
  std::uint64_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file()) n += e.file_size();
  }
  return n;
}

int fail(const std::string& what, const Error& e) {
  std::cerr << what << ": " << e.message << "\n";
  return 1;
}

int run(const cxxopts::ParseResult& r) {
  Shape shape{r["records"].as<int>(), r["deploys"].as<int>(), r["services"].as<int>(),
              r["envs"].as<int>()};
  const int iterations = r["iterations"].as<int>();
  const int scan_iterations = r["scan-iterations"].as<int>();
  if (shape.deploys < 1 || shape.services < 1 || shape.envs < 1 ||
      shape.records < 2 * shape.deploys) {
    std::cerr << "need deploys, services and envs >= 1 and records >= 2 x deploys\n";
    return 2;
  }
  fs::path dir;
  bool temporary = false;
  if (r.count("dir")) {
    dir = r["dir"].as<std::string>();
    fs::create_directories(dir);
  } else {
    std::string pattern = (fs::temp_directory_path() / "drover-bench-audit-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) return std::cerr << "mkdtemp failed\n", 1;
    dir = pattern;
    temporary = true;
  }
  struct Cleanup {
    fs::path dir;
    bool on;
    ~Cleanup() {
      std::error_code ec;
      if (on) fs::remove_all(dir, ec);
    }
  } cleanup{dir, temporary};
  const fs::path state = dir / "state";
  if (!fs::exists(dir / "filled")) {
    auto store = LmdbCoordinatorStore::open(state);
    if (!store.ok()) return fail("open", store.error());
    const auto t0 = Steady::now();
    if (auto st = fill(**store, shape); !st.ok()) return fail("fill", st.error());
    const double ms = ms_since(t0);
    auto check = (*store)->verify_audit();
    if (!check.ok() || !check->ok) return std::cerr << "the filled log does not verify\n", 1;
    std::cout << json{{"figure", "fill"},
                      {"records", check->records},
                      {"deploys", shape.deploys},
                      {"services", shape.services},
                      {"envs", shape.envs},
                      {"seconds", ms / 1000},
                      {"state_bytes", bytes_under(state)}}
                     .dump()
              << std::endl;
    std::ofstream(dir / "filled") << shape.records << "\n";
  }

  auto opened = LmdbCoordinatorStore::open(state);
  if (!opened.ok()) return fail("open", opened.error());
  KvCoordinatorStore& store = **opened;
  // A deploy of svc-7 into the second env in the middle of the history; the
  // window is the hour from 10 minutes before it started.
  int middle = shape.deploys / 2;
  while (middle > 0 && (middle % shape.services != 7 % shape.services ||
                        shape.env(middle) != shape.env(shape.services))) {
    --middle;
  }
  const std::string service = shape.service(middle), env = shape.env(middle);
  AuditQuery q{service, env, shape.created_ms(middle) - 600'000, 0, 1000};
  q.until_ms = q.since_ms + kHourMs;

  std::vector<double> indexed;
  std::size_t found = 0;
  for (int i = 0; i < iterations; ++i) {
    const auto t0 = Steady::now();
    auto got = store.audit(q);
    indexed.push_back(ms_since(t0));
    if (!got.ok()) return fail("query", got.error());
    found = got->size();
  }
  std::vector<double> scanned;
  for (int i = 0; i < scan_iterations; ++i) {
    const auto t0 = Steady::now();
    auto got = query_by_scan(store, q);
    scanned.push_back(ms_since(t0));
    if (!got.ok()) return fail("scan", got.error());
    auto by_index = store.audit(q);
    if (!by_index.ok()) return fail("query", by_index.error());
    bool same = got->size() == by_index->size();
    for (std::size_t k = 0; same && k < got->size(); ++k)
      same = (*got)[k].seq == (*by_index)[k].seq;
    if (!same) return std::cerr << "the index and the scan disagree\n", 1;
  }
  std::cout << json{{"figure", "query service+env, one hour"},
                    {"service", service},
                    {"env", env},
                    {"records_returned", found},
                    {"median_ms", median(indexed)}}
                   .dump()
            << "\n"
            << json{{"figure", "same query by full scan (baseline)"},
                    {"records_read", shape.records},
                    {"median_ms", median(scanned)},
                    {"ratio", median(indexed) > 0 ? median(scanned) / median(indexed) : 0}}
                   .dump()
            << std::endl;

  for (int e = 0; e < shape.envs; ++e) {
    const std::string each = shape.env(e * shape.services);
    std::vector<double> times;
    std::string artifact;
    for (int i = 0; i < iterations; ++i) {
      const auto t0 = Steady::now();
      auto ran = store.running_at(service, each, q.until_ms);
      times.push_back(ms_since(t0));
      if (!ran.ok()) return fail("running_at", ran.error());
      if (!*ran) return std::cerr << "nothing ran in " << each << "\n", 1;
      artifact = (**ran).deploy_id;
    }
    std::cout << json{{"figure", "running_at"},
                      {"service", service},
                      {"env", each},
                      {"deploy", artifact},
                      {"median_ms", median(times)}}
                     .dump()
              << std::endl;
  }

  // Opening a log written before the indexes: the marks gone, they are built.
  {
    auto txn = store.kv().begin_write();
    if (!txn.ok()) return fail("begin", txn.error());
    for (std::string_view mark : {kAuditByTimeMark, kAuditReleasesMark}) {
      auto erased = (*txn)->erase(store.audit_tables().meta, mark);
      if (!erased.ok()) return fail("erase", erased.error());
    }
    if (auto st = (*txn)->commit(); !st.ok()) return fail("commit", st.error());
  }
  (*opened).reset();
  auto t0 = Steady::now();
  auto reindexed = LmdbCoordinatorStore::open(state);
  const double reindex_ms = ms_since(t0);
  if (!reindexed.ok()) return fail("open", reindexed.error());
  (*reindexed).reset();
  t0 = Steady::now();
  auto again = LmdbCoordinatorStore::open(state);
  const double open_ms = ms_since(t0);
  if (!again.ok()) return fail("open", again.error());
  auto after = (*again)->audit(q);
  if (!after.ok() || after->size() != found) return std::cerr << "reindexed answers differ\n", 1;
  std::cout << json{{"figure", "open, indexes built"},
                    {"records", shape.records},
                    {"ms", reindex_ms}}
                   .dump()
            << "\n"
            << json{{"figure", "open, indexes current"}, {"ms", open_ms}}.dump() << std::endl;
  return 0;
}

}  // namespace
}  // namespace drover::bench

int main(int argc, char** argv) {
  cxxopts::Options o("drover-bench-audit", "audit queries over a long log");
  o.add_options()("records", "audit records", cxxopts::value<int>()->default_value("100000"))(
      "deploys", "deploys they belong to", cxxopts::value<int>()->default_value("10000"))(
      "services", "services", cxxopts::value<int>()->default_value("50"))(
      "envs", "environments", cxxopts::value<int>()->default_value("2"))(
      "iterations", "runs per indexed figure", cxxopts::value<int>()->default_value("50"))(
      "scan-iterations", "runs of the full scan", cxxopts::value<int>()->default_value("5"))(
      "dir", "state directory to fill or reuse", cxxopts::value<std::string>())("h,help", "help");
  try {
    auto r = o.parse(argc, argv);
    if (r.count("help")) {
      std::cout << o.help() << "\n";
      return 0;
    }
    return drover::bench::run(r);
  } catch (const std::exception& e) {
    std::cerr << "drover-bench-audit: " << e.what() << "\n";
    return 2;
  }
}
