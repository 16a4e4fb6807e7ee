// Timers, behind an interface: real ones run on an Asio io_context; virtual
// ones run when a test advances a ManualClock.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <utility>

#include "core/world/clock.hpp"

namespace boost::asio {
class io_context;
}

namespace drover {

using TimerId = std::uint64_t;

// Callbacks run on the thread that drives the implementation (the io_context's
// thread, or the caller of VirtualTimers::advance). Not thread-safe: the owner
// of the event loop schedules and cancels.
class Timers {
 public:
  virtual ~Timers() = default;
  virtual TimerId call_at(SteadyTime deadline, std::function<void()> fn) = 0;
  // Returns false when the timer already ran or was cancelled.
  virtual bool cancel(TimerId id) = 0;
  virtual const Clock& clock() const = 0;

  TimerId call_after(std::chrono::nanoseconds delay, std::function<void()> fn) {
    return call_at(clock().steady() + std::chrono::duration_cast<SteadyTime::duration>(delay),
                   std::move(fn));
  }
};

// Deterministic timers in virtual time. Timers due at the same instant run in
// the order they were scheduled.
class VirtualTimers final : public Timers {
 public:
  explicit VirtualTimers(ManualClock& clock) : clock_(clock) {}
  TimerId call_at(SteadyTime deadline, std::function<void()> fn) override;
  bool cancel(TimerId id) override;
  const Clock& clock() const override { return clock_; }

  // Moves the clock forward by d, running every timer that falls due on the
  // way at its own deadline. Returns how many ran.
  std::size_t advance(std::chrono::nanoseconds d);
  std::optional<SteadyTime> next_deadline() const;
  std::size_t pending() const { return queue_.size(); }

 private:
  ManualClock& clock_;
  std::map<std::pair<SteadyTime, TimerId>, std::function<void()>> queue_;
  std::map<TimerId, SteadyTime> deadline_of_;
  TimerId next_id_ = 1;
};

// Real timers on an Asio io_context; callbacks run on the context's thread.
class AsioTimers final : public Timers {
 public:
  AsioTimers(boost::asio::io_context& io, const Clock& clock);
  ~AsioTimers() override;
  TimerId call_at(SteadyTime deadline, std::function<void()> fn) override;
  bool cancel(TimerId id) override;
  const Clock& clock() const override { return clock_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  const Clock& clock_;
};

}  // namespace drover
