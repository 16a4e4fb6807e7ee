// drover-coordinator assembled (docs/COORDINATOR.md): the durable store, the
// agent gateway and plan issuer, the deploy driver on its own thread, the
// artifact registry that follows the origin's feed, an optional embedded
// mesh tracker, and the operations the HTTP API exposes.
//
// Operations take and return typed values; the HTTP API (api/) decodes
// requests into them and renders their answers. Each operation checks its
// input completely before it changes anything, and answers an error that
// names what was wrong.
//
// Threads: the readiness thread asks the tracker about pending deploys (off
// the orchestrator's lock); the driver thread ticks the orchestrator (under
// it), never waiting on the network; the feed
// thread follows the origin; API operations may run on any thread (they take
// the orchestrator's lock where they change deploys, and never do network
// I/O under it).
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "coordinator/access/tokens.hpp"
#include "coordinator/artifacts/feed_follower.hpp"
#include "coordinator/artifacts/readiness.hpp"
#include "coordinator/artifacts/registry.hpp"
#include "coordinator/gateway/agent_gateway.hpp"
#include "coordinator/notify/notifier.hpp"
#include "coordinator/orchestrator/orchestrator.hpp"
#include "coordinator/pipelines/pipeline.hpp"
#include "coordinator/plans/plan_issuer.hpp"
#include "coordinator/releases/release_driver.hpp"
#include "coordinator/service/analysis.hpp"
#include "coordinator/service/metrics.hpp"
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
  // The embedded tracker's seed and origin allow-list (docs/MESH.md, "What
  // the tracker refuses"); unset: any node may announce as a source.
  std::optional<std::vector<mesh::SourceGrant>> tracker_sources;
  // The mesh token key (core/mesh_token: 32 raw bytes; config
  // tracker.token_key_file). Set: the embedded tracker admits only
  // announces with a valid token, and agents are issued tokens under it
  // (docs/FORMATS.md, "Mesh tokens"). Unset: no tokens, as before.
  std::optional<std::string> mesh_token_key;
  std::string origin_feed;     // "http://host:port" of the origin's feed; "" for none
  std::string webhook_secret;  // HMAC key of POST /webhooks/health; "" refuses the webhook
  // How long a push waits for its artifact (docs/API.md, "The SCM webhook").
  std::int64_t scm_wait_s = 3600;
  // Notifications (docs/API.md, "Notifications"): how long one is retried,
  // how long an attempt may take, and the CAs for https destinations ("":
  // the system's).
  std::int64_t notify_give_up_s = 24 * 3600;
  std::chrono::milliseconds notify_timeout{10'000};
  std::string notify_ca_file;
  // Prometheus as a health source (docs/COORDINATOR.md, "Prometheus
  // analysis"): the servers pipelines may name, the query timeout, the CAs.
  PrometheusOptions prometheus;
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
  // Test-only, the planted early batch (docs/CHAOS.md): each batch passes
  // this long before its bake ends. Never set outside a chaos test.
  std::int64_t planted_early_batch_ms = 0;
  // The driver thread ticks deploys every `tick`. Without it (a simulation
  // in virtual time), the caller drives with drive_once().
  bool run_driver = true;
};

// What a coordinator is given besides its options: the parts a test or a
// simulation replaces. Each one left empty is made from the options.
struct CoordinatorParts {
  std::unique_ptr<CoordinatorStore> store;       // LmdbCoordinatorStore in options.data_dir
  std::unique_ptr<mesh::TrackerClient> tracker;  // HTTP to the tracker; none without a tracker
  std::unique_ptr<PlanSigner> signer;            // the online key of options.online
  notify::Send notify_send;                      // HTTP(S) to the destinations
};

// ---- what the operations take and answer ----

struct SavedPipeline {
  Pipeline pipeline;
  bool created = false;  // a new pipeline (else a new version of one)
};

struct DeployStart {
  std::string pipeline_id;
  ContentId artifact;
  std::optional<std::string> env;      // the pipeline's first env when absent
  std::optional<std::string> git_sha;  // the artifact's when absent
  std::optional<Strategy> strategy_override;
  // A flag ramp (issue 15): the flag and the percentage it ramps to, in env.
  std::optional<std::pair<std::string, int>> flag = {};
  int flag_before = 0;
};

struct DeployStarted {
  DeployRecord deploy;
  std::string env, git_sha;
  std::string config_hash;  // content id of the config snapshot
};

// Everything recorded about one deploy (GET /deploys/:id/audit).
struct DeployHistory {
  DeployRecord deploy;
  std::string snapshot, config_hash;  // the snapshot's exact bytes and their content id
  std::vector<AuditRecord> records;   // the deploy's audit records, oldest first
};

struct DeployView {
  DeployRecord deploy;
  std::optional<DeployConfig> config;  // from the config snapshot
  std::string config_hash;
  CoordinatorStore::Fleet fleet;  // the service's hosts since the deploy began
  // Its Prometheus measurements still in memory, per bake
  // (coordinator/service/analysis.hpp).
  std::vector<BatchAnalysis> analysis = {};
};

struct HostView {
  HostRecord host;
  std::map<std::string, std::string> running;  // service -> release it runs ("" unknown)
  // service -> the newest health sample of the last 5 minutes (of its live
  // slot), when there is one.
  std::map<std::string, CoordinatorStore::FleetSample> health;
};

// A health sample from the webhook (an outside checker).
struct ExternalSample {
  std::string host;
  std::optional<std::string> release;  // what the host reports running when absent
  std::int64_t at_ms = 0;
  double error_rate = 0, p99_ms = 0, saturation = 0;
  bool ok = true;
};

struct CreatedToken {
  std::string name;
  Role role = Role::viewer;
  std::string token;  // shown once
  std::string person = {};
};

// An operation's failure: the HTTP status it maps to comes from the code.
// Runs of one service not finished (waiting, queued, at a gate or running)
// at most; a start beyond is refused (409).
inline constexpr std::size_t kMaxActiveRunsPerService = 16;

class Coordinator {
 public:
  // clock: the time every decision goes by (deadlines, bakes, records).
  static Result<std::unique_ptr<Coordinator>> start(CoordinatorOptions options, const Clock& clock,
                                                    Random& random, Logger& log);
  static Result<std::unique_ptr<Coordinator>> start(CoordinatorOptions options,
                                                    CoordinatorParts parts, const Clock& clock,
                                                    Random& random, Logger& log);
  ~Coordinator();  // stops the threads, then the gateway

  std::string agent_requests_url() const { return gateway_->requests_url(); }
  std::string agent_announcements_url() const { return gateway_->announcements_url(); }
  std::string tracker_url() const { return tracker_url_; }

  CoordinatorStore& store() { return *store_; }
  TokenStore& tokens() { return *tokens_; }
  // Every family of docs/METRICS.md, "Coordinator" (the gateway's and the
  // embedded tracker's included). Whoever serves it stops before the
  // coordinator is destroyed.
  metrics::Registry& metrics() { return metrics_; }

  // The time operations go by (unix ms).
  std::int64_t now_ms() const;

  // The data directory of the state (absolute; "" when the store was given).
  const fs::path& data_dir() const { return options_.data_dir; }

  // ---- operations of the API ----
  // What saving `pipeline` needs (docs/COORDINATOR.md, "Access"): the
  // approver role when it, the stored version it would replace, or another
  // pipeline of its service has an approval gate; else deployer.
  Result<RoleNeed> role_to_put_pipeline(const Pipeline& pipeline);
  // What starting this deploy needs: the approver role when it carries a
  // strategy_override; else deployer.
  static RoleNeed role_to_start_deploy(const DeployStart& start);
  // The same, and the approver role to start a version-2 pipeline's run past
  // its first environment (skipping environments).
  static RoleNeed role_to_start_in(const Pipeline& p, const DeployStart& start);
  Result<RoleNeed> role_to_start(const DeployStart& start);

  // A new pipeline, or a new version of one (its service cannot change).
  // Refused when `who` lacks role_to_put_pipeline's role, checked again
  // under the lock the write takes (a gate stored meanwhile counts).
  Result<SavedPipeline> put_pipeline(Pipeline pipeline, const Caller& who);
  Result<Pipeline> pipeline(const std::string& id);

  // ---- feature flags (docs/COORDINATOR.md, "Feature flags"; deployer) ----
  Result<std::vector<FlagSetRecord>> flags(const std::string& service);
  // The flag at value in env. Raising a percentage starts a ramp run (the
  // pipeline's ramp_percents, each step baked and judged, holding the
  // environment like a deploy) unless now; anything else is a new revision
  // of the environment's flag set at once. Raising at once needs an
  // approver (it skips the judging).
  struct FlagChanged {
    std::optional<FlagSetRecord> set;  // changed at once
    std::optional<DeployRecord> ramp;  // or a ramp run started
  };
  Result<FlagChanged> set_flag(const std::string& service, const std::string& env,
                               const std::string& flag, proto::FlagValue value, bool now,
                               const Caller& who);
  // The flag off (false) at once; refused for a flag the set does not hold.
  Result<FlagSetRecord> kill_flag(const std::string& service, const std::string& env,
                                  const std::string& flag, const Caller& who);
  Result<std::vector<Pipeline>> pipelines();
  // A pipeline's deploys, newest first.
  Result<std::vector<DeployRecord>> runs(const std::string& pipeline_id, std::size_t limit);

  // Refused when `who` lacks role_to_start_deploy's role.
  Result<DeployStarted> start_deploy(const DeployStart& start, const Caller& who);
  // A new run of deploy id's artifact with its snapshot's strategy and
  // health checks, through the pipeline's current environments and gates
  // (env: start there; the approver's call past the first environment),
  // recorded as a redeploy of id (docs/COORDINATOR.md, "Reproducing a deploy").
  Result<DeployStarted> redeploy(const std::string& id, const std::optional<std::string>& env,
                                 const Caller& who);
  // The exact bytes of the config snapshot deploy id was started with.
  Result<std::string> snapshot(const std::string& id);
  // The deploy, its snapshot and every audit record naming it.
  Result<DeployHistory> history(const std::string& id);
  Result<DeployView> deploy_view(const std::string& id);
  // Deploys of a service (all when empty), newest first.
  Result<std::vector<DeployRecord>> deploys(const std::string& service, std::size_t limit);
  // A person at a gate: approve (four-eyes: never the run's starter, each
  // person once), reject, or let waves start inside a freeze window.
  Result<DeployRecord> approve(const std::string& id, const std::string& comment,
                               const Caller& who);
  Result<DeployRecord> reject(const std::string& id, const std::string& reason, const Caller& who);
  Result<DeployRecord> override_freeze(const std::string& id, const std::string& reason,
                                       const Caller& who);
  Result<DeployRecord> pause(const std::string& id, const Caller& who);

  // ---- releases of several services (docs/COORDINATOR.md, "Releases of
  // several services") ----
  struct ReleaseService {
    std::string pipeline_id;
    ContentId artifact;
  };
  struct ReleaseStart {
    std::vector<ReleaseService> services;
    ReleasePolicy policy = ReleasePolicy::failed_only;
  };
  // One run per service (each a version-2 pipeline, from its first
  // environment), created with the release in one transaction. Refused when
  // `who` may not start one of them (docs/COORDINATOR.md, "Access").
  Result<ReleaseView> create_release(const ReleaseStart& start, const Caller& who);
  Result<ReleaseView> release(const std::string& id);
  Result<std::vector<ReleaseRecord>> releases(std::size_t limit);
  // A person at the release's gate: the environment where its runs wait.
  Result<ReleaseView> approve_release(const std::string& id, const std::string& comment,
                                      const Caller& who);
  Result<ReleaseView> reject_release(const std::string& id, const std::string& reason,
                                     const Caller& who);
  Result<DeployRecord> resume(const std::string& id, const Caller& who);
  Result<DeployRecord> rollback(const std::string& id, const std::optional<std::string>& reason,
                                const Caller& who);

  // Registers an artifact from the origin (an artifact already known answers its record).
  Result<ArtifactRecord> register_artifact(const ContentId& id, const Caller& who);
  Result<ArtifactRecord> artifact(const std::string& id);
  // Artifacts of a service (all when empty), newest first.
  Result<std::vector<ArtifactRecord>> artifacts(const std::string& service);

  Result<std::vector<HostView>> hosts();
  Result<bool> host_enrolled(const std::string& host);
  Status reset_host(const std::string& host, const Caller& who);

  // The health webhook (docs/API.md, "The health webhook", version 2): the
  // signature is HMAC-SHA256 under the webhook secret of
  // "drover-webhook-v2" LF timestamp LF delivery LF body; the timestamp
  // (unix seconds) within 5 minutes of now; the delivery id a name.
  static constexpr std::int64_t kWebhookWindowS = 300;
  struct WebhookDelivery {
    std::string signature, timestamp, delivery;
  };
  Status check_webhook(const std::string& body, const WebhookDelivery& d);
  // What can be checked before the body is read: the webhook is on, and
  // each header has its form.
  Status check_webhook_headers(const WebhookDelivery& d);
  // Samples of enrolled hosts, stored with the delivery id in one
  // transaction: a delivery seen before is refused (Errc::already_exists)
  // and stores nothing. Answers how many were stored.
  Result<std::size_t> add_health_samples(const std::string& service,
                                         const std::vector<ExternalSample>& samples,
                                         const std::string& delivery);

  // ---- the SCM webhook (docs/API.md, "The SCM webhook") ----
  struct ScmDelivery {
    std::string event, delivery, signature;  // X-GitHub-Event, -Delivery, X-Hub-Signature-256
  };
  struct ScmTrigger {
    std::string pipeline_id, state;  // started | waiting | ambiguous | ended
    std::string deploy_id = {};
    std::vector<std::string> artifacts = {};  // ambiguous: the candidates
  };
  struct ScmOutcome {
    std::string kind;  // pong | ignored | duplicate_delivery | duplicate_commit | push
    std::vector<ScmTrigger> triggers = {};
  };
  // A push event, checked (Errc::crypto: 401; invalid_argument: 400), recorded
  // once, and acted on: a run started per matching pipeline, or a trigger left
  // waiting for its artifact.
  Result<ScmOutcome> scm_push(const std::string& body, const ScmDelivery& d);
  // Admin: the secret of a source repository (never read back); a login's person.
  Status put_scm_source(const std::string& repository, const std::string& secret,
                        const Caller& who);
  // Each source: its repository, when and by whom it was set (never the secret).
  struct ScmSource {
    std::string repository, created_by;
    std::int64_t created_ms = 0;
  };
  Result<std::vector<ScmSource>> scm_sources();
  Status put_scm_login(const std::string& login, const std::string& person, const Caller& who);

  // ---- notifications (docs/API.md, "Notifications") ----
  // Admin: the whole allow-list of destinations, replaced.
  Status put_notify_allow(const std::vector<std::string>& entries, const Caller& who);
  struct NotifyAllow {
    std::vector<std::string> allow;
    std::string set_by;
    std::int64_t set_ms = 0;
  };
  Result<NotifyAllow> notify_allow();
  // A pipeline's destination, new (true) or replacing one of its name; its
  // URL must match the allow-list.
  struct SavedDestination {
    notify::Destination destination;
    bool created = false;
  };
  Result<SavedDestination> put_destination(notify::Destination d, const Caller& who);
  Result<std::vector<notify::Destination>> destinations(const std::string& pipeline_id);
  // Removes it and its pending deliveries.
  Status remove_destination(const std::string& pipeline_id, const std::string& name,
                            const Caller& who);
  Result<std::vector<notify::Pending>> notify_outbox();
  // The notify thread's step: every record not yet collected, then one
  // delivery pass. Returns how many deliveries were answered 2xx.
  Result<std::size_t> notify_once();

  Result<std::vector<AuditRecord>> audit(const AuditQuery& q);
  Result<AuditCheck> audit_verify();
  // env "": the newest release in any environment, or recorded without one.
  Result<AuditRecord> running_at(const std::string& service, const std::string& env,
                                 std::int64_t at_ms);
  // What host reported running for service at at_ms (not_found before its first report).
  Result<CoordinatorStore::HostRelease> host_running_at(const std::string& service,
                                                        const std::string& host,
                                                        std::int64_t at_ms);
  Result<std::vector<CoordinatorStore::HostRelease>> host_releases(const std::string& service,
                                                                   const std::string& host,
                                                                   std::int64_t since_ms);

  // person: by the name rule; without it, the token's name.
  Result<CreatedToken> create_token(const std::string& name, Role role,
                                    const std::optional<std::string>& person, const Caller& who);
  Result<std::vector<TokenStore::Listed>> list_tokens();
  Status revoke_token(const std::string& name, const Caller& who);
  Result<CoordinatorStore::JoinToken> create_join_token(const CoordinatorStore::JoinTokenSpec& spec,
                                                        const Caller& who);
  Result<std::vector<CoordinatorStore::JoinToken>> join_tokens();
  Status revoke_join_token(const std::string& token, const Caller& who);
  Status revoke_join_token_id(const std::string& id, const Caller& who);

  // Pulls new artifacts from the origin's feed once (the feed thread's step).
  Status follow_feed_once(int wait_s);
  // The driver's step: asks the tracker about pending deploys' artifacts
  // (unless check is false: the driver thread leaves that to a thread of its
  // own, so a slow tracker never delays a tick), then advances every active
  // deploy. Returns how many changed.
  Result<int> drive_once(bool check = true);

 private:
  // Starts a run of p (already loaded, or composed by a redeploy).
  Result<DeployStarted> start_run(Pipeline p, const DeployStart& start, const Caller& who,
                                  const std::string& redeploy_of);
  // What starting that run would ask the orchestrator, every check passed
  // (the artifact, the environment, the role, the service's active runs).
  struct ComposedRun {
    DeployRequest request;
    std::string env_name, git_sha;
  };
  Result<ComposedRun> compose_run(Pipeline p, const DeployStart& start, const Caller& who,
                                  const std::string& redeploy_of);
  // Refused (naming the release) for a run of a release: its gates are the
  // release's (orchestrator_mu_ held).
  Status not_in_release(const std::string& deploy_id, const std::string& verb);
  // A waiting trigger of pipeline p (what scm/trigger/<p> holds) against the
  // artifacts registered now: started, ambiguous, or still waiting.
  Result<ScmTrigger> fire_trigger(const Pipeline& p, const nlohmann::json& trigger);
  // Waiting triggers: started once their artifact is registered, ended past
  // their deadline (each driver tick).
  void check_waiting_triggers();
  // The other pipelines of p's service.
  Result<std::vector<Pipeline>> other_pipelines(const Pipeline& p);
  // Feature flags: the pipeline of a service and the hosts of one of its
  // environments now; a change of one flag; a host's pull.
  struct FlagScope {
    std::string pipeline_id;
    std::vector<std::string> hosts;
  };
  Result<FlagScope> flag_scope(const std::string& service, const std::string& env);
  Result<FlagSetRecord> change_flag(const std::string& service, const std::string& env,
                                    const std::string& flag, std::optional<proto::FlagValue> value,
                                    const std::string& what, const Caller& who);
  Result<FlagsAnswer> flags_for(const HostRecord& host, const std::string& service,
                                std::uint64_t have_seq);
  // Ends every ramp of flag in env that has not ended (orchestrator_mu_ held).
  Status end_ramps(const std::string& service, const std::string& env, const std::string& flag,
                   const std::string& why, const Caller& who);
  // A ramp run's view of its environment's flag set, and its steps.
  void ramp_view(const DeployRecord& d, FleetView& v);
  Status ramp_step(const DeployRecord& d, const std::string& env, const std::string& flag,
                   int percent);
  Coordinator(CoordinatorOptions options, const Clock& clock, Random& random, Logger& log);
  Result<Pipeline> load_pipeline(const std::string& id);
  // What a deploy's config snapshot says, read once per deploy.
  struct DeploySettings {
    RunPlan plan;
    std::string artifact_ready = "seeds";  // the readiness rule
  };
  DeploySettings settings_of(const DeployRecord& d);
  // Where a service's enrolled hosts are, read again only after an
  // enrollment or a reset (the store's hosts_version).
  Result<std::vector<HostPlace>> places_of(const std::string& service);
  // The driver's step before each tick, off the orchestrator's lock: asks
  // the tracker about the artifacts of pending deploys, and forgets what it
  // kept of finished deploys.
  void check_readiness();
  // Runs pass every tick until the coordinator stops (a pass that throws is
  // logged as `threw`, and the next one runs).
  void every_tick(const char* threw, const std::function<void()>& pass);
  void watch_readiness();  // the readiness thread
  // One round of the Prometheus checks of baking regions, off the
  // orchestrator's lock (the analysis thread, or drive_once).
  void check_analysis();
  void watch_analysis();
  void drive();
  // Wakes the driver before its tick is due (no-op on the driver itself).
  void wake_driver();
  // The least time between two ticks, however often the driver is woken.
  static constexpr std::chrono::milliseconds kMinTickGap{20};
  void notify_loop();  // the notify thread
  // The pipeline an audit record is about, and who may approve at a gate.
  Result<std::optional<notify::EventContext>> notify_context(const AuditRecord& r);
  void after_commit(const std::string& what);

  CoordinatorOptions options_;
  const Clock& clock_;
  Random& random_;
  Logger& log_;
  // Before everything it reads: destroyed last.
  metrics::Registry metrics_;
  std::unique_ptr<CoordinatorMetrics> counted_;
  std::unique_ptr<CoordinatorStore> store_;
  std::unique_ptr<TokenStore> tokens_;
  std::unique_ptr<ArtifactRegistry> artifacts_;
  std::unique_ptr<mesh::TrackerService> tracker_;
  std::string tracker_url_;
  std::unique_ptr<mesh::TrackerClient> tracker_client_;  // null: no mesh to ask
  std::unique_ptr<ArtifactReadiness> readiness_;
  std::unique_ptr<OnlineKeySigner> keys_;  // the online key (the gateway reads it too)
  std::unique_ptr<PlanSigner> signer_;     // injected; keys_ signs when absent
  std::unique_ptr<AgentGateway> gateway_;
  std::unique_ptr<PlanIssuer> issuer_;
  std::unique_ptr<FlagSets> flag_sets_;
  std::mutex flags_mu_;  // one flag change at a time; guards unlisted_checked_
  std::map<std::string, std::int64_t> unlisted_checked_;  // service/host -> last check
  std::unique_ptr<Orchestrator> orchestrator_;
  std::unique_ptr<ReleaseDriver> releases_;
  std::mutex orchestrator_mu_;  // the driver and API operations share the orchestrator

  std::mutex cache_mu_;                             // guards settings_, places_ and places_version_
  std::map<std::string, DeploySettings> settings_;  // by deploy id
  std::map<std::string, std::vector<HostPlace>> places_;  // by service, at places_version_
  std::uint64_t places_version_ = ~std::uint64_t{0};

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  // Guarded by stop_mu_: something the driver may act on happened (a host
  // reported an event, a command committed); drive_cv_ wakes it.
  std::condition_variable drive_cv_;
  bool drive_wake_ = false;
  std::thread driver_;
  std::thread readiness_thread_;
  std::unique_ptr<AnalysisRunner> analysis_;
  std::thread analysis_thread_;
  std::unique_ptr<notify::Notifier> notifier_;
  std::mutex notify_mu_;
  std::mutex scm_mu_;  // fires and ends waiting SCM triggers one at a time  // one pass at a time
                       // (the thread, or a test's notify_once)
  std::thread notify_thread_;
  std::unique_ptr<FeedFollower> feed_;
  std::int64_t last_prune_ms_ = 0;  // the driver's
  int crash_seen_ = 0;
};

}  // namespace drover::coordinator
