#include "store/materialize.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>

#include "core/base/hex.hpp"
#include "store/layer_codec.hpp"
#include "store/staging_tree.hpp"

namespace drover::store {
namespace {

using format::Entry;
using format::EntryType;

Status write_all(int fd, const char* data, std::uint64_t len, std::uint64_t offset,
                 std::string_view path) {
  while (len > 0) {
    ssize_t n = ::pwrite(fd, data, len, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return StagingTree::fail("write", path, errno);
    }
    data += n;
    len -= static_cast<std::uint64_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
  return Ok{};
}

// The group first, then the mode: fchown clears nothing we set after it.
Status set_mode(int fd, std::uint32_t mode, std::string_view path,
                const std::optional<std::uint32_t>& group) {
  if (group && ::fchown(fd, static_cast<uid_t>(-1), static_cast<gid_t>(*group)) != 0) {
    return StagingTree::fail("chown", path, errno);
  }
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) return StagingTree::fail("chmod", path, errno);
  return Ok{};
}

std::string mode_text(std::uint32_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", mode & 07777);
  return buf;
}

// Refused at unpack as at push (docs/FORMATS.md, "Manifest").
Status refuse_writable_by_others(const format::Manifest& m) {
  for (const Entry& e : m.entries) {
    if (e.type == EntryType::symlink || (e.mode & 022) == 0) continue;
    return make_error(Errc::refused, "entry '" + format::printable(e.path) + "' has mode " +
                                         mode_text(e.mode) +
                                         ": group- or world-writable files and directories are "
                                         "not unpacked; push the tree again without those bits");
  }
  return Ok{};
}

Error hash_mismatch(const Entry& e) {
  return make_error(Errc::corrupt, "entry '" + format::printable(e.path) +
                                       "': content does not match its hash " + e.hash.str());
}

}  // namespace

void remove_tree(const fs::path& path) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(path, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) {
      fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
    }
  }
  fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
  fs::remove_all(path, ec);
}

namespace {

struct WorkItem {
  std::size_t entry;
  std::uint64_t file_offset;
  std::uint64_t layer_offset;
  std::uint64_t length;
};

// The first error wins; later ones are dropped. Thread-safe.
class FirstError {
 public:
  void set(Error e) {
    std::lock_guard lock(mu_);
    if (!error_) error_ = std::move(e);
    failed_ = true;
  }
  bool failed() const { return failed_; }
  std::optional<Error> take() {
    std::lock_guard lock(mu_);
    return std::move(error_);
  }

 private:
  std::mutex mu_;  // guards error_
  std::optional<Error> error_;
  std::atomic<bool> failed_{false};
};

Status read_back_and_check(const StagingTree& tree, const Entry& e,
                           const std::optional<std::uint32_t>& group) {
  DROVER_ASSIGN(Fd fd, tree.open(e.path, O_RDONLY));
  Sha256 h;
  Bytes buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return StagingTree::fail("read", e.path, errno);
    if (n == 0) break;
    h.update(buf.data(), static_cast<std::size_t>(n));
  }
  if (ContentId(h.finish()) != e.hash) return hash_mismatch(e);
  return set_mode(fd.get(), e.mode, e.path, group);
}

// Decodes one layer and writes every extent it holds. A file that lies in one
// extent is hashed from memory and gets its mode here; the pieces of files
// spread over several extents are only written (their files exist already).
Status write_layer(const format::Manifest& m, LayerSource& source, const StagingTree& tree,
                   std::size_t li, const std::vector<WorkItem>& work,
                   std::atomic<std::uint64_t>& bytes, const std::optional<std::uint32_t>& group) {
  const format::Layer& layer = m.layers[li];
  DROVER_ASSIGN(std::string stored, source.read_layer(layer));
  DROVER_ASSIGN(Bytes raw, decode_layer(layer, stored));
  stored = std::string();
  for (const WorkItem& w : work) {
    const Entry& e = m.entries[w.entry];
    const bool whole = e.extents.size() == 1;
    DROVER_ASSIGN(Fd fd, tree.open(e.path, whole ? O_WRONLY | O_CREAT | O_EXCL : O_WRONLY, 0600));
    const char* data = raw.data() + w.layer_offset;
    DROVER_TRY(write_all(fd.get(), data, w.length, w.file_offset, e.path));
    // Start writing back now, so the syncfs() before the rename has little left.
    ::sync_file_range(fd.get(), static_cast<off_t>(w.file_offset), static_cast<off_t>(w.length),
                      SYNC_FILE_RANGE_WRITE);
    bytes += w.length;
    if (whole) {
      if (ContentId(Sha256::of(data, w.length)) != e.hash) return hash_mismatch(e);
      DROVER_TRY(set_mode(fd.get(), e.mode, e.path, group));
    }
  }
  return Ok{};
}

// Runs job(i) for i in [0, count) on `threads` threads; stops handing out work
// at the first error.
template <class Job>
Status parallel_for(std::size_t count, unsigned threads, Job job) {
  FirstError first;
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (std::size_t i; !first.failed() && (i = next++) < count;) {
      if (Status st = job(i); !st.ok()) first.set(std::move(st).error());
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < std::max(1u, threads); ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (auto e = first.take()) return std::move(*e);
  return Ok{};
}

Result<MaterializeStats> build(const format::Manifest& m, LayerSource& source, int root_fd,
                               const MaterializeOptions& options) {
  StagingTree tree(root_fd);
  MaterializeStats stats;

  // Directories, symlinks, empty files and the files spread over several
  // extents first, in manifest order: a parent always precedes its children.
  std::vector<std::vector<WorkItem>> work(m.layers.size());
  std::vector<std::size_t> spread;  // files in several extents: checked at the end
  for (std::size_t i = 0; i < m.entries.size(); ++i) {
    const Entry& e = m.entries[i];
    switch (e.type) {
      case EntryType::dir:
        DROVER_TRY(tree.mkdir(e.path));
        ++stats.dirs;
        break;
      case EntryType::symlink:
        DROVER_TRY(tree.symlink(e.path, e.target));
        ++stats.symlinks;
        break;
      case EntryType::file: {
        ++stats.files;
        if (e.extents.size() != 1) {
          DROVER_ASSIGN(Fd fd, tree.open(e.path, O_WRONLY | O_CREAT | O_EXCL, 0600));
          if (e.extents.empty()) {
            if (e.hash != ContentId::of("")) return hash_mismatch(e);
            DROVER_TRY(set_mode(fd.get(), e.mode, e.path, options.group));
          } else {
            spread.push_back(i);
          }
        }
        std::uint64_t off = 0;
        for (const auto& x : e.extents) {
          work[x.layer].push_back({i, off, x.offset, x.length});
          off += x.length;
        }
        break;
      }
    }
  }

  // Layers in parallel: each worker decodes one layer at a time and writes
  // what it holds, so at most `threads` decoded layers are in memory.
  std::atomic<std::uint64_t> bytes{0};
  DROVER_TRY(parallel_for(m.layers.size(), options.threads, [&](std::size_t li) {
    return write_layer(m, source, tree, li, work[li], bytes, options.group);
  }));
  stats.bytes = bytes;
  stats.layers = m.layers.size();
  DROVER_TRY(parallel_for(spread.size(), options.threads, [&](std::size_t k) {
    return read_back_and_check(tree, m.entries[spread[k]], options.group);
  }));

  // Directory modes last, deepest first, so that a read-only directory is
  // only made read-only once everything inside it exists.
  for (auto it = m.entries.rbegin(); it != m.entries.rend(); ++it) {
    if (it->type != EntryType::dir) continue;
    DROVER_ASSIGN(Fd fd, tree.open(it->path, O_RDONLY | O_DIRECTORY));
    DROVER_TRY(set_mode(fd.get(), it->mode, it->path, options.group));
  }
  DROVER_TRY(set_mode(root_fd, options.root_mode, ".", options.group));
  return stats;
}

}  // namespace

Result<MaterializeStats> materialize(const format::Manifest& manifest, LayerSource& source,
                                     const fs::path& dest, const MaterializeOptions& options,
                                     Random& random) {
  DROVER_TRY(format::validate_manifest(manifest, options.limits));
  if (Status st = refuse_writable_by_others(manifest); !st.ok()) {
    return std::move(st).error().context("materialize " + dest.string());
  }
  const fs::path target = dest.filename().empty() ? dest.parent_path() : dest;
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  struct stat st {};
  if (::lstat(target.c_str(), &st) == 0) {
    return make_error(Errc::already_exists,
                      "destination " + target.string() +
                          " exists; materialize writes a new directory and never overwrites");
  }
  if (::stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return make_error(Errc::not_found,
                      "destination's parent " + parent.string() + " is not a directory");
  }

  const fs::path staging =
      parent / ("." + target.filename().string() + ".staging-" + to_hex(random.bytes(6)));
  if (::mkdir(staging.c_str(), 0700) != 0) return errno_error("create", staging, errno);
  int root_fd = ::open(staging.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (root_fd < 0) {
    int err = errno;
    remove_tree(staging);
    return errno_error("open", staging, err);
  }
  Fd root(root_fd);

  auto built = build(manifest, source, root_fd, options);
  auto fail = [&](Error e) {
    remove_tree(staging);
    return std::move(e).context("materialize " + target.string());
  };
  if (!built.ok()) return fail(built.error());
  // One syncfs() instead of an fsync() per file: the whole release reaches
  // the disk before the rename makes it visible.
  if (options.sync && ::syncfs(root_fd) != 0) return fail(errno_error("syncfs", staging, errno));
  if (::renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, target.c_str(), RENAME_NOREPLACE) != 0) {
    return fail(errno_error("rename staging directory to", target, errno));
  }
  int dir_fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return built;
}

}  // namespace drover::store
