// Splitting a service's hosts into batches (docs/COORDINATOR.md,
// "Strategies"): deterministic for a deploy id, so the same deploy always
// picks the same hosts, and recorded on the deploy.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/base/result.hpp"

namespace drover::coordinator {

struct RolloutShape {
  // Rolling: batches of batch_size hosts, or batch_percent of the fleet
  // (one of the two; percent wins when both are set).
  std::size_t batch_size = 0;
  double batch_percent = 0;
  // Canary inside rolling: first batches as percentages of the fleet (e.g.
  // 1, 5, 25), each at least one host; the rest then follows in rolling
  // batches.
  std::vector<double> canary_percents;
  // At most this many hosts may be updating at once (0: no limit); a batch
  // larger than that is split.
  std::size_t max_unavailable = 0;
  // Strategies on a traffic router (docs/COORDINATOR.md, "Strategies on a
  // traffic router"): steps that move shares of each host's traffic
  // between its two slots instead of moving hosts.
  struct Split {
    enum class Kind { none, blue_green, traffic } kind = Kind::none;
    std::vector<int> steps;   // traffic: per mille of each step before all (10, 50, 250)
    bool per_region = false;  // blue_green: one preview and flip per region, not per batch
    std::int64_t preview_min_requests = 100;  // blue_green: a preview with fewer never passes
    std::int64_t scale_down_s = 3600;         // the old slot stops this long after its last traffic
  } split;
  // A flag ramp's steps, percentages of targeting keys (the last reached is
  // the one asked for).
  std::vector<int> ramp_percents = {1, 5, 25, 100};
};

Status validate_shape(const RolloutShape& shape);

// Orders hosts by SHA-256(deploy_id, host) and cuts them into batches.
std::vector<std::vector<std::string>> plan_batches(std::vector<std::string> hosts,
                                                   const RolloutShape& shape,
                                                   const std::string& deploy_id);

}  // namespace drover::coordinator
