// The record encodings and key layouts KvCoordinatorStore shares between its
// files (internal to coordinator/store; docs/COORDINATOR.md, "Durable state").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "coordinator/store/coordinator_store.hpp"

namespace drover::coordinator::store_detail {

// meta/coordinator_format. 2: the active-deploy, deploy-list and release
// indexes (built from a format 1 state when it is opened). 3: the active
// index holds every run not finished, several per service ("service/id").
inline constexpr std::string_view kStateFormat = "3";

// "<prefix>/" + big-endian n: sorts by n within the prefix.
std::string seq_key(const std::string& prefix, std::uint64_t n);
std::uint64_t to_u64(const std::optional<std::string>& v);

std::string encode_host(const HostRecord& h);
Result<HostRecord> decode_host(std::string_view bytes);

// host_seen/<host>: "REPORT_SEQ LAST_SEEN STORED_SAMPLES THROTTLED",
// rewritten by every report (kept apart from the host record so ingest does
// not re-encode it; the last two fields were added later and read as 0).
struct Seen {
  std::uint64_t report_seq = 0;
  std::int64_t last_seen = 0;
  std::uint64_t stored_samples = 0;
  bool throttled = false;
};
Seen parse_seen(std::optional<std::string_view> v);
std::string encode_seen(const Seen& s);
void merge_seen(HostRecord& h, const Seen& s);

}  // namespace drover::coordinator::store_detail
