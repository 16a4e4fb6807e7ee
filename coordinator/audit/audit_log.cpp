#include "coordinator/audit/audit_log.hpp"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/base/name.hpp"
#include "core/canon/canonical_json.hpp"
#include "core/hash/sha256.hpp"

namespace drover::coordinator {
namespace {

using nlohmann::json;
constexpr std::string_view kFormat = "drover.audit.v1";
const std::string kGenesis = "sha256:" + std::string(64, '0');

void put_be(std::string& k, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint64_t read_be(std::string_view bytes) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(bytes[i]);
  return v;
}

std::string seq_key(std::uint64_t seq) {
  std::string k;
  put_be(k, seq);
  return k;
}

// Index keys hold times from 0 up.
std::uint64_t clamped_ms(std::int64_t at_ms) {
  return static_cast<std::uint64_t>(std::max<std::int64_t>(at_ms, 0));
}

// A name as a key component: itself when it follows the name rule (so it
// holds no '/'), else "%" + the hex SHA-256 of its bytes (never a valid
// name, never a '/', never longer than 65 bytes).
std::string key_name(const std::string& name) {
  if (is_valid_name(name)) return name;
  return "%" + ContentId::of(name).hex();
}

// Big-endian ~v: later times and seqs sort first.
void put_inverted(std::string& k, std::uint64_t v) {
  put_be(k, ~v);
}

std::string release_prefix(const std::string& service, const std::string& env) {
  return key_name(service) + '/' + (env.empty() ? std::string() : key_name(env)) + '/';
}

std::string release_key(const std::string& prefix, std::int64_t at_ms, std::uint64_t seq) {
  std::string k = prefix;
  put_inverted(k, clamped_ms(at_ms));
  put_inverted(k, seq);
  return k;
}

// The by_time scope of a query (or of one of a record's entries).
std::string scope_prefix(const std::string& service, const std::string& env) {
  if (service.empty() && env.empty()) return "a/";
  if (env.empty()) return "s/" + key_name(service) + '/';
  if (service.empty()) return "e/" + key_name(env) + '/';
  return "se/" + key_name(service) + '/' + key_name(env) + '/';
}

constexpr std::size_t kTimeSeqBytes = 16;

std::string by_time_key(const std::string& prefix, std::int64_t at_ms, std::uint64_t seq) {
  std::string k = prefix;
  put_be(k, clamped_ms(at_ms));
  put_be(k, seq);
  return k;
}

// The by_time keys of r: every scope it belongs to.
std::vector<std::string> by_time_keys(const AuditRecord& r) {
  std::vector<std::string> out = {by_time_key(scope_prefix("", ""), r.at_ms, r.seq)};
  if (!r.service.empty()) out.push_back(by_time_key(scope_prefix(r.service, ""), r.at_ms, r.seq));
  if (!r.env.empty()) out.push_back(by_time_key(scope_prefix("", r.env), r.at_ms, r.seq));
  if (!r.service.empty() && !r.env.empty()) {
    out.push_back(by_time_key(scope_prefix(r.service, r.env), r.at_ms, r.seq));
  }
  return out;
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
  // Only when set: a record without one keeps its bytes from before the field.
  if (!r.env.empty()) j["env"] = r.env;
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
    if (j.contains("env")) {
      r.env = j.at("env").get<std::string>();
      // "" is never written: it would be a second spelling of "no env".
      if (r.env.empty()) return make_error(Errc::corrupt, "audit record: env is empty");
    }
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
  if (is_release(r)) {
    DROVER_TRY(txn.put(t.releases, release_key(release_prefix(r.service, r.env), r.at_ms, r.seq),
                       seq_key(r.seq)));
  }
  for (const auto& k : by_time_keys(r)) DROVER_TRY(txn.put(t.by_time, k, ""));
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
                                             const AuditQuery& q) {
  std::vector<AuditRecord> out;
  if (q.limit == 0 || q.until_ms <= q.since_ms) return out;
  const std::string prefix = scope_prefix(q.service, q.env);
  DROVER_ASSIGN(auto cursor, txn.cursor(t.by_time));
  // Oldest first: from since, forwards. Newest first: from the last entry
  // before until, backwards. Time 0 also holds the records before 0: they
  // are read, and the filter below keeps those in [since, until); with until
  // at or below 0 the backward walk starts past that bucket for them.
  bool more = false;
  if (q.newest) {
    const std::int64_t from = clamped_ms(q.until_ms) == 0 ? 1 : q.until_ms;
    DROVER_ASSIGN(more, cursor->before(by_time_key(prefix, from, 0)));
  } else {
    DROVER_ASSIGN(more, cursor->seek(by_time_key(prefix, q.since_ms, 0)));
  }
  while (more && out.size() < q.limit) {
    const std::string_view key = cursor->key();
    if (key.substr(0, prefix.size()) != prefix) break;
    if (key.size() != prefix.size() + kTimeSeqBytes) {
      return make_error(Errc::corrupt, "audit: a by-time index entry is malformed");
    }
    const std::uint64_t at = read_be(key.substr(prefix.size()));
    // Past the window's far end: every entry further along is too.
    if (q.newest ? at < clamped_ms(q.since_ms) : at > 0 && at >= clamped_ms(q.until_ms)) break;
    DROVER_ASSIGN(auto bytes, txn.get(t.records, key.substr(prefix.size() + 8)));
    if (!bytes) return make_error(Errc::corrupt, "audit: an indexed record is missing");
    DROVER_ASSIGN(AuditRecord r, decode_audit_record(*bytes));
    if (r.at_ms >= q.since_ms && r.at_ms < q.until_ms) out.push_back(std::move(r));
    if (q.newest) {
      DROVER_ASSIGN(more, cursor->prev());
    } else {
      DROVER_ASSIGN(more, cursor->next());
    }
  }
  if (q.newest) std::reverse(out.begin(), out.end());  // returned oldest first either way
  return out;
}

Result<std::vector<AuditRecord>> audit_after(kv::Txn& txn, const AuditTables& t, std::uint64_t seq,
                                             std::size_t limit) {
  std::vector<AuditRecord> out;
  if (limit == 0 || seq == std::numeric_limits<std::uint64_t>::max()) return out;
  DROVER_ASSIGN(auto cursor, txn.cursor(t.records));
  DROVER_ASSIGN(bool more, cursor->seek(seq_key(seq + 1)));
  while (more && out.size() < limit) {
    DROVER_ASSIGN(AuditRecord r, decode_audit_record(cursor->value()));
    out.push_back(std::move(r));
    DROVER_ASSIGN(more, cursor->next());
  }
  return out;
}

Result<std::uint64_t> audit_head_seq(kv::Txn& txn, const AuditTables& t) {
  DROVER_ASSIGN(Head head, read_head(txn, t));
  return head.seq;
}

namespace {

// The newest release under prefix at or before at_ms.
Result<std::optional<AuditRecord>> newest_release(kv::Txn& txn, const AuditTables& t,
                                                  const std::string& prefix, std::int64_t at_ms) {
  DROVER_ASSIGN(auto cursor, txn.cursor(t.releases));
  // The first entry at or after (prefix, ~at_ms, ~max) is the newest at or
  // before at_ms, for at_ms from 0 up.
  DROVER_ASSIGN(bool found, cursor->seek(release_key(prefix, at_ms, ~std::uint64_t{0})));
  std::optional<AuditRecord> best;
  while (found && cursor->key().substr(0, prefix.size()) == prefix) {
    DROVER_ASSIGN(auto bytes, txn.get(t.records, cursor->value()));
    if (!bytes) return make_error(Errc::corrupt, "audit: an indexed release record is missing");
    DROVER_ASSIGN(AuditRecord r, decode_audit_record(*bytes));
    if (at_ms >= 0) return std::optional<AuditRecord>(std::move(r));
    // Before 0 (the index's time 0 holds every release up to 0): the newest
    // whose own time is at or before at_ms, read from all of them.
    if (r.at_ms <= at_ms && (!best || r.at_ms > best->at_ms)) best = std::move(r);
    DROVER_ASSIGN(found, cursor->next());
  }
  return best;
}

// The newest release of service at or before at_ms in any environment (and
// among those recorded without one): one seek per environment the service
// has released in, each skipping to the next environment's entries.
Result<std::optional<AuditRecord>> newest_in_any_env(kv::Txn& txn, const AuditTables& t,
                                                     const std::string& service,
                                                     std::int64_t at_ms) {
  const std::string prefix = key_name(service) + '/';
  std::optional<AuditRecord> best;
  DROVER_ASSIGN(auto cursor, txn.cursor(t.releases));
  DROVER_ASSIGN(bool found, cursor->seek(prefix));
  while (found && cursor->key().substr(0, prefix.size()) == prefix) {
    const std::string_view key = cursor->key();
    const std::size_t slash = key.find('/', prefix.size());
    if (slash == std::string_view::npos) break;  // not this layout's key
    const std::string env_prefix(key.substr(0, slash + 1));
    DROVER_ASSIGN(auto in_env, newest_release(txn, t, env_prefix, at_ms));
    if (in_env &&
        (!best || std::pair(in_env->at_ms, in_env->seq) > std::pair(best->at_ms, best->seq))) {
      best = std::move(in_env);
    }
    // Past every key of this environment: its prefix with the '/' raised by one.
    std::string next = env_prefix;
    next.back() = static_cast<char>('/' + 1);
    DROVER_ASSIGN(found, cursor->seek(next));
  }
  return best;
}

Status erase_all(kv::Txn& txn, kv::Table table) {
  std::vector<std::string> keys;
  {
    DROVER_ASSIGN(auto cursor, txn.cursor(table));
    DROVER_ASSIGN(bool more, cursor->first());
    while (more) {
      keys.emplace_back(cursor->key());
      DROVER_ASSIGN(more, cursor->next());
    }
  }  // the cursor is gone before the writes
  for (const auto& k : keys) {
    DROVER_ASSIGN(bool erased, txn.erase(table, k));
    (void)erased;
  }
  return Ok{};
}

struct Rebuilt {
  std::uint64_t records = 0, releases = 0;
};

// Erases and rebuilds the chosen indexes from one pass over the records.
Result<Rebuilt> rebuild_indexes(kv::Txn& txn, const AuditTables& t, bool releases, bool by_time) {
  Rebuilt out;
  if (releases) DROVER_TRY(erase_all(txn, t.releases));
  if (by_time) DROVER_TRY(erase_all(txn, t.by_time));
  std::vector<std::pair<std::string, std::string>> release_entries;
  std::vector<std::string> by_time_entries;
  {
    DROVER_ASSIGN(auto cursor, txn.cursor(t.records));
    DROVER_ASSIGN(bool more, cursor->first());
    while (more) {
      ++out.records;
      // A record that does not read is left out (audit_verify names it): the
      // coordinator still opens, and queries answer from the others.
      auto r = decode_audit_record(cursor->value());
      if (r.ok() && releases && is_release(*r)) {
        release_entries.emplace_back(
            release_key(release_prefix(r->service, r->env), r->at_ms, r->seq), seq_key(r->seq));
      }
      if (r.ok() && by_time) {
        for (auto& k : by_time_keys(*r)) by_time_entries.push_back(std::move(k));
      }
      DROVER_ASSIGN(more, cursor->next());
    }
  }  // the cursor is gone before the writes (and the caller's commit)
  for (const auto& [k, v] : release_entries) DROVER_TRY(txn.put(t.releases, k, v));
  for (const auto& k : by_time_entries) DROVER_TRY(txn.put(t.by_time, k, ""));
  if (releases) DROVER_TRY(txn.put(t.meta, kAuditReleasesMark, kAuditReleasesLayout));
  if (by_time) DROVER_TRY(txn.put(t.meta, kAuditByTimeMark, kAuditByTimeLayout));
  out.releases = release_entries.size();
  return out;
}

}  // namespace

Result<std::optional<AuditRecord>> audit_running_at(kv::Txn& txn, const AuditTables& t,
                                                    const std::string& service,
                                                    const std::string& env, std::int64_t at_ms) {
  if (env.empty()) return newest_in_any_env(txn, t, service, at_ms);
  DROVER_ASSIGN(auto found, newest_release(txn, t, release_prefix(service, env), at_ms));
  if (found) return found;
  return newest_release(txn, t, release_prefix(service, ""), at_ms);
}

Result<std::uint64_t> audit_index_current(kv::Txn& txn, const AuditTables& t) {
  DROVER_ASSIGN(auto releases, txn.get(t.meta, kAuditReleasesMark));
  DROVER_ASSIGN(auto by_time, txn.get(t.meta, kAuditByTimeMark));
  const bool stale_releases = !releases || *releases != kAuditReleasesLayout;
  const bool stale_by_time = !by_time || *by_time != kAuditByTimeLayout;
  if (!stale_releases && !stale_by_time) return std::uint64_t{0};
  DROVER_ASSIGN(Rebuilt rebuilt, rebuild_indexes(txn, t, stale_releases, stale_by_time));
  return rebuilt.records;
}

Result<std::uint64_t> audit_index_releases(kv::Txn& txn, const AuditTables& t) {
  DROVER_ASSIGN(Rebuilt rebuilt, rebuild_indexes(txn, t, true, false));
  return rebuilt.releases;
}

}  // namespace drover::coordinator
