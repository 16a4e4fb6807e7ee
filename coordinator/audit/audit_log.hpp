// The audit log (docs/FORMATS.md, "Audit records"): append-only, hash-chained
// records in the coordinator's state (kv), appended inside the same write
// transaction as the transition they record, so a transition and its record
// commit together or not at all.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
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
  // The environment the record is about ("" for none: written before
  // environments, or not about one). Encoded only when not empty, so a record
  // without one keeps the exact bytes (and hash) it had before the field.
  std::string env;
};

struct AuditTables {
  kv::Table records = 0;    // big-endian seq -> canonical bytes
  kv::Table snapshots = 0;  // content id -> config snapshot bytes
  // "audit_head" -> {"hash":…,"seq":N}; the indexes' layout marks
  // (audit_index_current).
  kv::Table meta = 0;
  // "<service>/<env>/" + big-endian (~at, ~seq) -> big-endian seq of each
  // service.release record (env "" for a record without one, so
  // "<service>//"): newest first, so "what ran at T" is one seek.
  kv::Table releases = 0;
  // Every record under each scope it belongs to, by time: "a/" (all), and
  // when it has them "s/<service>/", "e/<env>/", "se/<service>/<env>/"; then
  // big-endian at (before 0 clamped to 0) and seq -> "". A name that breaks
  // core/base/name.hpp's rule (none should reach the log) is keyed as "%" +
  // the hex SHA-256 of its bytes, so no component holds a '/'.
  kv::Table by_time = 0;
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

struct AuditQuery {
  std::string service;  // "" for every service
  std::string env;      // "" for any environment (and none)
  std::int64_t since_ms = std::numeric_limits<std::int64_t>::min();  // inclusive
  std::int64_t until_ms = std::numeric_limits<std::int64_t>::max();  // exclusive
  std::size_t limit = 100;
  // The newest `limit` records that match instead of the oldest (still
  // returned oldest first); read backwards from until, as few as returned.
  bool newest = false;
};
// The records that match q with since_ms <= at < until_ms, oldest first (by
// at, then seq), at most limit. From the by_time index: one seek, then only
// the records returned are read (and one index entry past them). Records
// before time 0 share the index's time 0, and are read to be filtered there.
Result<std::vector<AuditRecord>> audit_query(kv::Txn& txn, const AuditTables& t,
                                             const AuditQuery& q);
// The records appended after seq (seq order), at most limit.
Result<std::vector<AuditRecord>> audit_after(kv::Txn& txn, const AuditTables& t, std::uint64_t seq,
                                             std::size_t limit);
// The seq of the newest record (0: none).
Result<std::uint64_t> audit_head_seq(kv::Txn& txn, const AuditTables& t);
// The newest `service.release` record of service in env at or before at_ms
// (by its time, whatever order records were appended in: a wall clock
// stepped back hides nothing; among records of the same time, the last
// appended). When env has none by then, the newest without an env (written
// before environments existed); env "": the newest in any environment, or
// without one.
Result<std::optional<AuditRecord>> audit_running_at(kv::Txn& txn, const AuditTables& t,
                                                    const std::string& service,
                                                    const std::string& env, std::int64_t at_ms);

// The indexes' layouts, marked in meta; a log whose marks are older (or
// absent: written before the index existed) is indexed again on open.
inline constexpr std::string_view kAuditReleasesMark = "audit_releases_index";
inline constexpr std::string_view kAuditReleasesLayout = "2";  // 1: "<service>/" without env
inline constexpr std::string_view kAuditByTimeMark = "audit_by_time_index";
inline constexpr std::string_view kAuditByTimeLayout = "1";
// Builds, in txn, each index whose mark is not current, from the records
// (what was in it is erased first), and marks it. Returns how many records
// it read (0 when every index was current).
Result<std::uint64_t> audit_index_current(kv::Txn& txn, const AuditTables& t);
// Rebuilds the releases index alone and marks it; returns how many release
// records it indexed.
Result<std::uint64_t> audit_index_releases(kv::Txn& txn, const AuditTables& t);

Result<AuditRecord> decode_audit_record(std::string_view bytes);
std::string encode_audit_record(const AuditRecord& r);

}  // namespace drover::coordinator
