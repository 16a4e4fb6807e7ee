#include "coordinator/store/deploy_record.hpp"

#include <nlohmann/json.hpp>

#include "core/canon/canonical_json.hpp"

namespace drover::coordinator {
namespace {

using nlohmann::json;
constexpr std::string_view kFormatV1 = "drover.deploy.v1";
constexpr std::string_view kFormat = "drover.deploy.v2";
// Runs of a release (issue 16): a release id, and the end state cancelled.
constexpr std::string_view kFormatV3 = "drover.deploy.v3";

constexpr DeployState kStates[] = {
    DeployState::pending,           DeployState::artifact_ready, DeployState::queued,
    DeployState::awaiting_approval, DeployState::deploying,      DeployState::baking,
    DeployState::watching,          DeployState::rolling_back,   DeployState::paused,
    DeployState::succeeded,         DeployState::rolled_back,    DeployState::failed,
    DeployState::rejected,          DeployState::expired,        DeployState::superseded,
    DeployState::cancelled};

json batch_to_json(const BatchRecord& b) {
  json j = {{"hosts", b.hosts},
            {"status", b.status},
            {"started_ms", b.started_ms},
            {"converged_ms", b.converged_ms},
            {"finished_ms", b.finished_ms},
            {"verdict", b.verdict}};
  // Written only when not the default: records without them read as before.
  if (b.traffic != 1000) j["traffic"] = b.traffic;
  if (b.preview) j["preview"] = true;
  if (b.flag_percent >= 0) j["flag_percent"] = b.flag_percent;
  return j;
}

BatchRecord batch_from_json(const json& b) {
  BatchRecord r;
  r.hosts = b.at("hosts").get<std::vector<std::string>>();
  r.status = b.at("status").get<std::string>();
  r.started_ms = b.at("started_ms").get<std::int64_t>();
  r.converged_ms = b.at("converged_ms").get<std::int64_t>();
  r.finished_ms = b.at("finished_ms").get<std::int64_t>();
  r.verdict = b.at("verdict").get<std::string>();
  r.traffic = b.value("traffic", 1000);
  r.preview = b.value("preview", false);
  r.flag_percent = b.value("flag_percent", -1);
  if (r.traffic < 0 || r.traffic > 1000) throw json::other_error::create(501, "traffic", &b);
  return r;
}

json act_to_json(const GateAct& a) {
  return {{"person", a.person}, {"token", a.token}, {"at_ms", a.at_ms}, {"comment", a.comment}};
}

GateAct act_from_json(const json& j) {
  return {j.at("person").get<std::string>(), j.at("token").get<std::string>(),
          j.at("at_ms").get<std::int64_t>(), j.at("comment").get<std::string>()};
}

json region_to_json(const RegionRun& r) {
  json batches = json::array();
  for (const auto& b : r.batches) batches.push_back(batch_to_json(b));
  return {{"region", r.region},
          {"cluster", r.cluster},
          {"status", r.status},
          {"batch", r.batch},
          {"batches", batches},
          {"deadline_ms", r.deadline_ms},
          {"bake_until_ms", r.bake_until_ms},
          {"judge_from_ms", r.judge_from_ms},
          {"verdict", r.verdict}};
}

RegionRun region_from_json(const json& j) {
  RegionRun r;
  r.region = j.at("region").get<std::string>();
  r.cluster = j.at("cluster").get<std::string>();
  r.status = j.at("status").get<std::string>();
  r.batch = j.at("batch").get<std::size_t>();
  for (const auto& b : j.at("batches")) r.batches.push_back(batch_from_json(b));
  r.deadline_ms = j.at("deadline_ms").get<std::int64_t>();
  r.bake_until_ms = j.at("bake_until_ms").get<std::int64_t>();
  r.judge_from_ms = j.at("judge_from_ms").get<std::int64_t>();
  r.verdict = j.at("verdict").get<std::string>();
  if (r.batch > r.batches.size()) throw std::out_of_range("region batch out of range");
  return r;
}

json env_to_json(const EnvRun& e) {
  json waves = json::array();
  for (const auto& w : e.waves) {
    json regions = json::array();
    for (const auto& r : w.regions) regions.push_back(region_to_json(r));
    waves.push_back({{"name", w.name},
                     {"status", w.status},
                     {"started_ms", w.started_ms},
                     {"finished_ms", w.finished_ms},
                     {"regions", regions}});
  }
  json approvals = json::array();
  for (const auto& a : e.gate.approvals) approvals.push_back(act_to_json(a));
  json gate = {{"required", e.gate.required},
               {"deadline_ms", e.gate.deadline_ms},
               {"approvals", approvals},
               {"rejection", e.gate.rejection ? act_to_json(*e.gate.rejection) : json(nullptr)}};
  return {{"name", e.name},
          {"status", e.status},
          {"prior_artifact", e.prior_artifact},
          {"entered_ms", e.entered_ms},
          {"finished_ms", e.finished_ms},
          {"gate", gate},
          {"freeze_override", e.freeze_override ? act_to_json(*e.freeze_override) : json(nullptr)},
          {"frozen", e.frozen},
          {"wave", e.wave},
          {"waves", waves},
          {"watch_until_ms", e.watch_until_ms},
          {"rollback_started_ms", e.rollback_started_ms},
          {"rollback_done_ms", e.rollback_done_ms}};
}

EnvRun env_from_json(const json& j) {
  EnvRun e;
  e.name = j.at("name").get<std::string>();
  e.status = j.at("status").get<std::string>();
  e.prior_artifact = j.at("prior_artifact").get<std::string>();
  e.entered_ms = j.at("entered_ms").get<std::int64_t>();
  e.finished_ms = j.at("finished_ms").get<std::int64_t>();
  const json& g = j.at("gate");
  e.gate.required = g.at("required").get<int>();
  e.gate.deadline_ms = g.at("deadline_ms").get<std::int64_t>();
  for (const auto& a : g.at("approvals")) e.gate.approvals.push_back(act_from_json(a));
  if (!g.at("rejection").is_null()) e.gate.rejection = act_from_json(g.at("rejection"));
  if (!j.at("freeze_override").is_null())
    e.freeze_override = act_from_json(j.at("freeze_override"));
  e.frozen = j.at("frozen").get<std::string>();
  e.wave = j.at("wave").get<std::size_t>();
  for (const auto& w : j.at("waves")) {
    WaveRun run;
    run.name = w.at("name").get<std::string>();
    run.status = w.at("status").get<std::string>();
    run.started_ms = w.at("started_ms").get<std::int64_t>();
    run.finished_ms = w.at("finished_ms").get<std::int64_t>();
    for (const auto& r : w.at("regions")) run.regions.push_back(region_from_json(r));
    e.waves.push_back(std::move(run));
  }
  e.watch_until_ms = j.at("watch_until_ms").get<std::int64_t>();
  e.rollback_started_ms = j.at("rollback_started_ms").get<std::int64_t>();
  e.rollback_done_ms = j.at("rollback_done_ms").get<std::int64_t>();
  if (e.waves.empty() || e.wave >= e.waves.size()) {
    throw std::out_of_range("environment '" + e.name + "': wave out of range");
  }
  return e;
}

// A version-1 record: one environment ("" : the snapshot names it), one wave
// of one region holding every batch.
Result<DeployRecord> decode_v1(const json& j) {
  DeployRecord d;
  d.id = j.at("id").get<std::string>();
  d.pipeline_id = j.at("pipeline_id").get<std::string>();
  d.service = j.at("service").get<std::string>();
  d.artifact = j.at("artifact").get<std::string>();
  DROVER_ASSIGN(const DeployState v1_state, parse_deploy_state(j.at("state").get<std::string>()));
  DROVER_ASSIGN(const DeployState v1_paused_from,
                parse_deploy_state(j.at("paused_from").get<std::string>()));
  d.created_ms = j.at("created_ms").get<std::int64_t>();
  d.completed_ms = j.at("completed_ms").get<std::int64_t>();
  d.reason = j.at("reason").get<std::string>();
  EnvRun e;
  e.prior_artifact = j.at("prior_artifact").get<std::string>();
  e.entered_ms = d.created_ms;
  e.rollback_started_ms = j.at("rollback_started_ms").get<std::int64_t>();
  e.rollback_done_ms = j.at("rollback_done_ms").get<std::int64_t>();
  WaveRun w;
  w.name = "all";
  RegionRun r;
  r.batch = j.at("batch").get<std::size_t>();
  for (const auto& b : j.at("batches")) r.batches.push_back(batch_from_json(b));
  if (r.batch > r.batches.size()) return make_error(Errc::corrupt, "batch out of range");
  const std::int64_t deadline = j.at("deadline_ms").get<std::int64_t>();
  const std::int64_t bake_until = j.at("bake_until_ms").get<std::int64_t>();
  const DeployState s = v1_state == DeployState::paused ? v1_paused_from : v1_state;
  switch (s) {
    case DeployState::deploying:
      r.status = "deploying";
      r.deadline_ms = deadline;
      break;
    case DeployState::baking:
      r.status = "baking";
      r.bake_until_ms = bake_until;
      r.deadline_ms = deadline;
      r.judge_from_ms = r.batch < r.batches.size() ? r.batches[r.batch].converged_ms : 0;
      break;
    case DeployState::succeeded: r.status = "passed"; break;
    case DeployState::rolling_back: r.status = "rolling_back"; break;
    case DeployState::rolled_back: r.status = "rolled_back"; break;
    case DeployState::failed: r.status = r.batches.empty() ? "pending" : "failed"; break;
    default: break;
  }
  if (v1_state == DeployState::paused) {
    // A version-1 pause kept what was left of each wait.
    const std::int64_t left = j.at("paused_deadline_left_ms").get<std::int64_t>();
    const std::int64_t bake_left = j.at("paused_bake_left_ms").get<std::int64_t>();
    d.paused_at_ms = 0;
    r.deadline_ms = left;
    r.bake_until_ms = bake_left;
  }
  w.status = r.status == "passed"                                      ? "passed"
             : r.status == "pending"                                   ? "pending"
             : r.status == "failed"                                    ? "failed"
             : r.status == "rolling_back" || r.status == "rolled_back" ? r.status
                                                                       : "running";
  w.regions.push_back(std::move(r));
  e.waves.push_back(std::move(w));
  e.status = s == DeployState::pending || s == DeployState::artifact_ready ? "pending"
             : s == DeployState::succeeded                                 ? "passed"
             : s == DeployState::baking                                    ? "deploying"
                                                                           : deploy_state_name(s);
  d.environments.push_back(std::move(e));
  d.state = v1_state;
  d.paused_from = v1_state == DeployState::paused ? v1_paused_from : DeployState::pending;
  if (s == DeployState::rolling_back) d.deadline_ms = deadline;
  if (s == DeployState::pending) d.deadline_ms = deadline;
  return d;
}

}  // namespace

std::vector<BatchRecord> pending_batches(const std::vector<std::vector<std::string>>& hosts) {
  std::vector<BatchRecord> out;
  for (const auto& h : hosts) {
    BatchRecord r;
    r.hosts = h;
    out.push_back(std::move(r));
  }
  return out;
}

const char* deploy_state_name(DeployState s) {
  switch (s) {
    case DeployState::pending: return "pending";
    case DeployState::artifact_ready: return "artifact_ready";
    case DeployState::queued: return "queued";
    case DeployState::awaiting_approval: return "awaiting_approval";
    case DeployState::deploying: return "deploying";
    case DeployState::baking: return "baking";
    case DeployState::watching: return "watching";
    case DeployState::rolling_back: return "rolling_back";
    case DeployState::paused: return "paused";
    case DeployState::succeeded: return "succeeded";
    case DeployState::rolled_back: return "rolled_back";
    case DeployState::failed: return "failed";
    case DeployState::rejected: return "rejected";
    case DeployState::expired: return "expired";
    case DeployState::superseded: return "superseded";
    case DeployState::cancelled: return "cancelled";
  }
  return "?";
}

bool is_terminal(DeployState s) {
  return s == DeployState::succeeded || s == DeployState::rolled_back || s == DeployState::failed ||
         s == DeployState::rejected || s == DeployState::expired || s == DeployState::superseded ||
         s == DeployState::cancelled;
}

bool holds_env(const DeployRecord& d) {
  switch (d.state == DeployState::paused ? d.paused_from : d.state) {
    case DeployState::awaiting_approval:
    case DeployState::deploying:
    case DeployState::baking:
    case DeployState::watching:
    case DeployState::rolling_back: return true;
    case DeployState::queued:
      return !d.release.empty() && d.queued_behind.starts_with(d.release + ":");
    default: return false;
  }
}

Result<DeployState> parse_deploy_state(std::string_view name) {
  for (DeployState s : kStates) {
    if (name == deploy_state_name(s)) return s;
  }
  return make_error(Errc::corrupt, "unknown deploy state '" + std::string(name) + "'");
}

std::string encode_deploy(const DeployRecord& d) {
  json envs = json::array();
  for (const auto& e : d.environments) envs.push_back(env_to_json(e));
  json j = {{"format", kFormat},
            {"id", d.id},
            {"pipeline_id", d.pipeline_id},
            {"service", d.service},
            {"artifact", d.artifact},
            {"started_by", d.started_by},
            {"state", deploy_state_name(d.state)},
            {"current_env", d.env},
            {"environments", envs},
            {"queued_behind", d.queued_behind},
            {"deadline_ms", d.deadline_ms},
            {"paused_from", deploy_state_name(d.paused_from)},
            {"paused_at_ms", d.paused_at_ms},
            {"created_ms", d.created_ms},
            {"completed_ms", d.completed_ms},
            {"reason", d.reason}};
  if (d.ramp()) {
    j["flag"] = {{"name", d.flag}, {"percent", d.flag_percent}, {"before", d.flag_before}};
  }
  if (!d.release.empty() || d.state == DeployState::cancelled) {
    j["format"] = kFormatV3;
    j["release"] = d.release;
  }
  return *canon::encode(j);
}

Result<DeployRecord> decode_deploy(std::string_view bytes) {
  auto parsed = canon::decode(bytes, 64 << 20);
  if (!parsed.ok()) return parsed.error().context("deploy record");
  try {
    const json& j = *parsed;
    const std::string format = j.at("format").get<std::string>();
    if (format == kFormatV1) {
      auto d = decode_v1(j);
      if (!d.ok()) return d.error().context("deploy record (v1)");
      return d;
    }
    if (format != kFormat && format != kFormatV3) {
      return make_error(Errc::unsupported, "deploy record of format " + j.at("format").dump());
    }
    DeployRecord d;
    d.id = j.at("id").get<std::string>();
    d.pipeline_id = j.at("pipeline_id").get<std::string>();
    d.service = j.at("service").get<std::string>();
    d.artifact = j.at("artifact").get<std::string>();
    d.started_by = j.at("started_by").get<std::string>();
    DROVER_ASSIGN(d.state, parse_deploy_state(j.at("state").get<std::string>()));
    d.env = j.at("current_env").get<std::size_t>();
    for (const auto& e : j.at("environments")) d.environments.push_back(env_from_json(e));
    d.queued_behind = j.at("queued_behind").get<std::string>();
    d.deadline_ms = j.at("deadline_ms").get<std::int64_t>();
    DROVER_ASSIGN(d.paused_from, parse_deploy_state(j.at("paused_from").get<std::string>()));
    d.paused_at_ms = j.at("paused_at_ms").get<std::int64_t>();
    d.created_ms = j.at("created_ms").get<std::int64_t>();
    d.completed_ms = j.at("completed_ms").get<std::int64_t>();
    if (j.contains("flag")) {
      d.flag = j.at("flag").at("name").get<std::string>();
      d.flag_percent = j.at("flag").at("percent").get<int>();
      d.flag_before = j.at("flag").value("before", 0);
    }
    d.reason = j.at("reason").get<std::string>();
    if (format == kFormatV3) d.release = j.at("release").get<std::string>();
    if (d.environments.empty() || d.env >= d.environments.size()) {
      return make_error(Errc::corrupt, "deploy record: current_env out of range");
    }
    return d;
  } catch (const std::exception& e) {
    return make_error(Errc::corrupt, std::string("deploy record: ") + e.what());
  }
}

}  // namespace drover::coordinator
