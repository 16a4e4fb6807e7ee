// API tokens: shown once, stored as hashes, roles ordered, revocation.
#include <gtest/gtest.h>

#include "coordinator/access/tokens.hpp"
#include "coordinator/store/lmdb_coordinator_store.hpp"
#include "tests/support/test_support.hpp"

namespace drover::coordinator {
namespace {

using drover::testing::TempDir;

TEST(Tokens, AuthenticateNamesTheCallerAndRole) {
  TempDir dir;
  auto store = LmdbCoordinatorStore::open(dir.path()).value();
  TokenStore tokens(*store);
  SeededRandom rnd(1);
  auto alice = tokens.create("alice", Role::deployer, 1, rnd);
  ASSERT_TRUE(alice.ok()) << alice.error().message;
  EXPECT_EQ(alice->rfind("drv_", 0), 0u);
  EXPECT_EQ(alice->size(), 4u + 43);
  auto who = tokens.authenticate(*alice);
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(who->name, "alice");
  EXPECT_EQ(who->role, Role::deployer);
  EXPECT_EQ(tokens.authenticate("drv_guess").error().code, Errc::refused);
  EXPECT_EQ(tokens.create("alice", Role::admin, 2, rnd).error().code, Errc::already_exists);
  // Only the hash is on disk.
  std::string all;
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    all += drover::testing::read_file(e.path());
  EXPECT_EQ(all.find(alice->substr(4)), std::string::npos);
  ASSERT_TRUE(tokens.revoke("alice").ok());
  EXPECT_EQ(tokens.authenticate(*alice).error().code, Errc::refused);
  EXPECT_EQ(tokens.revoke("alice").error().code, Errc::not_found);
}

TEST(Tokens, RolesAreOrdered) {
  EXPECT_TRUE(allows(Role::admin, Role::approver));
  EXPECT_TRUE(allows(Role::deployer, Role::viewer));
  EXPECT_FALSE(allows(Role::viewer, Role::deployer));
  EXPECT_FALSE(allows(Role::deployer, Role::approver));
  EXPECT_EQ(*parse_role("approver"), Role::approver);
  EXPECT_FALSE(parse_role("root").ok());
}

}  // namespace
}  // namespace drover::coordinator
