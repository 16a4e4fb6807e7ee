#include "coordinator/kv/memory_kv.hpp"

#include <optional>

namespace drover::coordinator::kv {

struct MemoryKv::State {
  std::mutex mu;                   // guards everything below
  std::vector<std::string> names;  // by handle
  bool crashed = false;
  std::optional<std::uint64_t> commits_left;

  std::string name_of(Table t) {
    std::lock_guard lock(mu);
    return names.at(t);
  }
  bool is_crashed() {
    std::lock_guard lock(mu);
    return crashed;
  }
  // Whether the next commit may happen (crashes when its allowance is spent).
  bool may_commit() {
    std::lock_guard lock(mu);
    if (crashed) return false;
    if (commits_left) {
      if (*commits_left == 0) {
        crashed = true;
        return false;
      }
      --*commits_left;
    }
    return true;
  }
};

namespace {

using Committed = std::map<std::string, std::string>;
using Pending = std::map<std::string, std::optional<std::string>>;  // nullopt: erased

Error crashed_error() {
  return make_error(Errc::io, "the in-memory store crashed (simulated): reopen it");
}

// Walks the committed entries of a table with a write transaction's pending
// changes over them (pending may be null: a read transaction). Copies the
// current entry, and finds the next one by key, so changes made while it is
// open do not invalidate it.
class MemoryCursor final : public Cursor {
 public:
  MemoryCursor(const Committed& base, const Pending* pending) : base_(base), pending_(pending) {}
  Result<bool> first() override { return settle(base_.begin(), pending_begin()); }
  Result<bool> next() override {
    if (!valid_) return false;
    return settle(base_.upper_bound(key_),
                  pending_ ? pending_->upper_bound(key_) : Pending::const_iterator());
  }
  Result<bool> seek(std::string_view key) override {
    const std::string k(key);
    return settle(base_.lower_bound(k),
                  pending_ ? pending_->lower_bound(k) : Pending::const_iterator());
  }
  Result<bool> prev() override {
    if (!valid_) return false;
    return settle_back(key_);
  }
  Result<bool> before(std::string_view key) override { return settle_back(std::string(key)); }
  std::string_view key() const override { return key_; }
  std::string_view value() const override { return value_; }

 private:
  // Positions at the last live entry with a key < bound.
  bool settle_back(std::string bound) {
    for (;;) {
      std::optional<Committed::const_iterator> b;
      std::optional<Pending::const_iterator> p;
      if (auto it = base_.lower_bound(bound); it != base_.begin()) b = std::prev(it);
      if (pending_ != nullptr) {
        if (auto it = pending_->lower_bound(bound); it != pending_->begin()) p = std::prev(it);
      }
      if (!b && !p) return valid_ = false;
      if (p && (!b || (*p)->first >= (*b)->first)) {
        if (!(*p)->second) {  // erased: hides the committed entry of its key too
          bound = (*p)->first;
          continue;
        }
        key_ = (*p)->first;
        value_ = *(*p)->second;
        return valid_ = true;
      }
      key_ = (*b)->first;
      value_ = (*b)->second;
      return valid_ = true;
    }
  }
  Pending::const_iterator pending_begin() const {
    return pending_ ? pending_->begin() : Pending::const_iterator();
  }
  // Positions at the first live entry at or after the two iterators.
  bool settle(Committed::const_iterator b, Pending::const_iterator p) {
    for (;;) {
      const bool b_end = b == base_.end();
      const bool p_end = pending_ == nullptr || p == pending_->end();
      if (b_end && p_end) return valid_ = false;
      if (!p_end && (b_end || p->first <= b->first)) {
        if (!b_end && p->first == b->first) ++b;  // the pending change hides the committed one
        if (!p->second) {
          ++p;  // erased
          continue;
        }
        key_ = p->first;
        value_ = *p->second;
        return valid_ = true;
      }
      key_ = b->first;
      value_ = b->second;
      return valid_ = true;
    }
  }
  const Committed& base_;
  const Pending* pending_;
  bool valid_ = false;
  std::string key_, value_;
};

class ReadTxn final : public Txn {
 public:
  ReadTxn(std::shared_ptr<MemoryDisk> disk, std::shared_ptr<MemoryKv::State> state)
      : disk_(std::move(disk)), state_(std::move(state)), lock_(disk_->mu) {}
  Result<std::optional<std::string>> get(Table t, std::string_view key) override {
    const Committed& table = disk_->tables.at(state_->name_of(t));
    auto it = table.find(std::string(key));
    if (it == table.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  Status put(Table, std::string_view, std::string_view) override { return read_only(); }
  Result<bool> put_new(Table, std::string_view, std::string_view) override { return read_only(); }
  Result<bool> erase(Table, std::string_view) override { return read_only(); }
  Result<std::unique_ptr<Cursor>> cursor(Table t) override {
    return std::unique_ptr<Cursor>(
        std::make_unique<MemoryCursor>(disk_->tables.at(state_->name_of(t)), nullptr));
  }
  Status commit() override { return Ok{}; }

 private:
  static Error read_only() { return make_error(Errc::internal, "a read transaction cannot write"); }
  std::shared_ptr<MemoryDisk> disk_;
  std::shared_ptr<MemoryKv::State> state_;
  std::shared_lock<std::shared_mutex> lock_;  // no commit while a reader reads
};

class WriteTxn final : public Txn {
 public:
  WriteTxn(std::shared_ptr<MemoryDisk> disk, std::shared_ptr<MemoryKv::State> state)
      : disk_(std::move(disk)), state_(std::move(state)), writer_(disk_->writer) {}
  // Only the writer changes the committed tables, so it reads them unlocked.
  Result<std::optional<std::string>> get(Table t, std::string_view key) override {
    const std::string name = state_->name_of(t);
    const std::string k(key);
    if (auto p = pending_.find(name); p != pending_.end()) {
      if (auto it = p->second.find(k); it != p->second.end()) return it->second;
    }
    const Committed& table = disk_->tables.at(name);
    auto it = table.find(k);
    if (it == table.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  Status put(Table t, std::string_view key, std::string_view value) override {
    pending_[state_->name_of(t)][std::string(key)] = std::string(value);
    return Ok{};
  }
  Result<bool> put_new(Table t, std::string_view key, std::string_view value) override {
    DROVER_ASSIGN(auto existing, get(t, key));
    if (existing) return false;
    DROVER_TRY(put(t, key, value));
    return true;
  }
  Result<bool> erase(Table t, std::string_view key) override {
    DROVER_ASSIGN(auto existing, get(t, key));
    if (!existing) return false;
    pending_[state_->name_of(t)][std::string(key)] = std::nullopt;
    return true;
  }
  Result<std::unique_ptr<Cursor>> cursor(Table t) override {
    const std::string name = state_->name_of(t);
    return std::unique_ptr<Cursor>(
        std::make_unique<MemoryCursor>(disk_->tables.at(name), &pending_[name]));
  }
  Status commit() override {
    if (!state_->may_commit()) {
      pending_.clear();
      return crashed_error();
    }
    std::unique_lock lock(disk_->mu);
    for (auto& [name, changes] : pending_) {
      Committed& table = disk_->tables[name];
      for (auto& [k, v] : changes) {
        if (v) {
          table[k] = std::move(*v);
        } else {
          table.erase(k);
        }
      }
    }
    ++disk_->commits;
    pending_.clear();
    return Ok{};
  }

 private:
  std::shared_ptr<MemoryDisk> disk_;
  std::shared_ptr<MemoryKv::State> state_;
  std::unique_lock<std::mutex> writer_;     // one write transaction at a time
  std::map<std::string, Pending> pending_;  // by table name
};

}  // namespace

MemoryKv::MemoryKv(std::shared_ptr<MemoryDisk> disk)
    : disk_(std::move(disk)), state_(std::make_shared<State>()) {}

Result<Table> MemoryKv::table(std::string_view name) {
  {
    std::unique_lock lock(disk_->mu);
    disk_->tables.try_emplace(std::string(name));
  }
  std::lock_guard lock(state_->mu);
  for (std::size_t i = 0; i < state_->names.size(); ++i) {
    if (state_->names[i] == name) return static_cast<Table>(i);
  }
  state_->names.emplace_back(name);
  return static_cast<Table>(state_->names.size() - 1);
}

Result<std::unique_ptr<Txn>> MemoryKv::begin_write() {
  if (state_->is_crashed()) return crashed_error();
  return std::unique_ptr<Txn>(std::make_unique<WriteTxn>(disk_, state_));
}

Result<std::unique_ptr<Txn>> MemoryKv::begin_read() {
  if (state_->is_crashed()) return crashed_error();
  return std::unique_ptr<Txn>(std::make_unique<ReadTxn>(disk_, state_));
}

void MemoryKv::crash() {
  std::lock_guard lock(state_->mu);
  state_->crashed = true;
}

void MemoryKv::crash_after_commits(std::uint64_t n) {
  std::lock_guard lock(state_->mu);
  state_->commits_left = n;
}

bool MemoryKv::crashed() const {
  return state_->is_crashed();
}

}  // namespace drover::coordinator::kv
