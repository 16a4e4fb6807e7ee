#include "coordinator/service/coordinator.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <limits>
#include <mutex>
#include <set>

#include "coordinator/orchestrator/fleet_view.hpp"
#include "coordinator/pipelines/pipeline_codec.hpp"
#include "coordinator/plans/deploy_plans.hpp"
#include "coordinator/scm/scm.hpp"
#include "coordinator/store/lmdb_coordinator_store.hpp"
#include "core/base/hex.hpp"
#include "core/base/name.hpp"
#include "core/canon/canonical_json.hpp"
#include "core/format/layer_torrent.hpp"
#include "core/format/manifest.hpp"
#include "core/http/http.hpp"
#include "core/mesh_token/mesh_token.hpp"
#include "core/sign/secret_box.hpp"

namespace drover::coordinator {
namespace {

// The events that may complete or fail a batch: a host's report of one wakes
// the driver.
bool wakes_driver(std::string_view event) {
  return event == "applied" || event == "flags_applied" || event == "apply_failed" ||
         event == "plan_refused" || event == "fetch_failed";
}

}  // namespace

namespace {

using nlohmann::json;

// An audit record of a person's act outside any deploy.
Status audit_admin(CoordinatorStore& store, std::int64_t now_ms, const std::string& who,
                   const std::string& what, const json& detail) {
  AuditRecord r;
  r.at_ms = now_ms;
  r.who = who;
  r.what = what;
  if (detail.contains("service")) r.service = detail["service"].get<std::string>();
  r.detail = *canon::encode(detail);
  return store.append_audit(r);
}

// What the embedded tracker tracks: the info-hashes of the layers of
// registered artifacts (docs/MESH.md, "What the tracker refuses").
// Artifacts are registered on other threads (the feed follower, the API)
// straight into the store, so an info-hash not known yet sends it back to the
// store for the artifacts registered since, at most once a second: a flood of
// unknown info-hashes costs one read of the artifact list a second, not one
// per announce. Thread-safe; contains() runs on the tracker's thread.
class RegisteredLayers {
 public:
  RegisteredLayers(CoordinatorStore& store, const Clock& clock, Logger& log)
      : store_(store), clock_(clock), log_(log) {
    std::lock_guard lock(mu_);
    read_new_artifacts();
  }

  bool contains(const std::string& info_hash) {
    if (info_hash.size() != kBytes) return false;
    InfoHash key;
    std::copy(info_hash.begin(), info_hash.end(), key.begin());
    std::lock_guard lock(mu_);
    if (info_hashes_.count(key)) return true;
    if (clock_.steady() - last_read_ < kRereadGap) return false;
    read_new_artifacts();
    return info_hashes_.count(key) > 0;
  }

 private:
  static constexpr std::size_t kBytes = 20;  // the truncated v2 info-hash announces carry
  static constexpr std::chrono::seconds kRereadGap{1};
  using InfoHash = std::array<char, kBytes>;

  void read_new_artifacts() {
    last_read_ = clock_.steady();
    auto all = store_.artifacts();
    if (!all.ok()) {
      log_.warn("coordinator.tracker.artifacts", {{"error", all.error().message}});
      return;
    }
    for (const auto& a : *all) {
      if (artifacts_.count(a.artifact_id)) continue;
      auto bytes = store_.manifest(a.artifact_id);
      if (!bytes.ok() || !*bytes) continue;  // asked again at the next read
      artifacts_.insert(a.artifact_id);
      auto m = format::decode_manifest(**bytes);
      if (!m.ok()) continue;  // a manifest that does not decode names no layer
      for (const auto& layer : m->layers) {
        const auto t = format::derive_layer_torrent(layer);
        InfoHash key;
        std::copy_n(reinterpret_cast<const char*>(t.info_hash.data()), kBytes, key.begin());
        info_hashes_.insert(key);
      }
    }
  }

  CoordinatorStore& store_;
  const Clock& clock_;
  Logger& log_;
  std::mutex mu_;                    // guards everything below
  std::set<std::string> artifacts_;  // ids whose layers are in info_hashes_
  std::set<InfoHash> info_hashes_;
  SteadyTime last_read_;
};

// Saving `p` over `stored` (null for a new pipeline), beside `others` (the
// service's other pipelines): a gate before or after the change, or on
// another pipeline of the service (a second pipeline over the same hosts
// would be a way around it), makes it the approver's.
RoleNeed pipeline_need(const Pipeline* stored, const Pipeline& p,
                       const std::vector<Pipeline>& others) {
  // Gates, from either version's fields (a version-1 pipeline's
  // approval_gates read as gates of its environments).
  auto gates = [](const Pipeline& x) {
    std::string out;
    for (const auto& e : x.environments) {
      if (e.gate) out += (out.empty() ? "" : ", ") + e.name;
    }
    return out;
  };
  if (stored != nullptr && !gates(*stored).empty()) {
    return {Role::approver,
            "pipeline '" + p.id + "' has an approval gate on env " + gates(*stored)};
  }
  if (!gates(p).empty()) {
    return {Role::approver,
            "pipeline '" + p.id + "' would get an approval gate on env " + gates(p)};
  }
  for (const auto& o : others) {
    if (!gates(o).empty()) {
      return {Role::approver, "service '" + p.service + "' has pipeline '" + o.id +
                                  "' with an approval gate on env " + gates(o) +
                                  "; another pipeline of the service could go around it"};
    }
  }
  return {Role::deployer, ""};
}

std::string list_of(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

// Every Prometheus check of p names a server the coordinator's config
// allows: a pipeline's author cannot point the coordinator elsewhere.
Status prometheus_allowed(const Pipeline& p, const PrometheusOptions& o) {
  auto check = [&](const DeployParams& params, const std::string& where) -> Status {
    if (!params.prometheus) return Ok{};
    const std::string& url = params.prometheus->url;
    if (std::find(o.allow.begin(), o.allow.end(), url) != o.allow.end()) return Ok{};
    return make_error(Errc::refused,
                      where + "health_checks.prometheus.url '" + url +
                          "' is not a server this coordinator may ask (its config's "
                          "prometheus.allow lists " +
                          (o.allow.empty() ? std::string("none") : list_of(o.allow)) + ")");
  };
  DROVER_TRY(check(p.params, ""));
  for (std::size_t i = 0; i < p.settings.size() && i < p.environments.size(); ++i) {
    DROVER_TRY(check(p.settings[i].params, "environments[" + std::to_string(i) + "]."));
  }
  return Ok{};
}

// A version-2 pipeline is a service's whole path: the only pipeline of its
// service (so its environments are the only ones the service's hosts are in).
Status one_path_per_service(const Pipeline& p, const std::vector<Pipeline>& others) {
  for (const auto& o : others) {
    if (p.format == 2 || o.format == 2) {
      return make_error(Errc::refused,
                        "service '" + p.service + "' already has pipeline '" + o.id +
                            "'; a version-2 pipeline is the only pipeline of its service "
                            "(change that one, or give it environments)");
    }
  }
  return Ok{};
}

}  // namespace

Coordinator::Coordinator(CoordinatorOptions options, const Clock& clock, Random& random,
                         Logger& log)
    : options_(std::move(options)), clock_(clock), random_(random), log_(log) {}

std::int64_t Coordinator::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now().time_since_epoch())
      .count();
}

Result<std::unique_ptr<Coordinator>> Coordinator::start(CoordinatorOptions options,
                                                        const Clock& clock, Random& random,
                                                        Logger& log) {
  return start(std::move(options), CoordinatorParts{}, clock, random, log);
}

Result<std::unique_ptr<Coordinator>> Coordinator::start(CoordinatorOptions options,
                                                        CoordinatorParts parts, const Clock& clock,
                                                        Random& random, Logger& log) {
  if (!options.online) {
    return make_error(Errc::invalid_argument, "the coordinator needs its online key");
  }
  if (!options.data_dir.empty()) {
    // Absolute, so that every message naming it names it the same way (the
    // API keeps it out of its answers: docs/COORDINATOR.md, "Access").
    std::error_code ec;
    fs::path absolute = fs::absolute(options.data_dir, ec);
    if (!ec) options.data_dir = absolute.lexically_normal();
  }
  std::unique_ptr<Coordinator> c(new Coordinator(std::move(options), clock, random, log));
  Coordinator* self = c.get();
  if (parts.store) {
    c->store_ = std::move(parts.store);
  } else {
    DROVER_ASSIGN(c->store_, LmdbCoordinatorStore::open(c->options_.data_dir));
  }
  c->counted_ = std::make_unique<CoordinatorMetrics>(c->metrics_);
  metrics::build_info(c->metrics_, "coordinator");
  c->tokens_ = std::make_unique<TokenStore>(*c->store_);
  c->artifacts_ =
      std::make_unique<ArtifactRegistry>(*c->store_, c->options_.origin_feed, clock, log);
  c->keys_ = std::make_unique<OnlineKeySigner>(*c->options_.online);
  c->signer_ = std::move(parts.signer);

  if (!c->options_.tracker_listen.empty()) {
    DROVER_ASSIGN(auto hp, http::parse_listen(c->options_.tracker_listen));
    http::ServerOptions so;
    so.bind = hp.first;
    so.port = hp.second;
    mesh::TrackerOptions to;
    to.interval = c->options_.tracker_interval;
    to.expiry = 3 * to.interval;
    to.sources = c->options_.tracker_sources;
    to.token_key = c->options_.mesh_token_key;
    if (!to.sources && hp.first.rfind("127.", 0) != 0 && hp.first != "::1" &&
        hp.first != "localhost") {
      log.warn("coordinator.tracker.open_sources",
               {{"listen", c->options_.tracker_listen},
                {"why",
                 "no tracker.sources: any node that reaches the tracker may claim to be a "
                 "region's seed or the origin"}});
    }
    // Only the layers of registered artifacts: nobody can park state here
    // under made-up info-hashes. (The tracker goes before the store: see
    // ~Coordinator.)
    auto registered = std::make_shared<RegisteredLayers>(*c->store_, clock, log);
    to.tracks = [registered](const std::string& info_hash) {
      return registered->contains(info_hash);
    };
    DROVER_ASSIGN(c->tracker_, mesh::TrackerService::start(so, to, clock, random, log));
    c->tracker_->export_metrics(c->metrics_);
    c->tracker_url_ = "http://" + hp.first + ":" + std::to_string(c->tracker_->port());
  } else {
    c->tracker_url_ = c->options_.tracker_url;
  }
  if (parts.tracker) {
    c->tracker_client_ = std::move(parts.tracker);
  } else if (!c->tracker_url_.empty()) {
    c->tracker_client_ = std::make_unique<mesh::HttpTrackerClient>(c->tracker_url_);
  }
  c->readiness_ = std::make_unique<ArtifactReadiness>(*c->store_, c->tracker_client_.get());
  c->analysis_ = std::make_unique<AnalysisRunner>(
      c->options_.prometheus,
      [o = c->options_.prometheus](const std::string& url, const std::string& query,
                                   std::int64_t time_ms) {
        return prometheus_instant(url, query, time_ms, o);
      },
      [self] { return self->now_ms(); },
      [self] {
        std::lock_guard lock(self->stop_mu_);
        return self->stopping_;
      });

  GatewayOptions agents = c->options_.agents;
  if (c->options_.mesh_token_key) {
    // A peer's tracker credential, a day long, renewed with every answer
    // that carries it (docs/MESH.md, "Who may fetch and announce").
    agents.mesh_token = [key = *c->options_.mesh_token_key,
                         &clock](const HostRecord& h) -> std::optional<nlohmann::json> {
      const std::int64_t expires_at = unix_seconds(clock.now()) + 86'400;
      auto token = mesh_token::issue(key, {"peer", h.region, h.host, expires_at});
      if (!token.ok()) return std::nullopt;  // not a valid name: the enrollment refused it already
      return nlohmann::json{{"token", *token}, {"expires_at", expires_at}};
    };
  }
  // Flag sets: served by the gateway from its first request on, announced
  // through it (no change is issued before it exists: changes come from the
  // API and the driver, both started after it).
  c->flag_sets_ = std::make_unique<FlagSets>(*c->store_, *c->keys_,
                                             [self](const std::string& service, std::uint64_t seq) {
                                               self->gateway_->announce_flags(service, seq);
                                             });
  agents.flags = [self](const HostRecord& h, const std::string& service, std::uint64_t have) {
    return self->flags_for(h, service, have);
  };
  agents.metrics = &c->metrics_;
  DROVER_ASSIGN(c->gateway_,
                AgentGateway::start(
                    agents, *c->store_, *c->keys_,
                    [self](const ContentId& id) { return self->artifacts_->manifest(id); },
                    [self](const HostRecord&, const proto::ReportBody& body) {
                      // A release or flag set applied, or a plan that failed,
                      // may complete or fail a batch; nothing else a host
                      // says wakes the driver.
                      for (const auto& item : body.items) {
                        if (item.event && wakes_driver(item.event->event)) {
                          return self->wake_driver();
                        }
                      }
                    },
                    clock, log));
  c->issuer_ = std::make_unique<PlanIssuer>(
      *c->store_, c->signer_ ? *c->signer_ : static_cast<PlanSigner&>(*c->keys_),
      [self](const std::string& service, std::uint64_t seq) {
        self->gateway_->announce(service, seq);
      });
  c->orchestrator_ = std::make_unique<Orchestrator>(
      *c->store_,
      [self](const DeployRecord& d, const RunPlan& plan) {
        // A ramp's artifact is the release its environment runs: ready.
        const bool ready =
            d.state == DeployState::pending && !d.ramp() ? self->readiness_->ready(d.id) : true;
        auto places = self->places_of(d.service);
        if (!places.ok()) {
          FleetView unread;
          unread.unreadable = "the hosts: " + places.error().message;
          return unread;
        }
        FleetView v = store_fleet_view(*self->store_, d, plan, ready, std::move(*places));
        if (d.env < plan.envs.size() && plan.envs[d.env].params.prometheus) {
          v.analysis = self->analysis_->of(d.id);
        }
        if (d.ramp() && v.unreadable.empty()) self->ramp_view(d, v);
        return v;
      },
      [self](const DeployRecord& d, const std::string& artifact,
             const std::vector<std::string>& hosts, const PlanRoute& route) {
        PlanDefaults defaults;
        defaults.tracker = self->tracker_url_;
        defaults.validity_s = self->options_.plan_validity_s;
        return issue_plan(
            *self->issuer_, [self](const ContentId& id) { return self->artifacts_->manifest(id); },
            defaults, d, artifact, hosts, route, unix_seconds(self->clock_.now()));
      },
      [self](const DeployRecord& d) { return self->settings_of(d).plan; }, clock, log);
  c->orchestrator_->on_flags(
      [self](const DeployRecord& d, const std::string& env, const std::string& flag,
             int percent) -> Status { return self->ramp_step(d, env, flag, percent); });
  c->orchestrator_->on_commit([self](const std::vector<AuditRecord>& records) {
    self->counted_->on_records(records);
    for (const auto& r : records) self->after_commit(r.what);
    self->wake_driver();
  });
  c->metrics_.on_collect([self](metrics::Registry& r) {
    if (auto active = self->store_->active_deploys(); active.ok()) {
      self->counted_->set_states(*active, self->now_ms());
    }
    if (auto u = self->store_->usage(); u.ok()) {
      r.gauge("drover_coordinator_store_map_bytes",
              "The LMDB map's size: the most the coordinator's state may grow to.")
          .set(static_cast<double>(u->map_bytes));
      r.gauge("drover_coordinator_store_used_bytes",
              "The LMDB map's high-water mark (pages ever used; freed pages are reused).")
          .set(static_cast<double>(u->used_bytes));
    }
    // Read at most once a second (the listeners cache the text), every item.
    if (auto pending = notify::read_outbox(*self->store_, std::numeric_limits<std::size_t>::max());
        pending.ok()) {
      r.gauge("drover_coordinator_notify_outbox_items",
              "Notifications waiting to be delivered (or retried).")
          .set(static_cast<double>(pending->size()));
    }
  });
  c->releases_ = std::make_unique<ReleaseDriver>(*c->store_, *c->orchestrator_, clock, log);
  c->orchestrator_->on_releases(
      [self](std::vector<DeployRecord>& active) { return self->releases_->tick(active); });
  {
    std::lock_guard lock(c->orchestrator_mu_);
    DROVER_TRY(c->orchestrator_->recover());
  }
  notify::NotifierOptions notify_options;
  notify_options.give_up_ms = c->options_.notify_give_up_s * 1000;
  c->notifier_ = std::make_unique<notify::Notifier>(
      *c->store_, [self](const AuditRecord& r) { return self->notify_context(r); },
      parts.notify_send ? std::move(parts.notify_send)
                        : notify::http_send(c->options_.notify_timeout, c->options_.notify_ca_file),
      clock, log, notify_options);
  if (c->options_.run_driver) {
    c->driver_ = std::thread([self] { self->drive(); });
    c->readiness_thread_ = std::thread([self] { self->watch_readiness(); });
    // Always, even with no server allowed: a pipeline applied before the
    // config dropped its server gets measurements that say why, not none.
    c->analysis_thread_ = std::thread([self] { self->watch_analysis(); });
    c->notify_thread_ = std::thread([self] { self->notify_loop(); });
  }
  if (!c->options_.origin_feed.empty() && c->options_.follow_feed) {
    c->feed_ = std::make_unique<FeedFollower>(*c->artifacts_, c->options_.feed_wait_s, log);
  }
  return c;
}

Coordinator::~Coordinator() {
  {
    std::lock_guard lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  drive_cv_.notify_all();
  if (driver_.joinable()) driver_.join();
  if (readiness_thread_.joinable()) readiness_thread_.join();
  if (analysis_thread_.joinable()) analysis_thread_.join();
  if (notify_thread_.joinable()) notify_thread_.join();
  feed_.reset();
  gateway_.reset();
  tracker_.reset();
}

void Coordinator::after_commit(const std::string& what) {
  if (options_.crash_after.empty() || what != options_.crash_after) return;
  if (++crash_seen_ < options_.crash_count) return;
  log_.warn("coordinator.crash_point", {{"after", what}, {"count", crash_seen_}});
  ::kill(::getpid(), SIGKILL);
}

Result<int> Coordinator::drive_once(bool check) {
  if (check) {  // network I/O: never under the orchestrator's lock
    check_readiness();
    check_analysis();
  }
  Result<int> changed = 0;
  {
    std::lock_guard lock(orchestrator_mu_);
    changed = orchestrator_->tick();
  }
  check_waiting_triggers();
  const std::int64_t now = now_ms();
  if (now - last_prune_ms_ > 60'000) {
    last_prune_ms_ = now;
    if (auto pruned = store_->prune_samples(now - options_.sample_retention_s * 1000);
        !pruned.ok()) {
      log_.error("coordinator.prune_failed", {{"error", pruned.error().message}});
    }
  }
  return changed;
}

void Coordinator::every_tick(const char* threw, const std::function<void()>& pass) {
  std::unique_lock stop_lock(stop_mu_);
  while (!stopping_) {
    stop_lock.unlock();
    (void)run_guarded(log_, threw, [&] { pass(); });
    stop_lock.lock();
    stop_cv_.wait_for(stop_lock, options_.tick, [this] { return stopping_; });
  }
}

void Coordinator::watch_readiness() {
  // Apart from the driver: a tracker that answers slowly, or never, delays
  // only the deploys waiting for their artifact, never a tick (a rollback
  // of another service, say).
  every_tick("coordinator.readiness.threw", [this] { check_readiness(); });
}

void Coordinator::watch_analysis() {
  // Apart from the driver and readiness: a Prometheus that answers slowly
  // delays only the measurements.
  every_tick("coordinator.analysis.threw", [this] { check_analysis(); });
}

void Coordinator::check_analysis() {
  auto active = store_->active_deploys();
  if (!active.ok()) return;  // the tick reports the store's trouble
  std::set<std::string> ids;
  for (const auto& d : *active) {
    ids.insert(d.id);
    if (d.state == DeployState::baking || d.state == DeployState::deploying) {
      analysis_->run(d, settings_of(d).plan);
    }
  }
  analysis_->retain(ids);
}

namespace {
thread_local bool t_driving = false;  // on the driver thread
}  // namespace

void Coordinator::wake_driver() {
  if (t_driving) return;  // its own commits: the tick already goes as far as it can
  {
    std::lock_guard lock(stop_mu_);
    drive_wake_ = true;
  }
  drive_cv_.notify_one();
}

void Coordinator::drive() {
  t_driving = true;
  std::unique_lock stop_lock(stop_mu_);
  while (!stopping_) {
    drive_wake_ = false;
    stop_lock.unlock();
    // A tick that throws is logged and the next one runs: the driver thread
    // outlives whatever a record or a host made it meet.
    Status st = run_guarded(log_, "coordinator.tick.threw", [this]() -> Status {
      auto t = drive_once(/*check=*/false);  // the readiness thread asks the tracker
      if (!t.ok()) log_.error("coordinator.tick", {{"error", t.error().message}});
      return Ok{};
    });
    (void)st;
    stop_lock.lock();
    // A tick every `tick`, or sooner when woken (a batch's hosts reported,
    // a deploy started or a rollback was asked): not sooner than a fifth of
    // a tick after the last, so a flood of reports cannot keep it ticking.
    const auto ended = std::chrono::steady_clock::now();
    const auto gap = std::max<std::chrono::milliseconds>(options_.tick / 5, kMinTickGap);
    drive_cv_.wait_until(stop_lock, ended + gap, [this] { return stopping_; });
    drive_cv_.wait_until(stop_lock, ended + options_.tick,
                         [this] { return stopping_ || drive_wake_; });
  }
}

void Coordinator::notify_loop() {
  std::unique_lock stop_lock(stop_mu_);
  while (!stopping_) {
    stop_lock.unlock();
    std::int64_t next_due = INT64_MAX;
    bool failed = true;
    (void)run_guarded(log_, "coordinator.notify.threw", [&]() -> Status {
      if (auto n = notify_once(); !n.ok()) {
        log_.error("coordinator.notify", {{"error", n.error().message}});
      } else {
        failed = false;
      }
      next_due = notifier_->next_due_ms();
      return Ok{};
    });
    // New records are looked for every tick; a retry due sooner wakes it
    // sooner (never after a failed pass: a store that refuses writes is
    // asked again a tick later, not in a spin). A pass that sends waits on
    // the network here, never under the orchestrator's lock.
    auto wait = options_.tick;
    const std::int64_t until_due = next_due - now_ms();
    if (!failed && until_due < wait.count()) {
      wait = std::chrono::milliseconds(std::max<std::int64_t>(until_due, 0));
    }
    stop_lock.lock();
    stop_cv_.wait_for(stop_lock, wait, [this] { return stopping_; });
  }
}

Result<Pipeline> Coordinator::load_pipeline(const std::string& id) {
  DROVER_ASSIGN(auto bytes, store_->pipeline(id));
  if (!bytes) return make_error(Errc::not_found, "no pipeline '" + id + "'");
  return decode_pipeline_record(*bytes);
}

Coordinator::DeploySettings Coordinator::settings_of(const DeployRecord& d) {
  std::lock_guard lock(cache_mu_);
  auto it = settings_.find(d.id);
  if (it != settings_.end()) return it->second;
  // An unreadable snapshot leaves the plan without environments: the
  // machine then fails the run, naming why.
  DeploySettings out;
  auto snap = store_->deploy_config(d.id);
  if (snap.ok() && *snap) {
    const DeployConfig config = decode_config_snapshot(**snap);
    if (config.pipeline) {
      const Pipeline& p = *config.pipeline;
      if (auto plan = run_plan(p); plan.ok()) {
        out.plan = std::move(*plan);
        if (p.format == 1 && !config.env.empty()) {
          // A version-1 run went through the one env its snapshot names.
          const std::size_t i = env_index(p, config.env);
          if (i != std::string::npos && d.environments.size() == 1) {
            out.plan.envs = {out.plan.envs[i]};
          }
        }
      } else {
        log_.error("coordinator.deploy.plan_unreadable",
                   {{"deploy", d.id}, {"error", plan.error().message}});
      }
      out.artifact_ready = p.artifact_ready;
    }
  }
  for (auto& e : out.plan.envs) e.params.planted_early_batch_ms = options_.planted_early_batch_ms;
  settings_[d.id] = out;
  return out;
}

Result<std::vector<HostPlace>> Coordinator::places_of(const std::string& service) {
  std::lock_guard lock(cache_mu_);
  const std::uint64_t version = store_->hosts_version();
  if (version != places_version_) {
    places_.clear();
    places_version_ = version;
  }
  auto it = places_.find(service);
  if (it == places_.end()) {
    DROVER_ASSIGN(auto places, service_hosts(*store_, service));  // a failure is not kept
    it = places_.emplace(service, std::move(places)).first;
  }
  return it->second;
}

void Coordinator::check_readiness() {
  auto active = store_->active_deploys();
  if (!active.ok()) return;  // the tick reports the store's trouble
  std::set<std::string> ids;
  for (const auto& d : *active) {
    ids.insert(d.id);
    if (d.state == DeployState::pending) (void)readiness_->check(d, settings_of(d).artifact_ready);
  }
  readiness_->retain(ids);
  std::lock_guard lock(cache_mu_);
  for (auto it = settings_.begin(); it != settings_.end();) {
    it = ids.count(it->first) ? std::next(it) : settings_.erase(it);
  }
}

// ---- pipelines ----

Result<std::vector<Pipeline>> Coordinator::other_pipelines(const Pipeline& p) {
  DROVER_ASSIGN(auto records, store_->pipelines());
  std::vector<Pipeline> out;
  for (const auto& r : records) {
    DROVER_ASSIGN(Pipeline o, decode_pipeline_record(r));
    if (o.service == p.service && o.id != p.id) out.push_back(std::move(o));
  }
  return out;
}

Result<RoleNeed> Coordinator::role_to_put_pipeline(const Pipeline& p) {
  DROVER_ASSIGN(auto others, other_pipelines(p));
  DROVER_ASSIGN(auto existing, store_->pipeline(p.id));
  if (!existing) return pipeline_need(nullptr, p, others);
  DROVER_ASSIGN(Pipeline stored, decode_pipeline_record(*existing));
  return pipeline_need(&stored, p, others);
}

RoleNeed Coordinator::role_to_start_deploy(const DeployStart& start) {
  if (start.strategy_override) {
    return {Role::approver, "a strategy_override replaces the rollout strategy of pipeline '" +
                                start.pipeline_id + "'"};
  }
  return {Role::deployer, ""};
}

RoleNeed Coordinator::role_to_start_in(const Pipeline& p, const DeployStart& start) {
  RoleNeed need = role_to_start_deploy(start);
  if (need.role == Role::approver || p.format != 2 || !start.env) return need;
  // Skipping environments of a promotion path skips what they would have
  // proved: the approver's call, like a strategy override.
  if (const std::size_t i = env_index(p, *start.env); i != std::string::npos && i > 0) {
    return {Role::approver, "starting in env '" + *start.env + "' skips env '" +
                                p.environments[0].name + "' of pipeline '" + p.id + "'"};
  }
  return need;
}

Result<RoleNeed> Coordinator::role_to_start(const DeployStart& start) {
  auto p = load_pipeline(start.pipeline_id);
  if (!p.ok()) return role_to_start_deploy(start);  // start_deploy names what is missing
  return role_to_start_in(*p, start);
}

Result<SavedPipeline> Coordinator::put_pipeline(Pipeline p, const Caller& who) {
  std::lock_guard lock(orchestrator_mu_);  // one writer of a pipeline's version at a time
  DROVER_ASSIGN(auto existing, store_->pipeline(p.id));
  const bool created = !existing;
  std::optional<Pipeline> stored;
  if (existing) {
    DROVER_ASSIGN(Pipeline decoded, decode_pipeline_record(*existing));
    stored = std::move(decoded);
  }
  DROVER_ASSIGN(auto others, other_pipelines(p));
  if (const RoleNeed need = pipeline_need(stored ? &*stored : nullptr, p, others);
      !allows(who.role, need.role)) {
    return make_error(Errc::refused, role_refusal(need, who));
  }
  DROVER_TRY(one_path_per_service(p, others));
  DROVER_TRY(prometheus_allowed(p, options_.prometheus));
  {
    // Releases of several services (issue 16): every dependency has a
    // pipeline, and none leads back to this service.
    std::map<std::string, std::vector<std::string>> graph;
    DROVER_ASSIGN(auto all, pipelines());
    for (const auto& o : all) {
      if (o.id != p.id) {
        auto& deps = graph[o.service];
        deps.insert(deps.end(), o.depends_on.begin(), o.depends_on.end());
      }
    }
    auto& deps = graph[p.service];
    deps.insert(deps.end(), p.depends_on.begin(), p.depends_on.end());
    DROVER_TRY(check_dependencies(graph, p.service));
  }
  if (stored) {
    const Pipeline& old = *stored;
    if (old.service != p.service) {
      return make_error(Errc::refused, "pipeline '" + p.id + "' deploys service '" + old.service +
                                           "'; a pipeline's service cannot change");
    }
    p.version = old.version + 1;
  } else {
    p.version = 1;
  }
  p.updated_ms = now_ms();
  p.updated_by = who.name;
  DROVER_TRY(store_->put_pipeline(p.id, encode_pipeline_record(p)));
  DROVER_TRY(audit_admin(*store_, now_ms(), who.name,
                         created ? "pipeline.created" : "pipeline.updated",
                         {{"pipeline", p.id}, {"service", p.service}, {"version", p.version}}));
  return SavedPipeline{std::move(p), created};
}

Result<Pipeline> Coordinator::pipeline(const std::string& id) {
  return load_pipeline(id);
}

Result<std::vector<Pipeline>> Coordinator::pipelines() {
  DROVER_ASSIGN(auto all, store_->pipelines());
  std::vector<Pipeline> out;
  for (const auto& bytes : all) {
    DROVER_ASSIGN(Pipeline p, decode_pipeline_record(bytes));
    out.push_back(std::move(p));
  }
  return out;
}

Result<std::vector<DeployRecord>> Coordinator::runs(const std::string& pipeline_id,
                                                    std::size_t limit) {
  DROVER_ASSIGN(Pipeline p, load_pipeline(pipeline_id));
  (void)p;
  return store_->recent_deploys({"", pipeline_id}, limit);
}

// ---- deploys ----

Result<DeployStarted> Coordinator::start_deploy(const DeployStart& start, const Caller& who) {
  if (const RoleNeed need = role_to_start_deploy(start); !allows(who.role, need.role)) {
    return make_error(Errc::refused, role_refusal(need, who));
  }
  DROVER_ASSIGN(Pipeline p, load_pipeline(start.pipeline_id));
  return start_run(std::move(p), start, who, "");
}

Result<DeployStarted> Coordinator::start_run(Pipeline p, const DeployStart& start,
                                             const Caller& who, const std::string& redeploy_of) {
  DROVER_ASSIGN(ComposedRun run, compose_run(std::move(p), start, who, redeploy_of));
  DeployRecord d;
  {
    std::lock_guard lock(orchestrator_mu_);
    DROVER_ASSIGN(d, orchestrator_->start(run.request));
  }
  wake_driver();
  return DeployStarted{std::move(d), run.env_name, run.git_sha,
                       ContentId::of(run.request.config_snapshot).str()};
}

Result<Coordinator::ComposedRun> Coordinator::compose_run(Pipeline p, const DeployStart& start,
                                                          const Caller& who,
                                                          const std::string& redeploy_of) {
  const std::string artifact_id = start.artifact.str();
  DROVER_ASSIGN(auto artifact, store_->artifact(artifact_id));
  if (!artifact) {
    return make_error(
        Errc::not_found,
        "artifact_id " + artifact_id +
            " is not registered: push it into the origin's store (drover artifact push), "
            "whose feed registers it");
  }
  if (artifact->service != p.service) {
    return make_error(Errc::invalid_argument, "artifact_id " + artifact_id + " is of service '" +
                                                  artifact->service + "', pipeline '" + p.id +
                                                  "' deploys '" + p.service + "'");
  }
  // Every run enters every environment through its gate; naming an env
  // starts the run there (earlier ones are skipped), gate included.
  const std::size_t first = start.env ? env_index(p, *start.env) : 0;
  if (first == std::string::npos) {
    return make_error(Errc::invalid_argument,
                      "env '" + *start.env + "' is not an environment of pipeline '" + p.id + "'");
  }
  if (const RoleNeed need = role_to_start_in(p, start);
      !start.flag && !allows(who.role, need.role)) {
    return make_error(Errc::refused, role_refusal(need, who));
  }
  // Runs wait for their artifact, their turn or a gate; a bounded number of
  // them per service keeps each tick's work bounded.
  DROVER_ASSIGN(auto active, store_->active_deploys(p.service));
  if (active.size() >= kMaxActiveRunsPerService) {
    return make_error(Errc::refused,
                      "service '" + p.service + "' has " + std::to_string(active.size()) +
                          " runs not finished (the most there may be), the oldest '" +
                          active.front().id + "'; let them end, or roll back or supersede them");
  }
  const std::string env_name = p.environments[first].name;
  const std::string git_sha = start.git_sha ? *start.git_sha : artifact->git_sha;

  Pipeline snapshot = p;
  if (start.strategy_override) {
    // The override replaces the strategy of every environment of this run.
    snapshot.strategy = *start.strategy_override;
    for (auto& s : snapshot.settings) s.strategy = *start.strategy_override;
    for (auto& e : snapshot.environments) {
      if (e.strategy) e.strategy = strategy_to_json(*start.strategy_override);
    }
  }
  DROVER_ASSIGN(RunPlan plan, run_plan(snapshot));
  DeployRequest request;
  request.pipeline_id = p.id;
  request.service = p.service;
  request.artifact = artifact_id;
  request.first_env = first;
  if (p.format == 1) {
    // A version-1 deploy goes through the one env it names.
    plan.envs = {plan.envs[first]};
    request.first_env = 0;
  }
  request.plan = std::move(plan);
  request.who = who.name;
  request.person = who.person.empty() ? who.name : who.person;
  request.git_sha = git_sha;
  request.redeploy_of = redeploy_of;
  if (start.flag) {
    request.flag = start.flag->first;
    request.flag_percent = start.flag->second;
    request.flag_before = start.flag_before;
  }
  request.config_snapshot =
      encode_config_snapshot(snapshot, env_name, artifact_id, git_sha, request.person, redeploy_of);
  return ComposedRun{std::move(request), env_name, git_sha};
}

Result<DeployView> Coordinator::deploy_view(const std::string& id) {
  DROVER_ASSIGN(auto d, store_->deploy(id));
  if (!d) return make_error(Errc::not_found, "no deploy '" + id + "'");
  DeployView out;
  out.deploy = std::move(*d);
  DROVER_ASSIGN(auto snap, store_->deploy_config(id));
  if (snap) {
    out.config = decode_config_snapshot(*snap);
    out.config_hash = ContentId::of(*snap).str();
  }
  DROVER_ASSIGN(out.fleet, store_->fleet(out.deploy.service, out.deploy.created_ms));
  out.analysis = analysis_->of(id);
  return out;
}

Result<std::string> Coordinator::snapshot(const std::string& id) {
  DROVER_ASSIGN(auto d, store_->deploy(id));
  if (!d) return make_error(Errc::not_found, "no deploy '" + id + "'");
  DROVER_ASSIGN(auto snap, store_->deploy_config(id));
  if (!snap) return make_error(Errc::not_found, "deploy '" + id + "' has no config snapshot");
  return *snap;
}

Result<DeployHistory> Coordinator::history(const std::string& id) {
  DROVER_ASSIGN(auto d, store_->deploy(id));
  if (!d) return make_error(Errc::not_found, "no deploy '" + id + "'");
  DeployHistory out;
  out.deploy = std::move(*d);
  DROVER_ASSIGN(auto snap, store_->deploy_config(id));
  if (snap) {
    out.snapshot = *snap;
    out.config_hash = ContentId::of(*snap).str();
  }
  // The service's records from the deploy's creation to its end, through the
  // time index; at most 16 runs of a service overlap, so few are not its own.
  AuditQuery q;
  q.service = out.deploy.service;
  q.since_ms = out.deploy.created_ms;
  // A record is stamped when its step was decided (a tick's clock reading,
  // a person's act when it arrived), which may trail the time the deploy
  // record carries by a tick: a minute past the end takes in every record.
  if (out.deploy.completed_ms > 0) q.until_ms = out.deploy.completed_ms + 60'000;
  q.limit = 100'000;
  DROVER_ASSIGN(auto records, store_->audit(q));
  for (auto& r : records) {
    if (r.deploy_id == id) out.records.push_back(std::move(r));
  }
  return out;
}

namespace {

// The pipeline a redeploy runs: the current one (its environments, waves,
// gates, freeze windows, timeouts), with the strategy and health checks of
// the snapshot, per environment where the snapshot had that environment.
Result<Pipeline> redeploy_pipeline(const Pipeline& current, const std::string& snapshot_bytes) {
  const json snap = json::parse(snapshot_bytes, nullptr, false);
  if (!snap.is_object() || !snap.contains("pipeline") || !snap["pipeline"].is_object()) {
    return make_error(Errc::corrupt, "the config snapshot holds no pipeline");
  }
  const json& was = snap["pipeline"];
  json now = pipeline_to_json(current);
  for (const char* field : {"strategy", "health_checks"}) {
    if (was.contains(field)) now[field] = was[field];
  }
  if (now.contains("environments")) {
    for (json& e : now["environments"]) {
      const json* before = nullptr;
      if (was.contains("environments")) {
        for (const json& w : was["environments"]) {
          if (w.value("name", "") == e.value("name", "")) before = &w;
        }
      }
      for (const char* field : {"strategy", "health_checks"}) {
        if (before != nullptr && before->contains(field)) {
          e[field] = (*before)[field];
        } else {
          e.erase(field);  // the snapshot's pipeline-wide one applies
        }
      }
    }
  }
  DROVER_ASSIGN(Pipeline p, decode_pipeline_record(now.dump()));
  return p;
}

}  // namespace

Result<DeployStarted> Coordinator::redeploy(const std::string& id,
                                            const std::optional<std::string>& env,
                                            const Caller& who) {
  DROVER_ASSIGN(auto d, store_->deploy(id));
  if (!d) return make_error(Errc::not_found, "no deploy '" + id + "'");
  DROVER_ASSIGN(auto snap, store_->deploy_config(id));
  if (!snap) {
    return make_error(Errc::refused, "deploy '" + id + "' has no config snapshot to reproduce");
  }
  DROVER_ASSIGN(Pipeline current, load_pipeline(d->pipeline_id));
  auto p = redeploy_pipeline(current, *snap);
  if (!p.ok()) return p.error().context("redeploy of '" + id + "'");
  const DeployConfig was = decode_config_snapshot(*snap);
  DeployStart start;
  start.pipeline_id = current.id;
  DROVER_ASSIGN(start.artifact, ContentId::parse(d->artifact));
  start.env = env;
  if (!was.git_sha.empty()) start.git_sha = was.git_sha;
  // Refusals in the order a plain start gives them: the env, the env's role.
  if (start.env && env_index(*p, *start.env) == std::string::npos) {
    return make_error(Errc::invalid_argument,
                      "env '" + *start.env + "' is not an environment of pipeline '" + p->id + "'");
  }
  if (const RoleNeed need = role_to_start_in(*p, start); !allows(who.role, need.role)) {
    return make_error(Errc::refused, role_refusal(need, who));
  }
  // The snapshot's strategy and checks where they are not today's (an
  // approver's strategy_override, thresholds loosened since): only an
  // approver may bring them back, as only an approver may start a run with
  // an override.
  if (pipeline_to_json(*p) != pipeline_to_json(current) && !allows(who.role, Role::approver)) {
    return make_error(Errc::refused,
                      role_refusal({Role::approver, "deploy '" + id +
                                                        "' ran with a strategy or health checks "
                                                        "that differ from pipeline '" +
                                                        current.id + "' today"},
                                   who));
  }
  return start_run(std::move(*p), start, who, id);
}

Result<std::vector<DeployRecord>> Coordinator::deploys(const std::string& service,
                                                       std::size_t limit) {
  return store_->recent_deploys({service, ""}, limit);
}

namespace {
Actor actor_of(const Caller& who) {
  return {who.name, who.person.empty() ? who.name : who.person};
}
}  // namespace

Result<DeployRecord> Coordinator::approve(const std::string& id, const std::string& comment,
                                          const Caller& who) {
  std::lock_guard lock(orchestrator_mu_);
  DROVER_TRY(not_in_release(id, "approve"));
  DROVER_TRY(orchestrator_->approve(id, actor_of(who), comment));
  return orchestrator_->get(id);
}

Result<DeployRecord> Coordinator::reject(const std::string& id, const std::string& reason,
                                         const Caller& who) {
  std::lock_guard lock(orchestrator_mu_);
  DROVER_TRY(not_in_release(id, "reject"));
  DROVER_TRY(orchestrator_->reject(id, actor_of(who), reason));
  return orchestrator_->get(id);
}

Result<DeployRecord> Coordinator::override_freeze(const std::string& id, const std::string& reason,
                                                  const Caller& who) {
  std::lock_guard lock(orchestrator_mu_);
  DROVER_TRY(orchestrator_->override_freeze(id, actor_of(who), reason));
  return orchestrator_->get(id);
}

Result<DeployRecord> Coordinator::pause(const std::string& id, const Caller& who) {
  std::lock_guard lock(orchestrator_mu_);
  DROVER_TRY(orchestrator_->pause(id, actor_of(who)));
  return orchestrator_->get(id);
}

Result<DeployRecord> Coordinator::resume(const std::string& id, const Caller& who) {
  std::lock_guard lock(orchestrator_mu_);
  DROVER_TRY(orchestrator_->resume(id, actor_of(who)));
  return orchestrator_->get(id);
}

Result<DeployRecord> Coordinator::rollback(const std::string& id,
                                           const std::optional<std::string>& reason,
                                           const Caller& who) {
  std::lock_guard lock(orchestrator_mu_);
  DROVER_TRY(orchestrator_->rollback(
      id, actor_of(who),
      reason ? "rollback by " + who.name + ": " + *reason : "rollback by " + who.name));
  return orchestrator_->get(id);
}

// ---- artifacts ----

Result<ArtifactRecord> Coordinator::register_artifact(const ContentId& id, const Caller& who) {
  return artifacts_->register_from_origin(id, who.name);
}

Status Coordinator::follow_feed_once(int wait_s) {
  return artifacts_->follow_feed_once(wait_s);
}

Result<ArtifactRecord> Coordinator::artifact(const std::string& id) {
  DROVER_ASSIGN(auto a, store_->artifact(id));
  if (!a) return make_error(Errc::not_found, "no artifact '" + id + "'");
  return *a;
}

Result<std::vector<ArtifactRecord>> Coordinator::artifacts(const std::string& service) {
  DROVER_ASSIGN(auto all, store_->artifacts());
  std::vector<ArtifactRecord> out;
  for (auto& a : all) {
    if (service.empty() || a.service == service) out.push_back(std::move(a));
  }
  std::sort(out.begin(), out.end(), [](const ArtifactRecord& a, const ArtifactRecord& b) {
    return a.registered_ms > b.registered_ms;
  });
  return out;
}

// ---- hosts ----

Result<std::vector<HostView>> Coordinator::hosts() {
  DROVER_ASSIGN(auto all, store_->hosts());
  std::map<std::string, CoordinatorStore::Fleet> fleets;
  std::vector<HostView> out;
  constexpr std::int64_t kRecentMs = 5 * 60 * 1000;
  // service -> host -> its newest sample in the window
  std::map<std::string, std::map<std::string, CoordinatorStore::FleetSample>> newest;
  for (auto& h : all) {
    HostView v;
    for (const auto& s : h.services) {
      if (!fleets.count(s)) {
        DROVER_ASSIGN(fleets[s], store_->fleet(s, now_ms() - kRecentMs));
        auto& by_host = newest[s];
        for (const auto& sample : fleets[s].samples) {
          if (sample.other) continue;
          auto it = by_host.find(sample.host);
          if (it == by_host.end() || it->second.at_ms < sample.at_ms) by_host[sample.host] = sample;
        }
      }
      const auto& r = fleets[s].running;
      v.running[s] = r.count(h.host) ? r.at(h.host) : "";
      if (auto it = newest[s].find(h.host); it != newest[s].end()) v.health[s] = it->second;
    }
    v.host = std::move(h);
    out.push_back(std::move(v));
  }
  return out;
}

Result<bool> Coordinator::host_enrolled(const std::string& host) {
  DROVER_ASSIGN(auto h, store_->host(host));
  return h.has_value();
}

Status Coordinator::reset_host(const std::string& host, const Caller& who) {
  // Never decodes the record: an unreadable one must be resettable too.
  DROVER_TRY(store_->reset_host(host));
  return audit_admin(*store_, now_ms(), who.name, "host.reset", {{"host", host}});
}

// ---- the health webhook ----

Status Coordinator::check_webhook_headers(const WebhookDelivery& d) {
  if (options_.webhook_secret.empty()) {
    return make_error(Errc::refused, "the health webhook is off: no webhook secret is configured");
  }
  if (d.timestamp.empty() || d.timestamp.size() > 12 ||
      d.timestamp.find_first_not_of("0123456789") != std::string::npos) {
    return make_error(Errc::crypto, "X-Drover-Timestamp must be unix seconds");
  }
  if (auto st = validate_name(d.delivery, "X-Drover-Delivery"); !st.ok()) {
    return make_error(Errc::crypto, st.error().message);
  }
  if (d.signature.size() != 71 || d.signature.rfind("sha256=", 0) != 0) {
    return make_error(Errc::crypto, "X-Drover-Signature must be sha256=<64 hex digits>");
  }
  return Ok{};
}

Status Coordinator::check_webhook(const std::string& body, const WebhookDelivery& d) {
  DROVER_TRY(check_webhook_headers(d));
  const std::int64_t at = std::stoll(d.timestamp);
  const std::string signed_text =
      "drover-webhook-v2\n" + d.timestamp + "\n" + d.delivery + "\n" + body;
  const std::string expected =
      "sha256=" + to_hex(sign::hmac_sha256(options_.webhook_secret, signed_text));
  // Compared in constant time: no early exit to time.
  unsigned char diff = d.signature.size() == expected.size() ? 0 : 1;
  for (std::size_t i = 0; i < std::min(d.signature.size(), expected.size()); ++i) {
    diff |= static_cast<unsigned char>(d.signature[i] ^ expected[i]);
  }
  if (diff != 0) {
    return make_error(Errc::crypto,
                      "X-Drover-Signature does not match: sign \"drover-webhook-v2\" LF "
                      "timestamp LF delivery LF body with HMAC-SHA256");
  }
  // Checked after the signature, so a forger learns nothing from it.
  const std::int64_t now_s = now_ms() / 1000;
  if (at < now_s - kWebhookWindowS || at > now_s + kWebhookWindowS) {
    return make_error(Errc::crypto, "X-Drover-Timestamp is " + std::to_string(at - now_s) +
                                        " s from the coordinator's clock; at most 300 allowed");
  }
  return Ok{};
}

Result<std::size_t> Coordinator::add_health_samples(const std::string& service,
                                                    const std::vector<ExternalSample>& samples,
                                                    const std::string& delivery) {
  DROVER_ASSIGN(auto fleet, store_->fleet(service, now_ms()));
  std::vector<CoordinatorStore::FleetSample> out;
  for (const auto& s : samples) {
    CoordinatorStore::FleetSample fs;
    fs.host = s.host;
    if (s.release) {
      fs.release = *s.release;
    } else if (fleet.running.count(s.host)) {
      fs.release = fleet.running.at(s.host);
    }
    fs.at_ms = s.at_ms;
    fs.error_rate = s.error_rate;
    fs.p99_ms = s.p99_ms;
    fs.saturation = s.saturation;
    fs.ok = s.ok;
    out.push_back(std::move(fs));
  }
  // Deliveries are remembered longer than any timestamp received with them
  // stays valid (received up to 300 s before it, valid up to 300 s after,
  // compared in whole seconds: 2 windows and 2 s), so an older replay is
  // refused by its timestamp.
  const std::int64_t now = now_ms();
  DROVER_ASSIGN(bool fresh, store_->add_webhook_samples(service, out, delivery, now,
                                                        now - (2 * kWebhookWindowS + 2) * 1000));
  if (!fresh) {
    return make_error(Errc::already_exists,
                      "delivery '" + delivery + "' was received before: a replay");
  }
  return out.size();
}

// ---- audit ----

// ---- the SCM webhook ----

namespace {

constexpr const char* kScmSource = "scm/source/";
constexpr const char* kScmLogin = "scm/login/";
constexpr const char* kScmDelivery = "scm/delivery/";
constexpr const char* kScmCommit = "scm/commit/";
constexpr const char* kScmTrigger = "scm/trigger/";

// The SCM caller: starts runs as the person the login maps to.
Caller scm_caller(const std::string& person) {
  return {"scm", Role::deployer, person};
}

}  // namespace

Status Coordinator::put_scm_source(const std::string& repository, const std::string& secret,
                                   const Caller& who) {
  json probe = {{"repository", {{"full_name", repository}}}};
  if (auto ok = scm::repository_of(probe.dump()); !ok.ok()) {
    return make_error(Errc::invalid_argument,
                      "repository must be OWNER/NAME of letters, digits, '.', '_', '-'");
  }
  if (secret.size() < 16 || secret.size() > 256) {
    return make_error(Errc::invalid_argument, "secret must be 16 to 256 bytes");
  }
  DROVER_TRY(store_->put_setting(
      kScmSource + repository,
      json{{"secret", secret}, {"created_ms", now_ms()}, {"created_by", who.name}}.dump()));
  return audit_admin(*store_, now_ms(), who.name, "scm.source_set", {{"repository", repository}});
}

Result<std::vector<Coordinator::ScmSource>> Coordinator::scm_sources() {
  DROVER_ASSIGN(auto all, store_->settings_under(kScmSource));
  std::vector<ScmSource> out;
  for (const auto& [key, value] : all) {
    const json j = json::parse(value, nullptr, false);
    out.push_back({key.substr(std::string(kScmSource).size()),
                   j.is_object() ? j.value("created_by", "") : "",
                   j.is_object() ? j.value("created_ms", std::int64_t{0}) : 0});
  }
  return out;
}

Status Coordinator::put_scm_login(const std::string& login, const std::string& person,
                                  const Caller& who) {
  DROVER_TRY(validate_name(login, "login"));
  DROVER_TRY(validate_name(person, "person"));
  DROVER_TRY(store_->put_setting(kScmLogin + login, person));
  return audit_admin(*store_, now_ms(), who.name, "scm.login_mapped",
                     {{"login", login}, {"person", person}});
}

// A trigger (what scm/trigger/<pipeline> holds) resolved against the
// artifacts registered now: one names the commit (the run starts and the
// trigger ends), several (refused, ended), none (it keeps waiting).
Result<Coordinator::ScmTrigger> Coordinator::fire_trigger(const Pipeline& p,
                                                          const nlohmann::json& trigger) {
  const std::string key = kScmTrigger + p.id;
  const std::string after = trigger.value("commit", "");
  // One thread at a time (the push's answer and the driver's tick both fire
  // triggers), and only the trigger still waiting: another thread may have
  // started it, or a newer push replaced it, since it was read.
  std::lock_guard lock(scm_mu_);
  ScmTrigger t{p.id, "waiting"};
  DROVER_ASSIGN(auto held, store_->setting(key));
  const bool current = held && json::parse(*held, nullptr, false) == trigger;
  // A run of this commit already started by this trigger (another thread,
  // or the coordinator stopped between the start and the trigger's end).
  DROVER_ASSIGN(auto recent, store_->recent_deploys({"", p.id}, kMaxActiveRunsPerService));
  for (const auto& d : recent) {
    if (d.created_ms < trigger.value("pushed_ms", std::int64_t{0})) continue;
    DROVER_ASSIGN(auto snap, store_->deploy_config(d.id));
    if (snap && decode_config_snapshot(*snap).git_sha == after) {
      if (current) DROVER_TRY(store_->erase_setting(key));
      t.state = "started";
      t.deploy_id = d.id;
      return t;
    }
  }
  if (!current) {
    t.state = "ended";  // replaced by a newer push, or ended elsewhere
    return t;
  }
  DROVER_ASSIGN(auto records, store_->artifacts());
  std::vector<scm::ArtifactSha> mine;
  for (const auto& a : records) {
    if (a.service == p.service) mine.push_back({a.artifact_id, a.git_sha});
  }
  const auto found = scm::matching_artifacts(mine, after);
  if (found.empty()) return t;
  if (found.size() > 1) {
    t.state = "ambiguous";
    json detail = trigger;
    for (const auto& [id, sha] : found) {
      t.artifacts.push_back(id);
      detail["artifacts"].push_back(id);
    }
    DROVER_TRY(store_->erase_setting(key));
    DROVER_TRY(audit_admin(*store_, now_ms(), "scm", "scm.ambiguous", detail));
    return t;
  }
  DeployStart start;
  start.pipeline_id = p.id;
  DROVER_ASSIGN(start.artifact, ContentId::parse(found.front().first));
  start.git_sha = after;
  DROVER_ASSIGN(auto started,
                start_run(p, start, scm_caller(trigger.value("person", "scm:unknown")), ""));
  DROVER_TRY(store_->erase_setting(key));
  json detail = trigger;
  detail["deploy_id"] = started.deploy.id;
  detail["artifact"] = found.front().first;
  DROVER_TRY(audit_admin(*store_, now_ms(), "scm", "scm.started", detail));
  t.state = "started";
  t.deploy_id = started.deploy.id;
  return t;
}

Result<Coordinator::ScmOutcome> Coordinator::scm_push(const std::string& body,
                                                      const ScmDelivery& d) {
  if (d.event == "ping") return ScmOutcome{"pong"};
  if (d.event.empty()) return make_error(Errc::crypto, "X-GitHub-Event is missing");
  if (d.event != "push") return ScmOutcome{"ignored"};
  if (d.signature.empty()) return make_error(Errc::crypto, "X-Hub-Signature-256 is missing");
  if (auto st = validate_name(d.delivery, "X-GitHub-Delivery"); !st.ok()) {
    return make_error(Errc::invalid_argument, st.error().message);
  }
  DROVER_ASSIGN(std::string repository, scm::repository_of(body));
  DROVER_ASSIGN(auto source, store_->setting(kScmSource + repository));
  const json src = source ? json::parse(*source, nullptr, false) : json();
  // One answer for an unknown repository and a wrong signature: an unsigned
  // caller learns nothing of which repositories are sources (the log says which).
  const std::string refusal =
      "X-Hub-Signature-256 does not verify: the repository is no SCM source, or the body is "
      "not signed with its secret";
  if (!src.is_object() || !src.contains("secret") || !src["secret"].is_string()) {
    log_.warn("coordinator.scm.refused",
              {{"repository", repository}, {"why", "no SCM source: an admin sets its secret"}});
    return make_error(Errc::crypto, refusal);
  }
  if (auto st = scm::check_signature(src["secret"].get<std::string>(), body, d.signature);
      !st.ok()) {
    log_.warn("coordinator.scm.refused", {{"repository", repository}, {"why", st.error().message}});
    return make_error(Errc::crypto, refusal);
  }
  DROVER_ASSIGN(scm::PushEvent e, scm::parse_push(body));
  DROVER_ASSIGN(auto mapped, store_->setting(kScmLogin + e.pusher));
  // An unmapped login is no person a token can hold: it can never approve.
  const std::string person = mapped ? *mapped : "scm:" + e.pusher;
  // The pipelines it triggers, and each one's trigger, written with the
  // push's once-only keys in one transaction: a coordinator that stops right
  // after never loses the push (the next tick fires what waits).
  std::vector<Pipeline> hit;
  std::vector<std::pair<std::string, std::string>> writes;
  std::vector<json> superseded;
  const std::int64_t now = now_ms();
  if (!e.deleted && !e.branch.empty()) {
    DROVER_ASSIGN(auto all, pipelines());
    for (auto& p : all) {
      // Version-2 pipelines only: a version-1 pipeline never opted in to
      // being started by a push.
      if (p.format != 2 || !scm::names_repository(p.source_repo, e) || p.branch != e.branch) {
        continue;
      }
      const json trigger = {{"pipeline", p.id},
                            {"service", p.service},
                            {"commit", e.after},
                            {"person", person},
                            {"delivery", d.delivery},
                            {"pushed_ms", now},
                            {"deadline_ms", now + options_.scm_wait_s * 1000}};
      DROVER_ASSIGN(auto earlier, store_->setting(kScmTrigger + p.id));
      if (earlier) {
        json s2 = trigger;
        const json was = json::parse(*earlier, nullptr, false);
        s2["superseded_commit"] = was.is_object() ? was.value("commit", "") : "";
        superseded.push_back(std::move(s2));
      }
      writes.emplace_back(kScmTrigger + p.id, trigger.dump());
      hit.push_back(std::move(p));
    }
  }
  DROVER_ASSIGN(
      auto seen,
      store_->note_push(kScmDelivery + d.delivery,
                        kScmCommit + e.repository + "\n" + e.ref + "\n" + e.after, now, writes));
  if (seen == CoordinatorStore::PushSeen::delivery) return ScmOutcome{"duplicate_delivery"};
  if (seen == CoordinatorStore::PushSeen::commit) return ScmOutcome{"duplicate_commit"};
  for (const auto& s2 : superseded) {
    DROVER_TRY(audit_admin(*store_, now, "scm", "scm.superseded", s2));
  }
  ScmOutcome out{"push"};
  for (std::size_t i = 0; i < hit.size(); ++i) {
    const json trigger = json::parse(writes[i].second);
    auto t = fire_trigger(hit[i], trigger);
    if (!t.ok()) {
      out.triggers.push_back({hit[i].id, "refused: " + t.error().message});
      continue;
    }
    if (t->state == "waiting") DROVER_TRY(audit_admin(*store_, now, "scm", "scm.waiting", trigger));
    out.triggers.push_back(std::move(*t));
  }
  return out;
}

void Coordinator::check_waiting_triggers() {
  auto waiting = store_->settings_under(kScmTrigger);
  if (!waiting.ok() || waiting->empty()) return;
  for (const auto& [key, value] : *waiting) {
    const json w = json::parse(value, nullptr, false);
    const std::string pipeline_id = key.substr(std::string(kScmTrigger).size());
    if (!w.is_object()) {
      (void)store_->erase_setting(key);
      continue;
    }
    if (now_ms() > w.value("deadline_ms", std::int64_t{0})) {
      std::lock_guard lock(scm_mu_);
      auto held = store_->setting(key);  // still this one, under the lock
      if (held.ok() && *held && *held == value) {
        (void)store_->erase_setting(key);
        (void)audit_admin(*store_, now_ms(), "scm", "scm.expired", w);
      }
      continue;
    }
    auto p = load_pipeline(pipeline_id);
    if (!p.ok()) continue;
    if (auto t = fire_trigger(*p, w); !t.ok()) {
      log_.warn("coordinator.scm.trigger_failed",
                {{"pipeline", pipeline_id}, {"error", t.error().message}});
    }
  }
}

// ---- notifications ----

Result<std::optional<notify::EventContext>> Coordinator::notify_context(const AuditRecord& r) {
  notify::EventContext c;
  if (r.what.starts_with("scm.")) {
    const json detail = json::parse(r.detail, nullptr, false);
    if (!detail.is_object() || !detail.contains("pipeline") || !detail["pipeline"].is_string()) {
      return std::optional<notify::EventContext>{};
    }
    c.pipeline = detail["pipeline"].get<std::string>();
    return std::optional<notify::EventContext>{std::move(c)};
  }
  if (r.deploy_id.empty()) return std::optional<notify::EventContext>{};
  DROVER_ASSIGN(auto d, store_->deploy(r.deploy_id));
  if (!d) return std::optional<notify::EventContext>{};
  c.pipeline = d->pipeline_id;
  if (r.what == "gate.waiting") {
    // Whoever holds a token that may approve, but never the run's starter.
    DROVER_ASSIGN(auto listed, tokens_->list());
    std::vector<std::string> persons;
    for (const auto& t : listed) {
      const std::string person = t.person.empty() ? t.name : t.person;
      if (allows(t.role, Role::approver) && person != d->started_by) persons.push_back(person);
    }
    std::sort(persons.begin(), persons.end());
    persons.erase(std::unique(persons.begin(), persons.end()), persons.end());
    c.may_approve = std::move(persons);
  }
  return std::optional<notify::EventContext>{std::move(c)};
}

Result<std::size_t> Coordinator::notify_once() {
  std::lock_guard lock(notify_mu_);
  // Pages of records until the log is read to its end (bounded: records
  // keep coming while a busy coordinator runs; the next pass goes on).
  for (int page = 0; page < 64; ++page) {
    DROVER_TRY(notifier_->collect());
    if (notifier_->caught_up()) break;
  }
  return notifier_->deliver();
}

Status Coordinator::put_notify_allow(const std::vector<std::string>& entries, const Caller& who) {
  if (entries.size() > notify::kMaxAllowEntries) {
    return make_error(Errc::invalid_argument,
                      "allow: at most " + std::to_string(notify::kMaxAllowEntries) + " entries");
  }
  for (const auto& e : entries) DROVER_TRY(notify::parse_allow_entry(e));
  const json record = {{"allow", entries}, {"set_by", who.name}, {"set_ms", now_ms()}};
  DROVER_TRY(store_->put_setting(std::string(notify::kAllowKey), *canon::encode(record)));
  return audit_admin(*store_, now_ms(), who.name, "notify.allow_set", {{"allow", entries}});
}

Result<Coordinator::NotifyAllow> Coordinator::notify_allow() {
  NotifyAllow out;
  DROVER_ASSIGN(auto bytes, store_->setting(std::string(notify::kAllowKey)));
  if (!bytes) return out;
  const json j = json::parse(*bytes, nullptr, false);
  if (!j.is_object()) return make_error(Errc::corrupt, "the notification allow-list is unreadable");
  out.allow = j.value("allow", std::vector<std::string>{});
  out.set_by = j.value("set_by", "");
  out.set_ms = j.value("set_ms", std::int64_t{0});
  return out;
}

namespace {

// A destination is its creator's: another person changes or removes it only
// as an approver (a deployer cannot quietly take a team's gate notices).
Status may_change(const notify::Destination& d, const Caller& who) {
  if (d.created_by == actor_of(who).person || allows(who.role, Role::approver)) return Ok{};
  return make_error(
      Errc::refused,
      role_refusal({Role::approver, "notification destination '" + d.name + "' of pipeline '" +
                                        d.pipeline + "' is " + d.created_by + "'s"},
                   who));
}

// The settings keys of a destination's pending deliveries.
Result<std::vector<std::string>> pending_keys(CoordinatorStore& store, const std::string& pipeline,
                                              const std::string& name) {
  DROVER_ASSIGN(auto pending, store.settings_under(notify::out_prefix(pipeline, name)));
  std::vector<std::string> keys;
  for (auto& entry : pending) keys.push_back(std::move(entry.first));
  return keys;
}

AuditRecord notify_record(std::int64_t now_ms, const Caller& who, const std::string& what,
                          const json& detail) {
  AuditRecord r;
  r.at_ms = now_ms;
  r.who = who.name;
  r.what = what;
  r.detail = *canon::encode(detail);
  return r;
}

}  // namespace

Result<Coordinator::SavedDestination> Coordinator::put_destination(notify::Destination d,
                                                                   const Caller& who) {
  DROVER_TRY(load_pipeline(d.pipeline));
  if (d.events.empty()) d.events = notify::kinds();
  DROVER_TRY(notify::check_destination(d));
  DROVER_ASSIGN(auto allow, notify::read_allow(*store_));
  if (!notify::allowed(d.url, allow)) {
    return make_error(Errc::refused,
                      "url: " + notify::origin_of(d.url) +
                          " is not on the notification allow-list (an admin sets it: PUT "
                          "/notifications/allow)");
  }
  DROVER_ASSIGN(auto existing, notify::read_destinations(*store_, d.pipeline));
  const auto was = std::find_if(existing.begin(), existing.end(),
                                [&](const notify::Destination& e) { return e.name == d.name; });
  const bool known = was != existing.end();
  if (known) DROVER_TRY(may_change(*was, who));
  if (!known && existing.size() >= notify::kMaxDestinationsPerPipeline) {
    return make_error(Errc::refused, "pipeline '" + d.pipeline + "' has " +
                                         std::to_string(notify::kMaxDestinationsPerPipeline) +
                                         " notification destinations already: remove one first");
  }
  d.created_ms = now_ms();
  d.created_by = actor_of(who).person;
  // A replaced destination's pending deliveries were rendered for the old
  // one: they go with it, in the same transaction.
  std::vector<std::string> erases;
  if (known) {
    DROVER_ASSIGN(erases, pending_keys(*store_, d.pipeline, d.name));
  }
  json detail = {{"pipeline", d.pipeline},
                 {"name", d.name},
                 {"origin", notify::origin_of(d.url)},
                 {"url_sha256", ContentId::of(d.url).hex()},
                 {"format", d.format},
                 {"events", d.events}};
  if (known) {
    detail["replaced_url_sha256"] = ContentId::of(was->url).hex();
    detail["replaced_created_by"] = was->created_by;
    detail["dropped"] = erases.size();
  }
  DROVER_TRY(store_->write_settings(
      {{notify::dest_key(d.pipeline, d.name), notify::encode_destination(d)}}, erases,
      {notify_record(now_ms(), who, "notify.destination_set", detail)}));
  return SavedDestination{std::move(d), !known};
}

Result<std::vector<notify::Destination>> Coordinator::destinations(const std::string& pipeline_id) {
  DROVER_TRY(load_pipeline(pipeline_id));
  return notify::read_destinations(*store_, pipeline_id);
}

Status Coordinator::remove_destination(const std::string& pipeline_id, const std::string& name,
                                       const Caller& who) {
  DROVER_TRY(validate_name(name, "name"));
  DROVER_TRY(load_pipeline(pipeline_id));
  const std::string key = notify::dest_key(pipeline_id, name);
  DROVER_ASSIGN(auto held, store_->setting(key));
  if (!held) {
    return make_error(Errc::not_found, "pipeline '" + pipeline_id +
                                           "' has no notification destination '" + name + "'");
  }
  DROVER_ASSIGN(notify::Destination d, notify::decode_destination(*held, pipeline_id, name));
  DROVER_TRY(may_change(d, who));
  DROVER_ASSIGN(std::vector<std::string> erases, pending_keys(*store_, pipeline_id, name));
  const json detail = {{"pipeline", pipeline_id}, {"name", name}, {"dropped", erases.size()}};
  erases.push_back(key);
  // The destination, what it had pending and the record of it, together.
  return store_->write_settings(
      {}, erases, {notify_record(now_ms(), who, "notify.destination_removed", detail)});
}

Result<std::vector<notify::Pending>> Coordinator::notify_outbox() {
  return notify::read_outbox(*store_, notify::kMaxPendingPerDestination);
}

Result<std::vector<AuditRecord>> Coordinator::audit(const AuditQuery& q) {
  return store_->audit(q);
}

Result<AuditCheck> Coordinator::audit_verify() {
  return store_->verify_audit();
}

Result<AuditRecord> Coordinator::running_at(const std::string& service, const std::string& env,
                                            std::int64_t at_ms) {
  DROVER_ASSIGN(auto r, store_->running_at(service, env, at_ms));
  if (!r) {
    return make_error(Errc::not_found, "no release of service '" + service + "'" +
                                           (env.empty() ? "" : " in env '" + env + "'") +
                                           " is recorded at or before that time");
  }
  return *r;
}

Result<CoordinatorStore::HostRelease> Coordinator::host_running_at(const std::string& service,
                                                                   const std::string& host,
                                                                   std::int64_t at_ms) {
  DROVER_TRY(validate_name(service, "service"));
  DROVER_TRY(validate_name(host, "host"));
  DROVER_ASSIGN(auto r, store_->host_release_at(service, host, at_ms));
  if (!r) {
    return make_error(Errc::not_found, "host '" + host + "' reported no release of service '" +
                                           service + "' at or before that time");
  }
  return *r;
}

Result<std::vector<CoordinatorStore::HostRelease>> Coordinator::host_releases(
    const std::string& service, const std::string& host, std::int64_t since_ms) {
  DROVER_TRY(validate_name(service, "service"));
  DROVER_TRY(validate_name(host, "host"));
  return store_->host_releases(service, host, since_ms);
}

// ---- tokens ----

Result<CreatedToken> Coordinator::create_token(const std::string& name, Role role,
                                               const std::optional<std::string>& person,
                                               const Caller& who) {
  DROVER_ASSIGN(std::string token, tokens_->create(name, role, now_ms() / 1000, random_, person));
  const std::string holder = person.value_or(name);
  DROVER_TRY(audit_admin(*store_, now_ms(), who.name, "token.created",
                         {{"name", name}, {"role", role_name(role)}, {"person", holder}}));
  return CreatedToken{name, role, token, holder};
}

Result<std::vector<TokenStore::Listed>> Coordinator::list_tokens() {
  return tokens_->list();
}

Status Coordinator::revoke_token(const std::string& name, const Caller& who) {
  DROVER_TRY(tokens_->revoke(name));
  return audit_admin(*store_, now_ms(), who.name, "token.revoked", {{"name", name}});
}

Result<CoordinatorStore::JoinToken> Coordinator::create_join_token(
    const CoordinatorStore::JoinTokenSpec& spec, const Caller& who) {
  DROVER_ASSIGN(auto t, store_->create_join_token(who.name, now_ms() / 1000, random_, spec));
  DROVER_TRY(audit_admin(*store_, now_ms(), who.name, "join_token.created",
                         {{"id", t.id},
                          {"expires_at", t.expires_at},
                          {"uses", t.uses_left},
                          {"regions", t.regions},
                          {"services", t.services}}));
  return t;
}

Result<std::vector<CoordinatorStore::JoinToken>> Coordinator::join_tokens() {
  return store_->join_tokens();
}

Status Coordinator::revoke_join_token(const std::string& token, const Caller& who) {
  DROVER_TRY(store_->revoke_join_token(token));
  return audit_admin(*store_, now_ms(), who.name, "join_token.revoked",
                     {{"id", "jt_" + ContentId::of(token).hex().substr(0, 12)}});
}

Status Coordinator::revoke_join_token_id(const std::string& id, const Caller& who) {
  DROVER_TRY(store_->revoke_join_token_id(id));
  return audit_admin(*store_, now_ms(), who.name, "join_token.revoked", {{"id", id}});
}

}  // namespace drover::coordinator
