#include "chaos/sim/sim.hpp"

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <queue>
#include <set>

#include "agent/step/outbox.hpp"
#include "agent/step/service_step.hpp"
#include "coordinator/orchestrator/fleet_view.hpp"
#include "coordinator/orchestrator/orchestrator.hpp"
#include "coordinator/plans/deploy_plans.hpp"
#include "coordinator/plans/plan_issuer.hpp"
#include "coordinator/plans/plan_signer.hpp"
#include "coordinator/releases/release_driver.hpp"
#include "coordinator/store/memory_coordinator_store.hpp"
#include "core/format/manifest.hpp"
#include "core/log/log.hpp"
#include "core/world/clock.hpp"
#include "core/world/random.hpp"

namespace drover::chaos {
namespace {

using coordinator::DeployRecord;
using coordinator::DeployState;
using nlohmann::json;

// Two services: api depends on web.
const std::vector<std::string> kServices = {"web", "api"};
constexpr std::int64_t kStepMs = 100;            // the simulation's time step
constexpr std::int64_t kTickMs = 1000;           // the coordinator's driver tick
constexpr std::int64_t kPollMs = 1000;           // an agent's pull interval
constexpr std::int64_t kHealthMs = 2000;         // an agent's report interval
constexpr std::int64_t kBakeMs = 10'000;         // every batch's bake
constexpr std::int64_t kDeadlineMs = 3'600'000;  // a run that has not converged by then fails
constexpr std::int64_t kReportWaitMs = 2000;     // an agent's wait for a report's answer
// Unsynced data reach the disk anyway once the kernel writes them back
// (dirty_expire_centisecs: 30 s, plus the flusher's 5 s period).
constexpr std::int64_t kWritebackMs = 35'000;
constexpr std::size_t kReportItems = 256;   // items per report, as the agent sends
constexpr std::size_t kOutboxItems = 4096;  // the agent's report buffer (its default)

// Environments, their regions, and the hosts of each region.
const std::vector<std::pair<std::string, std::vector<std::string>>> kEnvs = {
    {"staging", {"stg"}}, {"production", {"r1", "r2"}}};

std::string region_env(const std::string& region) {
  for (const auto& [env, regions] : kEnvs) {
    for (const auto& r : regions) {
      if (r == region) return env;
    }
  }
  return "";
}

// A release of the simulated service: its manifest, and where it degrades.
struct Release {
  std::string service, name;
  format::Manifest manifest;
  std::string bytes;
  ContentId id;
  std::set<std::string> bad_in;  // regions where its hosts report errors
};

Release make_release(const std::string& service, const std::string& name,
                     std::set<std::string> bad_in) {
  Release r;
  r.service = service;
  r.name = service + " " + name;
  r.manifest.service = service;
  r.manifest.git_sha = "0123abcd";
  r.manifest.packing = "drover.pack.v1";
  const std::string raw = "contents of " + service + " " + name;
  format::Layer l;
  l.id = ContentId::of(raw);
  l.size = l.raw_size = raw.size();
  l.bt_root = ContentId::of("root " + service + " " + name).digest();
  r.manifest.layers.push_back(l);
  format::Entry e;
  e.path = "release";
  e.type = format::EntryType::file;
  e.mode = 0644;
  e.size = raw.size();
  e.hash = ContentId::of(raw);
  e.extents = {{0, 0, raw.size()}};
  r.manifest.entries.push_back(e);
  r.bytes = format::encode_manifest(r.manifest).value();
  r.id = ContentId::of(r.bytes);
  r.bad_in = std::move(bad_in);
  return r;
}

// Messages in flight, delivered in time order (ties in send order).
struct Message {
  std::int64_t at = 0;
  std::uint64_t order = 0;
  std::function<void()> deliver;
  bool operator>(const Message& o) const { return at != o.at ? at > o.at : order > o.order; }
};

// One agent: what its process holds in memory, and what its disk keeps.
struct Host {
  std::string name, region, service;
  // Disk: what survives a crash. The record, the intent and the `current`
  // link are synced when written; a release is synced before its rename
  // unless the unpack was not durable (the planted bug).
  agent::ServiceRecord record;
  std::optional<agent::Intent> intent;
  std::set<std::string> unpacked;  // releases on disk
  std::string unpacking;           // the release being unpacked (not on disk yet)
  bool unpacking_durable = true;
  // Releases renamed into place unsynced: the kernel writes them back by
  // then. A power loss before it leaves their directories with empty files.
  std::map<std::string, std::int64_t> dirty;
  std::set<std::string> torn;  // emptied by a power loss
  std::string current;         // the `current` link
  // The service process (it keeps running while the agent restarts, and
  // dies with the host's power).
  std::string running;
  bool up = true;
  // The agent process.
  agent::ServiceState state;
  std::optional<std::pair<std::int64_t, agent::Event>> in_flight;  // completes at
  std::unique_ptr<agent::Outbox> outbox;                           // the agent's own, in memory
  std::uint64_t report_seq = 0;                                    // reserved durably: never reused
  std::int64_t next_pull = 0, next_health = 0, next_send = 0;
  std::int64_t down_until = 0;  // crashed: restarts then
};

class Sim {
 public:
  explicit Sim(const SimOptions& o)
      : o_(o),
        rnd_(o.seed),
        live_(o.seed ^ 0xd1b54a32d192ed03ULL),
        keys_(o.seed ^ 0x9e3779b97f4a7c15ULL),
        root_(sign::KeyPair::generate(keys_)),
        online_(sign::KeyPair::generate(keys_)),
        clock_(start_time()) {
    result_.seed = o.seed;
  }

  SimResult run();

 private:
  static SystemTime start_time() { return SystemTime(std::chrono::seconds(1'800'000'000)); }
  std::int64_t now() const { return elapsed_; }  // virtual ms since the start
  std::int64_t unix_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now().time_since_epoch())
        .count();
  }
  std::uint64_t pick(std::uint64_t bound) { return bound == 0 ? 0 : rnd_.uniform(bound); }
  bool chance(double p) { return static_cast<double>(pick(1'000'000)) < p * 1'000'000; }
  // Draws while the run goes (network, durations, a person's delay), from a
  // stream of their own: a change in behaviour never reshuffles the
  // schedule, so a failing seed still strikes the same faults after a fix.
  std::int64_t live(std::uint64_t bound) {
    return bound == 0 ? 0 : static_cast<std::int64_t>(live_.uniform(bound));
  }
  bool live_chance(double p) { return static_cast<double>(live(1'000'000)) < p * 1'000'000; }
  void note(const std::string& what) {
    result_.schedule.push_back("t=" + std::to_string(now()) + "ms " + what);
  }
  void violate(const std::string& invariant, const std::string& subject,
               const std::string& detail) {
    result_.violations.push_back({invariant, subject, now(), detail});
  }

  void draw_schedule();
  void setup();
  coordinator::RunPlan plan() const;
  void start_coordinator();
  void crash_coordinator();
  // Starts version i: one deploy per service, or one release of both.
  void start_version(std::size_t i);
  // The process died inside an operation (a planned crash mid-transaction).
  void died_inside() {
    if (coordinator_up_ && store_->crashed()) {
      crash_coordinator();
      coordinator_back_at_ = now() + coordinator_down_for_;
    }
  }
  void send(const std::string& region, std::function<void()> deliver);
  bool link_up(const std::string& region) const;

  // Agents.
  void boot(Host& h);
  void deliver(Host& h, const agent::Event& e);
  void execute(Host& h, const std::vector<agent::Action>& actions);
  agent::Observed observe(const Host& h) const;
  void agent_cycle(Host& h);
  void pull(Host& h);
  void sample_health(Host& h);
  void report(Host& h);
  void crash_agent(Host& h);
  void power_loss(Host& h);
  // The service process starts on release (from `current`).
  void start_service(Host& h, const std::string& release);

  // Invariants.
  void check_running(const Host& h, const std::string& release);
  void check_end();

  SimOptions o_;
  SeededRandom rnd_;   // the schedule
  SeededRandom live_;  // what happens while it runs
  SeededRandom keys_;  // keys apart, so the schedule does not depend on them
  sign::KeyPair root_, online_;
  ManualClock clock_;
  std::int64_t elapsed_ = 0;
  SimResult result_;

  sign::Envelope cert_;
  // versions_[i][service]: the releases of version i (0 runs at the start).
  std::vector<std::map<std::string, Release>> versions_;
  std::vector<int>
      how_;  // by version: 0 one deploy per service, 1 a release (failed_only), 2 (all)
  std::map<std::string, const Release*> by_id_;
  std::vector<Host> hosts_;

  // The coordinator process.
  std::shared_ptr<coordinator::kv::MemoryDisk> disk_;
  std::unique_ptr<coordinator::MemoryCoordinatorStore> store_;
  std::unique_ptr<coordinator::OnlineKeySigner> signer_;
  std::unique_ptr<coordinator::PlanIssuer> issuer_;
  std::unique_ptr<coordinator::Orchestrator> orchestrator_;
  std::unique_ptr<coordinator::ReleaseDriver> releases_driver_;
  std::map<std::string, std::vector<coordinator::HostPlace>> places_;  // by service
  bool coordinator_up_ = false;
  std::int64_t coordinator_down_for_ = 0;
  std::int64_t coordinator_back_at_ = 0;
  std::int64_t next_tick_ = 0;
  std::int64_t next_prune_ = 0;

  // The network.
  std::priority_queue<Message, std::vector<Message>, std::greater<>> wire_;
  std::uint64_t sent_ = 0;
  double drop_ = 0;
  std::int64_t max_delay_ = 0;
  struct Partition {
    std::string region;
    std::int64_t from = 0, to = 0;
  };
  std::vector<Partition> partitions_;

  // The schedule's deploys, each started at its time (a later one may start
  // while an earlier one runs: it queues, or supersedes one queued).
  std::size_t next_release_ = 1;         // versions_[0] runs everywhere at the start
  std::vector<std::int64_t> deploy_at_;  // by release index
  // Production's gate: a person approves a run waiting there a while later.
  std::map<std::string, std::int64_t> approve_at_;
  std::map<std::string, std::size_t> deploy_release_;     // deploy id -> version index
  std::map<std::size_t, std::set<std::string>> started_;  // version -> services started
  // Faults at their times.
  std::multimap<std::int64_t, std::function<void()>> faults_;
  // What valid plans named: (host, artifact).
  std::set<std::pair<std::string, std::string>> planned_;
};

void Sim::draw_schedule() {
  // The versions after the first: each service's release healthy, or
  // degrading in one region; deployed one deploy per service, or as one
  // release of both (either policy).
  const int count = 2 + static_cast<int>(pick(3));
  std::vector<std::string> regions;
  for (const auto& [env, rs] : kEnvs) regions.insert(regions.end(), rs.begin(), rs.end());
  versions_.emplace_back();
  how_.push_back(0);
  for (const auto& svc : kServices) versions_[0].emplace(svc, make_release(svc, "v0", {}));
  for (int i = 1; i <= count; ++i) {
    versions_.emplace_back();
    how_.push_back(static_cast<int>(pick(3)));
    std::string text = "version v" + std::to_string(i) +
                       (how_.back() == 0   ? " as one deploy per service:"
                        : how_.back() == 1 ? " as a release (failed_only):"
                                           : " as a release (all):");
    for (const auto& svc : kServices) {
      std::set<std::string> bad;
      if (chance(0.2)) bad.insert(regions[pick(regions.size())]);
      text += " " + svc + (bad.empty() ? " healthy" : " bad in " + *bad.begin());
      versions_.back().emplace(svc, make_release(svc, "v" + std::to_string(i), bad));
    }
    note(text);
  }
  deploy_at_.assign(versions_.size(), 0);
  std::int64_t start = 5'000;
  for (std::size_t i = 1; i < versions_.size(); ++i) {
    deploy_at_[i] = start;
    note("deploy of v" + std::to_string(i) + " at t=" + std::to_string(start));
    start += 10'000 + static_cast<std::int64_t>(pick(110'000));
  }
  for (const auto& v : versions_) {
    for (const auto& [svc, r] : v) by_id_[r.id.str()] = &r;
  }

  drop_ = static_cast<double>(pick(16)) / 100.0;  // 0-15% of messages lost
  max_delay_ = 20 + static_cast<std::int64_t>(pick(480));
  note("network: " + std::to_string(static_cast<int>(drop_ * 100)) + "% dropped, delays up to " +
       std::to_string(max_delay_) + " ms");
  const std::int64_t span = 300'000;  // faults strike in the first five minutes
  for (int i = static_cast<int>(pick(3)); i > 0; --i) {
    Partition p;
    p.region = regions[pick(regions.size())];
    p.from = 5'000 + static_cast<std::int64_t>(pick(span));
    p.to = p.from + 5'000 + static_cast<std::int64_t>(pick(55'000));
    partitions_.push_back(p);
    ++result_.partitions;
    note("partition of " + p.region + " from t=" + std::to_string(p.from) +
         " to t=" + std::to_string(p.to));
  }
  for (int i = static_cast<int>(pick(3)); i > 0; --i) {
    const std::int64_t at = 5'000 + static_cast<std::int64_t>(pick(span));
    const std::int64_t down = 1'000 + static_cast<std::int64_t>(pick(20'000));
    note("coordinator crash at t=" + std::to_string(at) + ", down " + std::to_string(down) + " ms");
    // Half the crashes strike inside an operation: a few more transactions
    // commit, and the next one is lost with the process.
    const std::uint64_t after = chance(0.5) ? 1 + pick(4) : 0;
    faults_.emplace(at, [this, down, after] {
      if (!coordinator_up_) return;
      coordinator_down_for_ = down;
      if (after > 0) {
        store_->crash_after_commits(after);
      } else {
        crash_coordinator();
        coordinator_back_at_ = now() + down;
      }
    });
  }
  for (int i = static_cast<int>(pick(4)); i > 0; --i) {
    const std::int64_t at = 5'000 + static_cast<std::int64_t>(pick(span));
    const std::size_t which = pick(hosts_.size());
    const std::int64_t down = 500 + static_cast<std::int64_t>(pick(10'000));
    // kill -9 of the agent (its service and the page cache live on), or the
    // host's power lost (both processes die, unsynced writes are lost).
    const bool power = chance(0.5);
    note((power ? "power loss of " : "agent crash of ") + hosts_[which].name +
         " at t=" + std::to_string(at) + ", down " + std::to_string(down) + " ms");
    faults_.emplace(at, [this, which, down, power] {
      Host& h = hosts_[which];
      if (!h.up) return;
      if (power) {
        power_loss(h);
      } else {
        crash_agent(h);
      }
      h.down_until = now() + down;
    });
  }
}

coordinator::RunPlan Sim::plan() const {
  coordinator::RunPlan p;
  for (const auto& [name, regions] : kEnvs) {
    coordinator::EnvPlan e;
    e.name = name;
    if (name == "production") {
      // A canary region, then the rest.
      coordinator::Wave canary, rest;
      canary.name = "canary";
      canary.regions.push_back({regions[0], ""});
      rest.name = "rest";
      for (std::size_t i = 1; i < regions.size(); ++i) rest.regions.push_back({regions[i], ""});
      e.waves = {canary, rest};
    } else {
      coordinator::Wave all;
      all.name = "all";
      for (const auto& r : regions) all.regions.push_back({r, ""});
      e.waves = {all};
    }
    e.shape.batch_size = 1;
    e.params.bake_ms = kBakeMs;
    if (o_.plant_early_batch) e.params.planted_early_batch_ms = kBakeMs / 2;
    e.params.converge_timeout_ms = 180'000;
    e.params.rollback_timeout_ms = 180'000;
    e.params.health.min_samples = 3;
    e.params.baseline_window_ms = 60'000;
    e.watch_ms = 5'000;
    if (name == "production") e.gate = coordinator::Gate{1, 3'600'000};
    p.envs.push_back(e);
    for (const auto& r : regions) p.named.push_back({r, ""});
  }
  return p;
}

void Sim::setup() {
  const std::int64_t s = unix_ms() / 1000;
  cert_ = sign::certify(root_, {"online", online_.public_key(), 1, s - 60, s + 30 * 86'400});
  for (const auto& [env, regions] : kEnvs) {
    for (const auto& r : regions) {
      for (const auto& svc : kServices) {
        for (int i = 0; i < o_.hosts_per_region; ++i) {
          Host h;
          h.name = svc + "-" + r + "-" + std::to_string(i);
          h.region = r;
          h.service = svc;
          hosts_.push_back(std::move(h));
        }
      }
    }
  }
  draw_schedule();
  // Every host runs v0 at the start, released everywhere an hour ago.
  auto fresh = coordinator::MemoryCoordinatorStore::create();
  disk_ = fresh->disk();
  for (auto& h : hosts_) {
    const std::string v0 = versions_[0].at(h.service).id.str();
    coordinator::HostRecord rec;
    rec.host = h.name;
    rec.region = h.region;
    rec.services = {h.service};
    rec.key = sign::KeyPair::generate(keys_).public_key();
    rec.report_key = std::string(32, 'k');
    (void)fresh->enroll(rec);
    h.record.current = v0;
    h.unpacked.insert(v0);
    h.current = v0;
    h.running = v0;
    h.outbox = std::make_unique<agent::Outbox>(kOutboxItems);
  }
  for (const auto& [id, r] : by_id_) {
    coordinator::ArtifactRecord a;
    a.artifact_id = id;
    a.service = r->service;
    a.git_sha = "0123abcd";
    (void)fresh->put_artifact(a, r->bytes);
  }
  for (const auto& svc : kServices) {
    for (const auto& [env, regions] : kEnvs) {
      coordinator::AuditRecord rec;
      rec.at_ms = unix_ms() - 3'600'000;
      rec.who = "system";
      rec.what = "service.release";
      rec.service = svc;
      rec.env = env;
      rec.artifact = versions_[0].at(svc).id.str();
      (void)fresh->append_audit(rec);
    }
  }
  fresh.reset();
  start_coordinator();
  for (auto& h : hosts_) {
    boot(h);
    h.next_pull = live(kPollMs);
    h.next_health = live(kHealthMs);
  }
}

void Sim::start_coordinator() {
  store_ = coordinator::MemoryCoordinatorStore::open(disk_);
  places_.clear();
  signer_ = std::make_unique<coordinator::OnlineKeySigner>(coordinator::OnlineKey{online_, cert_});
  issuer_ = std::make_unique<coordinator::PlanIssuer>(*store_, *signer_,
                                                      [](const std::string&, std::uint64_t) {});
  orchestrator_ = std::make_unique<coordinator::Orchestrator>(
      *store_,
      [this](const DeployRecord& d, const coordinator::RunPlan& p) {
        // Where the hosts are changes only with enrollments (none here):
        // read once per coordinator process, as the daemon caches it.
        auto cached = places_.find(d.service);
        if (cached == places_.end()) {
          auto read = coordinator::service_hosts(*store_, d.service);
          if (!read.ok()) {
            coordinator::FleetView unread;
            unread.unreadable = read.error().message;
            return unread;
          }
          cached = places_.emplace(d.service, *read).first;
        }
        const auto* hosts = &cached->second;
        return coordinator::store_fleet_view(*store_, d, p, true, *hosts);
      },
      [this](const DeployRecord& d, const std::string& artifact,
             const std::vector<std::string>& hosts, const coordinator::PlanRoute& route) -> Status {
        coordinator::ManifestOf manifests = [this](const ContentId& id) -> Result<std::string> {
          auto it = by_id_.find(id.str());
          if (it == by_id_.end()) return make_error(Errc::not_found, "no manifest " + id.str());
          return it->second->bytes;
        };
        DROVER_TRY(coordinator::issue_plan(*issuer_, manifests, {"http://tracker.sim", 86'400}, d,
                                           artifact, hosts, route, unix_ms() / 1000));
        for (const auto& h : hosts) planned_.insert({h, artifact});
        return Ok{};
      },
      [this](const DeployRecord&) { return plan(); }, clock_, Logger::discard());
  releases_driver_ = std::make_unique<coordinator::ReleaseDriver>(*store_, *orchestrator_, clock_,
                                                                  Logger::discard());
  orchestrator_->on_releases(
      [this](std::vector<DeployRecord>& active) { return releases_driver_->tick(active); });
  coordinator_up_ = true;
  if (auto st = orchestrator_->recover(); !st.ok()) {
    violate("converged", "coordinator", "recover failed: " + st.error().message);
  }
}

void Sim::crash_coordinator() {
  ++result_.coordinator_crashes;
  store_->crash();
  releases_driver_.reset();
  orchestrator_.reset();
  issuer_.reset();
  signer_.reset();
  store_.reset();
  coordinator_up_ = false;
  note("coordinator crashed");
}

bool Sim::link_up(const std::string& region) const {
  for (const auto& p : partitions_) {
    if (p.region == region && now() >= p.from && now() < p.to) return false;
  }
  return true;
}

void Sim::send(const std::string& region, std::function<void()> deliver) {
  ++result_.messages;
  if (!link_up(region) || live_chance(drop_)) {
    ++result_.dropped;
    return;
  }
  const std::int64_t at = now() + 1 + live(static_cast<std::uint64_t>(max_delay_));
  // A partition that starts while a message is on the wire drops it too.
  wire_.push({at, ++sent_, [this, region, deliver = std::move(deliver)] {
                if (!link_up(region)) {
                  ++result_.dropped;
                  return;
                }
                deliver();
              }});
}

// ---- agents ----

agent::Observed Sim::observe(const Host& h) const {
  agent::Observed o;
  o.unix_ms = unix_ms();
  o.mono_ms = now();
  o.me.host = h.name;
  o.me.services = {h.service};
  o.me.trust = sign::TrustRoot{root_.public_key(), 1};
  o.slots[0].state = h.running.empty() ? agent::RunState::stopped : agent::RunState::running;
  o.slots[0].release = h.running;
  return o;
}

void Sim::boot(Host& h) {
  h.state = agent::ServiceState{};
  h.state.spec.name = h.service;
  h.state.spec.planted_unsynced_unpack = o_.plant_unsynced_unpack;
  h.state.record = h.record;
  h.in_flight.reset();
  h.outbox = std::make_unique<agent::Outbox>(kOutboxItems);
  h.next_send = now();
  agent::Step s = agent::recover(h.state, h.intent);
  h.state = s.next;
  execute(h, s.actions);
}

void Sim::crash_agent(Host& h) {
  ++result_.agent_crashes;
  h.up = false;
  h.in_flight.reset();
  h.unpacking.clear();
  note("agent " + h.name + " crashed");
}

void Sim::power_loss(Host& h) {
  crash_agent(h);
  ++result_.power_losses;
  h.running.clear();
  for (const auto& [release, written_back] : h.dirty) {
    if (written_back > now()) h.torn.insert(release);
  }
  h.dirty.clear();
  note("power lost on " + h.name);
}

void Sim::start_service(Host& h, const std::string& release) {
  h.current = release;
  h.running = release;
  check_running(h, release);
  if (h.torn.count(release)) {
    violate("current_complete", h.name,
            "`current` is " + release +
                ", whose files a power loss emptied: it was renamed into place unsynced");
  }
}

void Sim::check_running(const Host& h, const std::string& release) {
  if (release.empty() || release == versions_[0].at(h.service).id.str()) return;
  if (!planned_.count({h.name, release})) {
    violate("planned_only", h.name, "started " + release + ", which no plan named for it");
  }
}

void Sim::execute(Host& h, const std::vector<agent::Action>& actions) {
  for (const auto& action : actions) {
    std::optional<std::pair<std::int64_t, agent::Event>> op;
    std::visit(
        [&](const auto& a) {
          using A = std::decay_t<decltype(a)>;
          namespace act = agent::act;
          namespace ev = agent::ev;
          if constexpr (std::is_same_v<A, act::Report>) {
            h.outbox->push({std::nullopt, a.item});
          } else if constexpr (std::is_same_v<A, act::NoteIntent>) {
            h.intent = a.intent;
          } else if constexpr (std::is_same_v<A, act::ClearIntent>) {
            h.intent.reset();
          } else if constexpr (std::is_same_v<A, act::RestoreSingle>) {
            h.running.clear();
            if (!a.from.empty() && h.unpacked.count(a.from)) {
              start_service(h, a.from);
            } else {
              h.current.clear();
            }
          } else if constexpr (std::is_same_v<A, act::RecordFailure> ||
                               std::is_same_v<A, act::StoreRecord>) {
            h.record = a.record;  // the record and no intent, as state.finish writes them
            h.intent.reset();
          } else if constexpr (std::is_same_v<A, act::LoadManifest>) {
            auto it = by_id_.find(a.plan.artifact.str());
            ev::ManifestLoaded loaded{make_error(Errc::not_found, "no manifest"), false};
            if (it != by_id_.end()) loaded.manifest = it->second->manifest;
            loaded.release_present = h.unpacked.count(a.plan.artifact.str()) > 0;
            op = {now(), loaded};
          } else if constexpr (std::is_same_v<A, act::Fetch>) {
            op = {now() + 500 + live(2'500), ev::Fetched{Ok{}}};
          } else if constexpr (std::is_same_v<A, act::Unpack>) {
            // On disk only once it completes (the real one renames the
            // finished tree into place): a crash meanwhile leaves nothing.
            h.unpacking = a.artifact.str();
            h.unpacking_durable = a.durable;
            op = {now() + 200, ev::Unpacked{Ok{}}};
          } else if constexpr (std::is_same_v<A, act::WriteFlags>) {
            op = {now(), ev::FlagsWritten{Ok{}}};
          } else if constexpr (std::is_same_v<A, act::StartSlot>) {
            h.running.clear();
            start_service(h, a.release.str());
            op = {now() + 300, ev::SlotStarted{Ok{}, true}};
          } else if constexpr (std::is_same_v<A, act::Probe>) {
            op = {now() + 100, ev::Probed{true, true, "", 30}};
          } else if constexpr (std::is_same_v<A, act::WakeAt>) {
            op = {std::max(now(), a.mono_ms), ev::Woke{false}};
          } else if constexpr (std::is_same_v<A, act::Commit>) {
            h.record = a.record;
            h.intent.reset();
            op = {now() + 20, ev::Committed{Ok{}}};
          } else if constexpr (std::is_same_v<A, act::RecoverCurrent>) {
            // The release the record names runs (a running process is
            // left alone; a host back from a power loss starts it).
            if (h.unpacked.count(a.release) && h.running != a.release) {
              start_service(h, a.release);
            }
          } else if constexpr (std::is_same_v<A, act::Flip> || std::is_same_v<A, act::StopSlot> ||
                               std::is_same_v<A, act::RestoreIdle> ||
                               std::is_same_v<A, act::RecoverSlot> ||
                               std::is_same_v<A, act::RecoverActive>) {
            violate("converged", h.name, "a single-slot service was asked for a slot action");
          }
          // Logs, notices, trust, flags and garbage collection change
          // nothing the simulation checks.
        },
        action);
    if (op) {
      h.in_flight = std::move(op);
      return;  // one operation at a time: its outcome is the next event
    }
  }
}

void Sim::deliver(Host& h, const agent::Event& e) {
  agent::Step s = agent::step(h.state, e, observe(h));
  h.state = s.next;
  execute(h, s.actions);
}

void Sim::pull(Host& h) {
  const std::string host = h.name;
  const std::uint64_t have = h.state.record.seq;
  send(h.region, [this, host, have, region = h.region, service = h.service] {
    if (!coordinator_up_) return;
    auto bytes = store_->plan_for(service, host);
    if (!bytes.ok() || !*bytes) return;
    auto seq = store_->plan_seq_for(service, host);
    if (seq.ok() && *seq == have) return;  // "unchanged", as the gateway answers
    std::string answer = **bytes;
    send(region, [this, host, answer] {
      for (auto& x : hosts_) {
        if (x.name != host || !x.up || x.in_flight) continue;
        auto bundle = proto::decode_bundle(answer);
        if (!bundle.ok()) return;
        deliver(x, agent::ev::Offer{std::move(*bundle)});
      }
    });
  });
}

// As the agent's sampler: the probe's answer on the running release (it
// errs where the release degrades), made a report item by the agent's own
// health_item().
void Sim::sample_health(Host& h) {
  proto::HealthItem probed;
  const auto it = by_id_.find(h.running);
  const bool sick = it != by_id_.end() && it->second->bad_in.count(h.region);
  probed.ok = true;
  probed.error_rate = sick ? 0.4 : 0.01;
  probed.p99_ms = sick ? 900 : 20;
  probed.saturation = 0.3;
  const agent::SlotView serving = observe(h).slots[0];
  auto item = agent::health_item(h.state, serving, probed, unix_ms());
  if (item) h.outbox->push({*item, std::nullopt});  // nothing once nothing serves yet
}

// As the agent's reporter: the report in flight again (same seq, same
// items) until it is answered, then the next one.
void Sim::report(Host& h) {
  auto body = h.outbox->take(kReportItems, [&h] { return ++h.report_seq; });
  if (!body) return;
  body->sent_at_ms = unix_ms();
  h.next_send = now() + kReportWaitMs;
  const std::string host = h.name;
  const std::uint64_t seq = body->seq;
  send(h.region, [this, host, body = *body, seq, region = h.region] {
    if (!coordinator_up_) return;
    auto done = store_->ingest_report(host, body, unix_ms() / 1000);
    if (!done.ok()) return;
    send(region, [this, host, seq] {
      for (auto& x : hosts_) {
        if (x.name != host || !x.up) continue;
        x.outbox->acknowledged(seq);
        x.next_send = now();
      }
    });
  });
}

void Sim::agent_cycle(Host& h) {
  if (!h.up) {
    if (now() >= h.down_until) {
      h.up = true;
      boot(h);
      note("agent " + h.name + " restarted");
    }
    return;
  }
  if (h.in_flight && h.in_flight->first <= now()) {
    agent::Event e = std::move(h.in_flight->second);
    h.in_flight.reset();
    if (std::holds_alternative<agent::ev::Unpacked>(e) && !h.unpacking.empty()) {
      h.unpacked.insert(h.unpacking);
      if (!h.unpacking_durable) h.dirty[h.unpacking] = now() + kWritebackMs;
      h.unpacking.clear();
    }
    deliver(h, e);
  }
  if (now() >= h.next_health) {
    h.next_health = now() + kHealthMs;
    sample_health(h);
  }
  if (now() >= h.next_send) report(h);
  if (!h.in_flight && now() >= h.next_pull) {
    h.next_pull = now() + kPollMs;
    pull(h);
  }
}

void Sim::start_version(std::size_t i) {
  const auto& v = versions_[i];
  std::vector<std::string> envs;
  for (const auto& [env, regions] : kEnvs) envs.push_back(env);
  auto request = [&](const std::string& svc) {
    coordinator::DeployRequest r;
    r.pipeline_id = svc;
    r.service = svc;
    r.artifact = v.at(svc).id.str();
    r.plan = plan();
    r.who = "sim";
    r.person = "sim";
    r.config_snapshot = "{}";
    return r;
  };
  if (how_[i] == 0) {
    for (const auto& svc : kServices) {
      if (started_[i].count(svc)) continue;  // a crash between two starts
      auto d = orchestrator_->start(request(svc));
      if (!d.ok()) return;
      started_[i].insert(svc);
      deploy_release_[d->id] = i;
      ++result_.deploys;
      note("deploy " + d->id + " of " + v.at(svc).name);
    }
  } else {
    coordinator::ReleaseRequest rr;
    for (const auto& svc : kServices) {
      rr.runs.push_back(request(svc));
      rr.pipelines.push_back(
          {svc, envs, svc == "api" ? std::vector<std::string>{"web"} : std::vector<std::string>{}});
    }
    rr.policy =
        how_[i] == 1 ? coordinator::ReleasePolicy::failed_only : coordinator::ReleasePolicy::all;
    rr.who = "sim";
    rr.person = "sim";
    auto made = releases_driver_->create(rr);
    if (!made.ok()) return;
    for (const auto& m : made->services) {
      deploy_release_[m.deploy_id] = i;
      ++result_.deploys;
    }
    note("release " + made->id + " of v" + std::to_string(i));
  }
  ++next_release_;
}

// ---- the end ----

void Sim::check_end() {
  // 1. Converged: every deploy ended; every host on what its environment's
  // newest release says, in the record and in the process.
  auto active = store_->active_deploys();
  if (active.ok() && !active->empty()) {
    violate("converged", active->front().id,
            std::string("still ") + coordinator::deploy_state_name(active->front().state));
  }
  for (const auto& h : hosts_) {
    auto released = store_->running_at(h.service, region_env(h.region), unix_ms());
    const std::string want = released.ok() && *released ? (*released)->artifact : "";
    if (h.running != want || h.record.current != want) {
      violate("converged", h.name,
              "runs " + h.running + " (record " + h.record.current + "), its environment " + want);
    }
  }
  // 2. The audit chain, each batch started and passed once, full bakes.
  auto check = store_->verify_audit();
  if (!check.ok() || !check->ok) {
    violate("audit", "chain", check.ok() ? check->problem : check.error().message);
  }
  coordinator::AuditQuery q;
  q.limit = 1'000'000;
  auto records = store_->audit(q);
  if (!records.ok()) return;
  std::map<std::string, int> started, passed;
  std::map<std::string, std::int64_t> baking_first;
  for (const auto& r : *records) {
    if (r.what != "batch.started" && r.what != "batch.passed" && r.what != "batch.baking") {
      continue;
    }
    const json d = json::parse(r.detail, nullptr, false);
    const std::string key = r.deploy_id + "/" + r.env + "/" + d.value("region", "") + "/" +
                            std::to_string(d.value("batch", -1));
    if (r.what == "batch.started" && ++started[key] > 1) {
      violate("audit", key, "batch started twice");
    }
    if (r.what == "batch.baking" && !baking_first.count(key)) baking_first[key] = r.at_ms;
    if (r.what == "batch.passed") {
      if (++passed[key] > 1) violate("audit", key, "batch passed twice");
      auto b = baking_first.find(key);
      if (b == baking_first.end() || r.at_ms - b->second < kBakeMs) {
        violate("bake", key,
                "passed " + std::to_string(b == baking_first.end() ? -1 : r.at_ms - b->second) +
                    " ms after its bake began; the bake is " + std::to_string(kBakeMs) + " ms");
      }
    }
  }
  // 3. Healthy releases are never rolled back by control-plane faults; a
  // degrading one never succeeds.
  for (const auto& [id, index] : deploy_release_) {
    auto d = store_->deploy(id);
    if (!d.ok() || !*d) continue;
    (void)index;
    auto found = by_id_.find((*d)->artifact);
    if (found == by_id_.end()) continue;
    const Release& rel = *found->second;
    if ((*d)->state == DeployState::failed) {
      // Every fault heals well within the timeouts: a deploy that ran out of
      // one (a converge, a rollback) is a fault the system did not ride out.
      violate((*d)->reason.find("rollback") != std::string::npos ? "rollback_in_time" : "converged",
              id, "ended failed: " + (*d)->reason);
    }
    if ((*d)->state == DeployState::succeeded) ++result_.succeeded;
    if ((*d)->state == DeployState::superseded) ++result_.superseded;
    if ((*d)->state == DeployState::rolled_back) ++result_.rolled_back;
    // A run superseded while queued never ran, and a release's run it
    // cancelled never entered: nothing to judge. Under policy all a release
    // takes back its healthy runs when another failed.
    const bool by_release = !(*d)->release.empty() && (*d)->reason.starts_with((*d)->release + ":");
    if (rel.bad_in.empty() && (*d)->state != DeployState::succeeded &&
        (*d)->state != DeployState::superseded && (*d)->state != DeployState::cancelled &&
        !by_release) {
      violate("healthy_stays", id,
              rel.name + " is healthy everywhere but ended " +
                  coordinator::deploy_state_name((*d)->state) + ": " + (*d)->reason);
    }
    if (!rel.bad_in.empty() && (*d)->state == DeployState::succeeded) {
      violate("healthy_stays", id,
              rel.name + " degrades in " + *rel.bad_in.begin() + " but succeeded");
    }
  }
}

SimResult Sim::run() {
  setup();
  while (now() < kDeadlineMs) {
    // Faults due.
    while (!faults_.empty() && faults_.begin()->first <= now()) {
      auto f = std::move(faults_.begin()->second);
      faults_.erase(faults_.begin());
      f();
    }
    if (!coordinator_up_ && now() >= coordinator_back_at_) {
      start_coordinator();
      note("coordinator restarted");
    }
    // Messages due.
    while (!wire_.empty() && wire_.top().at <= now()) {
      Message m = wire_.top();
      wire_.pop();
      m.deliver();
      died_inside();
    }
    for (auto& h : hosts_) agent_cycle(h);
    const bool ticked = coordinator_up_ && now() >= next_tick_;
    if (ticked) {
      next_tick_ = now() + kTickMs;
      if (next_release_ < versions_.size() && now() >= deploy_at_[next_release_]) {
        start_version(next_release_);
      }
      // The coordinator prunes old health samples, as the daemon does (with a
      // retention of 5 minutes: the simulation's baseline windows are 1).
      if (now() >= next_prune_) {
        next_prune_ = now() + 30'000;
        (void)store_->prune_samples(unix_ms() - 300'000);
      }
      // A person at production's gate, a while after a run reached it.
      if (auto active = store_->active_deploys(); active.ok()) {
        for (const auto& d : *active) {
          if (d.state != DeployState::awaiting_approval) continue;
          auto it = approve_at_.find(d.id);
          if (it == approve_at_.end()) {
            approve_at_.emplace(d.id, now() + 1'000 + live(60'000));
          } else if (now() >= it->second) {
            // A release's gate is the release's: one approval for its runs.
            const Status done =
                d.release.empty()
                    ? orchestrator_->approve(d.id, {"bob-laptop", "bob"}, "sim")
                    : releases_driver_->approve(d.release, {"bob-laptop", "bob"}, "sim");
            if (done.ok()) note("bob approved " + (d.release.empty() ? d.id : d.release));
          }
        }
      }
      died_inside();
      if (coordinator_up_) {
        auto t = orchestrator_->tick();
        if (!t.ok() && !store_->crashed()) {
          violate("converged", "coordinator", "tick failed: " + t.error().message);
        }
        died_inside();
      }
    }
    const bool faults_over = faults_.empty() && coordinator_up_;
    bool settled = faults_over && next_release_ >= versions_.size() && ticked;
    if (settled) {
      auto active = store_->active_deploys();
      settled = active.ok() && active->empty();
    }
    for (const auto& h : hosts_) settled = settled && h.up && !h.in_flight;
    for (const auto& p : partitions_) settled = settled && now() >= p.to;
    if (settled) {
      // Let every host report what it runs once more, then stop.
      bool quiet = true;
      for (const auto& h : hosts_) {
        auto released = store_->running_at(h.service, region_env(h.region), unix_ms());
        const std::string want = released.ok() && *released ? (*released)->artifact : "";
        quiet = quiet && h.running == want;
      }
      if (quiet) break;
    }
    clock_.advance(std::chrono::milliseconds(kStepMs));
    elapsed_ += kStepMs;
  }
  result_.virtual_ms = now();
  if (now() >= kDeadlineMs) {
    violate("converged", "run",
            "had not settled by the deadline (" + std::to_string(kDeadlineMs / 1000) +
                " s of virtual time)");
  }
  if (next_release_ < versions_.size()) {
    violate("converged", "schedule",
            "version v" + std::to_string(next_release_) + " never started");
  }
  if (!coordinator_up_) start_coordinator();
  check_end();
  return result_;
}

}  // namespace

SimResult run_sim(const SimOptions& options) {
  Sim sim(options);
  return sim.run();
}

}  // namespace drover::chaos
