// The coordinator's store under test, on each backend: LMDB in a temporary
// directory, or memory. open() answers the same state every time, as a
// restarted process finds it. For TEST_P suites over both backends.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "coordinator/store/lmdb_coordinator_store.hpp"
#include "coordinator/store/memory_coordinator_store.hpp"
#include "tests/support/test_support.hpp"

namespace drover::coordinator {

enum class Backend { lmdb, memory };

inline std::string backend_name(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::lmdb ? "Lmdb" : "Memory";
}

class StoreBackend {
 public:
  explicit StoreBackend(Backend backend) : backend_(backend) {}
  Result<std::unique_ptr<KvCoordinatorStore>> open() {
    if (backend_ == Backend::memory) {
      return std::unique_ptr<KvCoordinatorStore>(MemoryCoordinatorStore::open(disk_));
    }
    DROVER_ASSIGN(auto s, LmdbCoordinatorStore::open(dir_.path() / "state"));
    return std::unique_ptr<KvCoordinatorStore>(std::move(s));
  }

 private:
  Backend backend_;
  drover::testing::TempDir dir_;
  std::shared_ptr<kv::MemoryDisk> disk_ = std::make_shared<kv::MemoryDisk>();
};

// A suite's fixture: backend_.open() is the store.
class OnEachBackend : public ::testing::TestWithParam<Backend> {
 protected:
  StoreBackend backend_{GetParam()};
};

}  // namespace drover::coordinator
