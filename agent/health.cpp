#include "agent/health.hpp"

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/http/http.hpp"

namespace drover::agent {
namespace {

constexpr std::size_t kMaxHealthBody = 64 << 10;
constexpr std::size_t kMaxCustom = 32;

proto::HealthItem unhealthy(std::string why) {
  proto::HealthItem h;
  h.ok = false;
  h.error = std::move(why);
  return h;
}

}  // namespace

proto::HealthItem parse_health(int status, const std::string& body) {
  if (status != 200) return unhealthy("health endpoint answered HTTP " + std::to_string(status));
  if (body.size() > kMaxHealthBody) {
    return unhealthy("health answer of " + std::to_string(body.size()) + " bytes exceeds 64 KiB");
  }
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return unhealthy("health answer is not a JSON object");
  proto::HealthItem h;
  for (auto [key, out] : {std::pair{"error_rate", &h.error_rate},
                          {"p99_ms", &h.p99_ms},
                          {"saturation", &h.saturation}}) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number() || !std::isfinite(it->get<double>()) ||
        it->get<double>() < 0) {
      return unhealthy(std::string("health answer: '") + key +
                       "' is missing or not a non-negative number");
    }
    *out = it->get<double>();
  }
  if (h.error_rate > 1 || h.saturation > 1) {
    return unhealthy("health answer: error_rate and saturation must lie in 0-1");
  }
  for (const auto& [k, v] : j.items()) {
    if (k == "error_rate" || k == "p99_ms" || k == "saturation") continue;
    if (!v.is_number() || !std::isfinite(v.get<double>()) || k.size() > 64) continue;
    if (h.custom.size() >= kMaxCustom) break;
    h.custom[k] = v.get<double>();
  }
  h.ok = true;
  return h;
}

proto::HealthItem sample_health(const std::string& url, std::chrono::milliseconds timeout) {
  auto r = http::request("GET", url, "", timeout, "application/json", kMaxHealthBody);
  if (!r.ok()) return unhealthy("health endpoint " + url + ": " + r.error().message);
  return parse_health(r->status, r->body);
}

}  // namespace drover::agent

namespace drover::agent {

proto::HealthItem HttpHealthProbe::sample(const std::string& url,
                                          std::chrono::milliseconds timeout) {
  return sample_health(url, timeout);
}

}  // namespace drover::agent
