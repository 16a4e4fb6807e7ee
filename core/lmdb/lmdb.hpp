// A thin RAII layer over LMDB. One Env per database directory per process;
// never carry it across fork(). Transactions abort when destroyed without
// commit. Writes are durable at commit: drover never opens LMDB with NOSYNC.
//
// Thread rules: an Env is shared by all threads. A write transaction belongs to
// the thread that began it, and only one is open at a time (LMDB serializes
// writers). Read transactions may be used from any one thread at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/base/result.hpp"

struct MDB_env;
struct MDB_txn;
struct MDB_cursor;

namespace drover::lmdb {

struct Options {
  // The largest the database may grow; LMDB reserves the address space up
  // front. There is no default in LMDB worth keeping (10 MiB), so callers say.
  std::uint64_t map_size = 0;
  unsigned max_tables = 16;
  bool read_only = false;
};

// A named table (an LMDB sub-database). Valid for the Env's lifetime.
struct Table {
  unsigned dbi = 0;
  std::string name;
};

class Cursor;

class Txn {
 public:
  Txn(Txn&& other) noexcept;
  Txn& operator=(Txn&&) = delete;
  ~Txn();

  // Copies the value out; nullopt when the key is absent.
  Result<std::optional<std::string>> get(const Table& table, std::string_view key);
  Status put(const Table& table, std::string_view key, std::string_view value);
  // Returns false (and writes nothing) when the key already exists.
  Result<bool> put_new(const Table& table, std::string_view key, std::string_view value);
  // Returns false when the key was absent.
  Result<bool> erase(const Table& table, std::string_view key);
  Result<Cursor> cursor(const Table& table);

  Status commit();
  void abort();

 private:
  friend class Env;
  Txn(MDB_txn* txn, std::string path) : txn_(txn), path_(std::move(path)) {}
  MDB_txn* txn_;
  std::string path_;  // for error messages
};

// Walks a table in key order (bytewise). Keys and values are views into the
// database, valid until the cursor moves or its transaction ends. A cursor
// of a write transaction must be destroyed before that transaction commits:
// LMDB closes such cursors itself at commit, so closing one afterwards frees
// it twice (docs/NOTES.md).
class Cursor {
 public:
  Cursor(Cursor&& other) noexcept;
  Cursor& operator=(Cursor&&) = delete;
  ~Cursor();

  // Each returns false when there is no such entry.
  Result<bool> first();
  Result<bool> next();
  // Positions at the first key >= key.
  Result<bool> seek(std::string_view key);
  // Backwards: the entry before the current one; the last key < key.
  Result<bool> prev();
  Result<bool> before(std::string_view key);
  std::string_view key() const { return key_; }
  std::string_view value() const { return value_; }

 private:
  friend class Txn;
  Cursor(MDB_cursor* c, std::string table) : cursor_(c), table_(std::move(table)) {}
  Result<bool> move(int op, std::string_view key);
  MDB_cursor* cursor_;
  std::string table_;
  std::string_view key_;
  std::string_view value_;
};

class Env {
 public:
  // Opens (creating if needed, unless read_only) the database in directory dir.
  static Result<std::unique_ptr<Env>> open(const std::filesystem::path& dir,
                                           const Options& options);
  ~Env();
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;

  // Opens a named table, creating it unless the Env is read-only.
  Result<Table> table(std::string_view name);
  Result<Txn> begin_write();
  Result<Txn> begin_read();
  const std::string& path() const { return path_; }

  // How full the map is: pages in use (the high-water mark less the pages
  // on LMDB's free list, which later writes reuse) against the map size.
  // The free list is read only when the high-water mark is at least
  // exact_above bytes; below, used_bytes is the high-water mark (an upper
  // bound, found in constant time).
  struct Usage {
    std::uint64_t map_bytes = 0;
    std::uint64_t used_bytes = 0;
  };
  Result<Usage> usage(std::uint64_t exact_above = 0);

 private:
  Env(MDB_env* env, std::string path, bool read_only)
      : env_(env), path_(std::move(path)), read_only_(read_only) {}
  Result<Txn> begin(unsigned flags);
  MDB_env* env_;
  std::string path_;
  bool read_only_;
};

// "lmdb <op> <where>: <mdb_strerror>" as an Error; MDB_MAP_FULL says how to fix it.
Error lmdb_error(int rc, const std::string& op, const std::string& where);

}  // namespace drover::lmdb
