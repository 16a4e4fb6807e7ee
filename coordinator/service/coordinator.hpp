// drover-coordinator assembled (docs/COORDINATOR.md): the durable store, the
// agent gateway and plan issuer, the deploy driver on its own thread, the
// artifact registry that follows the origin's feed, an optional embedded
// mesh tracker, and the operations the HTTP API exposes.
//
// Each operation validates its input completely before it changes anything,
// and answers an error that names what was wrong.
//
// Threads: the driver thread ticks the orchestrator; the feed thread follows
// the origin; API operations may run on any thread (they take the
// orchestrator's lock where they touch deploys).
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "coordinator/api/tokens.hpp"
#include "coordinator/orchestrator/fleet_adapter.hpp"
#include "coordinator/pipelines/pipeline.hpp"
#include "core/log/log.hpp"
#include "core/world/clock.hpp"
#include "core/world/random.hpp"
#include "mesh/tracker/tracker_service.hpp"

namespace drover::coordinator {

struct CoordinatorOptions {
  fs::path data_dir;
  std::optional<OnlineKey> online;  // required
  GatewayOptions agents;
  // The mesh tracker: embedded (tracker_listen "host:port") or elsewhere
  // (tracker_url). Plans carry its address; readiness asks its /swarm.
  std::string tracker_listen, tracker_url;
  // The embedded tracker's announce interval. A restarted coordinator's
  // tracker knows no one until nodes announce again, so this bounds how
  // long a fetch started right after a restart waits for its first source.
  std::chrono::seconds tracker_interval{30};
  std::string origin_feed;     // "http://host:port" of the origin's feed; "" for none
  std::string webhook_secret;  // HMAC key of POST /webhooks/health; "" refuses the webhook
  std::chrono::milliseconds tick{200};
  std::int64_t plan_validity_s = 24 * 3600;
  std::int64_t sample_retention_s = 24 * 3600;
  bool follow_feed = true;  // register every artifact the feed announces
  int feed_wait_s = 2;      // long-poll length (bounds how long a stop waits for the feed thread)
  // A test's crash point: after committing a transition whose audit record
  // is `crash_after` for the crash_count-th time, the process kills itself
  // (SIGKILL) before acting on it. Empty: never.
  std::string crash_after;
  int crash_count = 1;
};

// An API operation's failure: the HTTP status it maps to comes from the code.
class Coordinator {
 public:
  static Result<std::unique_ptr<Coordinator>> start(CoordinatorOptions options, const Clock& clock,
                                                    Random& random, Logger& log);
  ~Coordinator();  // stops the threads, then the gateway

  std::string agent_requests_url() const { return gateway_->requests_url(); }
  std::string agent_announcements_url() const { return gateway_->announcements_url(); }
  std::string tracker_url() const { return tracker_url_; }

  CoordinatorStore& store() { return *store_; }
  TokenStore& tokens() { return *tokens_; }

  // ---- operations of the API; each answers the JSON the API returns ----
  Result<nlohmann::json> put_pipeline(const nlohmann::json& body, const Caller& who, bool& created);
  Result<nlohmann::json> pipeline(const std::string& id);
  Result<nlohmann::json> pipelines();
  Result<nlohmann::json> runs(const std::string& pipeline_id, std::size_t limit);

  Result<nlohmann::json> start_deploy(const nlohmann::json& body, const Caller& who);
  Result<nlohmann::json> deploy_view(const std::string& id);
  Result<nlohmann::json> deploys(const std::string& service, std::size_t limit);
  Result<nlohmann::json> pause(const std::string& id, const Caller& who);
  Result<nlohmann::json> resume(const std::string& id, const Caller& who);
  Result<nlohmann::json> rollback(const nlohmann::json& body, const Caller& who);

  Result<nlohmann::json> register_artifact(const nlohmann::json& body, const Caller& who);
  Result<nlohmann::json> artifact(const std::string& id);
  Result<nlohmann::json> artifacts(const std::string& service);

  Result<nlohmann::json> hosts();
  Result<nlohmann::json> reset_host(const std::string& host, const Caller& who);

  // The body must carry `X-Drover-Signature: sha256=<hex HMAC of the body>`.
  Result<nlohmann::json> health_webhook(const std::string& body, const std::string& signature);

  Result<nlohmann::json> audit(const std::string& service, std::int64_t since_ms,
                               std::int64_t until_ms, std::size_t limit);
  Result<nlohmann::json> audit_verify();
  Result<nlohmann::json> running_at(const std::string& service, std::int64_t at_ms);

  Result<nlohmann::json> create_token(const nlohmann::json& body, const Caller& who);
  Result<nlohmann::json> list_tokens();
  Result<nlohmann::json> revoke_token(const std::string& name, const Caller& who);
  Result<nlohmann::json> create_join_token(const Caller& who);
  Result<nlohmann::json> revoke_join_token(const nlohmann::json& body, const Caller& who);

  // Pulls new artifacts from the origin's feed once (the feed thread's step).
  Status follow_feed_once(int wait_s);

 private:
  Coordinator(CoordinatorOptions options, const Clock& clock, Random& random, Logger& log);
  std::int64_t now_ms() const;
  Result<Pipeline> load_pipeline(const std::string& id);
  // What a deploy's config snapshot says, read once per deploy.
  struct DeploySettings {
    DeployParams params;
    std::string artifact_ready = "seeds";
    bool ready = false;  // its artifact was found ready (it stays so)
  };
  DeploySettings settings_of(const DeployRecord& d);
  DeployParams params_of(const DeployRecord& d);
  bool artifact_ready(const DeployRecord& d);
  Result<std::string> manifest_of(const ContentId& id);
  Result<nlohmann::json> register_manifest(const std::string& id, const std::string& manifest,
                                           const std::string& source, const std::string& who);
  Status audit_admin(const std::string& who, const std::string& what, const nlohmann::json& detail);
  void drive();
  void follow_feed();
  void after_commit(const std::string& what);

  CoordinatorOptions options_;
  const Clock& clock_;
  Random& random_;
  Logger& log_;
  std::unique_ptr<CoordinatorStore> store_;
  std::unique_ptr<TokenStore> tokens_;
  std::unique_ptr<mesh::TrackerService> tracker_;
  std::string tracker_url_;
  std::unique_ptr<AgentGateway> gateway_;
  std::unique_ptr<PlanIssuer> issuer_;
  std::unique_ptr<Orchestrator> orchestrator_;
  std::mutex orchestrator_mu_;  // the driver and API operations share the orchestrator

  std::mutex cache_mu_;
  std::map<std::string, DeploySettings> settings_;  // by deploy id

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread driver_, feed_;
  int crash_seen_ = 0;
};

}  // namespace drover::coordinator
