// The coordinator's state in memory, for tests and simulations:
// KvCoordinatorStore over kv::MemoryKv, the same logic as on disk. It keeps
// only what was committed: crash() stops this instance as a killed process
// stops (a transaction not committed is lost, every later one fails), and
// reopen() is the restarted process, seeing exactly what was committed.
#pragma once

#include "coordinator/kv/memory_kv.hpp"
#include "coordinator/store/kv_coordinator_store.hpp"

namespace drover::coordinator {

class MemoryCoordinatorStore final : public KvCoordinatorStore {
 public:
  // A new, empty state.
  static std::unique_ptr<MemoryCoordinatorStore> create();
  // The state committed on disk (by an earlier instance, say), as a process
  // opens it.
  static std::unique_ptr<MemoryCoordinatorStore> open(std::shared_ptr<kv::MemoryDisk> disk);
  // What a restarted process opens: the committed state of this one.
  std::unique_ptr<MemoryCoordinatorStore> reopen() const { return open(disk()); }
  const std::shared_ptr<kv::MemoryDisk>& disk() const { return memory_.disk(); }

  void crash() { memory_.crash(); }
  // Lets n more transactions commit, then crashes at the next commit (that
  // transaction is lost): a crash in the middle of an operation.
  void crash_after_commits(std::uint64_t n) { memory_.crash_after_commits(n); }
  bool crashed() const { return memory_.crashed(); }

 private:
  MemoryCoordinatorStore(std::unique_ptr<kv::MemoryKv> kv, kv::MemoryKv& memory)
      : KvCoordinatorStore(std::move(kv)), memory_(memory) {}
  kv::MemoryKv& memory_;  // owned by the base
};

}  // namespace drover::coordinator
