// Time, behind an interface, so that state machines can run in virtual time.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

namespace drover {

using SystemTime = std::chrono::system_clock::time_point;
using SteadyTime = std::chrono::steady_clock::time_point;

// Thread-safe: any thread may read the clock.
class Clock {
 public:
  virtual ~Clock() = default;
  // Wall time: for timestamps that people read and for expiry checks.
  virtual SystemTime now() const = 0;
  // Monotonic time: for timeouts and deadlines within one process.
  virtual SteadyTime steady() const = 0;
};

class SystemClock final : public Clock {
 public:
  SystemTime now() const override { return std::chrono::system_clock::now(); }
  SteadyTime steady() const override { return std::chrono::steady_clock::now(); }
};

// A clock that moves only when told to. Both readings advance together.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(SystemTime start = SystemTime(std::chrono::seconds(1'700'000'000)))
      : wall_(start) {}
  SystemTime now() const override {
    std::lock_guard lock(mu_);
    return wall_;
  }
  SteadyTime steady() const override {
    std::lock_guard lock(mu_);
    return steady_;
  }
  void advance(std::chrono::nanoseconds d) {
    std::lock_guard lock(mu_);
    wall_ += std::chrono::duration_cast<SystemTime::duration>(d);
    steady_ += std::chrono::duration_cast<SteadyTime::duration>(d);
  }

 private:
  mutable std::mutex mu_;  // guards wall_ and steady_
  SystemTime wall_;
  SteadyTime steady_{};
};

// Seconds since the Unix epoch, the unit of every timestamp in drover's formats.
inline std::int64_t unix_seconds(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}
// Milliseconds since the Unix epoch: report and event timestamps ("at_ms", "unix_ms").
inline std::int64_t unix_ms(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace drover
