// The filesystem operations that the store and the agent need, behind an
// interface. PosixFilesystem is the real one; FaultyFilesystem wraps another
// and fails on command, so tests can stop a multi-step write at every step;
// MemoryFilesystem (memory_filesystem.hpp) is the fake that can crash and
// keep only what was synced.
//
// Paths are std::filesystem::path, which holds raw bytes on Linux: names need
// not be UTF-8. Every error names the path and what the system said.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.hpp"

namespace drover {

namespace fs = std::filesystem;

enum class FileType {
  regular,
  directory,
  symlink,
  fifo,
  socket,
  char_device,
  block_device,
  unknown
};
const char* file_type_name(FileType type);

struct FileInfo {
  FileType type = FileType::unknown;
  std::uint32_t mode = 0;  // permission and set-id bits (st_mode & 07777)
  std::uint64_t size = 0;
  std::uint64_t links = 1;
};

class ReadableFile {
 public:
  virtual ~ReadableFile() = default;
  // Reads up to size bytes; returns 0 at end of file.
  virtual Result<std::size_t> read(void* out, std::size_t size) = 0;
  // What the open file is (fstat): checked on the descriptor, not the path.
  virtual Result<FileInfo> info() = 0;
};

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status write(std::string_view bytes) = 0;
  virtual Status sync() = 0;  // data and metadata on stable storage
  // Asks the kernel to start writing the data back now, without waiting, so
  // that a later sync finds little left to do. A hint: never fails.
  virtual void start_writeback() {}
  virtual Status close() = 0;
};

// Implementations are thread-safe: distinct files may be used from distinct threads.
class Filesystem {
 public:
  virtual ~Filesystem() = default;

  virtual Result<FileInfo> lstat(const fs::path& path) = 0;
  // Names in the directory (not "." or ".."), in no particular order.
  virtual Result<std::vector<std::string>> list_dir(const fs::path& path) = 0;
  virtual Result<std::string> read_link(const fs::path& path) = 0;
  // Opens a regular file for reading; refuses anything else (a FIFO swapped
  // in for a file never blocks the reader) and never follows a final symlink.
  virtual Result<std::unique_ptr<ReadableFile>> open_read(const fs::path& path) = 0;
  // Creates a new file; fails with already_exists if the path exists.
  virtual Result<std::unique_ptr<WritableFile>> create_new(const fs::path& path,
                                                           std::uint32_t mode) = 0;
  virtual Status rename(const fs::path& from, const fs::path& to) = 0;
  // Like rename, but fails with already_exists instead of replacing `to`.
  virtual Status rename_noreplace(const fs::path& from, const fs::path& to) = 0;
  virtual Status remove(const fs::path& path) = 0;  // a file, a link or an empty directory
  // Creates link as a symbolic link naming target; an existing link path is
  // an already_exists error. Durable once link's directory is synced.
  virtual Status symlink(const std::string& target, const fs::path& link) = 0;
  virtual Status make_dirs(const fs::path& path) = 0;
  virtual Status sync_dir(const fs::path& path) = 0;
  // Makes a file written and closed earlier durable (data and metadata).
  virtual Status sync_file(const fs::path& path) = 0;
  // Gives a file or directory (never a symlink: refused) the group, when
  // given, then the mode (permission bits). The agent running as root
  // shares releases and the flags file with a service's group. The default
  // refuses: a filesystem that cannot keep modes must say so.
  virtual Status set_access(const fs::path& path, std::uint32_t mode,
                            std::optional<std::uint32_t> group);

  // Helpers built on the operations above.
  Result<bool> exists(const fs::path& path);
  // Reads a whole file; refuses files larger than max_bytes.
  Result<std::string> read_file(const fs::path& path, std::uint64_t max_bytes);
  // Writes bytes to tmp, syncs, renames over path and syncs path's directory:
  // afterwards path holds either the old or the new content, never a mix.
  // With replace = false an existing path is an already_exists error, checked
  // atomically by the rename itself.
  // With a group, the temporary is given it (set_access) before the rename,
  // so no reader ever sees the file with another group.
  Status write_atomic(const fs::path& path, const fs::path& tmp, std::string_view bytes,
                      std::uint32_t mode, bool replace = true,
                      std::optional<std::uint32_t> group = std::nullopt);
  // write_atomic for a file that only this process writes (a daemon's own
  // state): the temporary is path + ".tmp", and one that a crash left
  // mid-write is removed first, so a kill at any step never blocks the next
  // write. Files with several writers need write_atomic with a temporary per
  // writer instead.
  Status write_owned(const fs::path& path, std::string_view bytes, std::uint32_t mode,
                     bool replace = true, std::optional<std::uint32_t> group = std::nullopt);
};

class PosixFilesystem final : public Filesystem {
 public:
  Result<FileInfo> lstat(const fs::path& path) override;
  Result<std::vector<std::string>> list_dir(const fs::path& path) override;
  Result<std::string> read_link(const fs::path& path) override;
  Result<std::unique_ptr<ReadableFile>> open_read(const fs::path& path) override;
  Result<std::unique_ptr<WritableFile>> create_new(const fs::path& path,
                                                   std::uint32_t mode) override;
  Status rename(const fs::path& from, const fs::path& to) override;
  Status rename_noreplace(const fs::path& from, const fs::path& to) override;
  Status remove(const fs::path& path) override;
  Status symlink(const std::string& target, const fs::path& link) override;
  Status make_dirs(const fs::path& path) override;
  Status sync_dir(const fs::path& path) override;
  Status sync_file(const fs::path& path) override;
  Status set_access(const fs::path& path, std::uint32_t mode,
                    std::optional<std::uint32_t> group) override;
};

// Forwards to another filesystem and fails every mutating operation (create,
// write, sync, close, rename, remove, symlink, make_dirs, sync_dir,
// sync_file) from the N-th on, as a crashed process would have stopped
// there (set_access too). Reads always pass.
class FaultyFilesystem final : public Filesystem {
 public:
  FaultyFilesystem(Filesystem& inner, std::uint64_t fail_from)
      : inner_(inner), fail_from_(fail_from) {}

  Result<FileInfo> lstat(const fs::path& path) override { return inner_.lstat(path); }
  Result<std::vector<std::string>> list_dir(const fs::path& path) override {
    return inner_.list_dir(path);
  }
  Result<std::string> read_link(const fs::path& path) override { return inner_.read_link(path); }
  Result<std::unique_ptr<ReadableFile>> open_read(const fs::path& path) override {
    return inner_.open_read(path);
  }
  Result<std::unique_ptr<WritableFile>> create_new(const fs::path& path,
                                                   std::uint32_t mode) override;
  Status rename(const fs::path& from, const fs::path& to) override;
  Status rename_noreplace(const fs::path& from, const fs::path& to) override;
  Status remove(const fs::path& path) override;
  Status symlink(const std::string& target, const fs::path& link) override;
  Status make_dirs(const fs::path& path) override;
  Status sync_dir(const fs::path& path) override;
  Status sync_file(const fs::path& path) override;
  Status set_access(const fs::path& path, std::uint32_t mode,
                    std::optional<std::uint32_t> group) override;

  // Counts one mutation; an error once the budget is spent. Thread-safe.
  Status step(const char* what, const fs::path& path);

 private:
  Filesystem& inner_;
  std::uint64_t fail_from_;
  std::uint64_t count_ = 0;
  std::mutex mu_;  // guards count_
};

// errno as an io Error: "<what> <path>: <strerror>".
Error errno_error(const char* what, const fs::path& path, int err);

}  // namespace drover
