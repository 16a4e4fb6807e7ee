// The coordinator's durable state in LMDB (docs/COORDINATOR.md, "Durable
// state"): enrolled hosts, join tokens, plan revisions and the highest plan
// seq per service, and each host's report high-water mark. One write
// transaction per transition, committed before the coordinator acts on it.
// Thread-safe: LMDB serializes writers; reads run in parallel.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/audit/audit_log.hpp"
#include "coordinator/store/artifact_record.hpp"
#include "coordinator/store/deploy_record.hpp"
#include "core/base/result.hpp"
#include "core/lmdb/lmdb.hpp"
#include "core/proto/messages.hpp"
#include "core/sign/keys.hpp"
#include "core/world/filesystem.hpp"
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
};

class CoordinatorStore {
 public:
  static Result<std::unique_ptr<CoordinatorStore>> open(const fs::path& dir);

  // ---- hosts ----
  Result<std::optional<HostRecord>> host(const std::string& name);
  Result<std::vector<HostRecord>> hosts();
  // Enrolls: binds a new host to its key, or refreshes a host enrolling again
  // with the same key. Another key is refused (Errc::refused) until reset.
  Status enroll(const HostRecord& record);
  // An admin's reset: the next enrollment may bind another key.
  Status reset_host(const std::string& name);
  // Raised by every enrollment and reset (for caches of host keys).
  std::uint64_t hosts_version() const { return hosts_version_.load(); }

  // ---- join tokens (stored as SHA-256 hashes only) ----
  Status add_join_token(const std::string& token, const std::string& issued_by, std::int64_t at);
  // A new random join token ("drj_" + 43 base64url characters), stored; shown once.
  Result<std::string> create_join_token(const std::string& issued_by, std::int64_t at,
                                        Random& random);
  Result<bool> join_token_valid(const std::string& token);
  Status revoke_join_token(const std::string& token);

  // ---- plans ----
  // The next seq for a service: above every seq issued here or reported by
  // an agent (a coordinator restored from an old backup continues above
  // what the fleet has seen). Stored before it is returned.
  Result<std::uint64_t> next_plan_seq(const std::string& service);
  Status note_reported_seq(const std::string& service, std::uint64_t seq);
  // Stores a signed revision and makes it the plan of every host it names.
  Status put_plan(const std::string& service, std::uint64_t seq, const std::string& bundle,
                  const std::vector<std::string>& hosts);
  // The newest revision that names host, if any.
  Result<std::optional<std::string>> plan_for(const std::string& service, const std::string& host);

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
  // (Errc::already_exists), when another deploy of the service is active
  // (Errc::refused), or when the counter is not the one after the stored one
  // (Errc::already_exists: another deploy took that number).
  Status create_deploy(const NewDeploy& d);
  // One transition: the deploy's new record and its audit records commit
  // together or not at all.
  Status commit_deploy(const DeployRecord& d, const std::vector<AuditRecord>& audits);
  Result<std::optional<DeployRecord>> deploy(const std::string& deploy_id);
  // The deploys not finished (at most one per service), by id: from an
  // index, whatever the length of the history.
  Result<std::vector<DeployRecord>> active_deploys();
  Result<std::optional<DeployRecord>> active_deploy(const std::string& service);
  // The newest deploys (by creation), of a pipeline, else of a service, else
  // all: from an index, reading no more records than asked for.
  struct DeployFilter {
    std::string service, pipeline_id;  // "" for any
  };
  Result<std::vector<DeployRecord>> recent_deploys(const DeployFilter& filter, std::size_t limit);
  // How many deploys of the service were created (the last one's number).
  Result<std::uint64_t> deploy_counter(const std::string& service);
  // The config snapshot a deploy was started with, if any.
  Result<std::optional<std::string>> deploy_config(const std::string& deploy_id);
  // An audit record of its own (a person's act outside any deploy).
  Status append_audit(const AuditRecord& record);
  Result<AuditCheck> verify_audit();
  Result<std::vector<AuditRecord>> audit(const std::string& service, std::int64_t since_ms,
                                         std::int64_t until_ms, std::size_t limit);
  Result<std::optional<AuditRecord>> running_at(const std::string& service, std::int64_t at_ms);

  // ---- pipelines, artifacts and small settings (records are canonical JSON
  // the API has validated) ----
  Status put_pipeline(const std::string& id, const std::string& record);
  Result<std::optional<std::string>> pipeline(const std::string& id);
  Result<std::vector<std::string>> pipelines();  // every record, by id
  // An artifact's record and its manifest's bytes, together. Registering an
  // artifact already known changes nothing and answers false.
  Result<bool> put_artifact(const ArtifactRecord& record, const std::string& manifest);
  Result<std::optional<ArtifactRecord>> artifact(const std::string& id);
  Result<std::vector<ArtifactRecord>> artifacts();  // every record, by id
  Result<std::optional<std::string>> manifest(const std::string& id);
  Status put_setting(const std::string& key, const std::string& value);
  Result<std::optional<std::string>> setting(const std::string& key);

  // ---- reports and what the fleet runs ----
  // Ingests a report once, in one transaction: the host's report high-water
  // mark and last_seen, its health samples, the release it runs per service,
  // failed applies, and the plan seqs it has seen (a coordinator restored
  // from an old backup continues above them). Returns false for a report
  // already ingested (acknowledge and drop).
  Result<bool> ingest_report(const std::string& host, const proto::ReportBody& report,
                             std::int64_t now);
  // Many reports in one transaction (one fsync): each answered as
  // ingest_report would, in order; a report of an unknown host fails alone.
  Result<std::vector<Result<bool>>> ingest_reports(
      const std::vector<std::pair<std::string, const proto::ReportBody*>>& reports,
      std::int64_t now);

  struct FleetSample {
    std::string host, release;
    std::int64_t at_ms = 0;
    double error_rate = 0, p99_ms = 0, saturation = 0;
    bool ok = true;
  };
  struct Fleet {
    std::map<std::string, std::string> running;       // host -> release
    std::map<std::string, std::uint64_t> failed_seq;  // host -> newest plan seq it failed
    std::vector<FleetSample> samples;                 // oldest first
  };
  // What the hosts of a service report, with samples taken at or after since_ms.
  Result<Fleet> fleet(const std::string& service, std::int64_t since_ms);
  // Health samples from outside the agents (the health webhook).
  Status add_samples(const std::string& service, const std::vector<FleetSample>& samples);
  // Drops samples older than before_ms; returns how many went.
  Result<std::size_t> prune_samples(std::int64_t before_ms);

  // The environment, for tables kept by other components (API tokens).
  lmdb::Env& env() { return *env_; }

 private:
  CoordinatorStore() = default;
  std::unique_ptr<lmdb::Env> env_;
  Result<bool> ingest_one(lmdb::Txn& txn, const std::string& host, const proto::ReportBody& report,
                          std::int64_t now);
  Status put_record(const lmdb::Table& table, const std::string& key, const std::string& value);
  Result<std::optional<std::string>> get_record(const lmdb::Table& table, const std::string& key);
  Result<std::vector<std::string>> all_records(const lmdb::Table& table);

  lmdb::Table meta_, hosts_, join_tokens_, plans_, plan_index_, plan_seqs_, deploys_, samples_,
      host_state_, pipelines_, artifacts_, manifests_, settings_, host_seen_;
  lmdb::Table deploy_configs_;  // deploy id -> content id of its config snapshot
  lmdb::Table active_deploys_;  // service -> id of its deploy not finished
  // "a/", "s/<service>/" or "p/<pipeline>/" + big-endian ~created_ms + id -> id
  lmdb::Table deploy_list_;
  // strict: refuse a second active deploy of a service (else keep the first).
  Status index_new_deploy(lmdb::Txn& txn, const DeployRecord& d, bool strict = true);
  Status index_deploy_state(lmdb::Txn& txn, const DeployRecord& d, bool strict = true);
  Status migrate_to_2(lmdb::Txn& txn);
  std::atomic<std::uint64_t> hosts_version_{0};
  AuditTables audit_;
};

}  // namespace drover::coordinator
