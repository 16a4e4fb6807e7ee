#include "coordinator/kv/lmdb_kv.hpp"

namespace drover::coordinator::kv {
namespace {

class LmdbCursor final : public Cursor {
 public:
  explicit LmdbCursor(lmdb::Cursor cursor) : cursor_(std::move(cursor)) {}
  Result<bool> first() override { return cursor_.first(); }
  Result<bool> next() override { return cursor_.next(); }
  Result<bool> seek(std::string_view key) override { return cursor_.seek(key); }
  Result<bool> prev() override { return cursor_.prev(); }
  Result<bool> before(std::string_view key) override { return cursor_.before(key); }
  std::string_view key() const override { return cursor_.key(); }
  std::string_view value() const override { return cursor_.value(); }

 private:
  lmdb::Cursor cursor_;
};

class LmdbTxn final : public Txn {
 public:
  LmdbTxn(lmdb::Txn txn, const std::vector<lmdb::Table>& tables)
      : txn_(std::move(txn)), tables_(tables) {}
  Result<std::optional<std::string>> get(Table t, std::string_view key) override {
    return txn_.get(tables_.at(t), key);
  }
  Status put(Table t, std::string_view key, std::string_view value) override {
    return txn_.put(tables_.at(t), key, value);
  }
  Result<bool> put_new(Table t, std::string_view key, std::string_view value) override {
    return txn_.put_new(tables_.at(t), key, value);
  }
  Result<bool> erase(Table t, std::string_view key) override {
    return txn_.erase(tables_.at(t), key);
  }
  Result<std::unique_ptr<Cursor>> cursor(Table t) override {
    DROVER_ASSIGN(lmdb::Cursor c, txn_.cursor(tables_.at(t)));
    return std::unique_ptr<Cursor>(std::make_unique<LmdbCursor>(std::move(c)));
  }
  Status commit() override { return txn_.commit(); }

 private:
  lmdb::Txn txn_;
  const std::vector<lmdb::Table>& tables_;
};

}  // namespace

Result<std::unique_ptr<LmdbKv>> LmdbKv::open(const std::filesystem::path& dir,
                                             const lmdb::Options& options) {
  DROVER_ASSIGN(auto env, lmdb::Env::open(dir, options));
  return std::unique_ptr<LmdbKv>(new LmdbKv(std::move(env)));
}

Result<Table> LmdbKv::table(std::string_view name) {
  for (std::size_t i = 0; i < tables_.size(); ++i) {
    if (tables_[i].name == name) return static_cast<Table>(i);
  }
  DROVER_ASSIGN(lmdb::Table t, env_->table(name));
  tables_.push_back(std::move(t));
  return static_cast<Table>(tables_.size() - 1);
}

Result<std::unique_ptr<Txn>> LmdbKv::begin_write() {
  DROVER_ASSIGN(lmdb::Txn txn, env_->begin_write());
  return std::unique_ptr<Txn>(std::make_unique<LmdbTxn>(std::move(txn), tables_));
}

Result<Usage> LmdbKv::usage(std::uint64_t exact_above) {
  DROVER_ASSIGN(auto u, env_->usage(exact_above));
  return Usage{u.map_bytes, u.used_bytes};
}

Result<std::unique_ptr<Txn>> LmdbKv::begin_read() {
  DROVER_ASSIGN(lmdb::Txn txn, env_->begin_read());
  return std::unique_ptr<Txn>(std::make_unique<LmdbTxn>(std::move(txn), tables_));
}

}  // namespace drover::coordinator::kv
