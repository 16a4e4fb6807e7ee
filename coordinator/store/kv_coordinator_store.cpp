#include "coordinator/store/kv_coordinator_store.hpp"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "coordinator/store/kv_codec.hpp"
#include "core/canon/base64.hpp"
#include "core/canon/canonical_json.hpp"
#include "core/hash/sha256.hpp"

namespace drover::coordinator {
namespace {

using nlohmann::json;
using namespace store_detail;

std::string token_key(const std::string& token) {
  return ContentId::of(token).hex();
}

std::string join_token_id(std::string_view key) {
  return "jt_" + std::string(key.substr(0, 12));
}

std::string encode_join_token(const CoordinatorStore::JoinToken& t) {
  json j = {{"issued_by", t.issued_by}, {"issued_at", t.issued_at}, {"expires_at", t.expires_at},
            {"uses_left", t.uses_left}, {"regions", t.regions},     {"services", t.services}};
  return *canon::encode(j);
}

CoordinatorStore::JoinToken from_spec(const std::string& issued_by, std::int64_t at,
                                      const CoordinatorStore::JoinTokenSpec& spec) {
  CoordinatorStore::JoinToken t;
  t.issued_by = issued_by;
  t.issued_at = at;
  t.expires_at = at + spec.ttl_s;
  t.uses_left = spec.uses;
  t.regions = spec.regions;
  t.services = spec.services;
  return t;
}

// Never fails: a record that does not read is listed, and admits nobody.
CoordinatorStore::JoinToken decode_join_token(std::string_view key, std::string_view bytes) {
  CoordinatorStore::JoinToken t;
  t.id = join_token_id(key);
  const json j = json::parse(bytes, nullptr, false);
  if (!j.is_object()) return t;
  try {
    t.issued_by = j.value("issued_by", "");
    t.issued_at = j.value("issued_at", std::int64_t{0});
    if (j.contains("expires_at")) {
      t.expires_at = j.at("expires_at").get<std::int64_t>();
      t.uses_left = j.at("uses_left").get<std::uint64_t>();
      t.regions = j.at("regions").get<std::vector<std::string>>();
      t.services = j.at("services").get<std::vector<std::string>>();
    } else {
      t.expires_at = t.issued_at + 24 * 3600;
      t.uses_left = std::numeric_limits<std::uint64_t>::max();
    }
  } catch (const json::exception&) {
    t.expires_at = 0;
    t.uses_left = 0;
  }
  return t;
}

std::string encode_api_token(const CoordinatorStore::ApiToken& t) {
  return json{
      {"name", t.name}, {"role", t.role}, {"person", t.person}, {"created_at", t.created_at}}
      .dump();
}

std::optional<CoordinatorStore::ApiToken> decode_api_token(std::string_view bytes) {
  const json j = json::parse(bytes, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  try {
    CoordinatorStore::ApiToken t{j.value("name", ""), j.value("role", ""),
                                 j.value("created_at", std::int64_t{0}), j.value("person", "")};
    if (t.person.empty()) t.person = t.name;  // written before tokens named their person
    return t;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

}  // namespace

Status KvCoordinatorStore::init(KvCoordinatorStore& s, const std::string& where) {
  kv::Store& kv = *s.kv_;
  DROVER_ASSIGN(s.meta_, kv.table("meta"));
  DROVER_ASSIGN(s.hosts_, kv.table("hosts"));
  DROVER_ASSIGN(s.join_tokens_, kv.table("join_tokens"));
  DROVER_ASSIGN(s.api_tokens_, kv.table("api_tokens"));
  DROVER_ASSIGN(s.plans_, kv.table("plans"));
  DROVER_ASSIGN(s.plan_index_, kv.table("plan_index"));
  DROVER_ASSIGN(s.plan_seqs_, kv.table("plan_seqs"));
  DROVER_ASSIGN(s.deploys_, kv.table("deploys"));
  DROVER_ASSIGN(s.samples_, kv.table("samples"));
  DROVER_ASSIGN(s.host_state_, kv.table("host_state"));
  DROVER_ASSIGN(s.pipelines_, kv.table("pipelines"));
  DROVER_ASSIGN(s.artifacts_, kv.table("artifacts"));
  DROVER_ASSIGN(s.manifests_, kv.table("manifests"));
  DROVER_ASSIGN(s.settings_, kv.table("settings"));
  DROVER_ASSIGN(s.host_seen_, kv.table("host_seen"));
  DROVER_ASSIGN(s.deploy_configs_, kv.table("deploy_configs"));
  DROVER_ASSIGN(s.host_releases_, kv.table("host_releases"));
  DROVER_ASSIGN(s.deliveries_, kv.table("webhook_deliveries"));
  DROVER_ASSIGN(s.deliveries_by_time_, kv.table("webhook_by_time"));
  DROVER_ASSIGN(s.active_deploys_, kv.table("active_deploys"));
  DROVER_ASSIGN(s.deploy_list_, kv.table("deploy_list"));
  DROVER_ASSIGN(s.audit_.releases, kv.table("audit_releases"));
  DROVER_ASSIGN(s.audit_.by_time, kv.table("audit_by_time"));
  DROVER_ASSIGN(s.audit_.records, kv.table("audit"));
  DROVER_ASSIGN(s.audit_.snapshots, kv.table("config_snapshots"));
  s.audit_.meta = s.meta_;
  DROVER_ASSIGN(auto txn_owner, kv.begin_write());
  kv::Txn& txn = *txn_owner;
  DROVER_ASSIGN(auto format, txn.get(s.meta_, "coordinator_format"));
  if (!format) {
    DROVER_TRY(txn.put(s.meta_, "coordinator_format", kStateFormat));
  } else if (*format == "1") {
    DROVER_TRY(s.migrate_to_2(txn));  // builds the indexes in format 3's layout
  } else if (*format == "2") {
    DROVER_TRY(s.migrate_to_3(txn));
  } else if (*format != kStateFormat) {
    return make_error(Errc::unsupported, "coordinator state " + where + " has format '" + *format +
                                             "'; this coordinator reads formats 1 to 3");
  }
  // A log written before an audit index (or under its older layout) is
  // indexed now, once: the index's mark in meta says so.
  DROVER_ASSIGN(std::uint64_t indexed, audit_index_current(txn, s.audit_));
  (void)indexed;
  return txn.commit();
}

Result<std::optional<HostRecord>> KvCoordinatorStore::host(const std::string& name) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_read());
  kv::Txn& txn = *txn_owner;
  DROVER_ASSIGN(auto bytes, txn.get(hosts_, name));
  if (!bytes) return std::optional<HostRecord>();
  DROVER_ASSIGN(HostRecord h, decode_host(*bytes));
  DROVER_ASSIGN(auto seen, txn.get(host_seen_, name));
  merge_seen(h, parse_seen(seen));
  return std::optional<HostRecord>(std::move(h));
}

Result<std::vector<HostRecord>> KvCoordinatorStore::hosts() {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_read());
  kv::Txn& txn = *txn_owner;
  DROVER_ASSIGN(auto cursor, txn.cursor(hosts_));
  std::vector<HostRecord> out;
  DROVER_ASSIGN(bool more, cursor->first());
  while (more) {
    auto h = decode_host(cursor->value());
    if (h.ok()) {
      out.push_back(std::move(*h));
    } else {
      // Listed by its key alone, so the rest of the fleet is still served
      // and an admin can see it and reset it.
      HostRecord unreadable;
      unreadable.host = std::string(cursor->key());
      unreadable.unreadable = true;
      out.push_back(std::move(unreadable));
    }
    DROVER_ASSIGN(more, cursor->next());
  }
  for (auto& h : out) {
    DROVER_ASSIGN(auto seen, txn.get(host_seen_, h.host));
    merge_seen(h, parse_seen(seen));
  }
  return out;
}

Status KvCoordinatorStore::enroll(const HostRecord& record) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
  kv::Txn& txn = *txn_owner;
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

Status KvCoordinatorStore::reset_host(const std::string& name) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
  kv::Txn& txn = *txn_owner;
  DROVER_ASSIGN(bool erased, txn.erase(hosts_, name));
  if (!erased) return make_error(Errc::not_found, "no enrolled host '" + name + "'");
  DROVER_ASSIGN(bool had_reports, txn.erase(host_seen_, name));  // the new machine numbers from 1
  (void)had_reports;
  DROVER_TRY(txn.commit());
  hosts_version_.fetch_add(1);
  return Ok{};
}

std::uint64_t KvCoordinatorStore::hosts_version() const {
  return hosts_version_.load();
}

// join_tokens/<sha256 hex of token>: canonical JSON {"issued_by","issued_at",
// "expires_at","uses_left","regions","services"}. A record from before
// expiry and uses (only issued_by and issued_at) expired 24 h after issue and
// had any number of uses.
Status KvCoordinatorStore::add_join_token(const std::string& token, const std::string& issued_by,
                                          std::int64_t at, const JoinTokenSpec& spec) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
  kv::Txn& txn = *txn_owner;
  DROVER_TRY(
      txn.put(join_tokens_, token_key(token), encode_join_token(from_spec(issued_by, at, spec))));
  return txn.commit();
}

Result<KvCoordinatorStore::JoinToken> KvCoordinatorStore::create_join_token(
    const std::string& issued_by, std::int64_t at, Random& random, const JoinTokenSpec& spec) {
  std::string token = "drj_" + canon::base64url_encode(random.bytes(32));
  DROVER_TRY(add_join_token(token, issued_by, at, spec));
  JoinToken t = from_spec(issued_by, at, spec);
  t.id = join_token_id(token_key(token));
  t.token = std::move(token);
  return t;
}

Result<bool> KvCoordinatorStore::join_token_valid(const std::string& token, std::int64_t now) {
  DROVER_ASSIGN(auto v, get_record(join_tokens_, token_key(token)));
  if (!v) return false;
  const JoinToken t = decode_join_token(token_key(token), *v);
  return now < t.expires_at && t.uses_left > 0;
}

Result<std::vector<KvCoordinatorStore::JoinToken>> KvCoordinatorStore::join_tokens() {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_read());
  kv::Txn& txn = *txn_owner;
  DROVER_ASSIGN(auto cursor, txn.cursor(join_tokens_));
  std::vector<JoinToken> out;
  DROVER_ASSIGN(bool more, cursor->first());
  while (more) {
    out.push_back(decode_join_token(cursor->key(), cursor->value()));
    DROVER_ASSIGN(more, cursor->next());
  }
  return out;
}

Status KvCoordinatorStore::revoke_join_token(const std::string& token) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
  kv::Txn& txn = *txn_owner;
  DROVER_ASSIGN(bool erased, txn.erase(join_tokens_, token_key(token)));
  if (!erased) return make_error(Errc::not_found, "no such join token");
  return txn.commit();
}

Status KvCoordinatorStore::revoke_join_token_id(const std::string& id) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
  kv::Txn& txn = *txn_owner;
  std::vector<std::string> keys;
  {
    DROVER_ASSIGN(auto cursor, txn.cursor(join_tokens_));
    DROVER_ASSIGN(bool more, cursor->first());
    while (more) {
      if (join_token_id(cursor->key()) == id) keys.emplace_back(cursor->key());
      DROVER_ASSIGN(more, cursor->next());
    }
  }
  if (keys.empty()) return make_error(Errc::not_found, "no join token with id '" + id + "'");
  for (const auto& k : keys) DROVER_TRY(txn.erase(join_tokens_, k));
  return txn.commit();
}

Status KvCoordinatorStore::enroll_agent(const HostRecord& record, const std::string& join_token,
                                        std::int64_t now) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
  kv::Txn& txn = *txn_owner;
  DROVER_ASSIGN(auto existing, txn.get(hosts_, record.host));
  HostRecord next = record;
  bool moving = false;  // a bound host asking for another region, cluster or services
  if (existing) {
    auto old = decode_host(*existing);
    if (!old.ok()) {
      return make_error(Errc::refused, "host '" + record.host +
                                           "' has a record that cannot be read; an admin must "
                                           "reset it");
    }
    if (!(old->key == record.key)) {
      return make_error(Errc::refused, "host '" + record.host + "' is bound to key " +
                                           old->key.key_id().substr(0, 12) +
                                           "; an admin must reset it before another key enrolls");
    }
    if (record.enroll_at <= old->enroll_at) {
      return make_error(Errc::refused, "enrollment of '" + record.host + "' dated " +
                                           std::to_string(record.enroll_at) +
                                           " is not newer than the last one accepted (" +
                                           std::to_string(old->enroll_at) +
                                           "): a replay, or the host's clock went back; check "
                                           "the host's clock");
    }
    next.enrolled_at = old->enrolled_at;
    next.report_seq = old->report_seq;  // the agent's numbering continues
    moving = old->region != record.region || old->cluster != record.cluster ||
             old->services != record.services;
    if (!moving) {
      // The key alone: no token needed, none spent.
      DROVER_TRY(txn.put(hosts_, record.host, encode_host(next)));
      DROVER_TRY(txn.commit());
      hosts_version_.fetch_add(1);
      return Ok{};
    }
    // Another place is what a token grants: the key alone cannot widen what
    // the host may speak for (a token scoped to one region or service would
    // mean nothing otherwise).
  }
  const std::string key = token_key(join_token);
  DROVER_ASSIGN(auto bytes, txn.get(join_tokens_, key));
  if (!bytes) {
    return make_error(Errc::refused,
                      moving ? "host '" + record.host +
                                   "' asks for another region, cluster or services: that needs a "
                                   "join token admitting them (or an admin's reset)"
                             : std::string("unknown or revoked join token"));
  }
  JoinToken t = decode_join_token(key, *bytes);
  if (now >= t.expires_at) {
    return make_error(Errc::refused,
                      "join token " + t.id + " expired at " + std::to_string(t.expires_at));
  }
  if (t.uses_left == 0) return make_error(Errc::refused, "join token " + t.id + " is used up");
  if (!t.regions.empty() &&
      std::find(t.regions.begin(), t.regions.end(), record.region) == t.regions.end()) {
    return make_error(Errc::refused,
                      "join token " + t.id + " does not admit region '" + record.region + "'");
  }
  for (const auto& service : record.services) {
    if (!t.services.empty() &&
        std::find(t.services.begin(), t.services.end(), service) == t.services.end()) {
      return make_error(Errc::refused,
                        "join token " + t.id + " does not admit service '" + service + "'");
    }
  }
  --t.uses_left;
  DROVER_TRY(txn.put(join_tokens_, key, encode_join_token(t)));
  DROVER_TRY(txn.put(hosts_, record.host, encode_host(next)));
  DROVER_TRY(txn.commit());
  hosts_version_.fetch_add(1);
  return Ok{};
}

// api_tokens/<sha256 hex of token>: {"name","role","person","created_at"}.
Status KvCoordinatorStore::add_api_token(const std::string& token_hash, const ApiToken& token) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
  kv::Txn& txn = *txn_owner;
  {
    // A write transaction's cursor must be gone before the commit.
    DROVER_ASSIGN(auto cursor, txn.cursor(api_tokens_));
    DROVER_ASSIGN(bool more, cursor->first());
    while (more) {
      auto t = decode_api_token(cursor->value());
      if (t && t->name == token.name) {
        return make_error(Errc::already_exists,
                          "a token named '" + token.name + "' exists; revoke it first");
      }
      DROVER_ASSIGN(more, cursor->next());
    }
  }
  DROVER_TRY(txn.put(api_tokens_, token_hash, encode_api_token(token)));
  return txn.commit();
}

Result<std::optional<KvCoordinatorStore::ApiToken>> KvCoordinatorStore::api_token(
    const std::string& token_hash) {
  DROVER_ASSIGN(auto v, get_record(api_tokens_, token_hash));
  if (!v) return std::optional<ApiToken>();
  auto t = decode_api_token(*v);
  if (!t) return make_error(Errc::corrupt, "a token record is unreadable");
  return t;
}

Status KvCoordinatorStore::revoke_api_token(const std::string& name) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
  kv::Txn& txn = *txn_owner;
  std::string key;
  {
    DROVER_ASSIGN(auto cursor, txn.cursor(api_tokens_));
    DROVER_ASSIGN(bool more, cursor->first());
    while (more && key.empty()) {
      auto t = decode_api_token(cursor->value());
      if (t && t->name == name) key = std::string(cursor->key());
      DROVER_ASSIGN(more, cursor->next());
    }
  }
  if (key.empty()) return make_error(Errc::not_found, "no token named '" + name + "'");
  DROVER_ASSIGN(bool erased, txn.erase(api_tokens_, key));
  (void)erased;
  return txn.commit();
}

Result<std::vector<KvCoordinatorStore::ApiToken>> KvCoordinatorStore::api_tokens() {
  DROVER_ASSIGN(auto all, all_records(api_tokens_));
  std::vector<ApiToken> out;
  for (const auto& bytes : all) {
    if (auto t = decode_api_token(bytes)) out.push_back(std::move(*t));
  }
  return out;
}

Result<std::uint64_t> KvCoordinatorStore::next_plan_seq(const std::string& service) {
  return next_plan_seqs(service, 1);
}

Result<std::uint64_t> KvCoordinatorStore::next_plan_seqs(const std::string& service,
                                                         std::uint64_t count) {
  if (count == 0) return make_error(Errc::invalid_argument, "no plan seq asked for");
  DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
  kv::Txn& txn = *txn_owner;
  DROVER_ASSIGN(auto v, txn.get(plan_seqs_, service));
  const std::uint64_t last = to_u64(v);
  if (last >= proto::kMaxSeq || proto::kMaxSeq - last < count) {
    return make_error(Errc::exhausted, "service '" + service + "' has used every plan seq");
  }
  DROVER_TRY(txn.put(plan_seqs_, service, std::to_string(last + count)));
  DROVER_TRY(txn.commit());
  return last + 1;
}

Result<std::uint64_t> KvCoordinatorStore::plan_seq(const std::string& service) {
  DROVER_ASSIGN(auto v, get_record(plan_seqs_, service));
  return to_u64(v);
}

Status KvCoordinatorStore::note_reported_seq(const std::string& service, std::uint64_t seq) {
  if (seq > proto::kMaxSeq) {
    return make_error(Errc::invalid_argument, "a plan seq above 2^53-1 is never issued");
  }
  DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
  kv::Txn& txn = *txn_owner;
  DROVER_ASSIGN(auto v, txn.get(plan_seqs_, service));
  if (to_u64(v) >= seq) return Ok{};
  DROVER_TRY(txn.put(plan_seqs_, service, std::to_string(seq)));
  return txn.commit();
}

Status KvCoordinatorStore::put_plan(const std::string& service, std::uint64_t seq,
                                    const std::string& bundle,
                                    const std::vector<std::string>& hosts) {
  return put_plans(service, {{seq, bundle, hosts}});
}

Status KvCoordinatorStore::put_plans(const std::string& service,
                                     const std::vector<PlanRevision>& revisions) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
  kv::Txn& txn = *txn_owner;
  for (const auto& r : revisions) {
    DROVER_TRY(txn.put(plans_, seq_key(service, r.seq), r.bundle));
    for (const auto& h : r.hosts) {
      DROVER_TRY(txn.put(plan_index_, service + '/' + h, seq_key(service, r.seq)));
    }
  }
  return txn.commit();
}

Result<std::optional<std::string>> KvCoordinatorStore::plan_for(const std::string& service,
                                                                const std::string& host) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_read());
  kv::Txn& txn = *txn_owner;
  DROVER_ASSIGN(auto key, txn.get(plan_index_, service + '/' + host));
  if (!key) return std::optional<std::string>();
  DROVER_ASSIGN(auto bundle, txn.get(plans_, *key));
  if (!bundle) {
    return make_error(Errc::corrupt, "coordinator state: the plan of " + service + " for " + host +
                                         " is indexed but missing");
  }
  return bundle;
}

Result<std::uint64_t> KvCoordinatorStore::plan_seq_for(const std::string& service,
                                                       const std::string& host) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_read());
  DROVER_ASSIGN(auto key, txn_owner->get(plan_index_, service + '/' + host));
  if (!key) return std::uint64_t{0};
  if (key->size() != service.size() + 9) {
    return make_error(Errc::corrupt, "coordinator state: the plan index entry of " + service +
                                         " for " + host + " is malformed");
  }
  std::uint64_t seq = 0;
  for (std::size_t i = key->size() - 8; i < key->size(); ++i) {
    seq = (seq << 8) | static_cast<unsigned char>((*key)[i]);
  }
  return seq;
}

Status KvCoordinatorStore::put_record(kv::Table table, const std::string& key,
                                      const std::string& value) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
  kv::Txn& txn = *txn_owner;
  DROVER_TRY(txn.put(table, key, value));
  return txn.commit();
}

Result<std::optional<std::string>> KvCoordinatorStore::get_record(kv::Table table,
                                                                  const std::string& key) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_read());
  kv::Txn& txn = *txn_owner;
  return txn.get(table, key);
}

Result<std::vector<std::string>> KvCoordinatorStore::all_records(kv::Table table) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_read());
  kv::Txn& txn = *txn_owner;
  DROVER_ASSIGN(auto cursor, txn.cursor(table));
  std::vector<std::string> out;
  DROVER_ASSIGN(bool more, cursor->first());
  while (more) {
    out.emplace_back(cursor->value());
    DROVER_ASSIGN(more, cursor->next());
  }
  return out;
}

Status KvCoordinatorStore::put_pipeline(const std::string& id, const std::string& record) {
  return put_record(pipelines_, id, record);
}

Result<std::optional<std::string>> KvCoordinatorStore::pipeline(const std::string& id) {
  return get_record(pipelines_, id);
}

Result<std::vector<std::string>> KvCoordinatorStore::pipelines() {
  return all_records(pipelines_);
}

Result<bool> KvCoordinatorStore::put_artifact(const ArtifactRecord& record,
                                              const std::string& manifest) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
  kv::Txn& txn = *txn_owner;
  DROVER_ASSIGN(bool fresh,
                txn.put_new(artifacts_, record.artifact_id, encode_artifact_record(record)));
  if (!fresh) return false;
  DROVER_TRY(txn.put(manifests_, record.artifact_id, manifest));
  DROVER_TRY(txn.commit());
  return true;
}

Result<std::optional<ArtifactRecord>> KvCoordinatorStore::artifact(const std::string& id) {
  return get_decoded<ArtifactRecord>(artifacts_, id, decode_artifact_record);
}

Result<std::vector<ArtifactRecord>> KvCoordinatorStore::artifacts() {
  DROVER_ASSIGN(auto all, all_records(artifacts_));
  std::vector<ArtifactRecord> out;
  out.reserve(all.size());
  for (const auto& bytes : all) {
    DROVER_ASSIGN(ArtifactRecord a, decode_artifact_record(bytes));
    out.push_back(std::move(a));
  }
  return out;
}

Result<std::optional<std::string>> KvCoordinatorStore::manifest(const std::string& id) {
  return get_record(manifests_, id);
}

Status KvCoordinatorStore::put_setting(const std::string& key, const std::string& value) {
  return put_record(settings_, key, value);
}

Result<std::optional<std::string>> KvCoordinatorStore::setting(const std::string& key) {
  return get_record(settings_, key);
}

Result<std::vector<std::pair<std::string, std::string>>> KvCoordinatorStore::settings_under(
    const std::string& prefix) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_read());
  DROVER_ASSIGN(auto cursor, txn_owner->cursor(settings_));
  std::vector<std::pair<std::string, std::string>> out;
  DROVER_ASSIGN(bool more, cursor->seek(prefix));
  while (more && cursor->key().substr(0, prefix.size()) == prefix) {
    out.emplace_back(std::string(cursor->key()), std::string(cursor->value()));
    DROVER_ASSIGN(more, cursor->next());
  }
  return out;
}

Status KvCoordinatorStore::erase_setting(const std::string& key) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
  if (auto erased = txn_owner->erase(settings_, key); !erased.ok()) return erased.error();
  return txn_owner->commit();
}

Status KvCoordinatorStore::write_settings(
    const std::vector<std::pair<std::string, std::string>>& writes,
    const std::vector<std::string>& erases, const std::vector<AuditRecord>& audits) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
  kv::Txn& txn = *txn_owner;
  for (const auto& key : erases) {
    if (auto erased = txn.erase(settings_, key); !erased.ok()) return erased.error();
  }
  for (const auto& [key, value] : writes) DROVER_TRY(txn.put(settings_, key, value));
  for (const auto& r : audits) DROVER_TRY(audit_append(txn, audit_, r));
  return txn.commit();
}

Result<bool> KvCoordinatorStore::replace_setting(const std::string& key, const std::string& value) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
  kv::Txn& txn = *txn_owner;
  DROVER_ASSIGN(auto held, txn.get(settings_, key));
  if (!held) return false;
  DROVER_TRY(txn.put(settings_, key, value));
  DROVER_TRY(txn.commit());
  return true;
}

Result<std::vector<AuditRecord>> KvCoordinatorStore::audit_after(std::uint64_t seq,
                                                                 std::size_t limit) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_read());
  return coordinator::audit_after(*txn_owner, audit_, seq, limit);
}

Result<std::uint64_t> KvCoordinatorStore::audit_head_seq() {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_read());
  return coordinator::audit_head_seq(*txn_owner, audit_);
}

Result<KvCoordinatorStore::PushSeen> KvCoordinatorStore::note_push(
    const std::string& delivery_key, const std::string& commit_key, std::int64_t now_ms,
    const std::vector<std::pair<std::string, std::string>>& writes) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
  kv::Txn& txn = *txn_owner;
  const std::string at = std::to_string(now_ms);
  DROVER_ASSIGN(auto delivery, txn.get(settings_, delivery_key));
  if (delivery) return PushSeen::delivery;  // nothing written
  DROVER_ASSIGN(bool new_commit, txn.put_new(settings_, commit_key, at));
  // A commit seen before writes nothing, not even its delivery id: a
  // captured body replayed under fresh ids cannot grow the state.
  if (!new_commit) return PushSeen::commit;
  DROVER_TRY(txn.put(settings_, delivery_key, at));
  for (const auto& [key, value] : writes) DROVER_TRY(txn.put(settings_, key, value));
  DROVER_TRY(txn.commit());
  return PushSeen::fresh;
}

Result<AuditCheck> KvCoordinatorStore::verify_audit() {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_read());
  kv::Txn& txn = *txn_owner;
  return audit_verify(txn, audit_);
}

Result<std::vector<AuditRecord>> KvCoordinatorStore::audit(const AuditQuery& q) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_read());
  kv::Txn& txn = *txn_owner;
  return audit_query(txn, audit_, q);
}

Result<std::optional<AuditRecord>> KvCoordinatorStore::running_at(const std::string& service,
                                                                  const std::string& env,
                                                                  std::int64_t at_ms) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_read());
  kv::Txn& txn = *txn_owner;
  return audit_running_at(txn, audit_, service, env, at_ms);
}

}  // namespace drover::coordinator
