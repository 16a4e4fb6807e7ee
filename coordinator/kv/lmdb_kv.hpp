// kv::Store on LMDB (core/lmdb): durable at every commit, never NOSYNC.
#pragma once

#include <filesystem>
#include <vector>

#include "coordinator/kv/kv.hpp"
#include "core/lmdb/lmdb.hpp"

namespace drover::coordinator::kv {

class LmdbKv final : public Store {
 public:
  static Result<std::unique_ptr<LmdbKv>> open(const std::filesystem::path& dir,
                                              const lmdb::Options& options);
  Result<Table> table(std::string_view name) override;
  Result<std::unique_ptr<Txn>> begin_write() override;
  Result<std::unique_ptr<Txn>> begin_read() override;
  Result<Usage> usage(std::uint64_t exact_above) override;

 private:
  explicit LmdbKv(std::unique_ptr<lmdb::Env> env) : env_(std::move(env)) {}
  std::unique_ptr<lmdb::Env> env_;
  std::vector<lmdb::Table> tables_;  // by handle; written only by table()
};

}  // namespace drover::coordinator::kv
