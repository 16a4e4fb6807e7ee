// A daemon's claim on its data directory: one drover-coordinator per
// coordinator data directory, one drover-agent per agent state directory.
// Two daemons on one directory would both believe they own its state (two
// drivers ticking the same deploys, two agents switching the same links),
// and LMDB, which lets several processes share a database, would not stop
// them.
//
// The claim is an exclusive flock(2) on DIR/daemon.lock, taken without
// waiting and held until the DataDirLock is destroyed or the process ends
// (the kernel drops it with the last descriptor, also on SIGKILL). The file
// holds the holder's pid, for the refusal's message; it is never removed
// (removing a lock file lets a third process lock a new file while the
// second still holds the old one). The descriptor is close-on-exec, so the
// processes a daemon starts (an agent's services) never inherit the claim.
//
// Only the daemons claim their directory. The commands an operator runs
// beside a running daemon (drover-coordinator token|join-token|audit) open
// the state without it, as LMDB allows.
//
// Threads: acquire from main() before the daemon starts its threads; the
// lock has no other operation.
#pragma once

#include <filesystem>
#include <string_view>

#include "core/base/result.hpp"

namespace drover::daemon {

class DataDirLock {
 public:
  static constexpr const char* kFileName = "daemon.lock";

  // Creates `dir` if it does not exist, then claims it for this process.
  // Errc::refused when another process holds the claim: the message names
  // the directory, the lock file, that other `daemon` and its pid (when the
  // file says it), and what to do. Errc::io when the file cannot be opened.
  static Result<DataDirLock> acquire(const std::filesystem::path& dir, std::string_view daemon);

  DataDirLock(DataDirLock&& other) noexcept;
  DataDirLock& operator=(DataDirLock&& other) noexcept;
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;
  ~DataDirLock();  // releases the claim

  const std::filesystem::path& path() const { return path_; }

 private:
  DataDirLock(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::filesystem::path path_;
};

}  // namespace drover::daemon
