#include "core/lmdb/lmdb.hpp"

#include <lmdb.h>

#include <cstring>

namespace drover::lmdb {
namespace {
MDB_val as_val(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};  // LMDB does not write through it
}
std::string_view as_view(const MDB_val& v) {
  return {static_cast<const char*>(v.mv_data), v.mv_size};
}
}  // namespace

Error lmdb_error(int rc, const std::string& op, const std::string& where) {
  std::string msg = "lmdb " + op + " " + where + ": " + mdb_strerror(rc);
  Errc code = Errc::io;
  if (rc == MDB_MAP_FULL) {
    msg += " (the database reached its map size; raise it)";
    code = Errc::exhausted;
  } else if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID) {
    code = Errc::corrupt;
  } else if (rc == MDB_NOTFOUND) {
    code = Errc::not_found;
  }
  return make_error(code, std::move(msg));
}

Result<std::unique_ptr<Env>> Env::open(const std::filesystem::path& dir, const Options& options) {
  if (options.map_size == 0) {
    return make_error(Errc::invalid_argument, "lmdb open " + dir.string() + ": map size not set");
  }
  MDB_env* env = nullptr;
  int rc = mdb_env_create(&env);
  if (rc != 0) return lmdb_error(rc, "create", dir.string());
  auto fail = [&](int code, const char* op) {
    mdb_env_close(env);
    return lmdb_error(code, op, dir.string());
  };
  if ((rc = mdb_env_set_mapsize(env, options.map_size)) != 0) return fail(rc, "set map size");
  if ((rc = mdb_env_set_maxdbs(env, options.max_tables)) != 0) return fail(rc, "set max tables");
  if (!options.read_only) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    // The directory 0700 and its files 0600, made so again on every open
    // (an environment created before this rule keeps working, made private).
    if (!ec) {
      std::filesystem::permissions(dir, std::filesystem::perms::owner_all,
                                   std::filesystem::perm_options::replace, ec);
    }
    if (ec) {
      mdb_env_close(env);
      return make_error(Errc::io,
                        "lmdb create directory " + dir.string() + " (mode 0700): " + ec.message());
    }
  }
  unsigned flags = MDB_NOTLS | (options.read_only ? MDB_RDONLY : 0u);
  if ((rc = mdb_env_open(env, dir.c_str(), flags, 0600)) != 0) return fail(rc, "open");
  if (!options.read_only) {
    for (const char* name : {"data.mdb", "lock.mdb"}) {
      std::error_code ec;
      std::filesystem::permissions(
          dir / name, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
          std::filesystem::perm_options::replace, ec);
      if (ec) {
        mdb_env_close(env);
        return make_error(Errc::io, "lmdb: cannot make " + (dir / name).string() +
                                        " private (mode 0600): " + ec.message());
      }
    }
  }
  return std::unique_ptr<Env>(new Env(env, dir.string(), options.read_only));
}

Result<Env::Usage> Env::usage(std::uint64_t exact_above) {
  MDB_envinfo info;
  MDB_stat stat;
  int rc = mdb_env_info(env_, &info);
  if (rc == 0) rc = mdb_env_stat(env_, &stat);
  if (rc != 0) return lmdb_error(rc, "stat", path_);
  const std::uint64_t page = stat.ms_psize;
  const std::uint64_t high = static_cast<std::uint64_t>(info.me_last_pgno) + 1;
  Usage u;
  u.map_bytes = info.me_mapsize;
  u.used_bytes = high * page;
  if (u.used_bytes < exact_above) return u;
  std::uint64_t free_pages = 0;
  {
    // The free list is table 0: each value is a page-number list led by its length.
    DROVER_ASSIGN(Txn txn, begin_read());
    MDB_cursor* cursor = nullptr;
    if ((rc = mdb_cursor_open(txn.txn_, 0, &cursor)) != 0) return lmdb_error(rc, "stat", path_);
    MDB_val k, v;
    while ((rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) == 0) {
      if (v.mv_size >= sizeof(std::size_t)) {
        std::size_t n = 0;
        std::memcpy(&n, v.mv_data, sizeof n);
        free_pages += n;
      }
    }
    mdb_cursor_close(cursor);
    if (rc != MDB_NOTFOUND) return lmdb_error(rc, "stat", path_);
  }
  u.used_bytes = (high > free_pages ? high - free_pages : 0) * page;
  return u;
}

Env::~Env() {
  mdb_env_close(env_);
}

Result<Txn> Env::begin(unsigned flags) {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, flags, &txn);
  if (rc != 0) return lmdb_error(rc, "begin transaction", path_);
  return Txn(txn, path_);
}

Result<Txn> Env::begin_write() {
  return begin(0);
}
Result<Txn> Env::begin_read() {
  return begin(MDB_RDONLY);
}

Result<Table> Env::table(std::string_view name) {
  DROVER_ASSIGN(Txn txn, read_only_ ? begin_read() : begin_write());
  MDB_dbi dbi = 0;
  std::string n(name);
  int rc = mdb_dbi_open(txn.txn_, n.c_str(), read_only_ ? 0u : unsigned{MDB_CREATE}, &dbi);
  if (rc != 0) return lmdb_error(rc, "open table " + n + " in", path_);
  DROVER_TRY(txn.commit());
  return Table{dbi, n};
}

Txn::Txn(Txn&& other) noexcept : txn_(other.txn_), path_(std::move(other.path_)) {
  other.txn_ = nullptr;
}

Txn::~Txn() {
  abort();
}

void Txn::abort() {
  if (txn_ != nullptr) mdb_txn_abort(txn_);
  txn_ = nullptr;
}

Status Txn::commit() {
  DROVER_ASSERT(txn_ != nullptr);
  int rc = mdb_txn_commit(txn_);
  txn_ = nullptr;  // freed by commit whether or not it succeeded
  if (rc != 0) return lmdb_error(rc, "commit", path_);
  return Ok{};
}

Result<std::optional<std::string>> Txn::get(const Table& table, std::string_view key) {
  MDB_val k = as_val(key), v{};
  int rc = mdb_get(txn_, table.dbi, &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<std::string>();
  if (rc != 0) return lmdb_error(rc, "get from " + table.name + " in", path_);
  return std::optional<std::string>(std::string(as_view(v)));
}

Status Txn::put(const Table& table, std::string_view key, std::string_view value) {
  MDB_val k = as_val(key), v = as_val(value);
  int rc = mdb_put(txn_, table.dbi, &k, &v, 0);
  if (rc != 0) return lmdb_error(rc, "put into " + table.name + " in", path_);
  return Ok{};
}

Result<bool> Txn::put_new(const Table& table, std::string_view key, std::string_view value) {
  MDB_val k = as_val(key), v = as_val(value);
  int rc = mdb_put(txn_, table.dbi, &k, &v, MDB_NOOVERWRITE);
  if (rc == MDB_KEYEXIST) return false;
  if (rc != 0) return lmdb_error(rc, "put into " + table.name + " in", path_);
  return true;
}

Result<bool> Txn::erase(const Table& table, std::string_view key) {
  MDB_val k = as_val(key);
  int rc = mdb_del(txn_, table.dbi, &k, nullptr);
  if (rc == MDB_NOTFOUND) return false;
  if (rc != 0) return lmdb_error(rc, "delete from " + table.name + " in", path_);
  return true;
}

Result<Cursor> Txn::cursor(const Table& table) {
  MDB_cursor* c = nullptr;
  int rc = mdb_cursor_open(txn_, table.dbi, &c);
  if (rc != 0) return lmdb_error(rc, "open cursor on " + table.name + " in", path_);
  return Cursor(c, table.name);
}

Cursor::Cursor(Cursor&& other) noexcept
    : cursor_(other.cursor_),
      table_(std::move(other.table_)),
      key_(other.key_),
      value_(other.value_) {
  other.cursor_ = nullptr;
}

Cursor::~Cursor() {
  if (cursor_ != nullptr) mdb_cursor_close(cursor_);
}

Result<bool> Cursor::move(int op, std::string_view key) {
  MDB_val k = as_val(key), v{};
  int rc = mdb_cursor_get(cursor_, &k, &v, static_cast<MDB_cursor_op>(op));
  if (rc == MDB_NOTFOUND) return false;
  if (rc != 0) return lmdb_error(rc, "cursor on", table_);
  key_ = as_view(k);
  value_ = as_view(v);
  return true;
}

Result<bool> Cursor::first() {
  return move(MDB_FIRST, {});
}
Result<bool> Cursor::next() {
  return move(MDB_NEXT, {});
}
Result<bool> Cursor::seek(std::string_view key) {
  return move(MDB_SET_RANGE, key);
}
Result<bool> Cursor::prev() {
  return move(MDB_PREV, {});
}
Result<bool> Cursor::before(std::string_view key) {
  DROVER_ASSIGN(bool at, move(MDB_SET_RANGE, key));
  if (!at) return move(MDB_LAST, {});  // every key is < key
  return move(MDB_PREV, {});
}

}  // namespace drover::lmdb
