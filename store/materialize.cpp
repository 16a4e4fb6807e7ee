#include "store/materialize.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <future>
#include <system_error>

#include "core/base/hex.hpp"
#include "store/layer_codec.hpp"

namespace drover::store {
namespace {

using format::Entry;
using format::EntryType;

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  ~Fd() { reset(); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

std::string_view parent_of(std::string_view p) {
  std::size_t slash = p.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : p.substr(0, slash);
}

std::string_view base_of(std::string_view p) {
  std::size_t slash = p.rfind('/');
  return slash == std::string_view::npos ? p : p.substr(slash + 1);
}

// Builds the tree under one directory descriptor; no path ever leaves it.
class Tree {
 public:
  explicit Tree(int root) : root_(root) {}

  Result<Fd> open(std::string_view path, int flags, mode_t mode = 0) const {
    if (path.empty()) path = ".";
    struct open_how how {};
    how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC | O_NOFOLLOW);
    how.mode = (flags & O_CREAT) ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    std::string p(path);
    for (;;) {
      long fd = ::syscall(SYS_openat2, root_, p.c_str(), &how, sizeof how);
      if (fd >= 0) return Fd(static_cast<int>(fd));
      if (errno == EINTR || errno == EAGAIN) continue;
      return fail("open", path, errno);
    }
  }

  Status mkdir(std::string_view path) const {
    DROVER_ASSIGN(Fd parent, open(parent_of(path), O_RDONLY | O_DIRECTORY));
    std::string name(base_of(path));
    if (::mkdirat(parent.get(), name.c_str(), 0700) != 0) return fail("mkdir", path, errno);
    return Ok{};
  }

  Status symlink(std::string_view path, const std::string& target) const {
    DROVER_ASSIGN(Fd parent, open(parent_of(path), O_RDONLY | O_DIRECTORY));
    std::string name(base_of(path));
    if (::symlinkat(target.c_str(), parent.get(), name.c_str()) != 0) {
      return fail("symlink", path, errno);
    }
    return Ok{};
  }

  static Error fail(const char* op, std::string_view path, int err) {
    Errc code = (err == ELOOP || err == EXDEV || err == EEXIST) ? Errc::refused : Errc::io;
    return make_error(code, std::string(op) + " '" + format::printable(path) +
                                "' in the staging directory: " + std::strerror(err));
  }

 private:
  int root_;
};

Status write_all(int fd, const char* data, std::uint64_t len, std::uint64_t offset,
                 std::string_view path) {
  while (len > 0) {
    ssize_t n = ::pwrite(fd, data, len, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Tree::fail("write", path, errno);
    }
    data += n;
    len -= static_cast<std::uint64_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
  return Ok{};
}

Status set_mode(int fd, std::uint32_t mode, std::string_view path) {
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) return Tree::fail("chmod", path, errno);
  return Ok{};
}

Error hash_mismatch(const Entry& e) {
  return make_error(Errc::corrupt, "entry '" + format::printable(e.path) +
                                       "': content does not match its hash " + e.hash.str());
}

// Removes a half-built staging tree, making directories writable first.
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

struct WorkItem {
  std::size_t entry;
  std::uint64_t file_offset;
  std::uint64_t layer_offset;
  std::uint64_t length;
};

struct FileProgress {
  Sha256 hash;
  std::uint64_t hashed = 0;  // bytes hashed, in file order
  std::uint64_t written = 0;
  bool created = false;
  bool in_order = true;  // false: verify by reading back at the end
};

Result<MaterializeStats> build(const format::Manifest& m, LayerSource& source, int root_fd,
                               const MaterializeOptions& options) {
  Tree tree(root_fd);
  MaterializeStats stats;

  // Directories, symlinks and empty files first; a parent always precedes its
  // children in the manifest's order.
  std::vector<std::vector<WorkItem>> work(m.layers.size());
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
        if (e.size == 0) {
          DROVER_ASSIGN(Fd fd, tree.open(e.path, O_WRONLY | O_CREAT | O_EXCL, 0600));
          if (e.hash != ContentId::of("")) return hash_mismatch(e);
          DROVER_TRY(set_mode(fd.get(), e.mode, e.path));
          break;
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

  std::vector<FileProgress> progress(m.entries.size());
  std::vector<std::size_t> read_back;
  std::deque<std::future<Result<std::string>>> decoded;
  std::size_t next_to_decode = 0;
  const std::size_t window = std::max(1u, options.threads) + 1;
  auto launch = [&] {
    while (next_to_decode < m.layers.size() && decoded.size() < window) {
      const format::Layer& layer = m.layers[next_to_decode++];
      decoded.push_back(std::async(std::launch::async, [&source, &layer]() -> Result<std::string> {
        DROVER_ASSIGN(std::string stored, source.read_layer(layer));
        return decode_layer(layer, stored);
      }));
    }
  };
  auto drain = [&] {
    for (auto& f : decoded) f.wait();
  };

  for (std::size_t li = 0; li < m.layers.size(); ++li) {
    launch();
    Result<std::string> raw = decoded.front().get();
    decoded.pop_front();
    if (!raw.ok()) {
      drain();
      return raw.error();
    }
    ++stats.layers;
    for (const WorkItem& w : work[li]) {
      const Entry& e = m.entries[w.entry];
      FileProgress& p = progress[w.entry];
      int flags = O_WRONLY | (p.created ? 0 : O_CREAT | O_EXCL);
      auto fd = tree.open(e.path, flags, 0600);
      if (!fd.ok()) {
        drain();
        return fd.error();
      }
      p.created = true;
      const char* data = raw->data() + w.layer_offset;
      if (auto st = write_all(fd->get(), data, w.length, w.file_offset, e.path); !st.ok()) {
        drain();
        return st.error();
      }
      if (p.in_order && w.file_offset == p.hashed) {
        p.hash.update(data, w.length);
        p.hashed += w.length;
      } else {
        p.in_order = false;
      }
      p.written += w.length;
      stats.bytes += w.length;
      if (p.written == e.size) {
        if (!p.in_order) {
          read_back.push_back(w.entry);
          continue;
        }
        if (ContentId(p.hash.finish()) != e.hash) {
          drain();
          return hash_mismatch(e);
        }
        if (auto st = set_mode(fd->get(), e.mode, e.path); !st.ok()) {
          drain();
          return st.error();
        }
      }
    }
  }

  // Files whose extents arrived out of order are verified by reading them back.
  for (std::size_t i : read_back) {
    const Entry& e = m.entries[i];
    DROVER_ASSIGN(Fd fd, tree.open(e.path, O_RDONLY));
    Sha256 h;
    std::string buf(1 << 20, '\0');
    for (;;) {
      ssize_t n = ::read(fd.get(), buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Tree::fail("read", e.path, errno);
      if (n == 0) break;
      h.update(buf.data(), static_cast<std::size_t>(n));
    }
    if (ContentId(h.finish()) != e.hash) return hash_mismatch(e);
    DROVER_TRY(set_mode(fd.get(), e.mode, e.path));
  }

  // Directory modes last, deepest first, so that a read-only directory is
  // only made read-only once everything inside it exists.
  for (auto it = m.entries.rbegin(); it != m.entries.rend(); ++it) {
    if (it->type != EntryType::dir) continue;
    DROVER_ASSIGN(Fd fd, tree.open(it->path, O_RDONLY | O_DIRECTORY));
    DROVER_TRY(set_mode(fd.get(), it->mode, it->path));
  }
  if (::fchmod(root_fd, 0755) != 0) return Tree::fail("chmod", ".", errno);
  return stats;
}

}  // namespace

Result<MaterializeStats> materialize(const format::Manifest& manifest, LayerSource& source,
                                     const fs::path& dest, const MaterializeOptions& options,
                                     Random& random) {
  DROVER_TRY(format::validate_manifest(manifest, options.limits));
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
  if (::syncfs(root_fd) != 0) return fail(errno_error("syncfs", staging, errno));
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
