#include "store/staging_tree.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/format/manifest.hpp"

namespace drover::store {
namespace {

std::string_view parent_of(std::string_view p) {
  std::size_t slash = p.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : p.substr(0, slash);
}

std::string_view base_of(std::string_view p) {
  std::size_t slash = p.rfind('/');
  return slash == std::string_view::npos ? p : p.substr(slash + 1);
}

}  // namespace

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    reset();
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

void Fd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<Fd> StagingTree::open(std::string_view path, int flags, mode_t mode) const {
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

Status StagingTree::mkdir(std::string_view path) const {
  DROVER_ASSIGN(Fd parent, open(parent_of(path), O_RDONLY | O_DIRECTORY));
  std::string name(base_of(path));
  if (::mkdirat(parent.get(), name.c_str(), 0700) != 0) return fail("mkdir", path, errno);
  return Ok{};
}

Status StagingTree::symlink(std::string_view path, const std::string& target) const {
  DROVER_ASSIGN(Fd parent, open(parent_of(path), O_RDONLY | O_DIRECTORY));
  std::string name(base_of(path));
  if (::symlinkat(target.c_str(), parent.get(), name.c_str()) != 0) {
    return fail("symlink", path, errno);
  }
  return Ok{};
}

Error StagingTree::fail(const char* op, std::string_view path, int err) {
  Errc code = (err == ELOOP || err == EXDEV || err == EEXIST) ? Errc::refused : Errc::io;
  return make_error(code, std::string(op) + " '" + format::printable(path) +
                              "' in the staging directory: " + std::strerror(err));
}

}  // namespace drover::store
