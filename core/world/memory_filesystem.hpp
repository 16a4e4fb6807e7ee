// A Filesystem held in memory that knows what a crash would keep: the fake
// for tests and for a whole-system simulation that crashes processes.
//
// It tracks two states. The live state is what callers see, as with
// PosixFilesystem. The durable state is what stable storage holds:
//   - a file's bytes become durable when the file is synced
//     (WritableFile::sync, or sync_file on its path);
//   - a directory's entries (what create_new, symlink, make_dirs, rename and remove
//     changed in it) become durable when the directory is synced (sync_dir,
//     or sync_file on it). A rename between two directories needs both synced.
// crash() drops everything else and returns to the durable state: a file
// written but never synced is empty, if its entry survived at all; a rename
// or remove whose directory was not synced is undone. This is the strict
// reading of POSIX: real filesystems often keep more, never less.
//
// Errors carry the same codes and messages as PosixFilesystem's (the
// conformance test in core/tests/world_test.cpp runs both). Paths are
// absolute; a relative path is taken from the root. Symlinks are made, read
// and listed but never followed (a path through one is ENOTDIR; opening one
// is refused, as O_NOFOLLOW would); FIFOs and the other special files do not
// exist here. Directories are made with mode 0755; set_access changes modes
// and keeps no groups.
//
// Thread-safe: one mutex guards the tree. Files opened before a crash() fail
// every later operation, as the process that held them is gone; they may
// outlive the MemoryFilesystem.
#pragma once

#include <cstdint>
#include <memory>

#include "core/world/filesystem.hpp"

namespace drover {

class MemoryFilesystem final : public Filesystem {
 public:
  MemoryFilesystem();
  ~MemoryFilesystem() override;

  Result<FileInfo> lstat(const fs::path& path) override;
  Result<std::vector<std::string>> list_dir(const fs::path& path) override;
  Result<std::string> read_link(const fs::path& path) override;
  Status symlink(const std::string& target, const fs::path& link) override;
  Result<std::unique_ptr<ReadableFile>> open_read(const fs::path& path) override;
  Result<std::unique_ptr<WritableFile>> create_new(const fs::path& path,
                                                   std::uint32_t mode) override;
  Status rename(const fs::path& from, const fs::path& to) override;
  Status rename_noreplace(const fs::path& from, const fs::path& to) override;
  Status remove(const fs::path& path) override;
  Status make_dirs(const fs::path& path) override;
  Status sync_dir(const fs::path& path) override;
  Status sync_file(const fs::path& path) override;
  // Keeps the mode (directories included); groups are not kept.
  Status set_access(const fs::path& path, std::uint32_t mode,
                    std::optional<std::uint32_t> group) override;

  // Loses every write that was not made durable (see above).
  void crash();
  // Makes the whole live state durable, as if every file and directory had
  // been synced: for a test's setup.
  void sync_all();

  struct State;  // the tree and its lock, shared with open files

 private:
  std::shared_ptr<State> state_;
};

}  // namespace drover
