// The seam under the coordinator's durable state (docs/COORDINATOR.md,
// "Durable state"): ordered tables of byte keys and values, read and written
// in transactions, as LMDB offers them. The store's logic (records, indexes,
// the audit chain) is written once against it; LmdbKv keeps it on disk,
// MemoryKv in memory for tests and simulations (keeping only what was
// committed, and able to crash).
//
// Rules, those of LMDB: one write transaction at a time (begin_write waits
// for the one open); a transaction that is not committed is aborted when
// destroyed; read transactions see what was committed when they began and
// must not be held across a write by the same thread; a cursor must be
// destroyed before its transaction commits. Thread-safe: any thread may
// begin a transaction; a transaction belongs to the thread that began it.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/base/result.hpp"

namespace drover::coordinator::kv {

using Table = unsigned;  // a table's handle, valid for its store's lifetime

// Walks a table in bytewise key order. key() and value() are valid until the
// cursor moves or its transaction ends.
class Cursor {
 public:
  virtual ~Cursor() = default;
  // Each returns false when there is no such entry.
  virtual Result<bool> first() = 0;
  virtual Result<bool> next() = 0;
  // Positions at the first key >= key.
  virtual Result<bool> seek(std::string_view key) = 0;
  // Backwards: the entry before the current one; the last key < key.
  virtual Result<bool> prev() = 0;
  virtual Result<bool> before(std::string_view key) = 0;
  virtual std::string_view key() const = 0;
  virtual std::string_view value() const = 0;
};

class Txn {
 public:
  virtual ~Txn() = default;
  virtual Result<std::optional<std::string>> get(Table table, std::string_view key) = 0;
  virtual Status put(Table table, std::string_view key, std::string_view value) = 0;
  // Returns false (and writes nothing) when the key already exists.
  virtual Result<bool> put_new(Table table, std::string_view key, std::string_view value) = 0;
  // Returns false when the key was absent.
  virtual Result<bool> erase(Table table, std::string_view key) = 0;
  virtual Result<std::unique_ptr<Cursor>> cursor(Table table) = 0;
  // Durable when it returns (LmdbKv: fsync'd).
  virtual Status commit() = 0;
};

// How full a store is; map_bytes 0: unbounded.
struct Usage {
  std::uint64_t map_bytes = 0;
  std::uint64_t used_bytes = 0;
};

class Store {
 public:
  virtual ~Store() = default;
  // exact_above: below this many bytes an upper bound will do (and is cheap).
  virtual Result<Usage> usage(std::uint64_t /*exact_above*/) { return Usage{}; }
  // Opens (creating if needed) a named table. Not inside a transaction.
  virtual Result<Table> table(std::string_view name) = 0;
  virtual Result<std::unique_ptr<Txn>> begin_write() = 0;
  virtual Result<std::unique_ptr<Txn>> begin_read() = 0;
};

}  // namespace drover::coordinator::kv
