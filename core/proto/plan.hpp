// The signed deploy plan, drover.plan.v1 (docs/FORMATS.md, "Plan"). Shared by
// the coordinator, which issues plans, and the agent, which checks them.
//
// A plan travels as a bundle: the signed envelope, the key certificate by
// which the pinned root vouches for the signing key, and optionally the
// artifact's manifest. open_plan() checks signature and certificate before a
// byte of the payload is parsed; the host-specific rules (is it for me, is it
// newer than what I run) are the agent's.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.hpp"
#include "core/format/manifest.hpp"
#include "core/hash/sha256.hpp"
#include "core/sign/envelope.hpp"

namespace drover::proto {

inline constexpr std::string_view kPlanType = "drover.plan.v1";
inline constexpr std::uint64_t kMaxPlanBytes = 16ull << 20;
inline constexpr std::uint64_t kMaxManifestBytes = 256ull << 20;
inline constexpr std::size_t kMaxPlanHosts = 100'000;
inline constexpr std::size_t kMaxFlags = 256;
// How far issued_at may lie in the future of the checker's clock.
inline constexpr std::int64_t kMaxClockSkewSeconds = 300;

struct PlanLayer {
  ContentId id;
  std::uint64_t size = 0;
  Digest bt_root{};
  friend bool operator==(const PlanLayer&, const PlanLayer&) = default;
};

// A feature flag's state: on/off, or a ramp percentage 0-100.
struct FlagValue {
  bool is_percent = false;
  bool on = false;
  int percent = 0;
  friend bool operator==(const FlagValue&, const FlagValue&) = default;
};
// A flag's value as JSON: true, false or a whole percentage 0-100 (plans,
// flag sets, the API). Reading: nullopt for anything else.
nlohmann::json flag_value_json(const FlagValue& v);
std::optional<FlagValue> flag_value_of(const nlohmann::json& v);

struct Plan {
  std::string service;
  std::uint64_t seq = 0;
  std::string deploy_id;
  ContentId artifact;
  std::uint64_t manifest_size = 0;
  std::vector<PlanLayer> layers;
  std::vector<std::string> hosts;
  std::string strategy_kind = "rolling";
  // Further strategy keys, as canonical JSON of an object ("{}" when none).
  std::string strategy_extra = "{}";
  std::map<std::string, FlagValue> flags;
  std::string tracker;
  std::int64_t issued_at = 0;
  std::int64_t expires_at = 0;

  bool applies_to(std::string_view host) const;
  // strategy.traffic: per mille of the host's live traffic for this
  // release (1000 when absent); strategy.preview (false when absent).
  int traffic() const;
  bool preview() const;
  // strategy.scale_down_s: how long the other slot keeps running after it
  // lost all live traffic (nullopt when absent: it keeps running).
  std::optional<std::int64_t> scale_down_s() const;
  std::uint64_t layer_bytes() const;
};

Status validate_plan(const Plan& plan);
// Canonical bytes of a valid plan (the payload that gets signed).
Result<std::string> encode_plan(const Plan& plan);
// Refuses non-canonical bytes, unknown fields and any rule of the format.
Result<Plan> decode_plan(std::string_view bytes);

struct PlanBundle {
  sign::Envelope plan;
  sign::Envelope cert;
  std::optional<std::string> manifest;  // the manifest's bytes, when carried
};
std::string encode_bundle(const PlanBundle& bundle);
Result<PlanBundle> decode_bundle(std::string_view bytes);

// Signs plan with the online key and bundles it with that key's certificate.
Result<PlanBundle> sign_plan(const Plan& plan, const sign::KeyPair& online,
                             const sign::Envelope& cert);

struct OpenedPlan {
  Plan plan;
  sign::KeyCert cert;
};
// Checks the certificate against trust (at now, unix seconds), the envelope's
// signature by the certified key, then decodes the payload. Each failure is
// a crypto (or format) error that says which check failed.
Result<OpenedPlan> open_plan(const PlanBundle& bundle, const sign::TrustRoot& trust,
                             std::int64_t now);

// Checks manifest bytes against the plan: length, hash, and the very layers the
// plan lists (no layer mixed in from elsewhere). Returns the decoded manifest.
Result<format::Manifest> check_manifest(const Plan& plan, std::string_view bytes);

}  // namespace drover::proto
