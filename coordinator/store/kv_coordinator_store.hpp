// CoordinatorStore kept in ordered tables (kv::Store): the records, their
// indexes and the audit chain, written once for every backend. The tables
// and their formats: docs/COORDINATOR.md, "Durable state" (state format 2;
// a format 1 state is indexed when opened).
#pragma once

#include <atomic>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "coordinator/kv/kv.hpp"
#include "coordinator/store/coordinator_store.hpp"

namespace drover::coordinator {

class KvCoordinatorStore : public CoordinatorStore {
 public:
  Result<std::optional<HostRecord>> host(const std::string& name) override;
  Result<std::vector<HostRecord>> hosts() override;
  Status enroll(const HostRecord& record) override;
  Status reset_host(const std::string& name) override;
  std::uint64_t hosts_version() const override;
  Status enroll_agent(const HostRecord& record, const std::string& join_token,
                      std::int64_t now) override;
  using CoordinatorStore::add_join_token;
  Status add_join_token(const std::string& token, const std::string& issued_by, std::int64_t at,
                        const JoinTokenSpec& spec) override;
  Result<JoinToken> create_join_token(const std::string& issued_by, std::int64_t at, Random& random,
                                      const JoinTokenSpec& spec) override;
  Result<bool> join_token_valid(const std::string& token, std::int64_t now) override;
  Result<std::vector<JoinToken>> join_tokens() override;
  Status revoke_join_token(const std::string& token) override;
  Status revoke_join_token_id(const std::string& id) override;
  Status add_api_token(const std::string& token_hash, const ApiToken& token) override;
  Result<std::optional<ApiToken>> api_token(const std::string& token_hash) override;
  Status revoke_api_token(const std::string& name) override;
  Result<std::vector<ApiToken>> api_tokens() override;
  Result<std::uint64_t> next_plan_seq(const std::string& service) override;
  Result<std::uint64_t> next_plan_seqs(const std::string& service, std::uint64_t count) override;
  Result<std::uint64_t> plan_seq(const std::string& service) override;
  Status note_reported_seq(const std::string& service, std::uint64_t seq) override;
  Status put_plan(const std::string& service, std::uint64_t seq, const std::string& bundle,
                  const std::vector<std::string>& hosts) override;
  Status put_plans(const std::string& service, const std::vector<PlanRevision>& revisions) override;
  Result<std::optional<std::string>> plan_for(const std::string& service,
                                              const std::string& host) override;
  Result<std::uint64_t> plan_seq_for(const std::string& service, const std::string& host) override;
  Status create_deploy(const NewDeploy& d) override;
  Status create_release(const std::vector<NewDeploy>& runs, const std::string& fresh_key,
                        const std::vector<std::pair<std::string, std::string>>& writes,
                        const std::vector<AuditRecord>& audits) override;
  Status commit_deploy(const DeployRecord& d, const std::vector<AuditRecord>& audits) override;
  Result<std::optional<DeployRecord>> deploy(const std::string& deploy_id) override;
  Result<std::vector<DeployRecord>> active_deploys() override;
  Result<kv::Usage> usage() override {
    return kv_->usage(std::numeric_limits<std::uint64_t>::max());
  }
  Result<std::vector<DeployRecord>> active_deploys(const std::string& service) override;
  Result<std::vector<DeployRecord>> recent_deploys(const DeployFilter& filter,
                                                   std::size_t limit) override;
  Result<std::uint64_t> deploy_counter(const std::string& service) override;
  Result<std::optional<std::string>> deploy_config(const std::string& deploy_id) override;
  Status append_audit(const AuditRecord& record) override;
  Result<AuditCheck> verify_audit() override;
  Result<std::vector<AuditRecord>> audit(const AuditQuery& q) override;
  using CoordinatorStore::running_at;
  Result<std::optional<AuditRecord>> running_at(const std::string& service, const std::string& env,
                                                std::int64_t at_ms) override;
  Status put_pipeline(const std::string& id, const std::string& record) override;
  Result<std::optional<std::string>> pipeline(const std::string& id) override;
  Result<std::vector<std::string>> pipelines() override;
  Result<bool> put_artifact(const ArtifactRecord& record, const std::string& manifest) override;
  Result<std::optional<ArtifactRecord>> artifact(const std::string& id) override;
  Result<std::vector<ArtifactRecord>> artifacts() override;
  Result<std::optional<std::string>> manifest(const std::string& id) override;
  Status put_setting(const std::string& key, const std::string& value) override;
  Result<std::optional<std::string>> setting(const std::string& key) override;
  Result<std::vector<std::pair<std::string, std::string>>> settings_under(
      const std::string& prefix) override;
  Status erase_setting(const std::string& key) override;
  Status write_settings(const std::vector<std::pair<std::string, std::string>>& writes,
                        const std::vector<std::string>& erases,
                        const std::vector<AuditRecord>& audits = {}) override;
  Result<bool> replace_setting(const std::string& key, const std::string& value) override;
  Result<std::vector<AuditRecord>> audit_after(std::uint64_t seq, std::size_t limit) override;
  Result<std::uint64_t> audit_head_seq() override;
  Result<PushSeen> note_push(
      const std::string& delivery_key, const std::string& commit_key, std::int64_t now_ms,
      const std::vector<std::pair<std::string, std::string>>& writes) override;
  Result<Ingested> ingest_report(const std::string& host, const proto::ReportBody& report,
                                 std::int64_t now) override;
  Result<std::vector<Result<Ingested>>> ingest_reports(const std::vector<ReportFrom>& reports,
                                                       std::int64_t now) override;
  void set_limits(const StoreLimits& limits) override { limits_ = limits; }
  Result<Fleet> fleet(const std::string& service, std::int64_t since_ms,
                      bool reuse_decoded = false) override;
  Result<std::vector<HostRelease>> host_releases(const std::string& service,
                                                 const std::string& host,
                                                 std::int64_t since_ms) override;
  Result<std::optional<HostRelease>> host_release_at(const std::string& service,
                                                     const std::string& host,
                                                     std::int64_t at_ms) override;
  Status add_samples(const std::string& service, const std::vector<FleetSample>& samples) override;
  Result<bool> add_webhook_samples(const std::string& service,
                                   const std::vector<FleetSample>& samples,
                                   const std::string& delivery, std::int64_t now_ms,
                                   std::int64_t forget_before_ms) override;
  Result<std::size_t> prune_samples(std::int64_t before_ms) override;

  // The tables underneath (tools and tests).
  kv::Store& kv() { return *kv_; }
  const AuditTables& audit_tables() const { return audit_; }

 protected:
  // Opens the tables and checks (or upgrades) the state's format.
  static Status init(KvCoordinatorStore& s, const std::string& where);
  explicit KvCoordinatorStore(std::unique_ptr<kv::Store> kv) : kv_(std::move(kv)) {}

 private:
  // samples: false when the map is nearly full (every sample dropped).
  Result<Ingested> ingest_one(kv::Txn& txn, const ReportFrom& from, std::int64_t now, bool samples);
  // Whether samples may still be written (the map below samples_stop_fill).
  bool samples_fit();
  Status put_record(kv::Table table, const std::string& key, const std::string& value);
  Result<std::optional<std::string>> get_record(kv::Table table, const std::string& key);
  Result<std::vector<std::string>> all_records(kv::Table table);
  // The record under key, decoded; nullopt when there is none.
  template <class T, class Decode>
  Result<std::optional<T>> get_decoded(kv::Table table, const std::string& key, Decode decode) {
    DROVER_ASSIGN(auto bytes, get_record(table, key));
    if (!bytes) return std::optional<T>();
    DROVER_ASSIGN(T value, decode(*bytes));
    return std::optional<T>(std::move(value));
  }
  // The deploy lists and the active index (several runs of a service may be active).
  Status add_deploy(kv::Txn& txn, const NewDeploy& n);
  Status index_new_deploy(kv::Txn& txn, const DeployRecord& d);
  Status index_deploy_state(kv::Txn& txn, const DeployRecord& d);
  Status migrate_to_2(kv::Txn& txn);
  Status migrate_to_3(kv::Txn& txn);

  std::unique_ptr<kv::Store> kv_;
  kv::Table meta_ = 0, hosts_ = 0, join_tokens_ = 0, api_tokens_ = 0, plans_ = 0, plan_index_ = 0,
            plan_seqs_ = 0, deploys_ = 0, samples_ = 0, host_state_ = 0, pipelines_ = 0,
            artifacts_ = 0, manifests_ = 0, settings_ = 0, host_seen_ = 0;
  // webhook_deliveries/<id> -> received ms; webhook_by_time/<ms be64>/<id>
  kv::Table deliveries_ = 0, deliveries_by_time_ = 0;
  kv::Table deploy_configs_ = 0;  // deploy id -> content id of its config snapshot
  // host_releases/<service>/<host>/<since ms be64> -> release (what a host ran, when)
  kv::Table host_releases_ = 0;
  kv::Table active_deploys_ = 0;  // service/id -> id of each deploy not finished
  // "a/", "s/<service>/" or "p/<pipeline>/" + big-endian ~created_ms + id -> id
  kv::Table deploy_list_ = 0;
  std::atomic<std::uint64_t> hosts_version_{0};
  // Health samples fleet(..., reuse_decoded) decoded, by service and key,
  // with the bytes they were decoded from: each tick reads the same minutes
  // of samples again, and decodes only those it has not seen. At most
  // kDecodedPerService per service (the newest); pruning drops the rest.
  struct DecodedSample {
    std::string bytes;
    FleetSample sample;
  };
  static constexpr std::size_t kDecodedPerService = 50'000;
  std::mutex decoded_mu_;
  std::map<std::string, std::map<std::string, DecodedSample, std::less<>>> decoded_;
  StoreLimits limits_;
  AuditTables audit_{};
};

}  // namespace drover::coordinator
