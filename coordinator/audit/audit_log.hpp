// The audit log (docs/FORMATS.md, "Audit records"): append-only, hash-chained
// records in the coordinator's state (kv), appended inside the same write
// transaction as the transition they record, so a transition and its record
// commit together or not at all.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/kv/kv.hpp"
#include "core/base/result.hpp"

namespace drover::coordinator {

struct AuditRecord {
  std::uint64_t seq = 0;  // set by append
  std::int64_t at_ms = 0;
  std::string who, what, service, deploy_id, artifact, git_sha;
  std::string detail = "{}";  // canonical JSON object
  std::string config_hash;    // "" or the content id of a config snapshot
  std::string prev;           // set by append
};

struct AuditTables {
  kv::Table records;    // big-endian seq -> canonical bytes
  kv::Table snapshots;  // content id -> config snapshot bytes
  kv::Table meta;       // "audit_head" -> {"hash":…,"seq":N}
  // "<service>/" + big-endian (~at, ~seq) -> big-endian seq of each
  // service.release record: newest first, so "what ran at T" is one seek.
  kv::Table releases;
};

// Appends r (its seq and prev are filled in) and moves the head. With a
// config snapshot, stores it by hash and records the hash.
Result<AuditRecord> audit_append(kv::Txn& txn, const AuditTables& t, AuditRecord r,
                                 const std::string& config_snapshot = "");

struct AuditCheck {
  bool ok = true;
  std::uint64_t records = 0;
  std::string head;     // hash of the newest record
  std::string problem;  // the first problem found, naming the seq
};
Result<AuditCheck> audit_verify(kv::Txn& txn, const AuditTables& t);

// Records of a service (all when empty) with since_ms <= at < until_ms,
// oldest first, at most limit.
Result<std::vector<AuditRecord>> audit_query(kv::Txn& txn, const AuditTables& t,
                                             const std::string& service, std::int64_t since_ms,
                                             std::int64_t until_ms, std::size_t limit);
// The newest `service.release` record of service at or before at_ms (by
// its time, whatever order records were appended in: a wall clock stepped
// back hides nothing; among records of the same time, the last appended).
Result<std::optional<AuditRecord>> audit_running_at(kv::Txn& txn, const AuditTables& t,
                                                    const std::string& service, std::int64_t at_ms);
// Builds the releases index from the records (for a log written before it
// existed); returns how many records it indexed.
Result<std::uint64_t> audit_index_releases(kv::Txn& txn, const AuditTables& t);

Result<AuditRecord> decode_audit_record(std::string_view bytes);
std::string encode_audit_record(const AuditRecord& r);

}  // namespace drover::coordinator
