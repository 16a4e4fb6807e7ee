// Feature flags in flagd's flag-definition format (OpenFeature's file format,
// schema https://flagd.dev/schema/v0/flags.json; docs/FORMATS.md, "Flags
// file, version 2"): what the agent writes for a service from the flags it
// was given, and the part of flagd's evaluation a service of ours (the demo
// service) needs to read it the way flagd's file provider does: a flag on,
// off, or on for a share of targeting keys by flagd's `fractional` rule
// (MurmurHash3 of flag key + targeting key, mapped onto the weights).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/base/result.hpp"

namespace drover::flags {

inline constexpr std::string_view kSchema = "https://flagd.dev/schema/v0/flags.json";
inline constexpr std::string_view kFormat = "drover.flags.v2";

// MurmurHash3, x86, 32 bits (the hash flagd's fractional rule uses).
std::uint32_t murmur3_32(std::string_view data, std::uint32_t seed = 0);

// flagd's fractional rule: which of the weighted variants a 32-bit hash
// falls in (hash * total >> 32 against the running sum of weights).
// Returns weights.size() when the weights add up to 0.
std::size_t fractional_bucket(std::uint32_t hash, const std::vector<std::uint32_t>& weights);

// The flags file for a service: each flag of `given` (name -> true, false,
// or a ramp percentage 0-100) as a boolean flagd flag with variants "on" and
// "off"; a ramp is a fractional rule [["on",P],["off",100-P]] bucketed by
// flag key + targeting key; 0 and 100 are plain off and on. Canonical JSON.
Result<std::string> render(const nlohmann::json& given, const std::string& service,
                           std::uint64_t seq);

// A boolean flag of a flagd document as flagd evaluates it for a targeting
// key: the default variant, or the fractional rule's (bucketing by flag key
// + targeting key, or by the rule's leading string). `fallback` when the
// flag is missing, disabled, or not boolean; an empty targeting key with a
// fractional rule gets the default variant (as flagd).
bool evaluate_boolean(const nlohmann::json& document, const std::string& flag,
                      const std::string& targeting_key, bool fallback);

}  // namespace drover::flags
