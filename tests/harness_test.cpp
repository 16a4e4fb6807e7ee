// The harness's own guarantees that tests lean on.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>

#include "tests/support/test_support.hpp"

namespace drover::testing {
namespace {

// A port free_port handed out is never handed out again: not to this
// process, and not to another test process running beside it.
TEST(FreePort, APortHandedOutIsClaimedAgainstThisProcessAndEveryOther) {
  std::set<std::uint16_t> mine;
  for (int i = 0; i < 200; ++i) mine.insert(free_port());
  EXPECT_EQ(mine.size(), 200u);
  for (std::uint16_t p : mine) EXPECT_FALSE(claim_port(p)) << p;
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // another process: none of the parent's ports
    int taken = 0;
    for (std::uint16_t p : mine) taken += claim_port(p) ? 1 : 0;
    const char verdict = taken == 0 ? 'y' : 'n';
    (void)!::write(out[1], &verdict, 1);
    ::_exit(0);
  }
  ::close(out[1]);
  char verdict = 0;
  EXPECT_EQ(::read(out[0], &verdict, 1), 1);
  ::close(out[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_EQ(verdict, 'y') << "another process claimed a port this one holds";
}

}  // namespace
}  // namespace drover::testing
