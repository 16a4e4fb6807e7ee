#include <utility>  // before Asio: Boost 1.74 with GCC 12 needs std::exchange declared

#include "core/world/timers.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

namespace drover {

TimerId VirtualTimers::call_at(SteadyTime deadline, std::function<void()> fn) {
  TimerId id = next_id_++;
  queue_.emplace(std::make_pair(deadline, id), std::move(fn));
  deadline_of_.emplace(id, deadline);
  return id;
}

bool VirtualTimers::cancel(TimerId id) {
  auto it = deadline_of_.find(id);
  if (it == deadline_of_.end()) return false;
  queue_.erase({it->second, id});
  deadline_of_.erase(it);
  return true;
}

std::optional<SteadyTime> VirtualTimers::next_deadline() const {
  if (queue_.empty()) return std::nullopt;
  return queue_.begin()->first.first;
}

std::size_t VirtualTimers::advance(std::chrono::nanoseconds d) {
  const SteadyTime end = clock_.steady() + std::chrono::duration_cast<SteadyTime::duration>(d);
  std::size_t ran = 0;
  while (!queue_.empty() && queue_.begin()->first.first <= end) {
    auto node = queue_.extract(queue_.begin());
    deadline_of_.erase(node.key().second);
    const SteadyTime due = node.key().first;
    if (due > clock_.steady()) clock_.advance(due - clock_.steady());
    node.mapped()();  // may schedule or cancel other timers
    ++ran;
  }
  if (end > clock_.steady()) clock_.advance(end - clock_.steady());
  return ran;
}

struct AsioTimers::Impl {
  boost::asio::io_context& io;
  std::map<TimerId, std::unique_ptr<boost::asio::steady_timer>> live;
  TimerId next_id = 1;
  explicit Impl(boost::asio::io_context& ctx) : io(ctx) {}
};

AsioTimers::AsioTimers(boost::asio::io_context& io, const Clock& clock)
    : impl_(std::make_unique<Impl>(io)), clock_(clock) {}

AsioTimers::~AsioTimers() {
  for (auto& [id, timer] : impl_->live) timer->cancel();
}

TimerId AsioTimers::call_at(SteadyTime deadline, std::function<void()> fn) {
  TimerId id = impl_->next_id++;
  // The deadline is on the injected clock; Asio waits on the real steady clock
  // for the same remaining duration.
  auto remaining = deadline - clock_.steady();
  auto timer = std::make_unique<boost::asio::steady_timer>(impl_->io);
  timer->expires_after(remaining);
  timer->async_wait([this, id, fn = std::move(fn)](const boost::system::error_code& ec) {
    if (ec) return;  // cancelled
    impl_->live.erase(id);
    fn();
  });
  impl_->live.emplace(id, std::move(timer));
  return id;
}

bool AsioTimers::cancel(TimerId id) {
  auto it = impl_->live.find(id);
  if (it == impl_->live.end()) return false;
  it->second->cancel();
  impl_->live.erase(it);
  return true;
}

}  // namespace drover
