#include "coordinator/artifacts/feed_follower.hpp"

namespace drover::coordinator {

FeedFollower::FeedFollower(ArtifactRegistry& registry, int wait_s, Logger& log)
    : registry_(registry), wait_s_(wait_s), log_(log), thread_([this] { run(); }) {}

FeedFollower::~FeedFollower() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void FeedFollower::run() {
  std::unique_lock lock(mu_);
  std::chrono::milliseconds backoff{500};
  while (!stopping_) {
    lock.unlock();
    // A pass that throws is a failed pass, never the end of the coordinator.
    auto st = run_guarded(log_, "coordinator.feed.threw",
                          [this] { return registry_.follow_feed_once(wait_s_); });
    if (!st.ok()) {
      log_.warn("coordinator.feed", {{"error", st.error().message},
                                     {"retry_ms", static_cast<std::int64_t>(backoff.count())}});
    }
    lock.lock();
    if (st.ok()) {
      backoff = std::chrono::milliseconds(500);
    } else {
      cv_.wait_for(lock, backoff, [this] { return stopping_; });
      backoff = std::min(backoff * 2, std::chrono::milliseconds(10'000));
    }
  }
}

}  // namespace drover::coordinator
