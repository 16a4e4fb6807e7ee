#include "core/world/filesystem.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace drover {

const char* file_type_name(FileType type) {
  switch (type) {
    case FileType::regular: return "regular file";
    case FileType::directory: return "directory";
    case FileType::symlink: return "symlink";
    case FileType::fifo: return "FIFO";
    case FileType::socket: return "socket";
    case FileType::char_device: return "character device";
    case FileType::block_device: return "block device";
    case FileType::unknown: return "unknown file type";
  }
  return "unknown file type";
}

Error errno_error(const char* what, const fs::path& path, int err) {
  Errc code = Errc::io;
  if (err == ENOENT || err == ENOTDIR) code = Errc::not_found;
  if (err == EEXIST) code = Errc::already_exists;
  return make_error(code, std::string(what) + " " + path.string() + ": " + std::strerror(err));
}

Result<bool> Filesystem::exists(const fs::path& path) {
  auto info = lstat(path);
  if (info.ok()) return true;
  if (info.error().code == Errc::not_found) return false;
  return info.error();
}

Result<std::string> Filesystem::read_file(const fs::path& path, std::uint64_t max_bytes) {
  DROVER_ASSIGN(auto file, open_read(path));
  std::string out;
  char buf[64 * 1024];
  for (;;) {
    DROVER_ASSIGN(std::size_t n, file->read(buf, sizeof buf));
    if (n == 0) break;
    if (out.size() + n > max_bytes) {
      return make_error(Errc::refused, "read " + path.string() + ": larger than the limit of " +
                                           std::to_string(max_bytes) + " bytes");
    }
    out.append(buf, n);
  }
  return out;
}

Status Filesystem::set_access(const fs::path& path, std::uint32_t, std::optional<std::uint32_t>) {
  return make_error(Errc::unsupported, "cannot set the mode or group of " + path.string() +
                                           ": this filesystem keeps neither");
}

Status Filesystem::write_atomic(const fs::path& path, const fs::path& tmp, std::string_view bytes,
                                std::uint32_t mode, bool replace,
                                std::optional<std::uint32_t> group) {
  DROVER_ASSIGN(auto file, create_new(tmp, mode));
  Status st = file->write(bytes);
  if (st.ok()) st = file->sync();
  Status closed = file->close();
  if (st.ok()) st = closed;
  if (st.ok() && group) st = set_access(tmp, mode, group);
  if (st.ok()) st = replace ? rename(tmp, path) : rename_noreplace(tmp, path);
  if (!st.ok()) {
    (void)remove(tmp);
    return st;
  }
  return sync_dir(path.parent_path().empty() ? fs::path(".") : path.parent_path());
}

Status Filesystem::write_owned(const fs::path& path, std::string_view bytes, std::uint32_t mode,
                               bool replace, std::optional<std::uint32_t> group) {
  fs::path tmp = path;
  tmp += ".tmp";
  if (Status st = remove(tmp); !st.ok() && st.error().code != Errc::not_found) return st;
  return write_atomic(path, tmp, bytes, mode, replace, group);
}

namespace {

class PosixReadable final : public ReadableFile {
 public:
  PosixReadable(int fd, fs::path path) : fd_(fd), path_(std::move(path)) {}
  ~PosixReadable() override { ::close(fd_); }
  Result<std::size_t> read(void* out, std::size_t size) override {
    for (;;) {
      ssize_t n = ::read(fd_, out, size);
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR) return errno_error("read", path_, errno);
    }
  }
  Result<FileInfo> info() override;

 private:
  int fd_;
  fs::path path_;
};

class PosixWritable final : public WritableFile {
 public:
  PosixWritable(int fd, fs::path path) : fd_(fd), path_(std::move(path)) {}
  ~PosixWritable() override {
    if (fd_ >= 0) ::close(fd_);
  }
  Status write(std::string_view bytes) override {
    const char* p = bytes.data();
    std::size_t left = bytes.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_error("write", path_, errno);
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    return Ok{};
  }
  Status sync() override {
    if (::fsync(fd_) != 0) return errno_error("fsync", path_, errno);
    return Ok{};
  }
  void start_writeback() override { ::sync_file_range(fd_, 0, 0, SYNC_FILE_RANGE_WRITE); }
  Status close() override {
    int fd = fd_;
    fd_ = -1;
    if (fd >= 0 && ::close(fd) != 0) return errno_error("close", path_, errno);
    return Ok{};
  }

 private:
  int fd_;
  fs::path path_;
};

FileType type_of(mode_t m) {
  if (S_ISREG(m)) return FileType::regular;
  if (S_ISDIR(m)) return FileType::directory;
  if (S_ISLNK(m)) return FileType::symlink;
  if (S_ISFIFO(m)) return FileType::fifo;
  if (S_ISSOCK(m)) return FileType::socket;
  if (S_ISCHR(m)) return FileType::char_device;
  if (S_ISBLK(m)) return FileType::block_device;
  return FileType::unknown;
}

FileInfo info_of(const struct stat& st) {
  FileInfo info;
  info.type = type_of(st.st_mode);
  info.mode = static_cast<std::uint32_t>(st.st_mode & 07777);
  info.size = static_cast<std::uint64_t>(st.st_size);
  info.links = static_cast<std::uint64_t>(st.st_nlink);
  return info;
}

Result<FileInfo> PosixReadable::info() {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return errno_error("fstat", path_, errno);
  return info_of(st);
}

}  // namespace

Result<FileInfo> PosixFilesystem::lstat(const fs::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return errno_error("lstat", path, errno);
  return info_of(st);
}

Result<std::vector<std::string>> PosixFilesystem::list_dir(const fs::path& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return errno_error("open directory", path, errno);
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    struct dirent* e = ::readdir(dir);
    if (e == nullptr) {
      int err = errno;
      ::closedir(dir);
      if (err != 0) return errno_error("read directory", path, err);
      return names;
    }
    std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    names.emplace_back(name);
  }
}

Status PosixFilesystem::symlink(const std::string& target, const fs::path& link) {
  if (::symlink(target.c_str(), link.c_str()) != 0) return errno_error("symlink", link, errno);
  return Ok{};
}

Result<std::string> PosixFilesystem::read_link(const fs::path& path) {
  std::string buf(256, '\0');
  for (;;) {
    ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
    if (n < 0) return errno_error("readlink", path, errno);
    if (static_cast<std::size_t>(n) < buf.size()) {
      buf.resize(static_cast<std::size_t>(n));
      return buf;
    }
    buf.resize(buf.size() * 2);
  }
}

Result<std::unique_ptr<ReadableFile>> PosixFilesystem::open_read(const fs::path& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer. It has no effect on
  // reads from regular files, the only kind accepted below.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return errno_error("open", path, errno);
  auto file = std::make_unique<PosixReadable>(fd, path);
  DROVER_ASSIGN(FileInfo info, file->info());
  if (info.type != FileType::regular) {
    return make_error(Errc::refused, "open " + path.string() + ": is a " +
                                         file_type_name(info.type) + ", not a regular file");
  }
  return std::unique_ptr<ReadableFile>(std::move(file));
}

Result<std::unique_ptr<WritableFile>> PosixFilesystem::create_new(const fs::path& path,
                                                                  std::uint32_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                  static_cast<mode_t>(mode));
  if (fd < 0) return errno_error("create", path, errno);
  // The umask may have narrowed the mode; key files and blobs need it exact.
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) {
    int err = errno;
    ::close(fd);
    return errno_error("chmod", path, err);
  }
  return std::unique_ptr<WritableFile>(std::make_unique<PosixWritable>(fd, path));
}

Status PosixFilesystem::rename(const fs::path& from, const fs::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return errno_error("rename", from.string() + " to " + to.string(), errno);
  }
  return Ok{};
}

Status PosixFilesystem::rename_noreplace(const fs::path& from, const fs::path& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) != 0) {
    return errno_error("rename", from.string() + " to " + to.string(), errno);
  }
  return Ok{};
}

Status PosixFilesystem::remove(const fs::path& path) {
  if (::unlink(path.c_str()) == 0) return Ok{};
  if (errno == EISDIR || errno == EPERM) {
    if (::rmdir(path.c_str()) == 0) return Ok{};
  }
  return errno_error("remove", path, errno);
}

Status PosixFilesystem::make_dirs(const fs::path& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) return errno_error("create directory", path, ec.value());
  return Ok{};
}

Status PosixFilesystem::set_access(const fs::path& path, std::uint32_t mode,
                                   std::optional<std::uint32_t> group) {
  // On a descriptor, never the path again: a symlink swapped in after a
  // check would otherwise have the agent (root) change whatever it names.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    return errno_error(errno == ELOOP ? "set the mode of (a symlink)" : "open", path, errno);
  }
  int err = 0;
  const char* what = nullptr;
  if (group && ::fchown(fd, static_cast<uid_t>(-1), static_cast<gid_t>(*group)) != 0) {
    err = errno;
    what = "chown";
  } else if (::fchmod(fd, static_cast<mode_t>(mode & 07777)) != 0) {
    err = errno;
    what = "chmod";
  }
  ::close(fd);
  if (what) return errno_error(what, path, err);
  return Ok{};
}

Status PosixFilesystem::sync_dir(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_error("open directory", path, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return errno_error("fsync directory", path, err);
  return Ok{};
}

Status PosixFilesystem::sync_file(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return errno_error("open", path, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return errno_error("fsync", path, err);
  return Ok{};
}

Status FaultyFilesystem::step(const char* what, const fs::path& path) {
  std::lock_guard lock(mu_);
  if (count_++ >= fail_from_) {
    return make_error(Errc::io, std::string("injected fault at ") + what + " " + path.string());
  }
  return Ok{};
}

namespace {
class FaultyWritable final : public WritableFile {
 public:
  FaultyWritable(FaultyFilesystem& owner, std::unique_ptr<WritableFile> inner, fs::path path)
      : owner_(owner), inner_(std::move(inner)), path_(std::move(path)) {}
  Status write(std::string_view bytes) override {
    DROVER_TRY(owner_.step("write", path_));
    return inner_->write(bytes);
  }
  Status sync() override {
    DROVER_TRY(owner_.step("sync", path_));
    return inner_->sync();
  }
  Status close() override {
    DROVER_TRY(owner_.step("close", path_));
    return inner_->close();
  }

 private:
  FaultyFilesystem& owner_;
  std::unique_ptr<WritableFile> inner_;
  fs::path path_;
};
}  // namespace

Result<std::unique_ptr<WritableFile>> FaultyFilesystem::create_new(const fs::path& path,
                                                                   std::uint32_t mode) {
  DROVER_TRY(step("create", path));
  DROVER_ASSIGN(auto inner, inner_.create_new(path, mode));
  return std::unique_ptr<WritableFile>(
      std::make_unique<FaultyWritable>(*this, std::move(inner), path));
}

Status FaultyFilesystem::symlink(const std::string& target, const fs::path& link) {
  DROVER_TRY(step("symlink", link));
  return inner_.symlink(target, link);
}

Status FaultyFilesystem::rename(const fs::path& from, const fs::path& to) {
  DROVER_TRY(step("rename", from));
  return inner_.rename(from, to);
}

Status FaultyFilesystem::rename_noreplace(const fs::path& from, const fs::path& to) {
  DROVER_TRY(step("rename", from));
  return inner_.rename_noreplace(from, to);
}

Status FaultyFilesystem::remove(const fs::path& path) {
  DROVER_TRY(step("remove", path));
  return inner_.remove(path);
}

Status FaultyFilesystem::make_dirs(const fs::path& path) {
  DROVER_TRY(step("make_dirs", path));
  return inner_.make_dirs(path);
}

Status FaultyFilesystem::set_access(const fs::path& path, std::uint32_t mode,
                                    std::optional<std::uint32_t> group) {
  DROVER_TRY(step("set_access", path));
  return inner_.set_access(path, mode, group);
}

Status FaultyFilesystem::sync_dir(const fs::path& path) {
  DROVER_TRY(step("sync_dir", path));
  return inner_.sync_dir(path);
}

Status FaultyFilesystem::sync_file(const fs::path& path) {
  DROVER_TRY(step("sync_file", path));
  return inner_.sync_file(path);
}

}  // namespace drover
