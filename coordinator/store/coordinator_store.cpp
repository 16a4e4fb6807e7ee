#include "coordinator/store/coordinator_store.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/base/hex.hpp"
#include "core/canon/base64.hpp"
#include "core/canon/canonical_json.hpp"
#include "core/hash/sha256.hpp"

namespace drover::coordinator {
namespace {

using nlohmann::json;
// 2: the active-deploy, deploy-list and release indexes (built from a
// format 1 state when it is opened).
constexpr std::string_view kFormat = "2";

std::string token_key(const std::string& token) {
  return ContentId::of(token).hex();
}

// Big-endian, so plan revisions sort by seq.
std::string seq_key(const std::string& service, std::uint64_t seq) {
  std::string k = service + '/';
  for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>((seq >> (8 * i)) & 0xff));
  return k;
}

std::string encode_host(const HostRecord& h) {
  json j = {{"host", h.host},
            {"region", h.region},
            {"cluster", h.cluster},
            {"services", h.services},
            {"public_key", h.key.hex()},
            {"report_key", canon::base64_encode(h.report_key)},
            {"mesh_peer", h.mesh_peer},
            {"enrolled_at", h.enrolled_at},
            {"last_seen", h.last_seen},
            {"report_seq", h.report_seq}};
  return *canon::encode(j);
}

Result<HostRecord> decode_host(std::string_view bytes) {
  auto parsed = canon::decode(bytes, 1 << 20);
  if (!parsed.ok() || !parsed->is_object()) {
    return make_error(Errc::corrupt, "coordinator state: a host record is unreadable");
  }
  try {
    const json& j = *parsed;
    HostRecord h;
    h.host = j.at("host").get<std::string>();
    h.region = j.at("region").get<std::string>();
    h.cluster = j.at("cluster").get<std::string>();
    h.services = j.at("services").get<std::vector<std::string>>();
    DROVER_ASSIGN(h.key, sign::PublicKey::from_hex(j.at("public_key").get<std::string>()));
    DROVER_ASSIGN(h.report_key, canon::base64_decode(j.at("report_key").get<std::string>()));
    h.mesh_peer = j.at("mesh_peer").get<std::string>();
    h.enrolled_at = j.at("enrolled_at").get<std::int64_t>();
    h.last_seen = j.at("last_seen").get<std::int64_t>();
    h.report_seq = j.at("report_seq").get<std::uint64_t>();
    return h;
  } catch (const json::exception& e) {
    return make_error(Errc::corrupt, std::string("coordinator state: host record: ") + e.what());
  }
}

// samples/<service>/<at be64>/<host>: time-ordered per service.
Status put_sample(lmdb::Txn& txn, const lmdb::Table& table, const std::string& service,
                  const CoordinatorStore::FleetSample& s) {
  json sample = {{"host", s.host},     {"release", s.release},
                 {"at", s.at_ms},      {"error_rate", s.error_rate},
                 {"p99_ms", s.p99_ms}, {"saturation", s.saturation},
                 {"ok", s.ok}};
  std::string key =
      seq_key(service, static_cast<std::uint64_t>(std::max<std::int64_t>(s.at_ms, 0)));
  key += '/' + s.host;
  return txn.put(table, key, sample.dump());
}

// host_seen/<host>: "REPORT_SEQ LAST_SEEN", rewritten by every report (kept
// apart from the host record so ingest does not re-encode it).
struct Seen {
  std::uint64_t report_seq = 0;
  std::int64_t last_seen = 0;
};

Seen parse_seen(std::optional<std::string_view> v) {
  Seen s;
  if (!v) return s;
  const std::string text(*v);
  std::sscanf(text.c_str(), "%" SCNu64 " %" SCNd64, &s.report_seq, &s.last_seen);
  return s;
}

std::string encode_seen(const Seen& s) {
  return std::to_string(s.report_seq) + " " + std::to_string(s.last_seen);
}

void merge_seen(HostRecord& h, const Seen& s) {
  h.report_seq = std::max(h.report_seq, s.report_seq);
  h.last_seen = std::max(h.last_seen, s.last_seen);
}

std::uint64_t to_u64(const std::optional<std::string>& v) {
  return v ? std::stoull(*v) : 0;
}

// A deploy's entry under prefix in the deploy list: newest first.
std::string list_key(const std::string& prefix, const DeployRecord& d) {
  std::string k = prefix;
  const auto inverted = ~static_cast<std::uint64_t>(std::max<std::int64_t>(d.created_ms, 0));
  for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>((inverted >> (8 * i)) & 0xff));
  return k + d.id;
}

std::string refuse_second(const DeployRecord& active) {
  return "deploy '" + active.id + "' of service '" + active.service + "' is " +
         deploy_state_name(active.state) + "; one deploy per service at a time";
}

}  // namespace

Result<std::unique_ptr<CoordinatorStore>> CoordinatorStore::open(const fs::path& dir) {
  std::unique_ptr<CoordinatorStore> s(new CoordinatorStore());
  lmdb::Options options;
  options.map_size = 8ull << 30;  // address space only; grows on disk as used
  options.max_tables = 32;
  DROVER_ASSIGN(s->env_, lmdb::Env::open(dir, options));
  DROVER_ASSIGN(s->meta_, s->env_->table("meta"));
  DROVER_ASSIGN(s->hosts_, s->env_->table("hosts"));
  DROVER_ASSIGN(s->join_tokens_, s->env_->table("join_tokens"));
  DROVER_ASSIGN(s->plans_, s->env_->table("plans"));
  DROVER_ASSIGN(s->plan_index_, s->env_->table("plan_index"));
  DROVER_ASSIGN(s->plan_seqs_, s->env_->table("plan_seqs"));
  DROVER_ASSIGN(s->deploys_, s->env_->table("deploys"));
  DROVER_ASSIGN(s->samples_, s->env_->table("samples"));
  DROVER_ASSIGN(s->host_state_, s->env_->table("host_state"));
  DROVER_ASSIGN(s->pipelines_, s->env_->table("pipelines"));
  DROVER_ASSIGN(s->artifacts_, s->env_->table("artifacts"));
  DROVER_ASSIGN(s->manifests_, s->env_->table("manifests"));
  DROVER_ASSIGN(s->settings_, s->env_->table("settings"));
  DROVER_ASSIGN(s->host_seen_, s->env_->table("host_seen"));
  DROVER_ASSIGN(s->deploy_configs_, s->env_->table("deploy_configs"));
  DROVER_ASSIGN(s->active_deploys_, s->env_->table("active_deploys"));
  DROVER_ASSIGN(s->deploy_list_, s->env_->table("deploy_list"));
  DROVER_ASSIGN(s->audit_.releases, s->env_->table("audit_releases"));
  DROVER_ASSIGN(s->audit_.records, s->env_->table("audit"));
  DROVER_ASSIGN(s->audit_.snapshots, s->env_->table("config_snapshots"));
  s->audit_.meta = s->meta_;
  DROVER_ASSIGN(auto txn, s->env_->begin_write());
  DROVER_ASSIGN(auto format, txn.get(s->meta_, "coordinator_format"));
  if (!format) {
    DROVER_TRY(txn.put(s->meta_, "coordinator_format", kFormat));
  } else if (*format == "1") {
    DROVER_TRY(s->migrate_to_2(txn));
  } else if (*format != kFormat) {
    return make_error(Errc::unsupported, "coordinator state " + dir.string() + " has format '" +
                                             *format + "'; this coordinator reads formats 1 and 2");
  }
  DROVER_TRY(txn.commit());
  return s;
}

Result<std::optional<HostRecord>> CoordinatorStore::host(const std::string& name) {
  DROVER_ASSIGN(auto txn, env_->begin_read());
  DROVER_ASSIGN(auto bytes, txn.get(hosts_, name));
  if (!bytes) return std::optional<HostRecord>();
  DROVER_ASSIGN(HostRecord h, decode_host(*bytes));
  DROVER_ASSIGN(auto seen, txn.get(host_seen_, name));
  merge_seen(h, parse_seen(seen));
  return std::optional<HostRecord>(std::move(h));
}

Result<std::vector<HostRecord>> CoordinatorStore::hosts() {
  DROVER_ASSIGN(auto txn, env_->begin_read());
  DROVER_ASSIGN(auto cursor, txn.cursor(hosts_));
  std::vector<HostRecord> out;
  DROVER_ASSIGN(bool more, cursor.first());
  while (more) {
    DROVER_ASSIGN(HostRecord h, decode_host(cursor.value()));
    out.push_back(std::move(h));
    DROVER_ASSIGN(more, cursor.next());
  }
  for (auto& h : out) {
    DROVER_ASSIGN(auto seen, txn.get(host_seen_, h.host));
    merge_seen(h, parse_seen(seen));
  }
  return out;
}

Status CoordinatorStore::enroll(const HostRecord& record) {
  DROVER_ASSIGN(auto txn, env_->begin_write());
  DROVER_ASSIGN(auto existing, txn.get(hosts_, record.host));
  HostRecord next = record;
  if (existing) {
    DROVER_ASSIGN(HostRecord old, decode_host(*existing));
    if (!(old.key == record.key)) {
      return make_error(Errc::refused, "host '" + record.host + "' is bound to key " +
                                           old.key.key_id().substr(0, 12) +
                                           "; an admin must reset it before another key enrolls");
    }
    next.enrolled_at = old.enrolled_at;
    next.report_seq = old.report_seq;  // the agent's numbering continues
  }
  DROVER_TRY(txn.put(hosts_, record.host, encode_host(next)));
  DROVER_TRY(txn.commit());
  hosts_version_.fetch_add(1);
  return Ok{};
}

Status CoordinatorStore::reset_host(const std::string& name) {
  DROVER_ASSIGN(auto txn, env_->begin_write());
  DROVER_ASSIGN(bool erased, txn.erase(hosts_, name));
  if (!erased) return make_error(Errc::not_found, "no enrolled host '" + name + "'");
  DROVER_ASSIGN(bool had_reports, txn.erase(host_seen_, name));  // the new machine numbers from 1
  (void)had_reports;
  DROVER_TRY(txn.commit());
  hosts_version_.fetch_add(1);
  return Ok{};
}

Status CoordinatorStore::add_join_token(const std::string& token, const std::string& issued_by,
                                        std::int64_t at) {
  DROVER_ASSIGN(auto txn, env_->begin_write());
  json j = {{"issued_by", issued_by}, {"issued_at", at}};
  DROVER_TRY(txn.put(join_tokens_, token_key(token), *canon::encode(j)));
  return txn.commit();
}

Result<std::string> CoordinatorStore::create_join_token(const std::string& issued_by,
                                                        std::int64_t at, Random& random) {
  std::string token = "drj_" + canon::base64url_encode(random.bytes(32));
  DROVER_TRY(add_join_token(token, issued_by, at));
  return token;
}

Result<bool> CoordinatorStore::join_token_valid(const std::string& token) {
  DROVER_ASSIGN(auto txn, env_->begin_read());
  DROVER_ASSIGN(auto v, txn.get(join_tokens_, token_key(token)));
  return v.has_value();
}

Status CoordinatorStore::revoke_join_token(const std::string& token) {
  DROVER_ASSIGN(auto txn, env_->begin_write());
  DROVER_ASSIGN(bool erased, txn.erase(join_tokens_, token_key(token)));
  if (!erased) return make_error(Errc::not_found, "no such join token");
  return txn.commit();
}

Result<std::uint64_t> CoordinatorStore::next_plan_seq(const std::string& service) {
  DROVER_ASSIGN(auto txn, env_->begin_write());
  DROVER_ASSIGN(auto v, txn.get(plan_seqs_, service));
  const std::uint64_t next = to_u64(v) + 1;
  DROVER_TRY(txn.put(plan_seqs_, service, std::to_string(next)));
  DROVER_TRY(txn.commit());
  return next;
}

Status CoordinatorStore::note_reported_seq(const std::string& service, std::uint64_t seq) {
  DROVER_ASSIGN(auto txn, env_->begin_write());
  DROVER_ASSIGN(auto v, txn.get(plan_seqs_, service));
  if (to_u64(v) >= seq) return Ok{};
  DROVER_TRY(txn.put(plan_seqs_, service, std::to_string(seq)));
  return txn.commit();
}

Status CoordinatorStore::put_plan(const std::string& service, std::uint64_t seq,
                                  const std::string& bundle,
                                  const std::vector<std::string>& hosts) {
  DROVER_ASSIGN(auto txn, env_->begin_write());
  DROVER_TRY(txn.put(plans_, seq_key(service, seq), bundle));
  for (const auto& h : hosts) {
    DROVER_TRY(txn.put(plan_index_, service + '/' + h, seq_key(service, seq)));
  }
  return txn.commit();
}

Result<std::optional<std::string>> CoordinatorStore::plan_for(const std::string& service,
                                                              const std::string& host) {
  DROVER_ASSIGN(auto txn, env_->begin_read());
  DROVER_ASSIGN(auto key, txn.get(plan_index_, service + '/' + host));
  if (!key) return std::optional<std::string>();
  DROVER_ASSIGN(auto bundle, txn.get(plans_, *key));
  if (!bundle) {
    return make_error(Errc::corrupt, "coordinator state: the plan of " + service + " for " + host +
                                         " is indexed but missing");
  }
  return bundle;
}

Status CoordinatorStore::create_deploy(const NewDeploy& n) {
  const DeployRecord& d = n.record;
  DROVER_ASSIGN(auto txn, env_->begin_write());
  DROVER_ASSIGN(auto existing, txn.get(deploys_, d.id));
  if (existing) return make_error(Errc::already_exists, "deploy '" + d.id + "' exists");
  DROVER_ASSIGN(auto active_id, txn.get(active_deploys_, d.service));
  if (active_id) {
    DROVER_ASSIGN(auto bytes, txn.get(deploys_, *active_id));
    if (!bytes)
      return make_error(Errc::corrupt, "deploy '" + *active_id + "' is indexed but missing");
    DROVER_ASSIGN(DeployRecord active, decode_deploy(*bytes));
    return make_error(Errc::refused, refuse_second(active));
  }
  if (n.counter > 0) {
    const std::string key = "deploy_counter/" + d.service;
    DROVER_ASSIGN(auto counter, txn.get(settings_, key));
    if (to_u64(counter) + 1 != n.counter) {
      return make_error(Errc::already_exists, "deploy number " + std::to_string(n.counter) +
                                                  " of service '" + d.service + "' is taken");
    }
    DROVER_TRY(txn.put(settings_, key, std::to_string(n.counter)));
  }
  DROVER_TRY(txn.put(deploys_, d.id, encode_deploy(d)));
  DROVER_TRY(index_new_deploy(txn, d));
  DROVER_ASSIGN(AuditRecord created, audit_append(txn, audit_, n.created, n.config_snapshot));
  if (!created.config_hash.empty()) {
    DROVER_TRY(txn.put(deploy_configs_, d.id, created.config_hash));
  }
  return txn.commit();
}

Status CoordinatorStore::commit_deploy(const DeployRecord& d,
                                       const std::vector<AuditRecord>& audits) {
  DROVER_ASSIGN(auto txn, env_->begin_write());
  DROVER_TRY(txn.put(deploys_, d.id, encode_deploy(d)));
  DROVER_TRY(index_deploy_state(txn, d));
  for (const auto& a : audits) DROVER_TRY(audit_append(txn, audit_, a));
  return txn.commit();
}

Status CoordinatorStore::index_new_deploy(lmdb::Txn& txn, const DeployRecord& d, bool strict) {
  DROVER_TRY(txn.put(deploy_list_, list_key("a/", d), d.id));
  DROVER_TRY(txn.put(deploy_list_, list_key("s/" + d.service + "/", d), d.id));
  DROVER_TRY(txn.put(deploy_list_, list_key("p/" + d.pipeline_id + "/", d), d.id));
  return index_deploy_state(txn, d, strict);
}

Status CoordinatorStore::index_deploy_state(lmdb::Txn& txn, const DeployRecord& d, bool strict) {
  DROVER_ASSIGN(auto active, txn.get(active_deploys_, d.service));
  if (!is_terminal(d.state)) {
    if (active && *active != d.id && strict) {
      return make_error(Errc::refused, "deploy '" + *active + "' of service '" + d.service +
                                           "' is active; one deploy per service at a time");
    }
    if (!active) DROVER_TRY(txn.put(active_deploys_, d.service, d.id));
  } else if (active && *active == d.id) {
    DROVER_ASSIGN(bool erased, txn.erase(active_deploys_, d.service));
    (void)erased;
  }
  return Ok{};
}

Status CoordinatorStore::migrate_to_2(lmdb::Txn& txn) {
  std::vector<DeployRecord> all;
  {
    DROVER_ASSIGN(auto cursor, txn.cursor(deploys_));
    DROVER_ASSIGN(bool more, cursor.first());
    while (more) {
      DROVER_ASSIGN(DeployRecord d, decode_deploy(cursor.value()));
      all.push_back(std::move(d));
      DROVER_ASSIGN(more, cursor.next());
    }
  }  // cursors are gone before the writes and the commit
  // Lenient: a state that somehow holds two active deploys of a service
  // still opens (the first by id is the one indexed).
  for (const auto& d : all) DROVER_TRY(index_new_deploy(txn, d, false));
  DROVER_ASSIGN(std::uint64_t releases, audit_index_releases(txn, audit_));
  (void)releases;
  return txn.put(meta_, "coordinator_format", kFormat);
}

Status CoordinatorStore::append_audit(const AuditRecord& record) {
  DROVER_ASSIGN(auto txn, env_->begin_write());
  DROVER_TRY(audit_append(txn, audit_, record));
  return txn.commit();
}

Result<std::optional<DeployRecord>> CoordinatorStore::deploy(const std::string& deploy_id) {
  DROVER_ASSIGN(auto bytes, get_record(deploys_, deploy_id));
  if (!bytes) return std::optional<DeployRecord>();
  DROVER_ASSIGN(DeployRecord d, decode_deploy(*bytes));
  return std::optional<DeployRecord>(std::move(d));
}

Result<std::vector<DeployRecord>> CoordinatorStore::active_deploys() {
  DROVER_ASSIGN(auto txn, env_->begin_read());
  std::vector<std::string> ids;
  {
    DROVER_ASSIGN(auto cursor, txn.cursor(active_deploys_));
    DROVER_ASSIGN(bool more, cursor.first());
    while (more) {
      ids.emplace_back(cursor.value());
      DROVER_ASSIGN(more, cursor.next());
    }
  }
  std::sort(ids.begin(), ids.end());
  std::vector<DeployRecord> out;
  for (const auto& id : ids) {
    DROVER_ASSIGN(auto bytes, txn.get(deploys_, id));
    if (!bytes) return make_error(Errc::corrupt, "deploy '" + id + "' is indexed but missing");
    DROVER_ASSIGN(DeployRecord d, decode_deploy(*bytes));
    out.push_back(std::move(d));
  }
  return out;
}

Result<std::optional<DeployRecord>> CoordinatorStore::active_deploy(const std::string& service) {
  DROVER_ASSIGN(auto txn, env_->begin_read());
  DROVER_ASSIGN(auto id, txn.get(active_deploys_, service));
  if (!id) return std::optional<DeployRecord>();
  DROVER_ASSIGN(auto bytes, txn.get(deploys_, *id));
  if (!bytes) return make_error(Errc::corrupt, "deploy '" + *id + "' is indexed but missing");
  DROVER_ASSIGN(DeployRecord d, decode_deploy(*bytes));
  return std::optional<DeployRecord>(std::move(d));
}

Result<std::vector<DeployRecord>> CoordinatorStore::recent_deploys(const DeployFilter& filter,
                                                                   std::size_t limit) {
  const std::string prefix = !filter.pipeline_id.empty() ? "p/" + filter.pipeline_id + "/"
                             : !filter.service.empty()   ? "s/" + filter.service + "/"
                                                         : "a/";
  DROVER_ASSIGN(auto txn, env_->begin_read());
  std::vector<DeployRecord> out;
  DROVER_ASSIGN(auto cursor, txn.cursor(deploy_list_));
  DROVER_ASSIGN(bool more, cursor.seek(prefix));
  while (more && out.size() < limit && cursor.key().substr(0, prefix.size()) == prefix) {
    const std::string id(cursor.value());
    DROVER_ASSIGN(auto bytes, txn.get(deploys_, id));
    if (!bytes) return make_error(Errc::corrupt, "deploy '" + id + "' is listed but missing");
    DROVER_ASSIGN(DeployRecord d, decode_deploy(*bytes));
    // A pipeline's deploys are of its service; a filter on both asks both.
    if (filter.service.empty() || d.service == filter.service) out.push_back(std::move(d));
    DROVER_ASSIGN(more, cursor.next());
  }
  return out;
}

Result<std::uint64_t> CoordinatorStore::deploy_counter(const std::string& service) {
  DROVER_ASSIGN(auto v, get_record(settings_, "deploy_counter/" + service));
  return to_u64(v);
}

Result<std::optional<std::string>> CoordinatorStore::deploy_config(const std::string& deploy_id) {
  DROVER_ASSIGN(auto txn, env_->begin_read());
  DROVER_ASSIGN(auto hash, txn.get(deploy_configs_, deploy_id));
  if (hash) return txn.get(audit_.snapshots, *hash);
  // Deploys created before deploy_configs kept their snapshot as a setting.
  return txn.get(settings_, "deploy_config/" + deploy_id);
}

Status CoordinatorStore::put_record(const lmdb::Table& table, const std::string& key,
                                    const std::string& value) {
  DROVER_ASSIGN(auto txn, env_->begin_write());
  DROVER_TRY(txn.put(table, key, value));
  return txn.commit();
}

Result<std::optional<std::string>> CoordinatorStore::get_record(const lmdb::Table& table,
                                                                const std::string& key) {
  DROVER_ASSIGN(auto txn, env_->begin_read());
  return txn.get(table, key);
}

Result<std::vector<std::string>> CoordinatorStore::all_records(const lmdb::Table& table) {
  DROVER_ASSIGN(auto txn, env_->begin_read());
  DROVER_ASSIGN(auto cursor, txn.cursor(table));
  std::vector<std::string> out;
  DROVER_ASSIGN(bool more, cursor.first());
  while (more) {
    out.emplace_back(cursor.value());
    DROVER_ASSIGN(more, cursor.next());
  }
  return out;
}

Status CoordinatorStore::put_pipeline(const std::string& id, const std::string& record) {
  return put_record(pipelines_, id, record);
}

Result<std::optional<std::string>> CoordinatorStore::pipeline(const std::string& id) {
  return get_record(pipelines_, id);
}

Result<std::vector<std::string>> CoordinatorStore::pipelines() {
  return all_records(pipelines_);
}

Result<bool> CoordinatorStore::put_artifact(const ArtifactRecord& record,
                                            const std::string& manifest) {
  DROVER_ASSIGN(auto txn, env_->begin_write());
  DROVER_ASSIGN(bool fresh,
                txn.put_new(artifacts_, record.artifact_id, encode_artifact_record(record)));
  if (!fresh) return false;
  DROVER_TRY(txn.put(manifests_, record.artifact_id, manifest));
  DROVER_TRY(txn.commit());
  return true;
}

Result<std::optional<ArtifactRecord>> CoordinatorStore::artifact(const std::string& id) {
  DROVER_ASSIGN(auto bytes, get_record(artifacts_, id));
  if (!bytes) return std::optional<ArtifactRecord>();
  DROVER_ASSIGN(ArtifactRecord a, decode_artifact_record(*bytes));
  return std::optional<ArtifactRecord>(std::move(a));
}

Result<std::vector<ArtifactRecord>> CoordinatorStore::artifacts() {
  DROVER_ASSIGN(auto all, all_records(artifacts_));
  std::vector<ArtifactRecord> out;
  out.reserve(all.size());
  for (const auto& bytes : all) {
    DROVER_ASSIGN(ArtifactRecord a, decode_artifact_record(bytes));
    out.push_back(std::move(a));
  }
  return out;
}

Result<std::optional<std::string>> CoordinatorStore::manifest(const std::string& id) {
  return get_record(manifests_, id);
}

Status CoordinatorStore::put_setting(const std::string& key, const std::string& value) {
  return put_record(settings_, key, value);
}

Result<std::optional<std::string>> CoordinatorStore::setting(const std::string& key) {
  return get_record(settings_, key);
}

Result<AuditCheck> CoordinatorStore::verify_audit() {
  DROVER_ASSIGN(auto txn, env_->begin_read());
  return audit_verify(txn, audit_);
}

Result<std::vector<AuditRecord>> CoordinatorStore::audit(const std::string& service,
                                                         std::int64_t since_ms,
                                                         std::int64_t until_ms, std::size_t limit) {
  DROVER_ASSIGN(auto txn, env_->begin_read());
  return audit_query(txn, audit_, service, since_ms, until_ms, limit);
}

Result<std::optional<AuditRecord>> CoordinatorStore::running_at(const std::string& service,
                                                                std::int64_t at_ms) {
  DROVER_ASSIGN(auto txn, env_->begin_read());
  return audit_running_at(txn, audit_, service, at_ms);
}

Result<bool> CoordinatorStore::ingest_one(lmdb::Txn& txn, const std::string& host,
                                          const proto::ReportBody& report, std::int64_t now) {
  DROVER_ASSIGN(auto bytes, txn.get(hosts_, host));
  if (!bytes) return make_error(Errc::not_found, "host '" + host + "' is not enrolled");
  DROVER_ASSIGN(auto seen_bytes, txn.get(host_seen_, host));
  Seen seen = parse_seen(seen_bytes);
  if (seen.report_seq == 0 && !seen_bytes) {
    // A record from before host_seen existed keeps its mark in the host record.
    DROVER_ASSIGN(HostRecord h, decode_host(*bytes));
    seen.report_seq = h.report_seq;
  }
  seen.last_seen = now;
  const bool fresh = report.seq > seen.report_seq;
  if (fresh) seen.report_seq = report.seq;
  DROVER_TRY(txn.put(host_seen_, host, encode_seen(seen)));
  if (!fresh) return false;
  // host_state/<service>/<host>: {"failed_seq":N,"release":…}
  auto state_of = [&](const std::string& service) -> Result<json> {
    DROVER_ASSIGN(auto v, txn.get(host_state_, service + '/' + host));
    json j = v ? json::parse(*v, nullptr, false) : json::object();
    if (!j.is_object()) j = json::object();
    return j;
  };
  for (const auto& item : report.items) {
    if (item.health) {
      const proto::HealthItem& hi = *item.health;
      DROVER_TRY(
          put_sample(txn, samples_, hi.service,
                     {host, hi.release, hi.at_ms, hi.error_rate, hi.p99_ms, hi.saturation, hi.ok}));
      if (!hi.release.empty()) {
        DROVER_ASSIGN(json st, state_of(hi.service));
        if (st.value("release", "") != hi.release) {  // most samples change nothing
          st["release"] = hi.release;
          DROVER_TRY(txn.put(host_state_, hi.service + '/' + host, st.dump()));
        }
      }
    } else if (item.event) {
      const proto::EventItem& e = *item.event;
      if (e.seq > 0) {
        DROVER_ASSIGN(auto v, txn.get(plan_seqs_, e.service));
        if (to_u64(v) < e.seq) DROVER_TRY(txn.put(plan_seqs_, e.service, std::to_string(e.seq)));
      }
      if (e.event == "applied" && !e.detail.empty()) {
        DROVER_ASSIGN(json st, state_of(e.service));
        st["release"] = e.detail;  // the artifact it now runs
        DROVER_TRY(txn.put(host_state_, e.service + '/' + host, st.dump()));
      } else if (e.event == "apply_failed" || e.event == "plan_refused" ||
                 e.event == "fetch_failed") {
        DROVER_ASSIGN(json st, state_of(e.service));
        if (e.seq > st.value("failed_seq", std::uint64_t{0})) st["failed_seq"] = e.seq;
        DROVER_TRY(txn.put(host_state_, e.service + '/' + host, st.dump()));
      }
    }
  }
  return true;
}

Result<bool> CoordinatorStore::ingest_report(const std::string& host,
                                             const proto::ReportBody& report, std::int64_t now) {
  DROVER_ASSIGN(auto txn, env_->begin_write());
  DROVER_ASSIGN(bool fresh, ingest_one(txn, host, report, now));
  DROVER_TRY(txn.commit());
  return fresh;
}

Result<std::vector<Result<bool>>> CoordinatorStore::ingest_reports(
    const std::vector<std::pair<std::string, const proto::ReportBody*>>& reports,
    std::int64_t now) {
  DROVER_ASSIGN(auto txn, env_->begin_write());
  std::vector<Result<bool>> out;
  out.reserve(reports.size());
  for (const auto& [host, report] : reports) {
    auto r = ingest_one(txn, host, *report, now);
    // An unknown host changed nothing; any other failure spoils the transaction.
    if (!r.ok() && r.error().code != Errc::not_found) return r.error();
    out.push_back(std::move(r));
  }
  DROVER_TRY(txn.commit());
  return out;
}

Result<CoordinatorStore::Fleet> CoordinatorStore::fleet(const std::string& service,
                                                        std::int64_t since_ms) {
  DROVER_ASSIGN(auto txn, env_->begin_read());
  Fleet f;
  {
    DROVER_ASSIGN(auto cursor, txn.cursor(host_state_));
    const std::string prefix = service + '/';
    DROVER_ASSIGN(bool more, cursor.seek(prefix));
    while (more && cursor.key().substr(0, prefix.size()) == prefix) {
      const std::string host(cursor.key().substr(prefix.size()));
      json j = json::parse(cursor.value(), nullptr, false);
      if (j.is_object()) {
        if (j.contains("release")) f.running[host] = j["release"].get<std::string>();
        if (j.contains("failed_seq")) f.failed_seq[host] = j["failed_seq"].get<std::uint64_t>();
      }
      DROVER_ASSIGN(more, cursor.next());
    }
  }
  DROVER_ASSIGN(auto cursor, txn.cursor(samples_));
  const std::string prefix = service + '/';
  DROVER_ASSIGN(bool more, cursor.seek(seq_key(service, static_cast<std::uint64_t>(
                                                            std::max<std::int64_t>(since_ms, 0)))));
  while (more && cursor.key().substr(0, prefix.size()) == prefix) {
    json j = json::parse(cursor.value(), nullptr, false);
    if (j.is_object()) {
      f.samples.push_back({j.value("host", ""), j.value("release", ""),
                           j.value("at", std::int64_t{0}), j.value("error_rate", 0.0),
                           j.value("p99_ms", 0.0), j.value("saturation", 0.0),
                           j.value("ok", false)});
    }
    DROVER_ASSIGN(more, cursor.next());
  }
  return f;
}

Status CoordinatorStore::add_samples(const std::string& service,
                                     const std::vector<FleetSample>& samples) {
  DROVER_ASSIGN(auto txn, env_->begin_write());
  for (const auto& s : samples) DROVER_TRY(put_sample(txn, samples_, service, s));
  return txn.commit();
}

Result<std::size_t> CoordinatorStore::prune_samples(std::int64_t before_ms) {
  DROVER_ASSIGN(auto txn, env_->begin_write());
  std::vector<std::string> doomed;
  {
    DROVER_ASSIGN(auto cursor, txn.cursor(samples_));
    DROVER_ASSIGN(bool more, cursor.first());
    while (more) {
      json j = json::parse(cursor.value(), nullptr, false);
      if (j.is_object() && j.value("at", std::int64_t{0}) < before_ms) {
        doomed.emplace_back(cursor.key());
      }
      DROVER_ASSIGN(more, cursor.next());
    }
  }
  for (const auto& k : doomed) DROVER_TRY(txn.erase(samples_, k));
  DROVER_TRY(txn.commit());
  return doomed.size();
}

}  // namespace drover::coordinator
