// The "now" of the agent's unit tests, in Unix seconds: plans, certificates
// and the virtual clock agree on it.
#pragma once

#include <cstdint>

namespace drover::agent::test_time {

inline constexpr std::int64_t kNow = 1'800'000'000;

}  // namespace drover::agent::test_time
