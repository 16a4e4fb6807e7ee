#include "coordinator/audit/audit_log.hpp"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/canon/canonical_json.hpp"
#include "core/hash/sha256.hpp"

namespace drover::coordinator {
namespace {

using nlohmann::json;
constexpr std::string_view kFormat = "drover.audit.v1";
const std::string kGenesis = "sha256:" + std::string(64, '0');

std::string seq_key(std::uint64_t seq) {
  std::string k;
  for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>((seq >> (8 * i)) & 0xff));
  return k;
}

// Big-endian ~v: later times and seqs sort first.
void put_inverted(std::string& k, std::uint64_t v) {
  v = ~v;
  for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::string release_key(const std::string& service, std::int64_t at_ms, std::uint64_t seq) {
  std::string k = service + '/';
  put_inverted(k, static_cast<std::uint64_t>(std::max<std::int64_t>(at_ms, 0)));
  put_inverted(k, seq);
  return k;
}

bool is_release(const AuditRecord& r) {
  return r.what == "service.release" && !r.service.empty();
}

struct Head {
  std::uint64_t seq = 0;
  std::string hash = kGenesis;
};

Result<Head> read_head(kv::Txn& txn, const AuditTables& t) {
  DROVER_ASSIGN(auto bytes, txn.get(t.meta, "audit_head"));
  if (!bytes) return Head{};
  json j = json::parse(*bytes, nullptr, false);
  if (!j.is_object() || !j.contains("seq") || !j.contains("hash")) {
    return make_error(Errc::corrupt, "audit head is unreadable");
  }
  return Head{j["seq"].get<std::uint64_t>(), j["hash"].get<std::string>()};
}

}  // namespace

std::string encode_audit_record(const AuditRecord& r) {
  json detail = json::parse(r.detail, nullptr, false);
  if (!detail.is_object()) detail = json::object();
  json j = {{"format", kFormat},
            {"seq", r.seq},
            {"at", r.at_ms},
            {"who", r.who},
            {"what", r.what},
            {"service", r.service},
            {"deploy_id", r.deploy_id},
            {"artifact", r.artifact},
            {"git_sha", r.git_sha},
            {"detail", detail},
            {"config_hash", r.config_hash},
            {"prev", r.prev}};
  return *canon::encode(j);
}

Result<AuditRecord> decode_audit_record(std::string_view bytes) {
  auto parsed = canon::decode(bytes, 16 << 20);
  if (!parsed.ok()) return parsed.error().context("audit record");
  try {
    const json& j = *parsed;
    if (j.at("format").get<std::string>() != kFormat) {
      return make_error(Errc::unsupported, "audit record of format " + j.at("format").dump());
    }
    AuditRecord r;
    r.seq = j.at("seq").get<std::uint64_t>();
    r.at_ms = j.at("at").get<std::int64_t>();
    r.who = j.at("who").get<std::string>();
    r.what = j.at("what").get<std::string>();
    r.service = j.at("service").get<std::string>();
    r.deploy_id = j.at("deploy_id").get<std::string>();
    r.artifact = j.at("artifact").get<std::string>();
    r.git_sha = j.at("git_sha").get<std::string>();
    r.detail = *canon::encode(j.at("detail"));
    r.config_hash = j.at("config_hash").get<std::string>();
    r.prev = j.at("prev").get<std::string>();
    return r;
  } catch (const json::exception& e) {
    return make_error(Errc::corrupt, std::string("audit record: ") + e.what());
  }
}

Result<AuditRecord> audit_append(kv::Txn& txn, const AuditTables& t, AuditRecord r,
                                 const std::string& config_snapshot) {
  DROVER_ASSIGN(Head head, read_head(txn, t));
  r.seq = head.seq + 1;
  r.prev = head.hash;
  if (!config_snapshot.empty()) {
    r.config_hash = ContentId::of(config_snapshot).str();
    DROVER_TRY(txn.put(t.snapshots, r.config_hash, config_snapshot));
  }
  const std::string bytes = encode_audit_record(r);
  DROVER_TRY(txn.put(t.records, seq_key(r.seq), bytes));
  if (is_release(r))
    DROVER_TRY(txn.put(t.releases, release_key(r.service, r.at_ms, r.seq), seq_key(r.seq)));
  json next = {{"seq", r.seq}, {"hash", ContentId::of(bytes).str()}};
  DROVER_TRY(txn.put(t.meta, "audit_head", next.dump()));
  return r;
}

Result<AuditCheck> audit_verify(kv::Txn& txn, const AuditTables& t) {
  AuditCheck out;
  DROVER_ASSIGN(Head head, read_head(txn, t));
  DROVER_ASSIGN(auto cursor, txn.cursor(t.records));
  DROVER_ASSIGN(bool more, cursor->first());
  std::string prev = kGenesis;
  std::uint64_t expect = 1;
  auto problem = [&](std::string what) {
    out.ok = false;
    out.problem = std::move(what);
    return out;
  };
  while (more) {
    auto r = decode_audit_record(cursor->value());
    if (!r.ok()) return problem("record " + std::to_string(expect) + ": " + r.error().message);
    if (r->seq != expect) {
      return problem("record " + std::to_string(expect) + " is missing (next is " +
                     std::to_string(r->seq) + ")");
    }
    if (cursor->key() != seq_key(r->seq)) {
      return problem("record " + std::to_string(r->seq) + " is stored under another seq");
    }
    if (r->prev != prev) {
      return problem("record " + std::to_string(r->seq) +
                     " does not follow the record before it: that one was changed or removed");
    }
    if (!r->config_hash.empty()) {
      DROVER_ASSIGN(auto snapshot, txn.get(t.snapshots, r->config_hash));
      if (!snapshot || ContentId::of(*snapshot).str() != r->config_hash) {
        return problem("record " + std::to_string(r->seq) + ": config snapshot " + r->config_hash +
                       " is missing or changed");
      }
    }
    prev = ContentId::of(cursor->value()).str();
    ++out.records;
    ++expect;
    DROVER_ASSIGN(more, cursor->next());
  }
  if (out.records != head.seq || prev != head.hash) {
    return problem("the log ends at record " + std::to_string(out.records) + " but its head says " +
                   std::to_string(head.seq) + ": the newest records were changed or removed");
  }
  out.head = head.hash;
  return out;
}

Result<std::vector<AuditRecord>> audit_query(kv::Txn& txn, const AuditTables& t,
                                             const std::string& service, std::int64_t since_ms,
                                             std::int64_t until_ms, std::size_t limit) {
  std::vector<AuditRecord> out;
  DROVER_ASSIGN(auto cursor, txn.cursor(t.records));
  DROVER_ASSIGN(bool more, cursor->first());
  while (more && out.size() < limit) {
    DROVER_ASSIGN(AuditRecord r, decode_audit_record(cursor->value()));
    if ((service.empty() || r.service == service) && r.at_ms >= since_ms && r.at_ms < until_ms) {
      out.push_back(std::move(r));
    }
    DROVER_ASSIGN(more, cursor->next());
  }
  return out;
}

Result<std::optional<AuditRecord>> audit_running_at(kv::Txn& txn, const AuditTables& t,
                                                    const std::string& service,
                                                    std::int64_t at_ms) {
  const std::string prefix = service + '/';
  DROVER_ASSIGN(auto cursor, txn.cursor(t.releases));
  // The first entry at or after (service, ~at_ms, ~max) is the newest at or before at_ms.
  DROVER_ASSIGN(bool found, cursor->seek(release_key(service, at_ms,
                                                     std::numeric_limits<std::uint64_t>::max())));
  if (!found || cursor->key().substr(0, prefix.size()) != prefix) {
    return std::optional<AuditRecord>();
  }
  DROVER_ASSIGN(auto bytes, txn.get(t.records, cursor->value()));
  if (!bytes) return make_error(Errc::corrupt, "audit: an indexed release record is missing");
  DROVER_ASSIGN(AuditRecord r, decode_audit_record(*bytes));
  return std::optional<AuditRecord>(std::move(r));
}

Result<std::uint64_t> audit_index_releases(kv::Txn& txn, const AuditTables& t) {
  std::vector<AuditRecord> releases;
  {
    DROVER_ASSIGN(auto cursor, txn.cursor(t.records));
    DROVER_ASSIGN(bool more, cursor->first());
    while (more) {
      DROVER_ASSIGN(AuditRecord r, decode_audit_record(cursor->value()));
      if (is_release(r)) releases.push_back(std::move(r));
      DROVER_ASSIGN(more, cursor->next());
    }
  }  // the cursor is gone before the writes (and the caller's commit)
  for (const auto& r : releases) {
    DROVER_TRY(txn.put(t.releases, release_key(r.service, r.at_ms, r.seq), seq_key(r.seq)));
  }
  return static_cast<std::uint64_t>(releases.size());
}

}  // namespace drover::coordinator
