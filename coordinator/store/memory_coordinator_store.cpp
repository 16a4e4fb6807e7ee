#include "coordinator/store/memory_coordinator_store.hpp"

namespace drover::coordinator {

std::unique_ptr<MemoryCoordinatorStore> MemoryCoordinatorStore::open(
    std::shared_ptr<kv::MemoryDisk> disk) {
  auto kv = std::make_unique<kv::MemoryKv>(std::move(disk));
  kv::MemoryKv& memory = *kv;
  std::unique_ptr<MemoryCoordinatorStore> s(new MemoryCoordinatorStore(std::move(kv), memory));
  // Opening tables and writing the format cannot fail in memory, short of a
  // broken invariant.
  const Status st = init(*s, "(memory)");
  DROVER_ASSERT(st.ok());
  return s;
}

std::unique_ptr<MemoryCoordinatorStore> MemoryCoordinatorStore::create() {
  return open(std::make_shared<kv::MemoryDisk>());
}

}  // namespace drover::coordinator
