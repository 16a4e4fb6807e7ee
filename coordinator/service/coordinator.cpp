#include "coordinator/service/coordinator.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "coordinator/orchestrator/deploy_codec.hpp"
#include "core/base/hex.hpp"
#include "core/canon/base64.hpp"
#include "core/canon/canonical_json.hpp"
#include "core/canon/json_fields.hpp"
#include "core/format/layer_torrent.hpp"
#include "core/format/manifest.hpp"
#include "core/http/http.hpp"
#include "core/sign/secret_box.hpp"

namespace drover::coordinator {
namespace {

using canon::Fields;
using nlohmann::json;

constexpr std::size_t kMaxWebhookSamples = 1000;
constexpr std::int64_t kWebhookSkewMs = 5 * 60 * 1000;

json parse_canonical(const std::string& bytes) {
  return json::parse(bytes, nullptr, false);
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
  if (!options.online) {
    return make_error(Errc::invalid_argument, "the coordinator needs its online key");
  }
  std::unique_ptr<Coordinator> c(new Coordinator(std::move(options), clock, random, log));
  Coordinator* self = c.get();
  DROVER_ASSIGN(c->store_, CoordinatorStore::open(c->options_.data_dir));
  DROVER_ASSIGN(auto token_table, c->store_->env().table("api_tokens"));
  c->tokens_ = std::make_unique<TokenStore>(c->store_->env(), token_table);

  if (!c->options_.tracker_listen.empty()) {
    DROVER_ASSIGN(auto hp, http::parse_listen(c->options_.tracker_listen));
    http::ServerOptions so;
    so.bind = hp.first;
    so.port = hp.second;
    mesh::TrackerOptions to;
    to.interval = c->options_.tracker_interval;
    to.expiry = 3 * to.interval;
    DROVER_ASSIGN(c->tracker_, mesh::TrackerService::start(so, to, clock, random, log));
    c->tracker_url_ = "http://" + hp.first + ":" + std::to_string(c->tracker_->port());
  } else {
    c->tracker_url_ = c->options_.tracker_url;
  }

  DROVER_ASSIGN(c->gateway_,
                AgentGateway::start(
                    c->options_.agents, *c->store_, *c->options_.online,
                    [self](const ContentId& id) { return self->manifest_of(id); }, {}, clock, log));
  c->issuer_ = std::make_unique<PlanIssuer>(*c->store_, *c->gateway_);
  c->orchestrator_ = std::make_unique<Orchestrator>(
      *c->store_,
      [self](const DeployRecord& d) {
        const DeployParams p = self->params_of(d);
        const bool ready = d.state == DeployState::pending ? self->artifact_ready(d) : true;
        return store_fleet_view(*self->store_, d, p.baseline_window_ms, ready);
      },
      [self](const DeployRecord& d, const std::string& artifact,
             const std::vector<std::string>& hosts) {
        PlanDefaults defaults;
        defaults.tracker = self->tracker_url_;
        defaults.validity_s = self->options_.plan_validity_s;
        return issue_plan(
            *self->issuer_, [self](const ContentId& id) { return self->manifest_of(id); }, defaults,
            d, artifact, hosts, unix_seconds(self->clock_.now()));
      },
      [self](const DeployRecord& d) { return self->params_of(d); }, clock, log);
  c->orchestrator_->on_commit([self](const std::vector<AuditRecord>& records) {
    for (const auto& r : records) self->after_commit(r.what);
  });
  {
    std::lock_guard lock(c->orchestrator_mu_);
    DROVER_TRY(c->orchestrator_->recover());
  }
  c->driver_ = std::thread([self] { self->drive(); });
  if (!c->options_.origin_feed.empty() && c->options_.follow_feed)
    c->feed_ = std::thread([self] { self->follow_feed(); });
  return c;
}

Coordinator::~Coordinator() {
  {
    std::lock_guard lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (driver_.joinable()) driver_.join();
  if (feed_.joinable()) feed_.join();
  gateway_.reset();
  tracker_.reset();
}

void Coordinator::after_commit(const std::string& what) {
  if (options_.crash_after.empty() || what != options_.crash_after) return;
  if (++crash_seen_ < options_.crash_count) return;
  log_.warn("coordinator.crash_point", {{"after", what}, {"count", crash_seen_}});
  ::kill(::getpid(), SIGKILL);
}

void Coordinator::drive() {
  std::int64_t last_prune = 0;
  std::unique_lock stop_lock(stop_mu_);
  while (!stopping_) {
    stop_lock.unlock();
    {
      std::lock_guard lock(orchestrator_mu_);
      auto t = orchestrator_->tick();
      if (!t.ok()) log_.error("coordinator.tick", {{"error", t.error().message}});
    }
    const std::int64_t now = now_ms();
    if (now - last_prune > 60'000) {
      last_prune = now;
      (void)store_->prune_samples(now - options_.sample_retention_s * 1000);
    }
    stop_lock.lock();
    stop_cv_.wait_for(stop_lock, options_.tick, [this] { return stopping_; });
  }
}

void Coordinator::follow_feed() {
  std::unique_lock stop_lock(stop_mu_);
  std::chrono::milliseconds backoff{500};
  while (!stopping_) {
    stop_lock.unlock();
    auto st = follow_feed_once(options_.feed_wait_s);
    if (!st.ok()) {
      log_.warn("coordinator.feed", {{"error", st.error().message},
                                     {"retry_ms", static_cast<std::int64_t>(backoff.count())}});
    }
    stop_lock.lock();
    if (st.ok()) {
      backoff = std::chrono::milliseconds(500);
    } else {
      // An origin that is down is asked again, less and less often (10 s at most).
      stop_cv_.wait_for(stop_lock, backoff, [this] { return stopping_; });
      backoff = std::min(backoff * 2, std::chrono::milliseconds(10'000));
    }
  }
}

Status Coordinator::follow_feed_once(int wait_s) {
  DROVER_ASSIGN(auto last, store_->setting("feed_seq"));
  const std::string after = last.value_or("0");
  DROVER_ASSIGN(auto r, http::request("GET",
                                      options_.origin_feed + "/v1/artifacts?after=" + after +
                                          "&wait=" + std::to_string(wait_s),
                                      "", std::chrono::seconds(wait_s + 10)));
  if (r.status != 200) {
    return make_error(Errc::io, "origin feed answered " + std::to_string(r.status));
  }
  json j = json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("artifacts") || !j["artifacts"].is_array()) {
    return make_error(Errc::corrupt, "origin feed answer is not an artifact list");
  }
  for (const auto& a : j["artifacts"]) {
    const std::string id = a.value("artifact_id", "");
    DROVER_ASSIGN(ContentId cid, ContentId::parse(id));
    DROVER_ASSIGN(auto known, store_->artifact(cid.str()));
    if (!known) {
      DROVER_ASSIGN(auto m,
                    http::request("GET", options_.origin_feed + "/v1/manifests/" + cid.hex(), "",
                                  std::chrono::seconds(30)));
      if (m.status != 200) {
        return make_error(Errc::io,
                          "origin feed: manifest " + id + ": status " + std::to_string(m.status));
      }
      DROVER_ASSIGN(auto rec, register_manifest(cid.str(), m.body, "feed", "system"));
      (void)rec;
    }
    DROVER_TRY(store_->put_setting("feed_seq", std::to_string(a.value("push_seq", 0))));
  }
  return Ok{};
}

Result<json> Coordinator::register_manifest(const std::string& id, const std::string& bytes,
                                            const std::string& source, const std::string& who) {
  DROVER_ASSIGN(ContentId cid, ContentId::parse(id));
  if (ContentId::of(bytes) != cid) {
    return make_error(Errc::corrupt,
                      "the manifest served for " + id + " hashes to " + ContentId::of(bytes).str());
  }
  DROVER_ASSIGN(format::Manifest m, format::decode_manifest(bytes));
  json rec = {{"artifact_id", cid.str()},
              {"service", m.service},
              {"git_sha", m.git_sha},
              {"size_bytes", m.stored_bytes()},
              {"tree_bytes", m.tree_bytes()},
              {"layers", m.layers.size()},
              {"meta", m.meta},
              {"registered_ms", now_ms()},
              {"registered_by", who},
              {"source", source}};
  DROVER_ASSIGN(bool fresh, store_->put_artifact(cid.str(), *canon::encode(rec), bytes));
  if (fresh) {
    log_.info("coordinator.artifact.registered",
              {{"artifact", cid.str()}, {"service", m.service}, {"source", source}});
    DROVER_TRY(audit_admin(who, "artifact.registered",
                           {{"artifact", cid.str()}, {"service", m.service}, {"source", source}}));
    return rec;
  }
  DROVER_ASSIGN(auto existing, store_->artifact(cid.str()));
  return parse_canonical(*existing);
}

Status Coordinator::audit_admin(const std::string& who, const std::string& what,
                                const json& detail) {
  AuditRecord r;
  r.at_ms = now_ms();
  r.who = who;
  r.what = what;
  if (detail.contains("service")) r.service = detail["service"].get<std::string>();
  if (detail.contains("artifact")) r.artifact = detail["artifact"].get<std::string>();
  r.detail = *canon::encode(detail);
  return store_->append_audit(r);
}

Result<std::string> Coordinator::manifest_of(const ContentId& id) {
  DROVER_ASSIGN(auto bytes, store_->manifest(id.str()));
  if (!bytes) return make_error(Errc::not_found, "artifact " + id.str() + " is not registered");
  return *bytes;
}

Result<Pipeline> Coordinator::load_pipeline(const std::string& id) {
  DROVER_ASSIGN(auto bytes, store_->pipeline(id));
  if (!bytes) return make_error(Errc::not_found, "no pipeline '" + id + "'");
  return parse_pipeline_record(*bytes);
}

Coordinator::DeploySettings Coordinator::settings_of(const DeployRecord& d) {
  std::lock_guard lock(cache_mu_);
  auto it = settings_.find(d.id);
  if (it != settings_.end()) return it->second;
  DeploySettings out;  // defaults, should the snapshot be unreadable
  auto snap = store_->setting("deploy_config/" + d.id);
  if (snap.ok() && *snap) {
    json j = parse_canonical(**snap);
    if (j.is_object() && j.contains("pipeline")) {
      auto pl = parse_pipeline_record(j["pipeline"].dump());
      if (pl.ok()) {
        out.params = pl->params;
        out.artifact_ready = pl->artifact_ready;
      }
    }
  }
  settings_[d.id] = out;
  return out;
}

DeployParams Coordinator::params_of(const DeployRecord& d) {
  return settings_of(d).params;
}

bool Coordinator::artifact_ready(const DeployRecord& d) {
  const DeploySettings settings = settings_of(d);
  if (settings.ready) return true;
  auto bytes = store_->manifest(d.artifact);
  if (!bytes.ok() || !*bytes) return false;
  if (tracker_url_.empty()) return true;  // no mesh to ask: registered is ready
  auto m = format::decode_manifest(**bytes);
  if (!m.ok()) return false;
  std::set<std::string> regions;
  for (const auto& b : d.batches) {
    for (const auto& h : b.hosts) {
      auto rec = store_->host(h);
      if (rec.ok() && *rec) regions.insert((*rec)->region);
    }
  }
  for (const auto& layer : m->layers) {
    const auto t = format::derive_layer_torrent(layer);
    const std::string hex = to_hex(t.info_hash.data(), 20);
    auto r =
        http::request("GET", tracker_url_ + "/swarm?info_hash=" + hex, "", std::chrono::seconds(2));
    if (!r.ok() || r->status != 200) return false;
    json j = json::parse(r->body, nullptr, false);
    if (!j.is_object() || !j["complete"].is_array()) return false;
    std::set<std::string> seeded;
    bool any = false;
    for (const auto& h : j["complete"]) {
      const std::string role = h.value("role", "");
      if (role == "seed") seeded.insert(h.value("region", ""));
      if (role == "seed" || role == "origin") any = true;
    }
    if (settings.artifact_ready == "origin"
            ? !any
            : !std::includes(seeded.begin(), seeded.end(), regions.begin(), regions.end())) {
      return false;
    }
  }
  std::lock_guard lock(cache_mu_);
  settings_[d.id].ready = true;
  return true;
}

// ---- pipelines ----

Result<json> Coordinator::put_pipeline(const json& body, const Caller& who, bool& created) {
  DROVER_ASSIGN(Pipeline p, parse_pipeline(body));
  std::lock_guard lock(orchestrator_mu_);  // one writer of a pipeline's version at a time
  DROVER_ASSIGN(auto existing, store_->pipeline(p.id));
  created = !existing;
  if (existing) {
    DROVER_ASSIGN(Pipeline old, parse_pipeline_record(*existing));
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
  json rec = pipeline_json(p);
  DROVER_TRY(store_->put_pipeline(p.id, rec.dump()));
  DROVER_TRY(audit_admin(who.name, created ? "pipeline.created" : "pipeline.updated",
                         {{"pipeline", p.id}, {"service", p.service}, {"version", p.version}}));
  return rec;
}

Result<json> Coordinator::pipeline(const std::string& id) {
  DROVER_ASSIGN(Pipeline p, load_pipeline(id));
  return pipeline_json(p);
}

Result<json> Coordinator::pipelines() {
  DROVER_ASSIGN(auto all, store_->pipelines());
  json out = json::array();
  for (const auto& bytes : all) out.push_back(parse_canonical(bytes));
  return json{{"pipelines", out}};
}

namespace {

json deploy_summary(const DeployRecord& d) {
  std::size_t passed = 0;
  for (const auto& b : d.batches) passed += b.status == "passed";
  return {{"deploy_id", d.id},
          {"pipeline_id", d.pipeline_id},
          {"service", d.service},
          {"artifact_id", d.artifact},
          {"prior_artifact_id", d.prior_artifact},
          {"state", deploy_state_name(d.state)},
          {"batch", d.batch},
          {"batches", d.batches.size()},
          {"batches_passed", passed},
          {"created_ms", d.created_ms},
          {"completed_ms", d.completed_ms},
          {"reason", d.reason}};
}

}  // namespace

Result<json> Coordinator::runs(const std::string& pipeline_id, std::size_t limit) {
  DROVER_ASSIGN(Pipeline p, load_pipeline(pipeline_id));
  (void)p;
  DROVER_ASSIGN(auto all, store_->deploys());
  std::vector<DeployRecord> mine;
  for (const auto& bytes : all) {
    DROVER_ASSIGN(DeployRecord d, decode_deploy(bytes));
    if (d.pipeline_id == pipeline_id) mine.push_back(std::move(d));
  }
  std::sort(mine.begin(), mine.end(), [](const DeployRecord& a, const DeployRecord& b) {
    return a.created_ms > b.created_ms;
  });
  json out = json::array();
  for (std::size_t i = 0; i < mine.size() && i < limit; ++i) out.push_back(deploy_summary(mine[i]));
  return json{{"pipeline_id", pipeline_id}, {"runs", out}};
}

// ---- deploys ----

Result<json> Coordinator::start_deploy(const json& body, const Caller& who) {
  DROVER_ASSIGN(Fields f, Fields::of(body, ""));
  DROVER_TRY(f.only({"pipeline_id", "artifact_id", "env", "git_sha", "strategy_override"}));
  DROVER_ASSIGN(std::string pipeline_id, f.str("pipeline_id", 128));
  DROVER_ASSIGN(std::string artifact_text, f.str("artifact_id", 128));
  auto artifact_id = ContentId::parse(artifact_text);
  if (!artifact_id.ok()) {
    return make_error(Errc::invalid_argument, "artifact_id: " + artifact_id.error().message);
  }
  DROVER_ASSIGN(auto env_name, f.opt_str("env", 128));
  DROVER_ASSIGN(auto git_sha_given, f.opt_str("git_sha", 64));
  std::optional<Strategy> override_strategy;
  if (const json* s = f.raw("strategy_override")) {
    DROVER_ASSIGN(Strategy st, parse_strategy(*s, "strategy_override"));
    override_strategy = st;
  }

  DROVER_ASSIGN(Pipeline p, load_pipeline(pipeline_id));
  DROVER_ASSIGN(auto artifact_bytes, store_->artifact(artifact_id->str()));
  if (!artifact_bytes) {
    return make_error(Errc::not_found,
                      "artifact_id " + artifact_id->str() +
                          " is not registered: push it to the origin or POST /artifacts");
  }
  const json artifact = parse_canonical(*artifact_bytes);
  if (artifact.value("service", "") != p.service) {
    return make_error(Errc::invalid_argument, "artifact_id " + artifact_id->str() +
                                                  " is of service '" +
                                                  artifact.value("service", "") + "', pipeline '" +
                                                  p.id + "' deploys '" + p.service + "'");
  }
  const PipelineEnv* env = env_name ? find_env(p, *env_name) : &p.envs.front();
  if (env == nullptr) {
    return make_error(Errc::invalid_argument,
                      "env '" + *env_name + "' is not an env of pipeline '" + p.id + "'");
  }
  if (std::find(p.approval_gates.begin(), p.approval_gates.end(), env->name) !=
      p.approval_gates.end()) {
    return make_error(Errc::refused, "env '" + env->name +
                                         "' has an approval gate, and this coordinator does not "
                                         "run gated promotions yet (docs/COORDINATOR.md)");
  }
  const Strategy strategy = override_strategy ? *override_strategy : p.strategy;
  const std::string git_sha = git_sha_given ? *git_sha_given : artifact.value("git_sha", "");

  std::lock_guard lock(orchestrator_mu_);
  DROVER_ASSIGN(auto all, store_->deploys());
  for (const auto& bytes : all) {
    DROVER_ASSIGN(DeployRecord other, decode_deploy(bytes));
    if (other.service == p.service && !is_terminal(other.state)) {
      return make_error(Errc::refused, "deploy '" + other.id + "' of service '" + p.service +
                                           "' is " + deploy_state_name(other.state) +
                                           "; one deploy per service at a time");
    }
  }
  DROVER_ASSIGN(auto all_hosts, store_->hosts());
  std::vector<std::string> hosts;
  for (const auto& h : all_hosts) {
    if (std::find(h.services.begin(), h.services.end(), p.service) == h.services.end()) continue;
    if (!env->region.empty() && h.region != env->region) continue;
    if (!env->cluster.empty() && h.cluster != env->cluster) continue;
    hosts.push_back(h.host);
  }
  if (hosts.empty()) {
    return make_error(Errc::refused, "no enrolled host runs service '" + p.service + "' in env '" +
                                         env->name + "'");
  }
  DROVER_ASSIGN(auto counter, store_->setting("deploy_counter/" + p.service));
  const std::uint64_t n = counter ? std::stoull(*counter) + 1 : 1;
  DROVER_TRY(store_->put_setting("deploy_counter/" + p.service, std::to_string(n)));

  DeployRecord d;
  d.id = p.service + "-" + std::to_string(n);
  d.pipeline_id = p.id;
  d.service = p.service;
  d.artifact = artifact_id->str();
  d.created_ms = now_ms();
  DROVER_ASSIGN(auto running, store_->running_at(p.service, d.created_ms));
  if (running) d.prior_artifact = running->artifact;
  d.batches = pending_batches(plan_batches(hosts, strategy.shape, d.id));

  Pipeline snapshot = p;
  snapshot.strategy = strategy;
  const json config = {{"pipeline", pipeline_json(snapshot)},
                       {"env", env->name},
                       {"artifact_id", d.artifact},
                       {"git_sha", git_sha},
                       {"started_by", who.name}};
  // Pipelines carry fractional thresholds, which canonical JSON does not
  // encode; nlohmann's dump is deterministic (sorted keys, shortest
  // round-trip numbers), so the snapshot's hash is stable.
  const std::string config_bytes = config.dump();
  DROVER_TRY(store_->put_setting("deploy_config/" + d.id, config_bytes));
  DROVER_TRY(orchestrator_->create(d, who.name, git_sha, config_bytes));
  log_.info("coordinator.deploy.created", {{"deploy", d.id},
                                           {"artifact", d.artifact},
                                           {"hosts", hosts.size()},
                                           {"batches", d.batches.size()},
                                           {"who", who.name}});
  json out = deploy_summary(d);
  out["env"] = env->name;
  out["git_sha"] = git_sha;
  out["config_hash"] = ContentId::of(config_bytes).str();
  return out;
}

Result<json> Coordinator::deploy_view(const std::string& id) {
  DROVER_ASSIGN(auto bytes, store_->deploy(id));
  if (!bytes) return make_error(Errc::not_found, "no deploy '" + id + "'");
  DROVER_ASSIGN(DeployRecord d, decode_deploy(*bytes));
  json out = deploy_summary(d);
  DROVER_ASSIGN(auto snap, store_->setting("deploy_config/" + id));
  if (snap) {
    json c = parse_canonical(*snap);
    out["env"] = c.value("env", "");
    out["git_sha"] = c.value("git_sha", "");
    out["started_by"] = c.value("started_by", "");
    out["config_hash"] = ContentId::of(*snap).str();
  }
  out["deadline_ms"] = d.deadline_ms;
  out["bake_until_ms"] = d.bake_until_ms;
  if (d.rollback_started_ms > 0) {
    out["rollback"] = {
        {"started_ms", d.rollback_started_ms},
        {"done_ms", d.rollback_done_ms},
        {"duration_ms", d.rollback_done_ms > 0 ? json(d.rollback_done_ms - d.rollback_started_ms)
                                               : json(nullptr)}};
  }
  DROVER_ASSIGN(auto fleet, store_->fleet(d.service, d.created_ms));
  std::map<std::string, const CoordinatorStore::FleetSample*> latest;
  for (const auto& s : fleet.samples) latest[s.host] = &s;
  json batches = json::array();
  json hosts = json::array();
  for (std::size_t i = 0; i < d.batches.size(); ++i) {
    const BatchRecord& b = d.batches[i];
    batches.push_back({{"index", i},
                       {"hosts", b.hosts},
                       {"status", b.status},
                       {"started_ms", b.started_ms},
                       {"converged_ms", b.converged_ms},
                       {"finished_ms", b.finished_ms},
                       {"verdict", b.verdict}});
    for (const auto& h : b.hosts) {
      json host = {
          {"host", h}, {"batch", i}, {"running", fleet.running.count(h) ? fleet.running[h] : ""}};
      if (auto it = latest.find(h); it != latest.end()) {
        host["health"] = {{"at_ms", it->second->at_ms},
                          {"error_rate", it->second->error_rate},
                          {"p99_ms", it->second->p99_ms},
                          {"saturation", it->second->saturation},
                          {"ok", it->second->ok}};
      }
      hosts.push_back(std::move(host));
    }
  }
  out["batches"] = batches;
  out["hosts"] = hosts;
  return out;
}

Result<json> Coordinator::deploys(const std::string& service, std::size_t limit) {
  DROVER_ASSIGN(auto all, store_->deploys());
  std::vector<DeployRecord> list;
  for (const auto& bytes : all) {
    DROVER_ASSIGN(DeployRecord d, decode_deploy(bytes));
    if (service.empty() || d.service == service) list.push_back(std::move(d));
  }
  std::sort(list.begin(), list.end(), [](const DeployRecord& a, const DeployRecord& b) {
    return a.created_ms > b.created_ms;
  });
  json out = json::array();
  for (std::size_t i = 0; i < list.size() && i < limit; ++i) out.push_back(deploy_summary(list[i]));
  return json{{"deploys", out}};
}

Result<json> Coordinator::pause(const std::string& id, const Caller& who) {
  std::lock_guard lock(orchestrator_mu_);
  DROVER_TRY(orchestrator_->pause(id, who.name));
  DROVER_ASSIGN(DeployRecord d, orchestrator_->get(id));
  return deploy_summary(d);
}

Result<json> Coordinator::resume(const std::string& id, const Caller& who) {
  std::lock_guard lock(orchestrator_mu_);
  DROVER_TRY(orchestrator_->resume(id, who.name));
  DROVER_ASSIGN(DeployRecord d, orchestrator_->get(id));
  return deploy_summary(d);
}

Result<json> Coordinator::rollback(const json& body, const Caller& who) {
  DROVER_ASSIGN(Fields f, Fields::of(body, ""));
  DROVER_TRY(f.only({"deploy_id", "reason"}));
  DROVER_ASSIGN(std::string id, f.str("deploy_id", 128));
  DROVER_ASSIGN(auto reason, f.opt_str("reason", 1024));
  std::lock_guard lock(orchestrator_mu_);
  DROVER_TRY(orchestrator_->rollback(
      id, who.name,
      reason ? "rollback by " + who.name + ": " + *reason : "rollback by " + who.name));
  DROVER_ASSIGN(DeployRecord d, orchestrator_->get(id));
  return deploy_summary(d);
}

// ---- artifacts ----

Result<json> Coordinator::register_artifact(const json& body, const Caller& who) {
  DROVER_ASSIGN(Fields f, Fields::of(body, ""));
  DROVER_TRY(f.only({"artifact_id"}));
  DROVER_ASSIGN(std::string text, f.str("artifact_id", 128));
  auto id = ContentId::parse(text);
  if (!id.ok()) return make_error(Errc::invalid_argument, "artifact_id: " + id.error().message);
  DROVER_ASSIGN(auto known, store_->artifact(id->str()));
  if (known) return parse_canonical(*known);
  if (options_.origin_feed.empty()) {
    return make_error(Errc::refused, "this coordinator follows no origin feed to register from");
  }
  DROVER_ASSIGN(auto m, http::request("GET", options_.origin_feed + "/v1/manifests/" + id->hex(),
                                      "", std::chrono::seconds(30)));
  if (m.status == 404) {
    return make_error(Errc::not_found,
                      "artifact_id " + id->str() + " is not in the origin's store");
  }
  if (m.status != 200) {
    return make_error(Errc::io, "origin feed answered " + std::to_string(m.status));
  }
  return register_manifest(id->str(), m.body, "api", who.name);
}

Result<json> Coordinator::artifact(const std::string& id) {
  DROVER_ASSIGN(auto bytes, store_->artifact(id));
  if (!bytes) return make_error(Errc::not_found, "no artifact '" + id + "'");
  return parse_canonical(*bytes);
}

Result<json> Coordinator::artifacts(const std::string& service) {
  DROVER_ASSIGN(auto all, store_->artifacts());
  json out = json::array();
  for (const auto& bytes : all) {
    json j = parse_canonical(bytes);
    if (service.empty() || j.value("service", "") == service) out.push_back(std::move(j));
  }
  std::sort(out.begin(), out.end(), [](const json& a, const json& b) {
    return a.value("registered_ms", 0) > b.value("registered_ms", 0);
  });
  return json{{"artifacts", out}};
}

// ---- hosts ----

Result<json> Coordinator::hosts() {
  DROVER_ASSIGN(auto all, store_->hosts());
  std::map<std::string, CoordinatorStore::Fleet> fleets;
  json out = json::array();
  for (const auto& h : all) {
    json running = json::object();
    for (const auto& s : h.services) {
      if (!fleets.count(s)) {
        DROVER_ASSIGN(fleets[s], store_->fleet(s, now_ms()));
      }
      const auto& r = fleets[s].running;
      running[s] = r.count(h.host) ? r.at(h.host) : "";
    }
    out.push_back({{"host", h.host},
                   {"region", h.region},
                   {"cluster", h.cluster},
                   {"services", h.services},
                   {"running", running},
                   {"key_id", h.key.key_id()},
                   {"enrolled_at", h.enrolled_at},
                   {"last_seen", h.last_seen}});
  }
  return json{{"hosts", out}};
}

Result<json> Coordinator::reset_host(const std::string& host, const Caller& who) {
  DROVER_ASSIGN(auto h, store_->host(host));
  if (!h) return make_error(Errc::not_found, "no host '" + host + "'");
  DROVER_TRY(store_->reset_host(host));
  DROVER_TRY(audit_admin(who.name, "host.reset", {{"host", host}}));
  return json{{"host", host}, {"reset", true}};
}

// ---- the health webhook ----

Result<json> Coordinator::health_webhook(const std::string& body, const std::string& signature) {
  if (options_.webhook_secret.empty()) {
    return make_error(Errc::refused, "the health webhook is off: no webhook secret is configured");
  }
  const std::string expected = "sha256=" + to_hex(sign::hmac_sha256(options_.webhook_secret, body));
  // Compared in constant time: no early exit to time.
  unsigned char diff = signature.size() == expected.size() ? 0 : 1;
  for (std::size_t i = 0; i < std::min(signature.size(), expected.size()); ++i) {
    diff |= static_cast<unsigned char>(signature[i] ^ expected[i]);
  }
  if (diff != 0) {
    return make_error(Errc::crypto,
                      "X-Drover-Signature does not match: sign the body with HMAC-SHA256");
  }
  json j = json::parse(body, nullptr, false);
  DROVER_ASSIGN(Fields f, Fields::of(j, ""));
  DROVER_TRY(f.only({"service", "samples"}));
  DROVER_ASSIGN(std::string service, f.str("service", 128));
  const json* samples = f.raw("samples");
  if (samples == nullptr || !samples->is_array() || samples->empty() ||
      samples->size() > kMaxWebhookSamples) {
    return make_error(Errc::invalid_argument, "samples must be an array of 1 to " +
                                                  std::to_string(kMaxWebhookSamples) + " objects");
  }
  const std::int64_t now = now_ms();
  DROVER_ASSIGN(auto fleet, store_->fleet(service, now));
  std::vector<CoordinatorStore::FleetSample> out;
  for (std::size_t i = 0; i < samples->size(); ++i) {
    DROVER_ASSIGN(Fields s, Fields::of((*samples)[i], "samples[" + std::to_string(i) + "]"));
    DROVER_TRY(s.only({"host", "release", "at_ms", "error_rate", "p99_ms", "saturation", "ok"}));
    CoordinatorStore::FleetSample fs;
    DROVER_ASSIGN(fs.host, s.str("host", 128));
    DROVER_ASSIGN(auto host, store_->host(fs.host));
    if (!host) {
      return make_error(Errc::not_found, s.path("host") + ": no enrolled host '" + fs.host + "'");
    }
    DROVER_ASSIGN(auto release, s.opt_str("release", 128));
    if (release) {
      fs.release = *release;
    } else if (fleet.running.count(fs.host)) {
      fs.release = fleet.running.at(fs.host);
    }
    DROVER_ASSIGN(auto at, s.opt_int("at_ms", now - kWebhookSkewMs, now + kWebhookSkewMs));
    fs.at_ms = at.value_or(now);
    DROVER_ASSIGN(auto err, s.opt_num("error_rate", 0, 1));
    DROVER_ASSIGN(auto p99, s.opt_num("p99_ms", 0, 3.6e6));
    DROVER_ASSIGN(auto sat, s.opt_num("saturation", 0, 1));
    DROVER_ASSIGN(auto ok, s.opt_bool("ok"));
    if (!err && !p99 && !sat && !ok) {
      return make_error(Errc::invalid_argument,
                        s.path("") + " carries no metric (error_rate, p99_ms, saturation, ok)");
    }
    fs.error_rate = err.value_or(0);
    fs.p99_ms = p99.value_or(0);
    fs.saturation = sat.value_or(0);
    fs.ok = ok.value_or(true);
    out.push_back(std::move(fs));
  }
  DROVER_TRY(store_->add_samples(service, out));
  return json{{"accepted", out.size()}};
}

// ---- audit ----

Result<json> Coordinator::audit(const std::string& service, std::int64_t since_ms,
                                std::int64_t until_ms, std::size_t limit) {
  DROVER_ASSIGN(auto records, store_->audit(service, since_ms, until_ms, limit));
  json out = json::array();
  for (const auto& r : records) out.push_back(parse_canonical(encode_audit_record(r)));
  return json{{"records", out}};
}

Result<json> Coordinator::audit_verify() {
  DROVER_ASSIGN(AuditCheck c, store_->verify_audit());
  return json{{"ok", c.ok}, {"records", c.records}, {"head", c.head}, {"problem", c.problem}};
}

Result<json> Coordinator::running_at(const std::string& service, std::int64_t at_ms) {
  DROVER_ASSIGN(auto r, store_->running_at(service, at_ms));
  if (!r) {
    return make_error(Errc::not_found,
                      "no release of service '" + service + "' is recorded at or before that time");
  }
  json out = parse_canonical(encode_audit_record(*r));
  if (!r->config_hash.empty()) out["config_hash"] = r->config_hash;
  return json{
      {"service", service}, {"at_ms", at_ms}, {"artifact_id", r->artifact}, {"record", out}};
}

// ---- tokens ----

Result<json> Coordinator::create_token(const json& body, const Caller& who) {
  DROVER_ASSIGN(Fields f, Fields::of(body, ""));
  DROVER_TRY(f.only({"name", "role"}));
  DROVER_ASSIGN(std::string name, f.str("name", 128));
  DROVER_ASSIGN(std::string role_text, f.str("role", 32));
  auto role = parse_role(role_text);
  if (!role.ok()) return make_error(Errc::invalid_argument, "role: " + role.error().message);
  DROVER_ASSIGN(std::string token, tokens_->create(name, *role, now_ms() / 1000, random_));
  DROVER_TRY(audit_admin(who.name, "token.created", {{"name", name}, {"role", role_text}}));
  return json{{"name", name}, {"role", role_text}, {"token", token}};
}

Result<json> Coordinator::list_tokens() {
  DROVER_ASSIGN(auto list, tokens_->list());
  json out = json::array();
  for (const auto& t : list) {
    out.push_back({{"name", t.name}, {"role", role_name(t.role)}, {"created_at", t.created_at}});
  }
  return json{{"tokens", out}};
}

Result<json> Coordinator::revoke_token(const std::string& name, const Caller& who) {
  DROVER_TRY(tokens_->revoke(name));
  DROVER_TRY(audit_admin(who.name, "token.revoked", {{"name", name}}));
  return json{{"name", name}, {"revoked", true}};
}

Result<json> Coordinator::create_join_token(const Caller& who) {
  DROVER_ASSIGN(std::string token, store_->create_join_token(who.name, now_ms() / 1000, random_));
  DROVER_TRY(audit_admin(who.name, "join_token.created",
                         {{"id", ContentId::of(token).hex().substr(0, 12)}}));
  return json{{"token", token}};
}

Result<json> Coordinator::revoke_join_token(const json& body, const Caller& who) {
  DROVER_ASSIGN(Fields f, Fields::of(body, ""));
  DROVER_TRY(f.only({"token"}));
  DROVER_ASSIGN(std::string token, f.str("token", 256));
  DROVER_ASSIGN(bool valid, store_->join_token_valid(token));
  if (!valid) return make_error(Errc::not_found, "token: no such join token");
  DROVER_TRY(store_->revoke_join_token(token));
  DROVER_TRY(audit_admin(who.name, "join_token.revoked",
                         {{"id", ContentId::of(token).hex().substr(0, 12)}}));
  return json{{"revoked", true}};
}

}  // namespace drover::coordinator
