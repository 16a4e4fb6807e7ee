#include "core/proto/flagset.hpp"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "core/base/name.hpp"
#include "core/canon/canonical_json.hpp"
#include "core/canon/json_fields.hpp"

namespace drover::proto {
namespace {

using canon::Empty;
using canon::Fields;
using nlohmann::json;

constexpr std::size_t kMaxFlagSetBytes = 8 << 20;
constexpr std::size_t kMaxFlagSetHosts = 100'000;
constexpr std::size_t kMaxFlagSetFlags = 256;

Error invalid_set(const std::string& what) {
  return make_error(Errc::invalid_argument, "flag set: " + what);
}

Status check_set_name(std::string_view what, std::string_view value) {
  auto st = validate_name(value, what);
  if (!st.ok()) return invalid_set(st.error().message);
  return Ok{};
}

json set_flags_json(const std::map<std::string, FlagValue>& flags) {
  json j = json::object();
  for (const auto& [k, v] : flags) j[k] = flag_value_json(v);
  return j;
}

}  // namespace

bool FlagSet::applies_to(std::string_view host) const {
  return std::find(hosts.begin(), hosts.end(), host) != hosts.end();
}

std::string FlagSet::flags_json() const {
  return *canon::encode(set_flags_json(flags));
}

Status validate_flagset(const FlagSet& f) {
  DROVER_TRY(check_set_name("service", f.service));
  DROVER_TRY(check_set_name("env", f.env));
  if (f.seq == 0 || f.seq > kMaxSeq) {
    return invalid_set("seq " + std::to_string(f.seq) + " is outside 1 to 2^53-1");
  }
  if (f.hosts.empty() || f.hosts.size() > kMaxFlagSetHosts) {
    return invalid_set("hosts must list 1 to 100000 hosts");
  }
  std::set<std::string_view> seen;
  for (const auto& h : f.hosts) {
    DROVER_TRY(check_set_name("host", h));
    if (!seen.insert(h).second) return invalid_set("host '" + h + "' listed twice");
  }
  if (f.flags.size() > kMaxFlagSetFlags) return invalid_set("more than 256 flags");
  for (const auto& [flag, v] : f.flags) {
    DROVER_TRY(check_set_name("flag", flag));
    if (v.is_percent && (v.percent < 0 || v.percent > 100)) {
      return invalid_set("flag '" + flag + "' percentage " + std::to_string(v.percent) +
                         " is outside 0-100");
    }
  }
  if (f.issued_at <= 0) return invalid_set("issued_at must be positive");
  return Ok{};
}

Result<std::string> encode_flagset(const FlagSet& f) {
  DROVER_TRY(validate_flagset(f));
  return canon::encode(json{{"format", kFlagSetType},
                            {"service", f.service},
                            {"env", f.env},
                            {"seq", f.seq},
                            {"hosts", f.hosts},
                            {"flags", set_flags_json(f.flags)},
                            {"issued_at", f.issued_at}});
}

Result<FlagSet> decode_flagset(std::string_view bytes) {
  auto parsed = canon::decode(bytes, kMaxFlagSetBytes, 4 * kMaxFlagSetHosts + 4096);
  if (!parsed.ok()) return parsed.error().context("flag set");
  if (!parsed->is_object()) return invalid_set("not a JSON object");
  const Fields f(*parsed, "", canon::Nulls::refused);
  DROVER_TRY(f.only({"format", "service", "env", "seq", "hosts", "flags", "issued_at"}));
  DROVER_ASSIGN(std::string format, f.str("format", 64, Empty::allowed));
  if (format != kFlagSetType) {
    return make_error(Errc::unsupported,
                      "flag set: format '" + format + "' is not " + std::string(kFlagSetType));
  }
  FlagSet out;
  DROVER_ASSIGN(out.service, f.str("service", 256, Empty::allowed));
  DROVER_ASSIGN(out.env, f.str("env", 256, Empty::allowed));
  DROVER_ASSIGN(out.seq, f.u64("seq"));
  DROVER_ASSIGN(out.hosts, f.str_list("hosts", kMaxFlagSetHosts, 256, Empty::allowed));
  DROVER_ASSIGN(out.issued_at, f.integer("issued_at", std::numeric_limits<std::int64_t>::min(),
                                         std::numeric_limits<std::int64_t>::max()));
  DROVER_ASSIGN(Fields flags, f.object("flags"));
  for (const auto& [flag, v] : flags.value().items()) {
    auto fv = flag_value_of(v);
    if (!fv) return invalid_set("flag '" + flag + "' must be true, false or an integer 0-100");
    out.flags[flag] = *fv;
  }
  DROVER_TRY(validate_flagset(out));
  return out;
}

std::string encode_flagset_bundle(const FlagSetBundle& b) {
  return json{{"flagset", sign::encode_envelope(b.flagset)},
              {"cert", sign::encode_envelope(b.cert)}}
      .dump();
}

Result<FlagSetBundle> decode_flagset_bundle(std::string_view bytes) {
  if (bytes.size() > 4 * kMaxFlagSetBytes) return invalid_set("bundle is too large");
  json j = json::parse(bytes, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return invalid_set("bundle is not a JSON object");
  const Fields f(j, "bundle", canon::Nulls::refused);
  DROVER_TRY(f.only({"flagset", "cert"}));
  DROVER_ASSIGN(std::string set, f.str("flagset", 4 * kMaxFlagSetBytes, Empty::allowed));
  DROVER_ASSIGN(std::string cert, f.str("cert", 4 * kMaxFlagSetBytes, Empty::allowed));
  FlagSetBundle b;
  DROVER_ASSIGN(b.flagset, sign::decode_envelope(set));
  DROVER_ASSIGN(b.cert, sign::decode_envelope(cert));
  return b;
}

Result<FlagSetBundle> sign_flagset(const FlagSet& f, const sign::KeyPair& online,
                                   const sign::Envelope& cert) {
  DROVER_ASSIGN(std::string payload, encode_flagset(f));
  return FlagSetBundle{sign::seal(kFlagSetType, std::move(payload), online), cert};
}

Result<FlagSet> open_flagset(const FlagSetBundle& b, const sign::TrustRoot& trust,
                             std::int64_t now) {
  auto verified = sign::open_certified(b.flagset, kFlagSetType, b.cert, trust, now);
  if (!verified.ok()) return verified.error().context("flag set signature");
  return decode_flagset(verified->payload);
}

}  // namespace drover::proto
