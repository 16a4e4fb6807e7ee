#include "core/daemon/data_dir_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>

namespace drover::daemon {
namespace {

Error os_error(const std::string& what, const std::filesystem::path& path, int err) {
  return make_error(Errc::io, what + " " + path.string() + ": " + std::strerror(err));
}

// The pid the holder wrote, or "" when the file does not say (yet).
std::string holder_pid(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return "";
  std::string text(buf, static_cast<std::size_t>(n));
  const std::size_t end = text.find_first_not_of("0123456789");
  text = text.substr(0, end);
  return text;
}

}  // namespace

Result<DataDirLock> DataDirLock::acquire(const std::filesystem::path& dir,
                                         std::string_view daemon) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return make_error(Errc::io, "create data directory " + dir.string() + ": " + ec.message());
  }
  const std::filesystem::path path = dir / kFileName;
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return os_error("open", path, errno);
  DataDirLock lock(fd, path);  // closes fd on every return below
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) return os_error("lock", path, errno);
    const std::string pid = holder_pid(fd);
    return make_error(Errc::refused,
                      "the data directory " + dir.string() + " is in use by another " +
                          std::string(daemon) + (pid.empty() ? "" : " (pid " + pid + ")") +
                          ", which holds " + path.string() +
                          ": stop it first, or give this one a data directory of its own");
  }
  // The pid is for the message above only; the flock is the claim. A failed
  // write leaves the claim held and the message without a pid.
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) == 0) {
    (void)!::pwrite(fd, pid.data(), pid.size(), 0);
  }
  return lock;
}

DataDirLock::DataDirLock(DataDirLock&& other) noexcept
    : fd_(other.fd_), path_(std::move(other.path_)) {
  other.fd_ = -1;
}

DataDirLock& DataDirLock::operator=(DataDirLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    path_ = std::move(other.path_);
    other.fd_ = -1;
  }
  return *this;
}

DataDirLock::~DataDirLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

}  // namespace drover::daemon
