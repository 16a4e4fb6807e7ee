// Creating a tree beneath one directory descriptor, never outside it.
//
// Every path is resolved by openat2() with RESOLVE_BENEATH (no absolute paths,
// no ".." above the root), RESOLVE_NO_SYMLINKS (no symlink in any component,
// even one that points inside) and O_NOFOLLOW on the last component. So even
// if someone plants a symlink in the staging directory while a release is
// being written, no write can follow it: the kernel refuses the path (ELOOP
// or EXDEV), and the refusal names the entry.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "core/base/result.hpp"

namespace drover::store {

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset();
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

// Not an owner of root: the caller keeps the directory open while using it.
// Thread-safe: distinct entries may be created from several threads.
class StagingTree {
 public:
  explicit StagingTree(int root) : root_(root) {}

  // Opens path (relative to the root; "" is the root itself).
  Result<Fd> open(std::string_view path, int flags, mode_t mode = 0) const;
  Status mkdir(std::string_view path) const;  // mode 0700; final modes are set later
  Status symlink(std::string_view path, const std::string& target) const;

  // An error naming the operation and the entry; ELOOP/EXDEV/EEXIST (a
  // resolution the rules forbid) are `refused`, other failures `io`.
  static Error fail(const char* op, std::string_view path, int err);

 private:
  int root_;
};

}  // namespace drover::store
