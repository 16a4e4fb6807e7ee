// Process supervision with real child processes (sh): restarts with backoff,
// crash loops, adoption after an agent restart, stopping with a drain that hangs.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <thread>

#include "agent/releases.hpp"
#include "agent/supervisor.hpp"
#include "tests/support/test_support.hpp"

namespace drover::agent {
namespace {

using drover::testing::TempDir;
using namespace std::chrono_literals;

using drover::testing::eventually;

PosixFilesystem posix_fs;

ProcessSpec shell(const std::string& script, const TempDir& dir) {
  return {{"/bin/sh", "-c", script}, dir.path(), {{"GREETING", "hi"}}, dir / "out.log", {}};
}

SupervisorOptions quick() {
  SupervisorOptions o;
  o.first_backoff = 10ms;
  o.max_backoff = 40ms;
  o.crash_loop_exits = 3;
  o.crash_loop_window = 10s;
  o.poll = 5ms;
  return o;
}

TEST(Supervisor, RestartsACrashingProcessAndCallsItACrashLoop) {
  TempDir dir;
  std::atomic<int> loops{0};
  Supervisor sup("svc", dir / "svc.pid", quick(), posix_fs, Logger::discard(),
                 [&](RunState s, const std::string&) { loops += s == RunState::crash_loop; });
  ASSERT_TRUE(sup.run(shell("echo $GREETING >> runs; exit 3", dir), "r1").ok());
  ASSERT_TRUE(eventually([&] { return sup.state() == RunState::crash_loop; }));
  EXPECT_GE(sup.exits(), 3);
  EXPECT_EQ(loops.load(), 1);                                      // announced once
  EXPECT_GE(drover::testing::read_file(dir / "runs").size(), 9u);  // "hi\n" per run
  sup.stop({}, 1s);
  EXPECT_EQ(sup.state(), RunState::stopped);
}

TEST(Supervisor, AdoptsTheProcessAnEarlierAgentLeftRunning) {
  TempDir dir;
  pid_t pid;
  {
    Supervisor first("svc", dir / "svc.pid", quick(), posix_fs, Logger::discard(), {});
    ASSERT_TRUE(first.run(shell("exec sleep 60", dir), "r1").ok());
    pid = first.pid();
  }  // the agent goes; the process stays
  ASSERT_EQ(::kill(pid, 0), 0);
  Supervisor second("svc", dir / "svc.pid", quick(), posix_fs, Logger::discard(), {});
  ASSERT_TRUE(second.run(shell("exec sleep 60", dir), "r1").ok());
  EXPECT_EQ(second.pid(), pid);
  // Asked for another release, it replaces the stale process instead.
  Supervisor third("svc", dir / "svc.pid", quick(), posix_fs, Logger::discard(), {});
  ASSERT_TRUE(third.run(shell("exec sleep 60", dir), "r2").ok());
  EXPECT_NE(third.pid(), pid);
  EXPECT_TRUE(eventually([&] { return process_start_ticks(pid) == 0; }));
  third.stop({}, 1s);
  ::kill(pid, SIGKILL);
}

// No timer while a service runs: an exit wakes the monitor through the
// process's pidfd, for its own child and for an adopted process alike (the
// poll interval here is an hour, so only the kernel's notice can wake it).
TEST(Supervisor, AnExitIsNoticedAtOnceWithoutPolling) {
  TempDir dir;
  SupervisorOptions o = quick();
  o.poll = std::chrono::hours(1);
  pid_t pid;
  {
    Supervisor own("svc", dir / "svc.pid", o, posix_fs, Logger::discard(), {});
    ASSERT_TRUE(own.run(shell("exec sleep 60", dir), "r1").ok());
    const pid_t first = own.pid();
    ASSERT_EQ(::kill(first, SIGKILL), 0);
    ASSERT_TRUE(eventually([&] { return own.exits() == 1 && own.state() == RunState::running; }));
    EXPECT_NE(own.pid(), first);  // restarted after its backoff
    pid = own.pid();
  }  // the agent goes; the process stays
  Supervisor adopter("svc", dir / "svc.pid", o, posix_fs, Logger::discard(), {});
  ASSERT_TRUE(adopter.run(shell("exec sleep 60", dir), "r1").ok());
  ASSERT_EQ(adopter.pid(), pid);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_TRUE(eventually([&] { return adopter.exits() == 1; }));
  EXPECT_TRUE(eventually([&] { return adopter.state() == RunState::running; }));
  EXPECT_NE(adopter.pid(), pid);
  adopter.stop({}, 1s);
}

TEST(Supervisor, StopBoundsAHangingDrainAndKillsWhatIgnoresSigterm) {
  TempDir dir;
  Supervisor sup("svc", dir / "svc.pid", quick(), posix_fs, Logger::discard(), {});
  ASSERT_TRUE(sup.run(shell("trap '' TERM; while :; do sleep 0.05; done", dir), "r1").ok());
  const pid_t pid = sup.pid();
  const auto started = std::chrono::steady_clock::now();
  sup.stop({"/bin/sleep", "30"}, 500ms);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
  EXPECT_TRUE(eventually([&] { return process_start_ticks(pid) == 0; }));
  EXPECT_FALSE(fs::exists(dir / "svc.pid"));
}

TEST(Supervisor, ACommandThatCannotStartIsAnError) {
  TempDir dir;
  Supervisor sup("svc", dir / "svc.pid", quick(), posix_fs, Logger::discard(), {});
  auto st = sup.run({{"/nonexistent/server"}, dir.path(), {}, {}, {}}, "r1");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("/nonexistent/server"), std::string::npos);
  auto hung = run_command({{"/bin/sleep", "30"}, dir.path(), {}, {}, {}}, 100ms);
  ASSERT_FALSE(hung.ok());
  EXPECT_EQ(hung.error().code, Errc::timeout);
}

TEST(Hooks, ConfigWinsOverTheArtifactAndPlaceholdersAreFilled) {
  TempDir dir;
  drover::testing::write_file(
      dir / "drover-service.json",
      R"({"format":"drover.service.v1","start":["bin/server","--port","{port}"],)"
      R"("health":"http://127.0.0.1:{port}/health","stop_timeout_s":7})");
  auto h = resolve_hooks(posix_fs, {}, dir.path(), 8080, "/run/flags.json");
  ASSERT_TRUE(h.ok()) << h.error().message;
  EXPECT_EQ(h->start[0], (dir / "bin/server").string());
  EXPECT_EQ(h->start[2], "8080");
  EXPECT_EQ(h->health, "http://127.0.0.1:8080/health");
  EXPECT_EQ(h->stop_timeout_s, 7);
  HookSources config;
  config.start = {"/usr/bin/env", "{flags}"};
  auto over = resolve_hooks(posix_fs, config, dir.path(), 1, "/run/flags.json");
  ASSERT_TRUE(over.ok());
  EXPECT_EQ(over->start[1], "/run/flags.json");
  drover::testing::write_file(dir / "drover-service.json",
                              R"({"format":"drover.service.v1","start":"rm -rf /"})");
  auto bad = resolve_hooks(posix_fs, {}, dir.path(), 1, "");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("'start'"), std::string::npos) << bad.error().message;
  TempDir empty;
  EXPECT_FALSE(resolve_hooks(posix_fs, {}, empty.path(), 1, "").ok());
}

TEST(Releases, LinksAreReplacedWholeAndLeftoversCleaned) {
  TempDir dir;
  SeededRandom rnd(1);
  ReleaseDir releases(dir.path(), posix_fs, rnd);
  const ContentId a = ContentId::of("a"), b = ContentId::of("b");
  fs::create_directories(dir / a.hex());
  fs::create_directories(dir / b.hex());
  EXPECT_FALSE(releases.link("current"));
  ASSERT_TRUE(releases.set_link("current", a).ok());
  EXPECT_EQ(*releases.link("current"), a);
  ASSERT_TRUE(releases.set_link("current", b).ok());
  EXPECT_EQ(*releases.link("current"), b);
  // Not a release: refused, and the link is unchanged.
  EXPECT_FALSE(releases.set_link("current", ContentId::of("c")).ok());
  EXPECT_EQ(*releases.link("current"), b);
  fs::create_directories(dir / ("." + a.hex() + ".staging-0011"));
  fs::create_symlink("x", dir / ".current.tmp-99");
  releases.clean_leftovers();
  EXPECT_EQ(releases.list().size(), 2u);
  EXPECT_FALSE(fs::exists(dir / ("." + a.hex() + ".staging-0011")));
  EXPECT_FALSE(fs::is_symlink(dir / ".current.tmp-99"));
  EXPECT_EQ(releases.remove_all_but({b.str()}), 1u);
  EXPECT_FALSE(releases.has(a));
  EXPECT_TRUE(releases.has(b));
}

}  // namespace
}  // namespace drover::agent
