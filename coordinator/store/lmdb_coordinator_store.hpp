// The coordinator's state on disk: KvCoordinatorStore over LMDB (one
// directory; durable at every commit, never NOSYNC). Several processes on
// one machine may open the same directory (the daemon and its offline
// commands); never carry one across fork().
#pragma once

#include <filesystem>

#include "coordinator/store/kv_coordinator_store.hpp"

namespace drover::coordinator {

class LmdbCoordinatorStore final : public KvCoordinatorStore {
 public:
  // Opens (creating if needed) the state in dir; a format 1 state is indexed.
  // map_bytes: address space reserved; the file grows as it is used.
  static constexpr std::uint64_t kDefaultMapBytes = 8ull << 30;
  static Result<std::unique_ptr<LmdbCoordinatorStore>> open(
      const std::filesystem::path& dir, std::uint64_t map_bytes = kDefaultMapBytes);

 private:
  using KvCoordinatorStore::KvCoordinatorStore;
};

}  // namespace drover::coordinator
