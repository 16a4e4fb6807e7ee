#include "coordinator/store/kv_codec.hpp"

#include <algorithm>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/canon/base64.hpp"
#include "core/canon/canonical_json.hpp"

namespace drover::coordinator::store_detail {

using nlohmann::json;

std::string seq_key(const std::string& prefix, std::uint64_t n) {
  std::string k = prefix + '/';
  for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return k;
}

std::uint64_t to_u64(const std::optional<std::string>& v) {
  if (!v) return 0;
  std::uint64_t n = 0;
  std::sscanf(v->c_str(), "%" SCNu64, &n);
  return n;
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
  if (h.enroll_at != 0) j["enroll_at"] = h.enroll_at;
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
    if (j.contains("enroll_at")) h.enroll_at = j.at("enroll_at").get<std::int64_t>();
    return h;
  } catch (const json::exception& e) {
    return make_error(Errc::corrupt, std::string("coordinator state: host record: ") + e.what());
  }
}

Seen parse_seen(std::optional<std::string_view> v) {
  Seen s;
  if (!v) return s;
  // "<report_seq> <last_seen> <stored_samples> <throttled>", read on every
  // report: fields are read in turn, and reading stops at the first that
  // does not parse (the rest keep their defaults).
  const char* at = v->data();
  const char* const end = at + v->size();
  auto next = [&](auto& field) {
    while (at < end && *at == ' ') ++at;
    auto [ptr, ec] = std::from_chars(at, end, field);
    if (ec != std::errc()) return false;
    at = ptr;
    return true;
  };
  int throttled = 0;
  if (next(s.report_seq) && next(s.last_seen) && next(s.stored_samples)) next(throttled);
  s.throttled = throttled != 0;
  return s;
}

std::string encode_seen(const Seen& s) {
  return std::to_string(s.report_seq) + " " + std::to_string(s.last_seen) + " " +
         std::to_string(s.stored_samples) + " " + (s.throttled ? "1" : "0");
}

void merge_seen(HostRecord& h, const Seen& s) {
  h.report_seq = std::max(h.report_seq, s.report_seq);
  h.last_seen = std::max(h.last_seen, s.last_seen);
  h.stored_samples = s.stored_samples;
  h.throttled = s.throttled;
}

}  // namespace drover::coordinator::store_detail
