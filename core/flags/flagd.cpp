#include "core/flags/flagd.hpp"

#include <algorithm>

#include "core/base/name.hpp"
#include "core/canon/canonical_json.hpp"

namespace drover::flags {
namespace {

using nlohmann::json;

std::uint32_t rotl(std::uint32_t x, int r) {
  return (x << r) | (x >> (32 - r));
}

std::uint32_t fmix(std::uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

json boolean_flag(const std::string& default_variant) {
  return {{"state", "ENABLED"},
          {"variants", {{"on", true}, {"off", false}}},
          {"defaultVariant", default_variant}};
}

}  // namespace

std::uint32_t murmur3_32(std::string_view data, std::uint32_t seed) {
  constexpr std::uint32_t c1 = 0xcc9e2d51u, c2 = 0x1b873593u;
  const auto* bytes = reinterpret_cast<const unsigned char*>(data.data());
  const std::size_t blocks = data.size() / 4;
  std::uint32_t h = seed;
  for (std::size_t i = 0; i < blocks; ++i) {
    const unsigned char* b = bytes + i * 4;
    std::uint32_t k = static_cast<std::uint32_t>(b[0]) | static_cast<std::uint32_t>(b[1]) << 8 |
                      static_cast<std::uint32_t>(b[2]) << 16 |
                      static_cast<std::uint32_t>(b[3]) << 24;
    k *= c1;
    k = rotl(k, 15);
    k *= c2;
    h ^= k;
    h = rotl(h, 13);
    h = h * 5 + 0xe6546b64u;
  }
  const unsigned char* tail = bytes + blocks * 4;
  std::uint32_t k = 0;
  switch (data.size() & 3) {
    case 3: k ^= static_cast<std::uint32_t>(tail[2]) << 16; [[fallthrough]];
    case 2: k ^= static_cast<std::uint32_t>(tail[1]) << 8; [[fallthrough]];
    case 1:
      k ^= tail[0];
      k *= c1;
      k = rotl(k, 15);
      k *= c2;
      h ^= k;
  }
  h ^= static_cast<std::uint32_t>(data.size());
  return fmix(h);
}

std::size_t fractional_bucket(std::uint32_t hash, const std::vector<std::uint32_t>& weights) {
  std::uint64_t total = 0;
  for (auto w : weights) total += w;
  if (total == 0) return weights.size();
  const std::uint64_t bucket = (static_cast<std::uint64_t>(hash) * total) >> 32;
  std::uint64_t end = 0;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    end += weights[i];
    if (bucket < end) return i;
  }
  return weights.size();  // unreachable: bucket < total
}

Result<std::string> render(const json& given, const std::string& service, std::uint64_t seq) {
  if (!given.is_object()) return make_error(Errc::invalid_argument, "flags must be an object");
  json flags = json::object();
  for (const auto& [name, value] : given.items()) {
    DROVER_TRY(validate_name(name, "flag name"));
    if (value.is_boolean()) {
      flags[name] = boolean_flag(value.get<bool>() ? "on" : "off");
    } else if (value.is_number_integer() && value.get<std::int64_t>() >= 0 &&
               value.get<std::int64_t>() <= 100) {
      const int percent = value.get<int>();
      if (percent == 0 || percent == 100) {
        flags[name] = boolean_flag(percent == 100 ? "on" : "off");
      } else {
        json f = boolean_flag("off");
        // Arrays spelled out: a braced pair would read as an object's member.
        f["targeting"] = {{"fractional", json::array({json::array({"on", percent}),
                                                      json::array({"off", 100 - percent})})}};
        flags[name] = std::move(f);
      }
    } else {
      return make_error(Errc::invalid_argument,
                        "flag '" + name + "' must be true, false or a percentage 0-100");
    }
  }
  const json doc = {{"$schema", kSchema},
                    {"metadata", {{"drover", kFormat}, {"service", service}, {"seq", seq}}},
                    {"flags", flags}};
  return *canon::encode(doc);
}

namespace {

bool evaluate_checked(const json& document, const std::string& flag,
                      const std::string& targeting_key, bool fallback) {
  if (!document.is_object()) return fallback;
  const auto flags = document.find("flags");
  if (flags == document.end() || !flags->is_object()) return fallback;
  const auto found = flags->find(flag);
  if (found == flags->end() || !found->is_object()) return fallback;
  const json& f = *found;
  const auto state = f.find("state");
  if (state == f.end() || !state->is_string() || state->get<std::string>() != "ENABLED") {
    return fallback;
  }
  const auto variants = f.find("variants");
  if (variants == f.end() || !variants->is_object()) return fallback;
  auto value_of = [&](const json& variant) {
    if (!variant.is_string()) return fallback;
    const auto v = variants->find(variant.get<std::string>());
    return v != variants->end() && v->is_boolean() ? v->get<bool>() : fallback;
  };
  const json default_variant = f.contains("defaultVariant") ? f["defaultVariant"] : json();
  const auto targeting = f.find("targeting");
  if (targeting == f.end() || !targeting->is_object()) return value_of(default_variant);
  const auto fractional = targeting->find("fractional");
  if (fractional == targeting->end() || !fractional->is_array() || fractional->empty()) {
    return value_of(default_variant);
  }
  const json& rule = *fractional;
  // The bucketing value, as flagd's JSONLogic would have evaluated the first
  // element: a string as it is; the two expressions flagd's documents use
  // ({"var":"targetingKey"}; {"cat":[{"var":"$flagd.flagKey"},
  // {"var":"targetingKey"}]}); null skipped; no element: flag key + key.
  std::size_t first = 0;
  std::string bucket_by = flag + targeting_key;
  const json& head = rule[0];
  const json by_key = json{{"var", "targetingKey"}};
  const json by_flag_and_key =
      json{{"cat", json::array({json{{"var", "$flagd.flagKey"}}, by_key})}};
  if (head.is_string()) {
    bucket_by = head.get<std::string>();
    first = 1;
  } else if (head.is_null()) {
    first = 1;
  } else if (head.is_object()) {
    if (head == by_key) {
      bucket_by = targeting_key;
    } else if (head != by_flag_and_key) {
      return value_of(default_variant);  // an expression this reader does not evaluate
    }
    first = 1;
  }
  if ((first == 0 || !head.is_string()) && targeting_key.empty()) {
    return value_of(default_variant);  // nothing to bucket by
  }
  std::vector<std::uint32_t> weights;
  std::vector<json> names;
  std::uint64_t total = 0;
  for (std::size_t i = first; i < rule.size(); ++i) {
    const json& d = rule[i];
    if (!d.is_array() || d.empty()) return value_of(default_variant);
    std::int64_t w = 1;
    if (d.size() >= 2 && !d[1].is_null()) {
      if (!d[1].is_number()) return value_of(default_variant);
      const double x = d[1].get<double>();
      if (x != static_cast<double>(static_cast<std::int64_t>(x))) return value_of(default_variant);
      w = static_cast<std::int64_t>(x);
    }
    w = std::max<std::int64_t>(w, 0);  // flagd clamps a negative weight to 0
    if (w > 0x7fffffff) return value_of(default_variant);
    total += static_cast<std::uint64_t>(w);
    weights.push_back(static_cast<std::uint32_t>(w));
    names.push_back(d[0]);
  }
  if (total > 0x7fffffff) return value_of(default_variant);  // as flagd: an error
  const std::size_t i = fractional_bucket(murmur3_32(bucket_by), weights);
  return i < names.size() ? value_of(names[i]) : value_of(default_variant);
}

}  // namespace

bool evaluate_boolean(const json& document, const std::string& flag,
                      const std::string& targeting_key, bool fallback) {
  try {
    return evaluate_checked(document, flag, targeting_key, fallback);
  } catch (const json::exception&) {
    return fallback;  // a document of the wrong shape never takes a service down
  }
}

}  // namespace drover::flags
