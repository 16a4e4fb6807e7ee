#include "coordinator/api/codec.hpp"

#include "coordinator/pipelines/pipeline_codec.hpp"
#include "core/base/name.hpp"
#include "core/canon/json_fields.hpp"
#include "core/hash/sha256.hpp"

namespace drover::coordinator::api {
namespace {

using canon::Fields;
using nlohmann::json;

constexpr std::size_t kMaxWebhookSamples = 1000;
constexpr std::int64_t kWebhookSkewMs = 5 * 60 * 1000;

json batch_json(std::size_t index, const BatchRecord& b) {
  json j = {{"index", index},
            {"hosts", b.hosts},
            {"status", b.status},
            {"started_ms", b.started_ms},
            {"converged_ms", b.converged_ms},
            {"finished_ms", b.finished_ms},
            {"verdict", b.verdict}};
  // A step of a split strategy: the share of each host's traffic, per mille.
  if (b.traffic != 1000) j["traffic"] = b.traffic;
  if (b.preview) j["preview"] = true;
  return j;
}

}  // namespace

// ---- requests ----

Result<Pipeline> decode_pipeline(const json& body) {
  return pipeline_from_json(body);
}

Result<DeployStart> decode_deploy_start(const json& body) {
  DROVER_ASSIGN(Fields f, Fields::of(body, ""));
  DROVER_TRY(f.only({"pipeline_id", "artifact_id", "env", "git_sha", "strategy_override"}));
  DeployStart out;
  DROVER_ASSIGN(out.pipeline_id, f.str("pipeline_id", 128));
  DROVER_ASSIGN(std::string artifact_text, f.str("artifact_id", 128));
  auto artifact_id = ContentId::parse(artifact_text);
  if (!artifact_id.ok()) {
    return make_error(Errc::invalid_argument, "artifact_id: " + artifact_id.error().message);
  }
  out.artifact = *artifact_id;
  DROVER_ASSIGN(out.env, f.opt_str("env", 128));
  DROVER_ASSIGN(out.git_sha, f.opt_str("git_sha", 64));
  if (const json* s = f.raw("strategy_override")) {
    DROVER_ASSIGN(Strategy st, strategy_from_json(*s, "strategy_override"));
    out.strategy_override = st;
  }
  return out;
}

Result<Coordinator::ReleaseStart> decode_release_start(const json& body) {
  DROVER_ASSIGN(Fields f, Fields::of(body, ""));
  DROVER_TRY(f.only({"services", "policy"}));
  DROVER_TRY(f.require({"services"}));
  Coordinator::ReleaseStart out;
  DROVER_ASSIGN(auto services, f.objects("services", kMaxReleaseServices));
  if (services.empty()) {
    return make_error(Errc::invalid_argument, "services: a release names at least one service");
  }
  for (const auto& s : services) {
    DROVER_TRY(s.only({"pipeline_id", "artifact_id"}));
    Coordinator::ReleaseService one;
    DROVER_ASSIGN(one.pipeline_id, s.str("pipeline_id", 128));
    DROVER_ASSIGN(std::string artifact_text, s.str("artifact_id", 128));
    auto artifact_id = ContentId::parse(artifact_text);
    if (!artifact_id.ok()) {
      return make_error(Errc::invalid_argument,
                        s.path("artifact_id") + ": " + artifact_id.error().message);
    }
    one.artifact = *artifact_id;
    out.services.push_back(std::move(one));
  }
  DROVER_ASSIGN(auto policy, f.opt_str("policy", 32));
  if (policy) {
    auto p = parse_release_policy(*policy);
    if (!p.ok()) return make_error(Errc::invalid_argument, "policy: " + p.error().message);
    out.policy = *p;
  }
  return out;
}

Result<RollbackRequest> decode_rollback(const json& body) {
  DROVER_ASSIGN(Fields f, Fields::of(body, ""));
  DROVER_TRY(f.only({"deploy_id", "reason"}));
  RollbackRequest out;
  DROVER_ASSIGN(out.deploy_id, f.str("deploy_id", 128));
  DROVER_ASSIGN(out.reason, f.opt_str("reason", 1024));
  // Shown by `drover status`, the audit log and notifications: no control
  // characters, as for a gate's comment.
  if (out.reason) {
    for (unsigned char c : *out.reason) {
      if (c < 0x20 || c == 0x7f) {
        return make_error(Errc::invalid_argument,
                          "reason must not hold control characters (tabs, newlines, escapes)");
      }
    }
  }
  return out;
}

Result<FlagChange> decode_flag_set(const json& body) {
  DROVER_ASSIGN(Fields f, Fields::of(body, ""));
  DROVER_TRY(f.only({"env", "value", "now"}));
  FlagChange out;
  DROVER_ASSIGN(out.env, f.str("env", 256));
  DROVER_ASSIGN(auto now, f.opt_bool("now"));
  out.now = now.value_or(false);
  DROVER_TRY(f.require({"value"}));
  auto value = proto::flag_value_of(*f.raw("value"));
  if (!value) {
    return make_error(Errc::invalid_argument,
                      "value must be true, false or a whole percentage 0-100");
  }
  out.value = *value;
  return out;
}

Result<std::string> decode_flag_kill(const json& body) {
  DROVER_ASSIGN(Fields f, Fields::of(body, ""));
  DROVER_TRY(f.only({"env"}));
  return f.str("env", 256);
}

json render_flagset(const FlagSetRecord& r) {
  json flags = json::object();
  for (const auto& [k, v] : r.flags) flags[k] = proto::flag_value_json(v);
  return {{"service", r.service},    {"env", r.env},     {"seq", r.seq}, {"flags", flags},
          {"hosts", r.hosts.size()}, {"at_ms", r.at_ms}, {"by", r.by}};
}

json render_flagsets(const std::string& service, const std::vector<FlagSetRecord>& all) {
  json envs = json::array();
  for (const auto& r : all) envs.push_back(render_flagset(r));
  return {{"service", service}, {"environments", envs}};
}

Result<std::string> decode_gate_text(const json& body, const std::string& field, bool required) {
  const json empty = json::object();
  DROVER_ASSIGN(Fields f, Fields::of(body.is_null() ? empty : body, ""));
  DROVER_TRY(f.only({field}));
  std::string text;
  if (required) {
    DROVER_ASSIGN(text, f.str(field, 1024));
  } else {
    DROVER_ASSIGN(auto given, f.opt_str(field, 1024));
    text = given.value_or("");
  }
  // Shown by `drover status` and the audit log: no control characters (a
  // terminal escape in a comment would rewrite what the next person sees).
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) {
      return make_error(Errc::invalid_argument,
                        field + " must not hold control characters (tabs, newlines, escapes)");
    }
  }
  return text;
}

Result<std::optional<std::string>> decode_redeploy(const json& body) {
  const json empty = json::object();
  DROVER_ASSIGN(Fields f, Fields::of(body.is_null() ? empty : body, ""));
  DROVER_TRY(f.only({"env"}));
  DROVER_ASSIGN(auto env, f.opt_str("env", kMaxNameBytes));
  if (env) DROVER_TRY(validate_name(*env, "env"));
  return env;
}

Result<std::pair<std::string, std::string>> decode_scm_source(const json& body) {
  DROVER_ASSIGN(Fields f, Fields::of(body, ""));
  DROVER_TRY(f.only({"repository", "secret"}));
  DROVER_ASSIGN(std::string repository, f.str("repository", 200));
  DROVER_ASSIGN(std::string secret, f.str("secret", 256));
  return std::pair{repository, secret};
}

Result<std::pair<std::string, std::string>> decode_scm_login(const json& body) {
  DROVER_ASSIGN(Fields f, Fields::of(body, ""));
  DROVER_TRY(f.only({"login", "person"}));
  DROVER_ASSIGN(std::string login, f.str("login", kMaxNameBytes));
  DROVER_ASSIGN(std::string person, f.str("person", kMaxNameBytes));
  return std::pair{login, person};
}

Result<std::vector<std::string>> decode_notify_allow(const json& body) {
  DROVER_ASSIGN(Fields f, Fields::of(body, ""));
  DROVER_TRY(f.only({"allow"}));
  DROVER_TRY(f.require({"allow"}));
  DROVER_ASSIGN(auto allow, f.str_list("allow", notify::kMaxAllowEntries, notify::kMaxUrlBytes));
  for (const auto& e : allow) {
    if (auto parsed = notify::parse_allow_entry(e); !parsed.ok()) {
      return parsed.error().context("allow");
    }
  }
  return allow;
}

Result<notify::Destination> decode_destination(const json& body, const std::string& pipeline_id) {
  DROVER_ASSIGN(Fields f, Fields::of(body, ""));
  DROVER_TRY(f.only({"name", "url", "secret", "format", "events"}));
  notify::Destination d;
  d.pipeline = pipeline_id;
  DROVER_ASSIGN(d.name, f.str("name", kMaxNameBytes));
  DROVER_ASSIGN(d.url, f.str("url", notify::kMaxUrlBytes));
  DROVER_ASSIGN(auto secret, f.opt_str("secret", 256));
  if (secret) d.secret = *secret;
  DROVER_ASSIGN(auto format, f.opt_str("format", 16));
  if (format) d.format = *format;
  DROVER_ASSIGN(d.events, f.str_list("events", notify::kinds().size() + 1, 64));
  if (!f.has("events")) d.events = notify::kinds();
  DROVER_TRY(notify::check_destination(d));
  return d;
}

json render_destination(const notify::Destination& d) {
  return {{"name", d.name},
          {"origin", notify::origin_of(d.url)},
          {"url_sha256", ContentId::of(d.url).hex()},
          {"format", d.format},
          {"events", d.events},
          {"signed", !d.secret.empty()},
          {"created_ms", d.created_ms},
          {"created_by", d.created_by}};
}

json render_destinations(const std::vector<notify::Destination>& all) {
  json out = json::array();
  for (const auto& d : all) out.push_back(render_destination(d));
  return {{"destinations", out}};
}

json render_outbox(const std::vector<notify::Pending>& pending) {
  json out = json::array();
  for (const auto& p : pending) {
    out.push_back({{"pipeline_id", p.pipeline},
                   {"name", p.name},
                   {"event_id", p.event_id},
                   {"kind", p.kind},
                   {"attempts", p.attempts},
                   {"next_ms", p.next_ms},
                   {"last_error", p.last_error}});
  }
  return {{"pending", out}};
}

Result<ContentId> decode_artifact_registration(const json& body) {
  DROVER_ASSIGN(Fields f, Fields::of(body, ""));
  DROVER_TRY(f.only({"artifact_id"}));
  DROVER_ASSIGN(std::string text, f.str("artifact_id", 128));
  auto id = ContentId::parse(text);
  if (!id.ok()) return make_error(Errc::invalid_argument, "artifact_id: " + id.error().message);
  return *id;
}

Result<TokenRequest> decode_token_request(const json& body) {
  DROVER_ASSIGN(Fields f, Fields::of(body, ""));
  DROVER_TRY(f.only({"name", "role", "person"}));
  TokenRequest out;
  DROVER_ASSIGN(out.name, f.str("name", 128));
  DROVER_ASSIGN(std::string role_text, f.str("role", 32));
  auto role = parse_role(role_text);
  if (!role.ok()) return make_error(Errc::invalid_argument, "role: " + role.error().message);
  out.role = *role;
  DROVER_ASSIGN(out.person, f.opt_str("person", kMaxNameBytes));
  if (out.person) DROVER_TRY(validate_name(*out.person, "person"));
  return out;
}

Result<CoordinatorStore::JoinTokenSpec> decode_join_token_request(const json& body) {
  CoordinatorStore::JoinTokenSpec spec;
  if (body.is_null()) return spec;  // no body: the defaults
  DROVER_ASSIGN(Fields f, Fields::of(body, ""));
  DROVER_TRY(f.only({"ttl_s", "uses", "regions", "services"}));
  DROVER_ASSIGN(auto ttl, f.opt_int("ttl_s", 60, 365 * 86400));
  DROVER_ASSIGN(auto uses, f.opt_int("uses", 1, 1'000'000));
  if (ttl) spec.ttl_s = *ttl;
  if (uses) spec.uses = static_cast<std::uint64_t>(*uses);
  DROVER_ASSIGN(spec.regions, f.str_list("regions", 1024, kMaxNameBytes));
  DROVER_ASSIGN(spec.services, f.str_list("services", 1024, kMaxNameBytes));
  for (const auto& r : spec.regions) DROVER_TRY(validate_name(r, "regions: region"));
  for (const auto& s : spec.services) DROVER_TRY(validate_name(s, "services: service"));
  return spec;
}

json render_join_token(const CoordinatorStore::JoinToken& t) {
  json j = {{"id", t.id},
            {"issued_by", t.issued_by},
            {"issued_at", t.issued_at},
            {"expires_at", t.expires_at},
            {"uses_left", t.uses_left},
            {"regions", t.regions},
            {"services", t.services}};
  if (!t.token.empty()) j["token"] = t.token;
  return j;
}

json render_join_tokens(const std::vector<CoordinatorStore::JoinToken>& tokens) {
  json out = json::array();
  for (const auto& t : tokens) out.push_back(render_join_token(t));
  return json{{"join_tokens", out}};
}

Result<std::string> decode_join_token_revocation(const json& body) {
  DROVER_ASSIGN(Fields f, Fields::of(body, ""));
  DROVER_TRY(f.only({"token"}));
  return f.str("token", 256);
}

Result<HealthWebhook> decode_health_webhook(const json& body, std::int64_t now,
                                            const HostCheck& is_enrolled) {
  DROVER_ASSIGN(Fields f, Fields::of(body, ""));
  DROVER_TRY(f.only({"service", "samples"}));
  HealthWebhook out;
  DROVER_ASSIGN(out.service, f.str("service", 128));
  const json* samples = f.raw("samples");
  if (samples == nullptr || !samples->is_array() || samples->empty() ||
      samples->size() > kMaxWebhookSamples) {
    return make_error(Errc::invalid_argument, "samples must be an array of 1 to " +
                                                  std::to_string(kMaxWebhookSamples) + " objects");
  }
  for (std::size_t i = 0; i < samples->size(); ++i) {
    DROVER_ASSIGN(Fields s, Fields::of((*samples)[i], "samples[" + std::to_string(i) + "]"));
    DROVER_TRY(s.only({"host", "release", "at_ms", "error_rate", "p99_ms", "saturation", "ok"}));
    ExternalSample es;
    DROVER_ASSIGN(es.host, s.str("host", 128));
    DROVER_ASSIGN(bool known, is_enrolled(es.host));
    if (!known) {
      return make_error(Errc::not_found, s.path("host") + ": no enrolled host '" + es.host + "'");
    }
    DROVER_ASSIGN(es.release, s.opt_str("release", 128));
    DROVER_ASSIGN(auto at, s.opt_int("at_ms", now - kWebhookSkewMs, now + kWebhookSkewMs));
    es.at_ms = at.value_or(now);
    DROVER_ASSIGN(auto err, s.opt_num("error_rate", 0, 1));
    DROVER_ASSIGN(auto p99, s.opt_num("p99_ms", 0, 3.6e6));
    DROVER_ASSIGN(auto sat, s.opt_num("saturation", 0, 1));
    DROVER_ASSIGN(auto ok, s.opt_bool("ok"));
    if (!err && !p99 && !sat && !ok) {
      return make_error(Errc::invalid_argument,
                        s.path("") + " carries no metric (error_rate, p99_ms, saturation, ok)");
    }
    es.error_rate = err.value_or(0);
    es.p99_ms = p99.value_or(0);
    es.saturation = sat.value_or(0);
    es.ok = ok.value_or(true);
    out.samples.push_back(std::move(es));
  }
  return out;
}

// ---- answers ----

json render_pipeline(const Pipeline& p) {
  return pipeline_to_json(p);
}

json render_pipelines(const std::vector<Pipeline>& all) {
  json out = json::array();
  for (const auto& p : all) out.push_back(pipeline_to_json(p));
  return json{{"pipelines", out}};
}

json render_deploy_summary(const DeployRecord& d) {
  std::size_t batches = 0, passed = 0;
  for (const auto& e : d.environments) {
    for (const auto& w : e.waves) {
      for (const auto& r : w.regions) {
        batches += r.batches.size();
        for (const auto& b : r.batches) passed += b.status == "passed";
      }
    }
  }
  const EnvRun* e = d.current_env();
  return {{"deploy_id", d.id},
          {"pipeline_id", d.pipeline_id},
          {"service", d.service},
          {"artifact_id", d.artifact},
          {"prior_artifact_id", e ? e->prior_artifact : ""},
          {"state", deploy_state_name(d.state)},
          {"env", e ? e->name : ""},
          {"wave", e && e->wave < e->waves.size() ? e->waves[e->wave].name : ""},
          // The batch of the current wave's first region (a single-region run's batch).
          {"batch", e && e->wave < e->waves.size() && !e->waves[e->wave].regions.empty()
                        ? e->waves[e->wave].regions[0].batch
                        : 0},
          {"started_by", d.started_by},
          {"release", d.release},
          {"queued_behind", d.queued_behind},
          {"batches", batches},
          {"batches_passed", passed},
          {"created_ms", d.created_ms},
          {"completed_ms", d.completed_ms},
          {"reason", d.reason}};
}

namespace {

json release_summary(const ReleaseRecord& r) {
  json gates = json::array();
  for (const auto& g : r.gates) {
    json approvals = json::array();
    for (const auto& a : g.approvals) {
      approvals.push_back({{"person", a.person}, {"at_ms", a.at_ms}, {"comment", a.comment}});
    }
    json gate = {{"env", g.env}, {"required", g.required}, {"approvals", approvals}};
    if (g.rejection) {
      gate["rejection"] = {{"person", g.rejection->person},
                           {"at_ms", g.rejection->at_ms},
                           {"reason", g.rejection->comment}};
    }
    gates.push_back(std::move(gate));
  }
  json failures = json::array();
  for (const auto& f : r.failures) {
    failures.push_back({{"service", f.service}, {"env", f.env}, {"reason", f.reason}});
  }
  return {{"release_id", r.id},
          {"state", release_state_name(r.state)},
          {"policy", release_policy_name(r.policy)},
          {"started_by", r.started_by},
          {"environments", r.environments},
          {"gates", gates},
          {"failures", failures},
          {"left", r.left},
          {"created_ms", r.created_ms},
          {"completed_ms", r.completed_ms},
          {"reason", r.reason}};
}

}  // namespace

json render_release(const ReleaseView& v) {
  json out = release_summary(v.release);
  json services = json::array();
  for (const auto& m : v.release.services) {
    json node = {{"service", m.service},
                 {"pipeline_id", m.pipeline_id},
                 {"artifact_id", m.artifact},
                 {"deploy_id", m.deploy_id},
                 {"depends_on", m.depends_on}};
    auto it = v.runs.find(m.service);
    json envs = json::object();
    if (it != v.runs.end()) {
      node["state"] = deploy_state_name(it->second.state);
      node["queued_behind"] = it->second.queued_behind;
      node["reason"] = it->second.reason;
      for (const auto& e : v.release.environments) envs[e] = member_env_state(it->second, e);
    }
    node["environments"] = envs;
    services.push_back(std::move(node));
  }
  out["services"] = services;
  return out;
}

json render_releases(const std::vector<ReleaseRecord>& all) {
  json out = json::array();
  for (const auto& r : all) {
    json one = release_summary(r);
    json services = json::array();
    for (const auto& m : r.services) services.push_back(m.service);
    one["services"] = services;
    out.push_back(std::move(one));
  }
  return json{{"releases", out}};
}

json render_runs(const std::string& pipeline_id, const std::vector<DeployRecord>& runs) {
  json out = json::array();
  for (const auto& d : runs) out.push_back(render_deploy_summary(d));
  return json{{"pipeline_id", pipeline_id}, {"runs", out}};
}

json render_deploy_started(const DeployStarted& s) {
  json out = render_deploy_summary(s.deploy);
  out["env"] = s.env;
  out["git_sha"] = s.git_sha;
  out["config_hash"] = s.config_hash;
  return out;
}

namespace {

json act_json(const GateAct& a) {
  return {{"person", a.person}, {"token", a.token}, {"at_ms", a.at_ms}, {"comment", a.comment}};
}

}  // namespace

namespace {

// A region's Prometheus measurements still in memory: per batch (its
// newest bake) and query, the newest measurement and the counts of each
// outcome.
json analysis_json(const std::vector<BatchAnalysis>& bakes, const std::string& env,
                   const std::string& where) {
  std::map<std::size_t, const BatchAnalysis*> newest;
  for (const auto& b : bakes) {
    if (b.env != env || b.region != where) continue;
    auto& slot = newest[b.batch];
    if (slot == nullptr || b.from_ms >= slot->from_ms) slot = &b;
  }
  json out = json::array();
  for (const auto& [batch, b] : newest) {
    for (const auto& t : b->queries) {
      const Measurement& m = t.newest;
      out.push_back({{"batch", batch},
                     {"query", t.query},
                     {"at_ms", m.at_ms},
                     {"outcome", outcome_name(m.outcome)},
                     {"canary", m.canary ? json(*m.canary) : json(nullptr)},
                     {"baseline", m.baseline ? json(*m.baseline) : json(nullptr)},
                     {"detail", m.detail},
                     {"passed", t.pass},
                     {"failed", t.fail},
                     {"inconclusive", t.inconclusive}});
    }
  }
  return out;
}

}  // namespace

json render_deploy_view(const DeployView& v) {
  const DeployRecord& d = v.deploy;
  json out = render_deploy_summary(d);
  if (v.config) {
    out["git_sha"] = v.config->git_sha;
    out["config_hash"] = v.config_hash;
  }
  out["deadline_ms"] = d.deadline_ms;
  std::map<std::string, const CoordinatorStore::FleetSample*> latest;
  for (const auto& s : v.fleet.samples) latest[s.host] = &s;
  json envs = json::array();
  json batches = json::array();  // every batch, in order, with where it ran
  json hosts = json::array();
  std::set<std::string> listed;  // hosts already in hosts
  for (const auto& e : d.environments) {
    json waves = json::array();
    for (const auto& w : e.waves) {
      json regions = json::array();
      for (const auto& r : w.regions) {
        json rb = json::array();
        std::map<std::string, std::size_t> by_version;
        for (std::size_t i = 0; i < r.batches.size(); ++i) {
          const BatchRecord& b = r.batches[i];
          rb.push_back(batch_json(i, b));
          json flat = batch_json(batches.size(), b);
          flat["env"] = e.name;
          flat["wave"] = w.name;
          flat["region"] = r.region;
          flat["cluster"] = r.cluster;
          batches.push_back(std::move(flat));
          for (const auto& h : b.hosts) {
            // A split's or a ramp's steps name the same hosts again: once each.
            if (!listed.insert(h).second) continue;
            auto running = v.fleet.running.find(h);
            const std::string release =
                running != v.fleet.running.end() ? running->second : std::string();
            ++by_version[release.empty() ? "unknown" : release];
            json host = {{"host", h},
                         {"env", e.name},
                         {"region", r.region},
                         {"batch", i},
                         {"running", release}};
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
        json region = {{"region", r.region},
                       {"cluster", r.cluster},
                       {"status", r.status},
                       {"batch", r.batch},
                       {"batches", rb},
                       {"deadline_ms", r.deadline_ms},
                       {"bake_until_ms", r.bake_until_ms},
                       {"verdict", r.verdict},
                       {"hosts_by_version", by_version}};
        const std::string where =
            r.region.empty() ? "" : (r.cluster.empty() ? r.region : r.region + "/" + r.cluster);
        if (json a = analysis_json(v.analysis, e.name, where); !a.empty()) {
          region["analysis"] = std::move(a);
        }
        regions.push_back(std::move(region));
      }
      waves.push_back({{"name", w.name},
                       {"status", w.status},
                       {"started_ms", w.started_ms},
                       {"finished_ms", w.finished_ms},
                       {"regions", regions}});
    }
    json approvals = json::array();
    for (const auto& a : e.gate.approvals) approvals.push_back(act_json(a));
    json env = {{"name", e.name},
                {"status", e.status},
                {"prior_artifact", e.prior_artifact},
                {"entered_ms", e.entered_ms},
                {"finished_ms", e.finished_ms},
                {"frozen", e.frozen},
                {"watch_until_ms", e.watch_until_ms},
                {"waves", waves}};
    if (e.gate.required > 0) {
      env["gate"] = {{"required", e.gate.required},
                     {"deadline_ms", e.gate.deadline_ms},
                     {"approvals", approvals},
                     {"rejection", e.gate.rejection ? act_json(*e.gate.rejection) : json(nullptr)}};
    }
    if (e.freeze_override) env["freeze_override"] = act_json(*e.freeze_override);
    if (e.rollback_started_ms > 0) {
      env["rollback"] = {
          {"started_ms", e.rollback_started_ms},
          {"done_ms", e.rollback_done_ms},
          {"duration_ms", e.rollback_done_ms > 0 ? json(e.rollback_done_ms - e.rollback_started_ms)
                                                 : json(nullptr)}};
    }
    envs.push_back(std::move(env));
  }
  if (const EnvRun* e = d.current_env(); e && e->rollback_started_ms > 0) {
    out["rollback"] = envs[d.env]["rollback"];
  }
  if (v.config && !v.config->redeploy_of.empty()) out["redeploy_of"] = v.config->redeploy_of;
  out["environments"] = envs;
  out["batches"] = batches;
  out["hosts"] = hosts;
  return out;
}

json render_deploys(const std::vector<DeployRecord>& deploys) {
  json out = json::array();
  for (const auto& d : deploys) out.push_back(render_deploy_summary(d));
  return json{{"deploys", out}};
}

json render_artifact(const ArtifactRecord& a) {
  return {{"artifact_id", a.artifact_id},
          {"service", a.service},
          {"git_sha", a.git_sha},
          {"size_bytes", a.size_bytes},
          {"tree_bytes", a.tree_bytes},
          {"layers", a.layers},
          {"meta", a.meta},
          {"registered_ms", a.registered_ms},
          {"registered_by", a.registered_by},
          {"source", a.source}};
}

json render_artifacts(const std::vector<ArtifactRecord>& all) {
  json out = json::array();
  for (const auto& a : all) out.push_back(render_artifact(a));
  return json{{"artifacts", out}};
}

json render_hosts(const std::vector<HostView>& hosts) {
  json out = json::array();
  for (const auto& v : hosts) {
    const HostRecord& h = v.host;
    if (h.unreadable) {
      // Its bytes did not decode: named, so an admin can reset it.
      out.push_back({{"host", h.host}, {"unreadable", true}});
      continue;
    }
    json running = json::object();
    for (const auto& [service, release] : v.running) running[service] = release;
    json health = json::object();
    for (const auto& [service, sample] : v.health) {
      health[service] = {{"at_ms", sample.at_ms},
                         {"ok", sample.ok},
                         {"error_rate", sample.error_rate},
                         {"p99_ms", sample.p99_ms},
                         {"saturation", sample.saturation}};
    }
    out.push_back({{"host", h.host},
                   {"health", health},
                   {"region", h.region},
                   {"cluster", h.cluster},
                   {"services", h.services},
                   {"running", running},
                   {"key_id", h.key.key_id()},
                   {"enrolled_at", h.enrolled_at},
                   {"last_seen", h.last_seen},
                   {"stored_samples", h.stored_samples},
                   {"throttled", h.throttled}});
  }
  return json{{"hosts", out}};
}

json render_audit(const std::vector<AuditRecord>& records) {
  json out = json::array();
  for (const auto& r : records) out.push_back(json::parse(encode_audit_record(r)));
  return json{{"records", out}};
}

json render_history(const DeployHistory& h) {
  json out = render_deploy_summary(h.deploy);
  out["config_hash"] = h.config_hash;
  json snapshot = json::parse(h.snapshot, nullptr, false);
  out["snapshot"] = snapshot.is_discarded() ? json(nullptr) : snapshot;
  out["records"] = render_audit(h.records)["records"];
  return out;
}

json render_audit_check(const AuditCheck& c) {
  return json{{"ok", c.ok}, {"records", c.records}, {"head", c.head}, {"problem", c.problem}};
}

json render_running_at(const std::string& service, std::int64_t at_ms, const AuditRecord& r) {
  json record = json::parse(encode_audit_record(r));
  if (!r.config_hash.empty()) record["config_hash"] = r.config_hash;
  return json{
      {"service", service}, {"at_ms", at_ms}, {"artifact_id", r.artifact}, {"record", record}};
}

json render_host_running_at(const std::string& service, const std::string& host, std::int64_t at_ms,
                            const CoordinatorStore::HostRelease& r) {
  return json{{"service", service},
              {"host", host},
              {"at_ms", at_ms},
              {"artifact_id", r.release},
              {"since_ms", r.since_ms}};
}

json render_host_releases(const std::string& service, const std::string& host,
                          const std::vector<CoordinatorStore::HostRelease>& all) {
  json out = json::array();
  for (const auto& r : all) out.push_back({{"artifact_id", r.release}, {"since_ms", r.since_ms}});
  return json{{"service", service}, {"host", host}, {"releases", out}};
}

json render_created_token(const CreatedToken& t) {
  return json{
      {"name", t.name}, {"role", role_name(t.role)}, {"person", t.person}, {"token", t.token}};
}

json render_tokens(const std::vector<TokenStore::Listed>& tokens) {
  json out = json::array();
  for (const auto& t : tokens) {
    out.push_back({{"name", t.name},
                   {"role", role_name(t.role)},
                   {"person", t.person},
                   {"created_at", t.created_at}});
  }
  return json{{"tokens", out}};
}

}  // namespace drover::coordinator::api
