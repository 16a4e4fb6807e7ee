#include <gtest/gtest.h>

#include "core/log/log.hpp"
#include "core/world/filesystem.hpp"
#include "core/world/random.hpp"
#include "core/world/timers.hpp"
#include "tests/support/test_support.hpp"

#include <sys/stat.h>

namespace drover {
namespace {

using namespace std::chrono_literals;
using drover::testing::TempDir;

TEST(VirtualTimers, RunInDeadlineOrderAtTheirOwnTime) {
  ManualClock clock;
  VirtualTimers timers(clock);
  const SteadyTime start = clock.steady();
  std::vector<std::pair<int, std::chrono::milliseconds>> ran;
  auto record = [&](int id) {
    return [&, id] {
      ran.emplace_back(
          id, std::chrono::duration_cast<std::chrono::milliseconds>(clock.steady() - start));
    };
  };
  timers.call_after(30ms, record(3));
  timers.call_after(10ms, record(1));
  TimerId cancelled = timers.call_after(20ms, record(99));
  timers.call_after(10ms, record(2));  // same deadline: after the earlier one
  EXPECT_TRUE(timers.cancel(cancelled));
  EXPECT_FALSE(timers.cancel(cancelled));
  EXPECT_EQ(timers.advance(25ms), 2u);
  EXPECT_EQ(clock.steady() - start, 25ms);
  // A timer scheduled from a callback runs in the same advance if due.
  timers.call_after(1ms, [&] { timers.call_after(1ms, record(4)); });
  EXPECT_EQ(timers.advance(100ms), 3u);
  ASSERT_EQ(ran.size(), 4u);
  EXPECT_EQ(ran[0], std::make_pair(1, 10ms));
  EXPECT_EQ(ran[1], std::make_pair(2, 10ms));
  EXPECT_EQ(ran[2], std::make_pair(4, 27ms));
  EXPECT_EQ(ran[3], std::make_pair(3, 30ms));
  EXPECT_EQ(timers.pending(), 0u);
}

TEST(SeededRandom, SameSeedSameStreamAndUniformIsInRange) {
  SeededRandom a(42), b(42), c(43);
  EXPECT_EQ(a.bytes(100), b.bytes(100));
  EXPECT_NE(a.bytes(100), c.bytes(100));
  std::vector<int> counts(7, 0);
  for (int i = 0; i < 7000; ++i) ++counts[a.uniform(7)];
  for (int n : counts) EXPECT_GT(n, 800);  // roughly uniform
}

TEST(Filesystem, WriteAtomicReplacesWholeFiles) {
  TempDir dir;
  PosixFilesystem fs;
  ASSERT_TRUE(fs.write_atomic(dir / "f", dir / "f.tmp", "one", 0640).ok());
  ASSERT_TRUE(fs.write_atomic(dir / "f", dir / "f.tmp", "two", 0640).ok());
  EXPECT_EQ(*fs.read_file(dir / "f", 100), "two");
  EXPECT_EQ(fs.lstat(dir / "f")->mode, 0640u);
  EXPECT_FALSE(*fs.exists(dir / "f.tmp"));
  EXPECT_EQ(fs.read_file(dir / "f", 2).error().code, Errc::refused);
  auto missing = fs.read_file(dir / "nope", 10);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, Errc::not_found);
  EXPECT_NE(missing.error().message.find("nope"), std::string::npos);
}

TEST(Filesystem, OpenReadRefusesAFifoWithoutBlocking) {
  TempDir dir;
  PosixFilesystem fs;
  ASSERT_EQ(::mkfifo((dir / "pipe").c_str(), 0644), 0);
  auto r = fs.open_read(dir / "pipe");  // would block forever without O_NONBLOCK
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("not a regular file"), std::string::npos);
}

TEST(Filesystem, WriteAtomicWithoutReplaceRefusesAnExistingFile) {
  TempDir dir;
  PosixFilesystem fs;
  ASSERT_TRUE(fs.write_atomic(dir / "f", dir / "f.tmp", "one", 0600, false).ok());
  auto again = fs.write_atomic(dir / "f", dir / "f.tmp", "two", 0600, false);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::already_exists);
  EXPECT_EQ(*fs.read_file(dir / "f", 10), "one");
  EXPECT_FALSE(*fs.exists(dir / "f.tmp"));
}

TEST(FaultyFilesystem, FailsEveryMutationFromTheNth) {
  TempDir dir;
  PosixFilesystem real;
  FaultyFilesystem faulty(real, 2);
  ASSERT_TRUE(faulty.make_dirs(dir / "a").ok());      // 1st
  auto f = faulty.create_new(dir / "a" / "x", 0644);  // 2nd
  ASSERT_TRUE(f.ok());
  auto st = (*f)->write("data");  // 3rd: fails
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("injected fault"), std::string::npos);
  EXPECT_TRUE(faulty.read_file(dir / "a" / "x", 10).ok());  // reads pass
  EXPECT_FALSE(faulty.rename(dir / "a" / "x", dir / "a" / "y").ok());
}

TEST(Logger, KeyValueLinesQuoteWhatNeedsQuoting) {
  MemorySink sink;
  ManualClock clock;
  Logger log(sink, clock, LogLevel::info);
  log.debug("hidden");
  log.info("store.push.done",
           {{"artifact", "sha256:ab"}, {"bytes", 42}, {"path", "a b\"c"}, {"ok", true}});
  auto lines = sink.lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0],
            "ts=2023-11-14T22:13:20.000Z level=info event=store.push.done artifact=sha256:ab "
            "bytes=42 path=\"a b\\\"c\" ok=true");
}

TEST(Logger, JsonLinesKeepNumbersAsNumbers) {
  MemorySink sink;
  ManualClock clock;
  Logger log(sink, clock, LogLevel::debug, LogFormat::json);
  log.warn("x", {{"n", 3}, {"s", "v"}});
  EXPECT_EQ(sink.lines().at(0),
            R"({"event":"x","level":"warn","n":3,"s":"v","ts":"2023-11-14T22:13:20.000Z"})");
}

}  // namespace
}  // namespace drover
