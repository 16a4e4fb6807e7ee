// The harness drover's tests and benchmarks share (library drover_harness,
// with drover_harness_artifacts, _tls and _fleet beside it in tests/support):
// temporary directories, tree building and comparison, and running the
// drover binaries as real subprocesses.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace drover::testing {

namespace fs = std::filesystem;

// A fresh directory under $TMPDIR (or /tmp), removed with its content on
// destruction. Unique per instance, so tests can run in parallel.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const fs::path& p) const { return path_ / p; }

 private:
  fs::path path_;
};

// Writes content to path (creating parents) with the given mode.
void write_file(const fs::path& path, const std::string& content, unsigned mode = 0644);
std::string read_file(const fs::path& path);

// One entry of a tree as seen by lstat, for comparing trees.
struct TreeEntry {
  char type = '?';  // 'f' file, 'd' dir, 'l' symlink
  unsigned mode = 0;
  std::string content;  // file content or symlink target
  friend bool operator==(const TreeEntry&, const TreeEntry&) = default;
};
// Every entry below root, keyed by raw relative path.
std::map<std::string, TreeEntry> snapshot(const fs::path& root);
// A readable description of how two snapshots differ ("" when equal).
std::string diff(const std::map<std::string, TreeEntry>& a,
                 const std::map<std::string, TreeEntry>& b);

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string out, err;
  double cpu_seconds = 0;  // user + system time of the process
  double wall_seconds = 0;
};

// A TCP port on 127.0.0.1 that was free a moment ago, for a program that
// must be told its port rather than choose one. Drawn at random from below
// the kernel's ephemeral range, so no socket bound to port 0 can take it first.
std::uint16_t free_port();

// Claims port for this process among all test processes of the machine (an
// exclusive flock on /tmp/drover-test-ports/PORT, held until the process
// exits); false if any process, this one included, claimed it already.
// free_port hands out only ports it could claim: tests run in parallel
// (ctest -j) drew the same port now and then, and a daemon failed to bind.
bool claim_port(std::uint16_t port);

// Polls cond every 20 ms until it holds (true) or the timeout passes (false):
// how tests wait for something another process or thread does.
bool eventually(const std::function<bool()>& cond,
                std::chrono::milliseconds timeout = std::chrono::seconds(20));

// User + system CPU seconds a process has used so far (from /proc), 0 if gone.
double process_cpu_seconds(int pid);

// True when this run promised root and network namespaces
// (DROVER_PRIVILEGED_TESTS=required, which tools/test.sh sets: it runs as
// root), so a test needing them fails where it would otherwise skip.
bool privileged_tests_required();

// Skips the test for want of `why` (root, network namespaces), or fails it
// when the run promised them. Use in a test body or SetUp (gtest macros).
#define DROVER_SKIP_UNPRIVILEGED(why)                                                  \
  do {                                                                                 \
    if (::drover::testing::privileged_tests_required()) {                              \
      FAIL() << (why) << " (DROVER_PRIVILEGED_TESTS=required: this run must have it)"; \
    }                                                                                  \
    GTEST_SKIP() << (why);                                                             \
  } while (false)

// Path of a built binary: $DROVER_BIN_DIR/name (set by CTest).
fs::path binary(const std::string& name);

// Runs argv to completion, capturing stdout and stderr; kills it if it runs
// past timeout (then signal is SIGKILL).
ProcessResult run(const std::vector<std::string>& argv,
                  std::chrono::milliseconds timeout = std::chrono::seconds(120),
                  const std::map<std::string, std::string>& env = {});

// Runs argv on a pseudo-terminal of columns x 40 (TERM=xterm), as a person
// at a terminal would, to completion or the timeout; out holds everything it
// wrote to the terminal (stdout and stderr both), escape sequences included.
ProcessResult run_on_terminal(const std::vector<std::string>& argv,
                              std::chrono::milliseconds timeout,
                              const std::map<std::string, std::string>& env = {},
                              unsigned short columns = 120);

// Starts argv, waits `after`, then sends SIGKILL (if it is still running) and
// reaps it. Used to interrupt a process at an arbitrary point.
ProcessResult run_and_kill(const std::vector<std::string>& argv, std::chrono::microseconds after);

}  // namespace drover::testing
