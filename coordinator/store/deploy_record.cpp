#include "coordinator/store/deploy_record.hpp"

#include <nlohmann/json.hpp>

#include "core/canon/canonical_json.hpp"

namespace drover::coordinator {
namespace {

using nlohmann::json;
constexpr std::string_view kFormat = "drover.deploy.v1";

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
    case DeployState::deploying: return "deploying";
    case DeployState::baking: return "baking";
    case DeployState::rolling_back: return "rolling_back";
    case DeployState::succeeded: return "succeeded";
    case DeployState::rolled_back: return "rolled_back";
    case DeployState::failed: return "failed";
    case DeployState::paused: return "paused";
  }
  return "?";
}

bool is_terminal(DeployState s) {
  return s == DeployState::succeeded || s == DeployState::rolled_back || s == DeployState::failed;
}

Result<DeployState> parse_deploy_state(std::string_view name) {
  for (DeployState s : {DeployState::pending, DeployState::artifact_ready, DeployState::deploying,
                        DeployState::baking, DeployState::rolling_back, DeployState::succeeded,
                        DeployState::rolled_back, DeployState::failed, DeployState::paused}) {
    if (name == deploy_state_name(s)) return s;
  }
  return make_error(Errc::corrupt, "unknown deploy state '" + std::string(name) + "'");
}

std::string encode_deploy(const DeployRecord& d) {
  json batches = json::array();
  for (const auto& b : d.batches) {
    batches.push_back({{"hosts", b.hosts},
                       {"status", b.status},
                       {"started_ms", b.started_ms},
                       {"converged_ms", b.converged_ms},
                       {"finished_ms", b.finished_ms},
                       {"verdict", b.verdict}});
  }
  json j = {{"format", kFormat},
            {"id", d.id},
            {"pipeline_id", d.pipeline_id},
            {"service", d.service},
            {"artifact", d.artifact},
            {"prior_artifact", d.prior_artifact},
            {"state", deploy_state_name(d.state)},
            {"batch", d.batch},
            {"batches", batches},
            {"deadline_ms", d.deadline_ms},
            {"bake_until_ms", d.bake_until_ms},
            {"paused_from", deploy_state_name(d.paused_from)},
            {"paused_deadline_left_ms", d.paused_deadline_left_ms},
            {"paused_bake_left_ms", d.paused_bake_left_ms},
            {"created_ms", d.created_ms},
            {"completed_ms", d.completed_ms},
            {"rollback_started_ms", d.rollback_started_ms},
            {"rollback_done_ms", d.rollback_done_ms},
            {"reason", d.reason}};
  return *canon::encode(j);
}

Result<DeployRecord> decode_deploy(std::string_view bytes) {
  auto parsed = canon::decode(bytes, 64 << 20);
  if (!parsed.ok()) return parsed.error().context("deploy record");
  try {
    const json& j = *parsed;
    if (j.at("format").get<std::string>() != kFormat) {
      return make_error(Errc::unsupported, "deploy record of format " + j.at("format").dump());
    }
    DeployRecord d;
    d.id = j.at("id").get<std::string>();
    d.pipeline_id = j.at("pipeline_id").get<std::string>();
    d.service = j.at("service").get<std::string>();
    d.artifact = j.at("artifact").get<std::string>();
    d.prior_artifact = j.at("prior_artifact").get<std::string>();
    DROVER_ASSIGN(d.state, parse_deploy_state(j.at("state").get<std::string>()));
    d.batch = j.at("batch").get<std::size_t>();
    for (const auto& b : j.at("batches")) {
      BatchRecord r;
      r.hosts = b.at("hosts").get<std::vector<std::string>>();
      r.status = b.at("status").get<std::string>();
      r.started_ms = b.at("started_ms").get<std::int64_t>();
      r.converged_ms = b.at("converged_ms").get<std::int64_t>();
      r.finished_ms = b.at("finished_ms").get<std::int64_t>();
      r.verdict = b.at("verdict").get<std::string>();
      d.batches.push_back(std::move(r));
    }
    d.deadline_ms = j.at("deadline_ms").get<std::int64_t>();
    d.bake_until_ms = j.at("bake_until_ms").get<std::int64_t>();
    DROVER_ASSIGN(d.paused_from, parse_deploy_state(j.at("paused_from").get<std::string>()));
    d.paused_deadline_left_ms = j.at("paused_deadline_left_ms").get<std::int64_t>();
    d.paused_bake_left_ms = j.at("paused_bake_left_ms").get<std::int64_t>();
    d.created_ms = j.at("created_ms").get<std::int64_t>();
    d.completed_ms = j.at("completed_ms").get<std::int64_t>();
    d.rollback_started_ms = j.at("rollback_started_ms").get<std::int64_t>();
    d.rollback_done_ms = j.at("rollback_done_ms").get<std::int64_t>();
    d.reason = j.at("reason").get<std::string>();
    if (d.batch > d.batches.size())
      return make_error(Errc::corrupt, "deploy record: batch out of range");
    return d;
  } catch (const json::exception& e) {
    return make_error(Errc::corrupt, std::string("deploy record: ") + e.what());
  }
}

}  // namespace drover::coordinator
