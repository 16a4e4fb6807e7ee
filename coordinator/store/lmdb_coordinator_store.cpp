#include "coordinator/store/lmdb_coordinator_store.hpp"

#include "coordinator/kv/lmdb_kv.hpp"

namespace drover::coordinator {

Result<std::unique_ptr<LmdbCoordinatorStore>> LmdbCoordinatorStore::open(
    const std::filesystem::path& dir, std::uint64_t map_bytes) {
  lmdb::Options options;
  options.map_size = map_bytes;
  options.max_tables = 32;  // 24 in use
  DROVER_ASSIGN(auto kv, kv::LmdbKv::open(dir, options));
  std::unique_ptr<LmdbCoordinatorStore> s(new LmdbCoordinatorStore(std::move(kv)));
  DROVER_TRY(init(*s, dir.string()));
  return s;
}

}  // namespace drover::coordinator
