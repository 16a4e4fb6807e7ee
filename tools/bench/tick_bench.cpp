// drover-bench-tick: what the coordinator's long history costs its driver and
// its listings (docs/BENCHMARKS.md, "Tick cost with a long history"). Fills a
// coordinator state with N finished deploys (each with the audit records a
// real one leaves) and a few active ones, then measures, in process:
//   - the driver's tick (Orchestrator::tick, what runs every 200 ms), with a
//     fixed fleet view so that only the store's part is measured;
//   - recover (what a restart runs once);
//   - GET /deploys?limit=50 and GET /pipelines/:id/runs?limit=20 through the
//     API's handler (no sockets).
// Prints one JSON line per figure (medians of --iterations runs).
//
//   drover-bench-tick [--deploys 10000] [--active 5] [--services 10] [--iterations 50]
//                     [--dir DIR]   (reuse or keep a filled state)
//
// The store's writing calls are the one part that differs between the
// coordinator's versions; the program builds against the code before and
// after the active-deploy index (see fill_one below).
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cxxopts.hpp>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "coordinator/api/http_api.hpp"
#include "coordinator/orchestrator/batches.hpp"
#include "coordinator/orchestrator/orchestrator.hpp"
#include "coordinator/service/coordinator.hpp"
#include "core/format/manifest.hpp"
#include "core/hash/sha256.hpp"
#include "core/sign/envelope.hpp"

#if __has_include("coordinator/store/lmdb_coordinator_store.hpp")
#include "coordinator/store/lmdb_coordinator_store.hpp"
#endif
#if __has_include("coordinator/store/deploy_record.hpp")
#define DROVER_TICK_BENCH_INDEXED 1
#else
#include "coordinator/orchestrator/deploy_codec.hpp"
#endif

namespace drover::bench {
namespace {

using namespace drover::coordinator;
using nlohmann::json;
using Steady = std::chrono::steady_clock;

constexpr std::int64_t kStart = 1'700'000'000'000;  // ms: the first deploy's creation
constexpr int kHostsPerDeploy = 20, kBatches = 4;

double ms_since(Steady::time_point t0) {
  return std::chrono::duration<double, std::milli>(Steady::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// A small valid manifest: artifact n of a service.
std::string manifest_of(const std::string& service, int n) {
  format::Manifest m;
  m.service = service;
  m.git_sha = "0123abcd";
  m.packing = "drover.pack.v1";
  const std::string raw = "contents " + std::to_string(n);
  format::Layer l;
  l.id = ContentId::of(raw);
  l.size = l.raw_size = raw.size();
  l.bt_root = ContentId::of(std::to_string(n)).digest();
  m.layers.push_back(l);
  format::Entry e;
  e.path = "file";
  e.type = format::EntryType::file;
  e.mode = 0644;
  e.size = raw.size();
  e.hash = ContentId::of(raw);
  e.extents = {{0, 0, raw.size()}};
  m.entries.push_back(e);
  return format::encode_manifest(m).value();
}

std::string service_of(int n, int services) {
  return "svc-" + std::to_string(n % services);
}

std::string artifact_of(int n, int services) {
  return ContentId::of(manifest_of(service_of(n, services), n)).str();
}

// Registers artifact n of a service (the active deploys' plans list its layers).
Result<std::string> register_artifact(CoordinatorStore& store, const std::string& service, int n) {
  const std::string manifest = manifest_of(service, n);
  const std::string id = ContentId::of(manifest).str();
#if __has_include("coordinator/store/artifact_record.hpp")
  ArtifactRecord record;
  record.artifact_id = id;
  record.service = service;
  record.git_sha = "0123abcd";
  record.registered_ms = kStart;
  DROVER_ASSIGN(bool fresh, store.put_artifact(record, manifest));
#else
  const std::string record = json{
      {"artifact_id", id},
      {"service", service},
      {"git_sha", "0123abcd"},
      {"registered_ms", kStart}}.dump();
  DROVER_ASSIGN(bool fresh, store.put_artifact(id, record, manifest));
#endif
  (void)fresh;
  return id;
}

Status put_pipeline(CoordinatorStore& store, const std::string& service) {
  return store.put_pipeline(service,
                            json{{"id", service}, {"service", service}, {"version", 1}}.dump());
}

AuditRecord audit_of(const DeployRecord& d, std::int64_t at, const std::string& what,
                     const std::string& detail = "{}") {
  AuditRecord r;
  r.at_ms = at;
  r.who = what == "deploy.created" ? "bench" : "system";
  r.what = what;
  r.service = d.service;
  r.deploy_id = d.id;
  r.artifact = d.artifact;
  r.detail = detail;
  return r;
}

Result<std::unique_ptr<CoordinatorStore>> open_store(const fs::path& dir) {
#if __has_include("coordinator/store/lmdb_coordinator_store.hpp")
  DROVER_ASSIGN(auto s, LmdbCoordinatorStore::open(dir));
  return std::unique_ptr<CoordinatorStore>(std::move(s));
#else
  return CoordinatorStore::open(dir);
#endif
}

// One deploy as the driver leaves it: finished (succeeded) or, for the active
// ones, deploying its first batch with deadlines far ahead (a tick leaves it
// as it is). Its record and audit records commit in one transaction.
Status fill_one(CoordinatorStore& store, int n, int services, bool active) {
  DeployRecord d;
  d.service = service_of(n, services);
  d.pipeline_id = d.service;
  d.id = d.service + "-" + std::to_string(n / services + 1);
  d.artifact = artifact_of(n, services);
  d.created_ms = kStart + std::int64_t{n} * 60'000;
  d.environments.push_back(EnvRun{});
  EnvRun& e = d.environments[0];
  e.name = "production";
  e.prior_artifact = n >= services ? artifact_of(n - services, services) : "";
  e.entered_ms = d.created_ms;
  e.waves.push_back(WaveRun{});
  e.waves[0].name = "all";
  e.waves[0].regions.push_back(RegionRun{});
  RegionRun& r = e.waves[0].regions[0];
  std::vector<std::string> hosts;
  for (int h = 0; h < kHostsPerDeploy; ++h)
    hosts.push_back(d.service + "-host-" + std::to_string(h));
  RolloutShape shape;
  shape.batch_size = kHostsPerDeploy / kBatches;
  r.batches = pending_batches(plan_batches(hosts, shape, d.id));
  std::vector<AuditRecord> audits = {audit_of(d, d.created_ms, "deploy.created")};
  std::int64_t t = d.created_ms;
  const std::string snapshot = json{
      {"pipeline", {{"id", d.pipeline_id}, {"service", d.service}}},
      {"env", "production"},
      {"artifact_id", d.artifact},
      {"git_sha", "0123abcd"},
      {"started_by", "bench"}}.dump();
  if (active) {
    DROVER_ASSIGN(std::string id, register_artifact(store, d.service, n));
    (void)id;
    d.state = DeployState::deploying;
    e.status = "deploying";
    e.waves[0].status = "running";
    r.status = "deploying";
    r.batches[0].status = "deploying";
    r.batches[0].started_ms = t;
    r.deadline_ms = std::numeric_limits<std::int64_t>::max() / 2;
    audits.push_back(audit_of(d, t, "batch.started", R"({"batch":0,"hosts":5})"));
  } else {
    for (std::size_t b = 0; b < r.batches.size(); ++b) {
      r.batches[b].status = "passed";
      r.batches[b].started_ms = t += 1000;
      r.batches[b].converged_ms = t += 5000;
      r.batches[b].finished_ms = t += 30'000;
      r.batches[b].verdict = "passed with 60 samples";
      audits.push_back(audit_of(d, r.batches[b].started_ms, "batch.started",
                                R"({"batch":)" + std::to_string(b) + R"(,"hosts":5})"));
      audits.push_back(
          audit_of(d, t, "batch.passed", R"({"batch":)" + std::to_string(b) + R"(,"samples":60})"));
    }
    d.state = DeployState::succeeded;
    e.status = "passed";
    e.waves[0].status = "passed";
    r.status = "passed";
    r.batch = r.batches.size() - 1;
    d.completed_ms = t;
    audits.push_back(audit_of(d, t, "service.release"));
    audits.push_back(audit_of(d, t, "deploy.succeeded"));
  }
#ifdef DROVER_TICK_BENCH_INDEXED
  const AuditRecord created = audits.front();
  audits.erase(audits.begin());
  DROVER_TRY(
      store.create_deploy({d, created, snapshot, static_cast<std::uint64_t>(n / services + 1)}));
  return store.commit_deploy(d, audits);
#else
  return store.commit_deploy(d.id, encode_deploy(d), audits, snapshot);
#endif
}

int run(const cxxopts::ParseResult& r) {
  const int deploys = r["deploys"].as<int>(), active = r["active"].as<int>();
  const int services = r["services"].as<int>(), iterations = r["iterations"].as<int>();
  if (active > services) {
    std::cerr << "--active may not exceed --services (one active deploy per service)\n";
    return 2;
  }
  fs::path dir;
  bool temporary = false;
  if (r.count("dir")) {
    dir = r["dir"].as<std::string>();
    fs::create_directories(dir);
  } else {
    std::string pattern = (fs::temp_directory_path() / "drover-bench-tick-XXXXXX").string();
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
  const bool filled = fs::exists(dir / "filled");
  if (!filled) {
    auto store = open_store(state);
    if (!store.ok()) return std::cerr << store.error().message << "\n", 1;
    const auto t0 = Steady::now();
    for (int n = 0; n < deploys + active; ++n) {
      // The last `active` deploys stay active (one per service).
      if (auto st = fill_one(**store, n, services, n >= deploys); !st.ok()) {
        std::cerr << "fill: " << st.error().message << "\n";
        return 1;
      }
    }
    std::cout << json{{"figure", "fill"},
                      {"deploys", deploys},
                      {"active", active},
                      {"seconds", ms_since(t0) / 1000}}
                     .dump()
              << std::endl;
    std::ofstream(dir / "filled") << deploys << " " << active << "\n";
  }

  // The driver alone: tick and recover.
  {
    auto store = open_store(state);
    if (!store.ok()) return std::cerr << store.error().message << "\n", 1;
    ManualClock clock{SystemTime(std::chrono::milliseconds(kStart + 3'600'000LL * 24 * 365))};
    int plans = 0;
    Orchestrator o(
        **store,
        [](const DeployRecord&, const RunPlan&) {
          FleetView v;
          v.artifact_ready = true;
          return v;
        },
        [&plans](const DeployRecord&, const std::string&, const std::vector<std::string>&,
                 const PlanRoute&) {
          ++plans;
          return Status(Ok{});
        },
        [](const DeployRecord&) {
          RunPlan plan;
          EnvPlan env;
          env.name = "production";
          Wave all;
          all.name = "all";
          all.regions.push_back({"", ""});
          env.waves.push_back(all);
          plan.envs.push_back(env);
          return plan;
        },
        clock, Logger::discard());
    std::vector<double> ticks;
    for (int i = 0; i < iterations; ++i) {
      const auto t0 = Steady::now();
      auto changed = o.tick();
      ticks.push_back(ms_since(t0));
      if (!changed.ok() || *changed != 0) {
        std::cerr << "tick: " << (changed.ok() ? "a deploy changed" : changed.error().message)
                  << "\n";
        return 1;
      }
    }
    std::vector<double> recovers;
    for (int i = 0; i < std::max(1, iterations / 10); ++i) {
      const auto t0 = Steady::now();
      if (auto st = o.recover(); !st.ok()) return std::cerr << st.error().message << "\n", 1;
      recovers.push_back(ms_since(t0));
    }
    std::cout << json{{"figure", "tick"},
                      {"deploys", deploys},
                      {"active", active},
                      {"median_ms", median(ticks)}}
                     .dump()
              << "\n"
              << json{{"figure", "recover"},
                      {"deploys", deploys},
                      {"active", active},
                      {"median_ms", median(recovers)},
                      {"plans", plans}}
                     .dump()
              << std::endl;
  }

  // The listings, through the API's handler.
  {
    {
      auto store = open_store(state);
      if (!store.ok()) return std::cerr << store.error().message << "\n", 1;
      for (int i = 0; i < services; ++i) {
        const std::string s = service_of(i, services);
        auto st = put_pipeline(**store, s);
        if (!st.ok()) return std::cerr << st.error().message << "\n", 1;
      }
    }
    SeededRandom keys(1);
    SystemClock clock;
    SystemRandom random;
    const auto root = sign::KeyPair::generate(keys), online = sign::KeyPair::generate(keys);
    const auto now = unix_seconds(clock.now());
    CoordinatorOptions o;
    o.data_dir = state;
    o.online = OnlineKey{
        online, sign::certify(root, {"online", online.public_key(), 1, now - 60, now + 86400})};
    o.tracker_url = "http://127.0.0.1:9";  // written into plans; never asked (no deploy is pending)
    o.tick = std::chrono::hours(1);        // the driver stays out of the measurement
    auto c = Coordinator::start(o, clock, random, Logger::discard());
    if (!c.ok()) return std::cerr << c.error().message << "\n", 1;
    auto api = HttpApi::start(**c, {}, Logger::discard());
    if (!api.ok()) return std::cerr << api.error().message << "\n", 1;
    auto token = (*c)->tokens().create("bench-" + std::to_string(now), Role::deployer, now, random);
    if (!token.ok()) return std::cerr << token.error().message << "\n", 1;
    auto request = [&](const std::string& method, const std::string& path,
                       std::vector<std::pair<std::string, std::string>> q,
                       const std::string& body) {
      http::Request req;
      req.method = method;
      req.path = path;
      req.target = path;
      req.query = std::move(q);
      req.headers["authorization"] = "Bearer " + *token;
      req.body = body;
      return req;
    };
    auto measure = [&](const std::string& path, std::vector<std::pair<std::string, std::string>> q,
                       const char* key, std::size_t expect) -> int {
      const http::Request req = request("GET", path, std::move(q), "");
      std::vector<double> times;
      for (int i = 0; i < iterations; ++i) {
        const auto t0 = Steady::now();
        http::Response res = (*api)->handle(req);
        times.push_back(ms_since(t0));
        const json body = json::parse(res.body, nullptr, false);
        if (res.status != 200 || !body.contains(key) || body[key].size() != expect) {
          std::cerr << path << ": " << res.status << " " << res.body.substr(0, 200) << "\n";
          return 1;
        }
      }
      std::cout << json{{"figure", "GET " + path},
                        {"deploys", deploys},
                        {"median_ms", median(times)}}
                       .dump()
                << std::endl;
      return 0;
    };
    if (measure("/deploys", {{"limit", "50"}}, "deploys", 50) != 0) return 1;
    if (measure("/pipelines/svc-0/runs", {{"limit", "20"}}, "runs", 20) != 0) return 1;

    // Starting a deploy: each of a new service (one enrolled host). No
    // driver runs here, so each stays pending (a rollback of a run that
    // changed nothing is refused since promotion); the figures above were
    // taken before these.
    std::vector<double> starts;
    for (int i = 0; i < iterations; ++i) {
      const std::string service = "bench-" + std::to_string(now) + "-" + std::to_string(i);
      HostRecord h;
      h.host = service + "-host";
      h.region = "r1";
      h.services = {service};
      h.key = sign::KeyPair::generate(keys).public_key();
      h.report_key = std::string(32, 'k');
      if (auto st = (*c)->store().enroll(h); !st.ok())
        return std::cerr << st.error().message << "\n", 1;
      if (auto st = put_pipeline((*c)->store(), service); !st.ok()) {
        return std::cerr << st.error().message << "\n", 1;
      }
      auto artifact = register_artifact((*c)->store(), service, i);
      if (!artifact.ok()) return std::cerr << artifact.error().message << "\n", 1;
      const http::Request start =
          request("POST", "/deploys", {},
                  json{{"pipeline_id", service}, {"artifact_id", *artifact}}.dump());
      const auto t0 = Steady::now();
      http::Response res = (*api)->handle(start);
      starts.push_back(ms_since(t0));
      if (res.status != 201) return std::cerr << "POST /deploys: " << res.body << "\n", 1;
    }
    std::cout << json{{"figure", "POST /deploys"},
                      {"deploys", deploys},
                      {"median_ms", median(starts)}}
                     .dump()
              << std::endl;
  }
  return 0;
}

}  // namespace
}  // namespace drover::bench

int main(int argc, char** argv) {
  cxxopts::Options o("drover-bench-tick",
                     "the coordinator's tick and listings with a long history");
  o.add_options()("deploys", "finished deploys", cxxopts::value<int>()->default_value("10000"))(
      "active", "active deploys", cxxopts::value<int>()->default_value("5"))(
      "services", "services", cxxopts::value<int>()->default_value("10"))(
      "iterations", "runs per figure", cxxopts::value<int>()->default_value("50"))(
      "dir", "state directory to fill or reuse", cxxopts::value<std::string>())("h,help", "help");
  try {
    auto r = o.parse(argc, argv);
    if (r.count("help")) {
      std::cout << o.help() << "\n";
      return 0;
    }
    return drover::bench::run(r);
  } catch (const std::exception& e) {
    std::cerr << "drover-bench-tick: " << e.what() << "\n";
    return 2;
  }
}
