// The JSON of the coordinator's HTTP API (docs/API.md): request bodies
// decoded into the Coordinator's typed operations, with errors that name the
// field ("strategy.batch_size must be ..."), and the answers rendered. The
// one place the API's JSON is written; the HTTP layer (http_api.cpp) only
// routes, authenticates and maps errors to statuses.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/service/coordinator.hpp"

namespace drover::coordinator::api {

// ---- requests ----
Result<Pipeline> decode_pipeline(const nlohmann::json& body);
Result<DeployStart> decode_deploy_start(const nlohmann::json& body);
struct RollbackRequest {
  std::string deploy_id;
  std::optional<std::string> reason;
};
// {comment?} of an approval, {reason} of a rejection or a freeze override:
// one text field (at most 1 KiB).
Result<std::string> decode_gate_text(const nlohmann::json& body, const std::string& field,
                                     bool required);
// POST /releases {"services":[{"pipeline_id","artifact_id"}…],"policy"?}.
Result<Coordinator::ReleaseStart> decode_release_start(const nlohmann::json& body);
// A release: its record, and per member its run and its state in each
// environment (the DAG of GET /releases/:id).
nlohmann::json render_release(const ReleaseView& v);
nlohmann::json render_releases(const std::vector<ReleaseRecord>& all);
// POST /deploys/:id/redeploy {"env"?}: the environment to start in, if given.
Result<std::optional<std::string>> decode_redeploy(const nlohmann::json& body);
// POST /scm/sources {"repository","secret"}; POST /scm/logins {"login","person"}.
Result<std::pair<std::string, std::string>> decode_scm_source(const nlohmann::json& body);
Result<std::pair<std::string, std::string>> decode_scm_login(const nlohmann::json& body);
// PUT /notifications/allow: {"allow":[ENTRY…]}, each entry checked.
Result<std::vector<std::string>> decode_notify_allow(const nlohmann::json& body);
// POST /pipelines/:id/notifications (the allow-list is checked apart).
Result<notify::Destination> decode_destination(const nlohmann::json& body,
                                               const std::string& pipeline_id);
nlohmann::json render_destination(const notify::Destination& d);
nlohmann::json render_destinations(const std::vector<notify::Destination>& all);
nlohmann::json render_outbox(const std::vector<notify::Pending>& pending);
Result<RollbackRequest> decode_rollback(const nlohmann::json& body);
// POST /services/:service/flags/:flag {"env","value"} (value: true, false or
// a percentage 0-100); .../kill {"env"}.
struct FlagChange {
  std::string env;
  proto::FlagValue value;
  bool now = false;  // a raise at once, no ramp (an approver's)
};
Result<FlagChange> decode_flag_set(const nlohmann::json& body);
Result<std::string> decode_flag_kill(const nlohmann::json& body);
nlohmann::json render_flagset(const FlagSetRecord& r);
nlohmann::json render_flagsets(const std::string& service, const std::vector<FlagSetRecord>& all);
Result<ContentId> decode_artifact_registration(const nlohmann::json& body);
struct TokenRequest {
  std::string name;
  Role role = Role::viewer;
  std::optional<std::string> person;  // by the name rule; absent: the name
};
Result<TokenRequest> decode_token_request(const nlohmann::json& body);
Result<std::string> decode_join_token_revocation(const nlohmann::json& body);

// The health webhook's body: {service, samples: [...]}. Samples are read in
// order; each names an enrolled host (is_enrolled answers, 404 otherwise)
// and is timed within five minutes of now_ms (now_ms when absent).
struct HealthWebhook {
  std::string service;
  std::vector<ExternalSample> samples;
};
using HostCheck = std::function<Result<bool>(const std::string& host)>;
Result<HealthWebhook> decode_health_webhook(const nlohmann::json& body, std::int64_t now_ms,
                                            const HostCheck& is_enrolled);

// ---- answers ----
nlohmann::json render_pipeline(const Pipeline& p);
nlohmann::json render_pipelines(const std::vector<Pipeline>& all);
nlohmann::json render_runs(const std::string& pipeline_id, const std::vector<DeployRecord>& runs);
nlohmann::json render_deploy_summary(const DeployRecord& d);
nlohmann::json render_deploy_started(const DeployStarted& s);
nlohmann::json render_deploy_view(const DeployView& v);
nlohmann::json render_deploys(const std::vector<DeployRecord>& deploys);
// The API's answer for an artifact (docs/API.md) is its own contract: it may
// look like the stored record (encode_artifact_record, docs/FORMATS.md) but
// each changes on its own version, so neither is written through the other.
nlohmann::json render_artifact(const ArtifactRecord& a);
nlohmann::json render_artifacts(const std::vector<ArtifactRecord>& all);
nlohmann::json render_hosts(const std::vector<HostView>& hosts);
nlohmann::json render_audit(const std::vector<AuditRecord>& records);
// GET /deploys/:id/audit: the summary, config_hash, the snapshot (parsed) and the records.
nlohmann::json render_history(const DeployHistory& h);
nlohmann::json render_audit_check(const AuditCheck& c);
nlohmann::json render_running_at(const std::string& service, std::int64_t at_ms,
                                 const AuditRecord& r);
// What one host ran at a time; every change of what it ran (GET /hosts/:host/releases).
nlohmann::json render_host_running_at(const std::string& service, const std::string& host,
                                      std::int64_t at_ms, const CoordinatorStore::HostRelease& r);
nlohmann::json render_host_releases(const std::string& service, const std::string& host,
                                    const std::vector<CoordinatorStore::HostRelease>& all);
nlohmann::json render_created_token(const CreatedToken& t);
// POST /join-tokens: {"ttl_s","uses","regions","services"}, each optional.
Result<CoordinatorStore::JoinTokenSpec> decode_join_token_request(const nlohmann::json& body);
nlohmann::json render_join_token(const CoordinatorStore::JoinToken& t);
nlohmann::json render_join_tokens(const std::vector<CoordinatorStore::JoinToken>& tokens);
nlohmann::json render_tokens(const std::vector<TokenStore::Listed>& tokens);

}  // namespace drover::coordinator::api
