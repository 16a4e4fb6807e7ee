// Follows the origin's feed on a thread of its own: each push the origin
// announces is registered (ArtifactRegistry::follow_feed_once, a long poll);
// an origin that is down is asked again less and less often (10 s at most).
// Destroying it stops the thread (within the long poll's wait).
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

#include "coordinator/artifacts/registry.hpp"

namespace drover::coordinator {

class FeedFollower {
 public:
  // wait_s: the long poll's length (bounds how long destruction waits).
  FeedFollower(ArtifactRegistry& registry, int wait_s, Logger& log);
  ~FeedFollower();

 private:
  void run();
  ArtifactRegistry& registry_;
  int wait_s_;
  Logger& log_;
  std::mutex mu_;  // guards stopping_
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace drover::coordinator
