// Flag sets (docs/FORMATS.md, "Flag set"): a service's feature flags in one
// environment, signed by the online key and numbered apart from plans, so a
// flag change never moves a host between artifacts.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.hpp"
#include "core/proto/plan.hpp"
#include "core/sign/envelope.hpp"

namespace drover::proto {

inline constexpr std::string_view kFlagSetType = "drover.flagset.v1";

struct FlagSet {
  std::string service, env;
  std::uint64_t seq = 0;
  std::vector<std::string> hosts;
  std::map<std::string, FlagValue> flags;
  std::int64_t issued_at = 0;
  bool applies_to(std::string_view host) const;
  // The flags as canonical JSON ({"name":true|false|percent}).
  std::string flags_json() const;
};

Status validate_flagset(const FlagSet& f);
Result<std::string> encode_flagset(const FlagSet& f);
// Refuses non-canonical bytes, unknown fields and any rule of the format.
Result<FlagSet> decode_flagset(std::string_view bytes);

struct FlagSetBundle {
  sign::Envelope flagset;
  sign::Envelope cert;
};
std::string encode_flagset_bundle(const FlagSetBundle& b);
Result<FlagSetBundle> decode_flagset_bundle(std::string_view bytes);

Result<FlagSetBundle> sign_flagset(const FlagSet& f, const sign::KeyPair& online,
                                   const sign::Envelope& cert);
// The certificate against trust at now (unix seconds), the signature by the
// certified key, then the payload; each failure names its check.
Result<FlagSet> open_flagset(const FlagSetBundle& b, const sign::TrustRoot& trust,
                             std::int64_t now);

}  // namespace drover::proto
