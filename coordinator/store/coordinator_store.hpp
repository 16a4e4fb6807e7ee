// The coordinator's durable state (docs/COORDINATOR.md, "Durable state"):
// enrolled hosts, join and API tokens, plan revisions and the highest plan
// seq per service, each host's report high-water mark and what it runs,
// deploys with their indexes, the audit log, pipelines, artifacts. One
// transaction per transition, committed before the coordinator acts on it.
//
// CoordinatorStore is the contract; KvCoordinatorStore keeps it in ordered
// tables (kv_coordinator_store.hpp) on LMDB (LmdbCoordinatorStore) or in
// memory (MemoryCoordinatorStore, for tests and simulations: it keeps only
// what was committed, and can crash). A later backend (etcd) implements the
// same contract. Thread-safe: any thread may call any operation.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "coordinator/audit/audit_log.hpp"
#include "coordinator/kv/kv.hpp"
#include "coordinator/store/artifact_record.hpp"
#include "coordinator/store/deploy_record.hpp"
#include "core/base/result.hpp"
#include "core/proto/messages.hpp"
#include "core/sign/keys.hpp"
#include "core/world/random.hpp"

namespace drover::coordinator {

struct HostRecord {
  std::string host, region, cluster;
  std::vector<std::string> services;
  sign::PublicKey key;
  std::string report_key;  // 32 raw bytes
  std::string mesh_peer;
  std::int64_t enrolled_at = 0;
  std::int64_t last_seen = 0;
  std::uint64_t report_seq = 0;  // highest report seq ingested
  std::int64_t enroll_at = 0;    // the signed "at" of the last enrollment accepted
  // Kept apart from the record (host_seen), merged in when read:
  std::uint64_t stored_samples = 0;  // health samples of this host held now
  bool throttled = false;            // over its storage budget: samples dropped
  // The record's bytes did not decode: listed by name only, until an admin
  // resets it (which needs no decoding).
  bool unreadable = false;
};

// Bounds on what one host may make the coordinator store (docs/COORDINATOR.md,
// "Storage budget").
struct StoreLimits {
  // Health samples held per host; more are dropped until pruning frees room.
  std::uint64_t samples_per_host = 100'000;
  // Above this share of the map, every host's samples are dropped, so deploy
  // transitions, events and enrollments always find room.
  double samples_stop_fill = 0.90;
};

// What ingesting one report did.
struct Ingested {
  bool fresh = false;            // false: ingested before (acknowledge and drop)
  std::size_t over_budget = 0;   // samples dropped: the host is over its budget
  std::size_t storage_full = 0;  // samples dropped: the map is nearly full
  std::size_t unissued = 0;      // events naming a plan seq never issued (ignored)
};

class CoordinatorStore {
 public:
  virtual ~CoordinatorStore() = default;

  // ---- hosts ----
  virtual Result<std::optional<HostRecord>> host(const std::string& name) = 0;
  virtual Result<std::vector<HostRecord>> hosts() = 0;
  // Enrolls: binds a new host to its key, or refreshes a host enrolling again
  // with the same key. Another key is refused (Errc::refused) until reset.
  virtual Status enroll(const HostRecord& record) = 0;
  // An admin's reset: the next enrollment may bind another key.
  virtual Status reset_host(const std::string& name) = 0;
  // Raised by every enrollment and reset (for caches of host keys).
  virtual std::uint64_t hosts_version() const = 0;

  // An agent's enrollment, in one transaction (docs/COORDINATOR.md,
  // "Enrollment"). A host bound to record.key enrolls again with its key
  // alone, when record.enroll_at is above the last one accepted (else a
  // replay: Errc::refused) and it keeps its region, cluster and services; no
  // token is needed or spent, so revoking tokens never cuts off a running
  // fleet. A bound host asking for another place, or a new host (or one
  // reset), needs
  // join_token: known, not expired at now (unix seconds), with a use left,
  // its scope matching the record's region and services; one use is spent.
  virtual Status enroll_agent(const HostRecord& record, const std::string& join_token,
                              std::int64_t now) = 0;

  // ---- join tokens (stored as SHA-256 hashes only) ----
  struct JoinTokenSpec {
    std::int64_t ttl_s = 24 * 3600;
    std::uint64_t uses = 1;                      // tokens baked into images take more
    std::vector<std::string> regions, services;  // scope; empty: any
  };
  struct JoinToken {
    std::string id;  // "jt_" + 12 hex digits of the token's hash: listed and revoked by
    std::string issued_by;
    std::int64_t issued_at = 0, expires_at = 0;  // unix seconds
    std::uint64_t uses_left = 0;
    std::vector<std::string> regions, services;
    std::string token;  // only when just created: shown once, never stored
  };
  virtual Status add_join_token(const std::string& token, const std::string& issued_by,
                                std::int64_t at, const JoinTokenSpec& spec) = 0;
  Status add_join_token(const std::string& token, const std::string& issued_by, std::int64_t at) {
    return add_join_token(token, issued_by, at, JoinTokenSpec{});
  }
  // A new random join token ("drj_" + 43 base64url characters), stored; shown once.
  virtual Result<JoinToken> create_join_token(const std::string& issued_by, std::int64_t at,
                                              Random& random, const JoinTokenSpec& spec) = 0;
  // Whether token would admit a new host now (known, unexpired, a use left).
  virtual Result<bool> join_token_valid(const std::string& token, std::int64_t now) = 0;
  virtual Result<std::vector<JoinToken>> join_tokens() = 0;
  // By the token itself, or by its id (Errc::not_found when unknown).
  virtual Status revoke_join_token(const std::string& token) = 0;
  virtual Status revoke_join_token_id(const std::string& id) = 0;

  // ---- API tokens (docs/COORDINATOR.md, "Access"; stored by hash only) ----
  struct ApiToken {
    std::string name, role;
    std::int64_t created_at = 0;
    // Whom the token belongs to: one person may hold several tokens. A record
    // written before persons existed reads as its name.
    std::string person = {};
  };
  // Refused (Errc::already_exists) while a token of that name lives.
  virtual Status add_api_token(const std::string& token_hash, const ApiToken& token) = 0;
  virtual Result<std::optional<ApiToken>> api_token(const std::string& token_hash) = 0;
  // Refused (Errc::not_found) when no token has that name.
  virtual Status revoke_api_token(const std::string& name) = 0;
  virtual Result<std::vector<ApiToken>> api_tokens() = 0;  // by hash

  // ---- plans ----
  // The next seq for a service: above every seq issued here or proven by an
  // agent (a coordinator restored from an old backup continues above the
  // signed plans the fleet holds). Stored before it is returned; seqs stay
  // below 2^53 (Errc::exhausted past it, never a wrap).
  virtual Result<std::uint64_t> next_plan_seq(const std::string& service) = 0;
  // count consecutive seqs in one transaction: returns the first.
  virtual Result<std::uint64_t> next_plan_seqs(const std::string& service, std::uint64_t count) = 0;
  // The highest seq issued or proven for a service (0: none).
  virtual Result<std::uint64_t> plan_seq(const std::string& service) = 0;
  // Raises the service's seq to seq, which the caller has seen in a plan
  // signed by the online key (docs/COORDINATOR.md, "Plan seqs").
  virtual Status note_reported_seq(const std::string& service, std::uint64_t seq) = 0;
  // Stores a signed revision and makes it the plan of every host it names.
  virtual Status put_plan(const std::string& service, std::uint64_t seq, const std::string& bundle,
                          const std::vector<std::string>& hosts) = 0;
  // Several revisions in one transaction, in order.
  struct PlanRevision {
    std::uint64_t seq = 0;
    std::string bundle;
    std::vector<std::string> hosts;
  };
  virtual Status put_plans(const std::string& service,
                           const std::vector<PlanRevision>& revisions) = 0;
  // The newest revision that names host, if any.
  virtual Result<std::optional<std::string>> plan_for(const std::string& service,
                                                      const std::string& host) = 0;
  // The seq of that revision (0: none), read from the index alone.
  virtual Result<std::uint64_t> plan_seq_for(const std::string& service,
                                             const std::string& host) = 0;

  // ---- deploys and the audit log ----
  struct NewDeploy {
    DeployRecord record;
    AuditRecord created;          // its "deploy.created" record
    std::string config_snapshot;  // what it was started with ("" for none)
    // The service's deploy counter with this deploy counted (0: not counted).
    std::uint64_t counter = 0;
  };
  // A new deploy in one transaction: its record, its creation audit record
  // with the config snapshot (stored once, by hash, and named by the deploy)
  // and the service's deploy counter. Refused when the id exists
  // (Errc::already_exists) or when the counter is not the one after the
  // stored one (Errc::already_exists: another deploy took that number).
  // Several runs of a service may be active: the orchestrator queues them
  // per environment.
  virtual Status create_deploy(const NewDeploy& d) = 0;
  // A release of several services (coordinator/releases) in one transaction:
  // each of its runs as create_deploy would store it, the settings it writes
  // and its audit records. Refused (Errc::already_exists), storing nothing,
  // when a run's id or number is taken or the setting `fresh_key` exists.
  virtual Status create_release(const std::vector<NewDeploy>& runs, const std::string& fresh_key,
                                const std::vector<std::pair<std::string, std::string>>& writes,
                                const std::vector<AuditRecord>& audits) = 0;
  // One transition: the deploy's new record and its audit records commit
  // together or not at all.
  virtual Status commit_deploy(const DeployRecord& d, const std::vector<AuditRecord>& audits) = 0;
  virtual Result<std::optional<DeployRecord>> deploy(const std::string& deploy_id) = 0;
  // The deploys not finished, by id: from an index, whatever the length of
  // the history.
  virtual Result<std::vector<DeployRecord>> active_deploys() = 0;
  // How full the store is (LMDB: the map's size and its high-water mark);
  // zeros when it cannot say.
  virtual Result<kv::Usage> usage() { return kv::Usage{}; }
  // Those of one service, oldest first.
  virtual Result<std::vector<DeployRecord>> active_deploys(const std::string& service) = 0;
  // The newest deploys (by creation), of a pipeline, else of a service, else
  // all: from an index, reading no more records than asked for.
  struct DeployFilter {
    std::string service, pipeline_id;  // "" for any
  };
  virtual Result<std::vector<DeployRecord>> recent_deploys(const DeployFilter& filter,
                                                           std::size_t limit) = 0;
  // How many deploys of the service were created (the last one's number).
  virtual Result<std::uint64_t> deploy_counter(const std::string& service) = 0;
  // The config snapshot a deploy was started with, if any.
  virtual Result<std::optional<std::string>> deploy_config(const std::string& deploy_id) = 0;
  // An audit record of its own (a person's act outside any deploy).
  virtual Status append_audit(const AuditRecord& record) = 0;
  virtual Result<AuditCheck> verify_audit() = 0;
  // The records appended after seq, in seq order, at most limit; and the
  // newest record's seq (0: none). For readers that follow the log (the
  // notifier).
  virtual Result<std::vector<AuditRecord>> audit_after(std::uint64_t seq, std::size_t limit) = 0;
  virtual Result<std::uint64_t> audit_head_seq() = 0;
  // Records by service, env and time, oldest first: from an index, reading
  // no more records than it returns (audit_query).
  virtual Result<std::vector<AuditRecord>> audit(const AuditQuery& q) = 0;
  // What ran for service in env at at_ms: the newest service.release record
  // of env by then, else the newest without an env (written before
  // environments existed). Without env: the newest in any environment, or
  // recorded without one.
  virtual Result<std::optional<AuditRecord>> running_at(const std::string& service,
                                                        const std::string& env,
                                                        std::int64_t at_ms) = 0;
  Result<std::optional<AuditRecord>> running_at(const std::string& service, std::int64_t at_ms) {
    return running_at(service, "", at_ms);
  }

  // ---- pipelines, artifacts and small settings (records are canonical JSON
  // the API has validated) ----
  virtual Status put_pipeline(const std::string& id, const std::string& record) = 0;
  virtual Result<std::optional<std::string>> pipeline(const std::string& id) = 0;
  virtual Result<std::vector<std::string>> pipelines() = 0;  // every record, by id
  // An artifact's record and its manifest's bytes, together. Registering an
  // artifact already known changes nothing and answers false.
  virtual Result<bool> put_artifact(const ArtifactRecord& record, const std::string& manifest) = 0;
  virtual Result<std::optional<ArtifactRecord>> artifact(const std::string& id) = 0;
  virtual Result<std::vector<ArtifactRecord>> artifacts() = 0;  // every record, by id
  virtual Result<std::optional<std::string>> manifest(const std::string& id) = 0;
  virtual Status put_setting(const std::string& key, const std::string& value) = 0;
  virtual Result<std::optional<std::string>> setting(const std::string& key) = 0;
  // Every setting whose key starts with prefix, by key (small sets: SCM
  // sources, logins, waiting triggers).
  virtual Result<std::vector<std::pair<std::string, std::string>>> settings_under(
      const std::string& prefix) = 0;
  virtual Status erase_setting(const std::string& key) = 0;
  // Settings written and erased, and audit records appended, in one
  // transaction (erases first).
  virtual Status write_settings(const std::vector<std::pair<std::string, std::string>>& writes,
                                const std::vector<std::string>& erases,
                                const std::vector<AuditRecord>& audits = {}) = 0;
  // Writes key only if it is present (false, nothing written, if not).
  virtual Result<bool> replace_setting(const std::string& key, const std::string& value) = 0;
  // A push event, once (docs/API.md, "The SCM webhook"): in one transaction,
  // whether its delivery key or its commit key was seen before; when
  // neither, both are written (the value: now_ms) with `writes` (settings
  // the push leaves: its waiting triggers). A seen commit writes nothing
  // (so only pushes of new commits, which need a valid signature over a new
  // body, store anything).
  enum class PushSeen { fresh, delivery, commit };
  virtual Result<PushSeen> note_push(
      const std::string& delivery_key, const std::string& commit_key, std::int64_t now_ms,
      const std::vector<std::pair<std::string, std::string>>& writes = {}) = 0;

  // ---- reports and what the fleet runs ----
  // Ingests a report once, in one transaction: the host's report high-water
  // mark and last_seen, its health samples (within the host's budget), the
  // release it runs per service and failed applies. Events naming a plan seq
  // above plan_seq() are ignored. The caller has screened the items (the
  // host's own services, bounded, not dated in the future).
  virtual Result<Ingested> ingest_report(const std::string& host, const proto::ReportBody& report,
                                         std::int64_t now) = 0;
  // Many reports in one transaction (one fsync): each answered as
  // ingest_report would, in order. A report that fails fails alone (an
  // unknown host, a record that cannot be written); when the map is full the
  // batch is written again without samples.
  // A report and who sent it: key_hex, when given, is the public key that
  // authenticated it; a host record bound to another key since (a reset and
  // a new machine) makes the report fail (Errc::refused), so an old
  // machine's queued report never lands on the new one's record.
  struct ReportFrom {
    std::string host;
    const proto::ReportBody* report = nullptr;
    std::string key_hex = {};
  };
  virtual Result<std::vector<Result<Ingested>>> ingest_reports(
      const std::vector<ReportFrom>& reports, std::int64_t now) = 0;
  virtual void set_limits(const StoreLimits& limits) = 0;

  struct FleetSample {
    std::string host, release;
    std::int64_t at_ms = 0;
    double error_rate = 0, p99_ms = 0, saturation = 0;
    bool ok = true;
    double requests = 0;  // requests served in the sample's window (0: not said)
    bool other = false;   // the host's other slot (a control sharing its traffic)
  };
  struct Fleet {
    std::map<std::string, std::string> running;       // host -> release
    std::map<std::string, std::uint64_t> failed_seq;  // host -> newest plan seq it failed
    // Hosts that split traffic: the per mille their release receives, and
    // whether the preview route reaches it.
    std::map<std::string, int> traffic;
    std::set<std::string> previewed;
    std::map<std::string, std::uint64_t> flags_seq;  // host -> the flag set it applied
    std::vector<FleetSample> samples;                // oldest first
  };
  // What the hosts of a service report, with samples taken at or after since_ms.
  // reuse_decoded: the orchestrator's read, every tick, of the same minutes
  // of samples; the store may keep what it decoded (bounded) and parse only
  // new samples. Other reads (views, a webhook) leave that alone.
  virtual Result<Fleet> fleet(const std::string& service, std::int64_t since_ms,
                              bool reuse_decoded = false) = 0;
  // Health samples from outside the agents (the health webhook).
  virtual Status add_samples(const std::string& service,
                             const std::vector<FleetSample>& samples) = 0;
  // The webhook's samples with their delivery id, in one transaction: false
  // (nothing stored) for a delivery id seen before. Ids received before
  // forget_before_ms are forgotten in the same transaction.
  virtual Result<bool> add_webhook_samples(const std::string& service,
                                           const std::vector<FleetSample>& samples,
                                           const std::string& delivery, std::int64_t now_ms,
                                           std::int64_t forget_before_ms) = 0;
  // What one host ran: each change of the release it reported for a service,
  // at the time the host stamped on the report item (the newest
  // kMaxHostReleases per host and service are kept).
  struct HostRelease {
    std::int64_t since_ms = 0;
    std::string release;
  };
  static constexpr std::size_t kMaxHostReleases = 256;
  // Oldest first, changes at or after since_ms.
  virtual Result<std::vector<HostRelease>> host_releases(const std::string& service,
                                                         const std::string& host,
                                                         std::int64_t since_ms) = 0;
  // What host reported running for service at at_ms (the newest change by then).
  virtual Result<std::optional<HostRelease>> host_release_at(const std::string& service,
                                                             const std::string& host,
                                                             std::int64_t at_ms) = 0;
  // Drops samples older than before_ms; returns how many went.
  virtual Result<std::size_t> prune_samples(std::int64_t before_ms) = 0;
};

}  // namespace drover::coordinator
