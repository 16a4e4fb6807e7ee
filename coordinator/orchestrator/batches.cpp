#include "coordinator/orchestrator/batches.hpp"

#include <algorithm>
#include <cmath>

#include "core/hash/sha256.hpp"

namespace drover::coordinator {
namespace {

std::size_t percent_of(double percent, std::size_t n) {
  const auto k = static_cast<std::size_t>(std::ceil(percent / 100.0 * static_cast<double>(n)));
  return std::clamp<std::size_t>(k, 1, std::max<std::size_t>(n, 1));
}

}  // namespace

Status validate_shape(const RolloutShape& s) {
  if (s.batch_size == 0 && s.batch_percent <= 0) {
    return make_error(Errc::invalid_argument,
                      "strategy: give batch_size (hosts) or batch_percent (1-100)");
  }
  if (s.batch_percent < 0 || s.batch_percent > 100) {
    return make_error(Errc::invalid_argument, "strategy: batch_percent must lie in 1-100");
  }
  double last = 0;
  for (double p : s.canary_percents) {
    if (p <= 0 || p >= 100 || p <= last) {
      return make_error(Errc::invalid_argument,
                        "strategy: canary steps must be increasing percentages between 0 and 100");
    }
    last = p;
  }
  return Ok{};
}

std::vector<std::vector<std::string>> plan_batches(std::vector<std::string> hosts,
                                                   const RolloutShape& shape,
                                                   const std::string& deploy_id) {
  std::sort(hosts.begin(), hosts.end());
  hosts.erase(std::unique(hosts.begin(), hosts.end()), hosts.end());
  std::vector<std::pair<std::string, std::string>> keyed;
  for (auto& h : hosts) keyed.push_back({ContentId::of(deploy_id + "\n" + h).hex(), h});
  std::sort(keyed.begin(), keyed.end());
  const std::size_t n = keyed.size();
  std::vector<std::size_t> sizes;
  std::size_t placed = 0;
  // Canary steps: cumulative percentages of the fleet.
  for (double p : shape.canary_percents) {
    const std::size_t upto = std::max(percent_of(p, n), placed + 1);
    if (upto >= n) break;
    sizes.push_back(upto - placed);
    placed = upto;
  }
  const std::size_t step = shape.batch_percent > 0 ? percent_of(shape.batch_percent, n)
                                                   : std::max<std::size_t>(shape.batch_size, 1);
  while (placed < n) {
    const std::size_t k = std::min(step, n - placed);
    sizes.push_back(k);
    placed += k;
  }
  std::vector<std::vector<std::string>> out;
  std::size_t at = 0;
  for (std::size_t size : sizes) {
    // Never more than max_unavailable hosts updating at once.
    while (size > 0) {
      const std::size_t k =
          shape.max_unavailable > 0 ? std::min(size, shape.max_unavailable) : size;
      std::vector<std::string> batch;
      for (std::size_t i = 0; i < k; ++i) batch.push_back(keyed[at + i].second);
      at += k;
      size -= k;
      out.push_back(std::move(batch));
    }
  }
  return out;
}

}  // namespace drover::coordinator
