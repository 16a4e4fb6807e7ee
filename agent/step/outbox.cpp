#include "agent/step/outbox.hpp"

#include <algorithm>

namespace drover::agent {

void Outbox::push(proto::ReportItem item) {
  proto::clip_texts(item);  // never a report the coordinator must refuse
  {
    std::lock_guard lock(mu_);
    if (items_.size() >= capacity_) {
      auto health = std::find_if(items_.begin(), items_.end(),
                                 [](const proto::ReportItem& i) { return i.health.has_value(); });
      items_.erase(health != items_.end() ? health : items_.begin());
      ++dropped_;
    }
    items_.push_back(std::move(item));
  }
  if (on_push_) on_push_();
}

void Outbox::acknowledged(std::uint64_t seq) {
  std::lock_guard lock(mu_);
  if (in_flight_ && in_flight_->seq == seq) in_flight_.reset();
}

std::size_t Outbox::size() const {
  std::lock_guard lock(mu_);
  return items_.size() + (in_flight_ ? in_flight_->items.size() : 0);
}

std::uint64_t Outbox::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

}  // namespace drover::agent
