// kv::Store in memory, for tests and simulations: it keeps only what was
// committed, like a disk after a power cut. Its committed state (the "disk")
// can be shared by a later MemoryKv, as a restarted process reopens its
// files; crash() stops this one as if its process died: transactions not yet
// committed are lost, and every later one fails.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "coordinator/kv/kv.hpp"

namespace drover::coordinator::kv {

// What survives a crash: the committed tables.
struct MemoryDisk {
  std::shared_mutex mu;  // readers of tables share it; a commit applies under it alone
  std::mutex writer;     // held by the one write transaction open
  std::map<std::string, std::map<std::string, std::string>, std::less<>> tables;
  std::uint64_t commits = 0;
};

class MemoryKv final : public Store {
 public:
  // A new, empty disk.
  MemoryKv() : MemoryKv(std::make_shared<MemoryDisk>()) {}
  // A disk left by another MemoryKv (after its crash, say).
  explicit MemoryKv(std::shared_ptr<MemoryDisk> disk);
  const std::shared_ptr<MemoryDisk>& disk() const { return disk_; }

  Result<Table> table(std::string_view name) override;
  Result<std::unique_ptr<Txn>> begin_write() override;
  Result<std::unique_ptr<Txn>> begin_read() override;

  // From now on every transaction fails (Errc::io), those open included: a
  // write not yet committed is lost.
  void crash();
  // Lets n more commits through, then crashes at the next one (that one is lost).
  void crash_after_commits(std::uint64_t n);
  bool crashed() const;

  struct State;  // shared with the transactions (internal)

 private:
  std::shared_ptr<MemoryDisk> disk_;
  std::shared_ptr<State> state_;
};

}  // namespace drover::coordinator::kv
