// core/daemon/data_dir_lock: one claim per directory, across descriptors and
// processes; released when the holder lets go or dies; never inherited by a
// program the holder starts.
#include "core/daemon/data_dir_lock.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>

#include "tests/support/test_support.hpp"

extern char** environ;

namespace drover::daemon {
namespace {

using drover::testing::TempDir;

// Whether a child process could claim dir: its exit code says (0 yes, 3 refused, 4 other).
int claim_in_child(const std::filesystem::path& dir) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    auto lock = DataDirLock::acquire(dir, "test-daemon");
    ::_exit(lock.ok() ? 0 : lock.error().code == Errc::refused ? 3 : 4);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(DataDirLock, ClaimsADirectoryOnceAndSaysWhoHoldsIt) {
  TempDir tmp;
  const auto dir = tmp / "state" / "deeper";  // created by the claim
  std::optional<DataDirLock> held;
  {
    auto lock = DataDirLock::acquire(dir, "test-daemon");
    ASSERT_TRUE(lock.ok()) << lock.error().message;
    held.emplace(std::move(*lock));
  }
  EXPECT_EQ(held->path(), dir / "daemon.lock");
  EXPECT_EQ(drover::testing::read_file(dir / "daemon.lock"), std::to_string(::getpid()) + "\n");

  // Another descriptor in this process, and another process: both refused.
  auto again = DataDirLock::acquire(dir, "test-daemon");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::refused);
  const std::string& m = again.error().message;
  EXPECT_NE(m.find("in use by another test-daemon (pid " + std::to_string(::getpid()) + ")"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find(dir.string()), std::string::npos) << m;
  EXPECT_EQ(claim_in_child(dir), 3);

  // Let go: the next claim succeeds, and the file (kept) names the new holder.
  held.reset();
  EXPECT_EQ(claim_in_child(dir), 0);
  auto next = DataDirLock::acquire(dir, "test-daemon");
  EXPECT_TRUE(next.ok());
}

TEST(DataDirLock, AHolderThatDiesReleasesIt) {
  TempDir tmp;
  int ready[2], hold[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(hold), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    auto lock = DataDirLock::acquire(tmp.path(), "test-daemon");
    const char c = lock.ok() ? 'y' : 'n';
    (void)!::write(ready[1], &c, 1);
    char wait;
    (void)!::read(hold[0], &wait, 1);  // until killed
    ::_exit(0);
  }
  ::close(ready[1]);
  ::close(hold[0]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  auto refused = DataDirLock::acquire(tmp.path(), "test-daemon");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("pid " + std::to_string(child)), std::string::npos)
      << refused.error().message;

  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  auto after = DataDirLock::acquire(tmp.path(), "test-daemon");
  EXPECT_TRUE(after.ok()) << after.error().message;
  ::close(ready[0]);
  ::close(hold[1]);
}

// An agent's services outlive it; had they inherited the claim, no agent
// could start again while they run.
TEST(DataDirLock, ProgramsTheHolderStartsDoNotInheritIt) {
  TempDir tmp;
  std::optional<DataDirLock> held;
  {
    auto lock = DataDirLock::acquire(tmp.path(), "test-daemon");
    ASSERT_TRUE(lock.ok());
    held.emplace(std::move(*lock));
  }
  int in[2];
  ASSERT_EQ(::pipe(in), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_addclose(&actions, in[1]);
  pid_t cat = -1;
  char arg0[] = "cat";
  char* argv[] = {arg0, nullptr};
  ASSERT_EQ(posix_spawnp(&cat, "cat", &actions, nullptr, argv, environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);

  held.reset();  // cat still runs, reading its stdin
  auto next = DataDirLock::acquire(tmp.path(), "test-daemon");
  EXPECT_TRUE(next.ok()) << next.error().message;

  ::close(in[1]);  // cat sees the end of its input and exits
  ::waitpid(cat, nullptr, 0);
}

TEST(DataDirLock, AnUnusableDirectoryIsAnIoError) {
  TempDir tmp;
  drover::testing::write_file(tmp / "file", "not a directory");
  auto lock = DataDirLock::acquire(tmp / "file", "test-daemon");
  ASSERT_FALSE(lock.ok());
  EXPECT_EQ(lock.error().code, Errc::io);
  EXPECT_NE(lock.error().message.find((tmp / "file").string()), std::string::npos);
}

}  // namespace
}  // namespace drover::daemon
