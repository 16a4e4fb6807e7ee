// KvCoordinatorStore: deploys, their indexes and the audit log.
#include <algorithm>

#include "coordinator/store/kv_codec.hpp"
#include "coordinator/store/kv_coordinator_store.hpp"

namespace drover::coordinator {
namespace {

using namespace store_detail;

// A deploy's entry under prefix in the deploy list: newest first.
std::string list_key(const std::string& prefix, const DeployRecord& d) {
  std::string k = prefix;
  const auto inverted = ~static_cast<std::uint64_t>(std::max<std::int64_t>(d.created_ms, 0));
  for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>((inverted >> (8 * i)) & 0xff));
  return k + d.id;
}

// A deploy's entry in the active index: its service's runs together.
std::string active_key(const DeployRecord& d) {
  return d.service + "/" + d.id;
}

}  // namespace

Status KvCoordinatorStore::create_deploy(const NewDeploy& n) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
  kv::Txn& txn = *txn_owner;
  DROVER_TRY(add_deploy(txn, n));
  return txn.commit();
}

Status KvCoordinatorStore::create_release(
    const std::vector<NewDeploy>& runs, const std::string& fresh_key,
    const std::vector<std::pair<std::string, std::string>>& writes,
    const std::vector<AuditRecord>& audits) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
  kv::Txn& txn = *txn_owner;
  DROVER_ASSIGN(auto held, txn.get(settings_, fresh_key));
  if (held) return make_error(Errc::already_exists, "'" + fresh_key + "' exists");
  for (const auto& n : runs) DROVER_TRY(add_deploy(txn, n));
  for (const auto& [key, value] : writes) DROVER_TRY(txn.put(settings_, key, value));
  for (const auto& r : audits) DROVER_TRY(audit_append(txn, audit_, r));
  return txn.commit();
}

Status KvCoordinatorStore::add_deploy(kv::Txn& txn, const NewDeploy& n) {
  const DeployRecord& d = n.record;
  DROVER_ASSIGN(auto existing, txn.get(deploys_, d.id));
  if (existing) return make_error(Errc::already_exists, "deploy '" + d.id + "' exists");
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
  return Ok{};
}

Status KvCoordinatorStore::commit_deploy(const DeployRecord& d,
                                         const std::vector<AuditRecord>& audits) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
  kv::Txn& txn = *txn_owner;
  DROVER_TRY(txn.put(deploys_, d.id, encode_deploy(d)));
  DROVER_TRY(index_deploy_state(txn, d));
  for (const auto& a : audits) DROVER_TRY(audit_append(txn, audit_, a));
  return txn.commit();
}

Status KvCoordinatorStore::index_new_deploy(kv::Txn& txn, const DeployRecord& d) {
  DROVER_TRY(txn.put(deploy_list_, list_key("a/", d), d.id));
  DROVER_TRY(txn.put(deploy_list_, list_key("s/" + d.service + "/", d), d.id));
  DROVER_TRY(txn.put(deploy_list_, list_key("p/" + d.pipeline_id + "/", d), d.id));
  return index_deploy_state(txn, d);
}

Status KvCoordinatorStore::index_deploy_state(kv::Txn& txn, const DeployRecord& d) {
  if (!is_terminal(d.state)) return txn.put(active_deploys_, active_key(d), d.id);
  DROVER_ASSIGN(bool erased, txn.erase(active_deploys_, active_key(d)));
  (void)erased;
  return Ok{};
}

Status KvCoordinatorStore::migrate_to_2(kv::Txn& txn) {
  std::vector<DeployRecord> all;
  {
    DROVER_ASSIGN(auto cursor, txn.cursor(deploys_));
    DROVER_ASSIGN(bool more, cursor->first());
    while (more) {
      DROVER_ASSIGN(DeployRecord d, decode_deploy(cursor->value()));
      all.push_back(std::move(d));
      DROVER_ASSIGN(more, cursor->next());
    }
  }  // cursors are gone before the writes and the commit
  for (const auto& d : all) DROVER_TRY(index_new_deploy(txn, d));
  DROVER_ASSIGN(std::uint64_t releases, audit_index_releases(txn, audit_));
  (void)releases;
  return txn.put(meta_, "coordinator_format", kStateFormat);
}

Status KvCoordinatorStore::migrate_to_3(kv::Txn& txn) {
  // Format 2 indexed one active deploy per service, keyed by the service.
  std::vector<std::pair<std::string, std::string>> old;
  {
    DROVER_ASSIGN(auto cursor, txn.cursor(active_deploys_));
    DROVER_ASSIGN(bool more, cursor->first());
    while (more) {
      old.emplace_back(cursor->key(), cursor->value());
      DROVER_ASSIGN(more, cursor->next());
    }
  }
  for (const auto& [service, id] : old) {
    DROVER_ASSIGN(bool erased, txn.erase(active_deploys_, service));
    (void)erased;
    DROVER_TRY(txn.put(active_deploys_, service + "/" + id, id));
  }
  return txn.put(meta_, "coordinator_format", kStateFormat);
}

Status KvCoordinatorStore::append_audit(const AuditRecord& record) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
  kv::Txn& txn = *txn_owner;
  DROVER_TRY(audit_append(txn, audit_, record));
  return txn.commit();
}

Result<std::optional<DeployRecord>> KvCoordinatorStore::deploy(const std::string& deploy_id) {
  return get_decoded<DeployRecord>(deploys_, deploy_id, decode_deploy);
}

Result<std::vector<DeployRecord>> KvCoordinatorStore::active_deploys() {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_read());
  kv::Txn& txn = *txn_owner;
  std::vector<std::string> ids;
  {
    DROVER_ASSIGN(auto cursor, txn.cursor(active_deploys_));
    DROVER_ASSIGN(bool more, cursor->first());
    while (more) {
      ids.emplace_back(cursor->value());
      DROVER_ASSIGN(more, cursor->next());
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

Result<std::vector<DeployRecord>> KvCoordinatorStore::active_deploys(const std::string& service) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_read());
  kv::Txn& txn = *txn_owner;
  const std::string prefix = service + "/";
  std::vector<std::string> ids;
  {
    DROVER_ASSIGN(auto cursor, txn.cursor(active_deploys_));
    DROVER_ASSIGN(bool more, cursor->seek(prefix));
    while (more && cursor->key().substr(0, prefix.size()) == prefix) {
      ids.emplace_back(cursor->value());
      DROVER_ASSIGN(more, cursor->next());
    }
  }
  std::vector<DeployRecord> out;
  for (const auto& id : ids) {
    DROVER_ASSIGN(auto bytes, txn.get(deploys_, id));
    if (!bytes) return make_error(Errc::corrupt, "deploy '" + id + "' is indexed but missing");
    DROVER_ASSIGN(DeployRecord d, decode_deploy(*bytes));
    out.push_back(std::move(d));
  }
  std::sort(out.begin(), out.end(), [](const DeployRecord& a, const DeployRecord& b) {
    return a.created_ms != b.created_ms ? a.created_ms < b.created_ms : a.id < b.id;
  });
  return out;
}

Result<std::vector<DeployRecord>> KvCoordinatorStore::recent_deploys(const DeployFilter& filter,
                                                                     std::size_t limit) {
  const std::string prefix = !filter.pipeline_id.empty() ? "p/" + filter.pipeline_id + "/"
                             : !filter.service.empty()   ? "s/" + filter.service + "/"
                                                         : "a/";
  DROVER_ASSIGN(auto txn_owner, kv_->begin_read());
  kv::Txn& txn = *txn_owner;
  std::vector<DeployRecord> out;
  DROVER_ASSIGN(auto cursor, txn.cursor(deploy_list_));
  DROVER_ASSIGN(bool more, cursor->seek(prefix));
  while (more && out.size() < limit && cursor->key().substr(0, prefix.size()) == prefix) {
    const std::string id(cursor->value());
    DROVER_ASSIGN(auto bytes, txn.get(deploys_, id));
    if (!bytes) return make_error(Errc::corrupt, "deploy '" + id + "' is listed but missing");
    DROVER_ASSIGN(DeployRecord d, decode_deploy(*bytes));
    // A pipeline's deploys are of its service; a filter on both asks both.
    if (filter.service.empty() || d.service == filter.service) out.push_back(std::move(d));
    DROVER_ASSIGN(more, cursor->next());
  }
  return out;
}

Result<std::uint64_t> KvCoordinatorStore::deploy_counter(const std::string& service) {
  DROVER_ASSIGN(auto v, get_record(settings_, "deploy_counter/" + service));
  return to_u64(v);
}

Result<std::optional<std::string>> KvCoordinatorStore::deploy_config(const std::string& deploy_id) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_read());
  kv::Txn& txn = *txn_owner;
  DROVER_ASSIGN(auto hash, txn.get(deploy_configs_, deploy_id));
  if (hash) return txn.get(audit_.snapshots, *hash);
  // Deploys created before deploy_configs kept their snapshot as a setting.
  return txn.get(settings_, "deploy_config/" + deploy_id);
}

}  // namespace drover::coordinator
