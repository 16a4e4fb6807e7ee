// API tokens: shown once, stored as hashes, roles ordered, revocation.
#include <gtest/gtest.h>

#include "coordinator/access/tokens.hpp"
#include "coordinator/store/lmdb_coordinator_store.hpp"
#include "core/hash/sha256.hpp"
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
  EXPECT_EQ(who->person, "alice");  // no person given: the name
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

// Four eyes count persons, not tokens: each token names the person it
// belongs to, and one person may hold several.
TEST(Tokens, ATokenCarriesItsPersonToTheCallerAndTheList) {
  TempDir dir;
  auto store = LmdbCoordinatorStore::open(dir.path()).value();
  TokenStore tokens(*store);
  SeededRandom rnd(2);
  auto laptop = tokens.create("ann-laptop", Role::approver, 1, rnd, std::string("ann"));
  ASSERT_TRUE(laptop.ok()) << laptop.error().message;
  auto ci = tokens.create("ann-ci", Role::deployer, 2, rnd, std::string("ann"));
  ASSERT_TRUE(ci.ok()) << ci.error().message;
  auto bob = tokens.create("bob", Role::viewer, 3, rnd);
  ASSERT_TRUE(bob.ok()) << bob.error().message;

  // The caller of a request is resolved from its token: name, role, person.
  auto from_laptop = tokens.authenticate(*laptop).value();
  auto from_ci = tokens.authenticate(*ci).value();
  EXPECT_EQ(from_laptop.name, "ann-laptop");
  EXPECT_EQ(from_laptop.role, Role::approver);
  EXPECT_EQ(from_laptop.person, "ann");
  EXPECT_EQ(from_ci.name, "ann-ci");
  EXPECT_EQ(from_ci.person, "ann");
  EXPECT_EQ(tokens.authenticate(*bob).value().person, "bob");

  auto listed = tokens.list();
  ASSERT_TRUE(listed.ok()) << listed.error().message;
  ASSERT_EQ(listed->size(), 3u);
  EXPECT_EQ((*listed)[0].name, "ann-ci");
  EXPECT_EQ((*listed)[0].person, "ann");
  EXPECT_EQ((*listed)[1].name, "ann-laptop");
  EXPECT_EQ((*listed)[1].person, "ann");
  EXPECT_EQ((*listed)[2].name, "bob");
  EXPECT_EQ((*listed)[2].person, "bob");

  // Names stay unique even for one person.
  EXPECT_EQ(tokens.create("ann-ci", Role::viewer, 4, rnd, std::string("ann")).error().code,
            Errc::already_exists);
}

TEST(Tokens, APersonOutsideTheNameRuleIsRefusedNamingTheField) {
  TempDir dir;
  auto store = LmdbCoordinatorStore::open(dir.path()).value();
  TokenStore tokens(*store);
  SeededRandom rnd(3);
  for (const std::string& bad :
       {std::string(), std::string("ann smith"), std::string("ann\nroot"), std::string("-ann"),
        std::string("../ann"), std::string(129, 'a')}) {
    auto t = tokens.create("t", Role::viewer, 1, rnd, bad);
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.error().code, Errc::invalid_argument) << bad;
    EXPECT_EQ(t.error().message.rfind("person", 0), 0u) << t.error().message;
  }
  EXPECT_TRUE(tokens.list().value().empty());  // nothing stored
}

// Tokens stored before tokens had persons: {"name","role","created_at"}.
TEST(Tokens, ARecordWithoutAPersonReadsAsItsNamesPerson) {
  TempDir dir;
  auto store = LmdbCoordinatorStore::open(dir.path()).value();
  const std::string old_token = "drv_" + std::string(43, 'o');
  {
    const kv::Table table = store->kv().table("api_tokens").value();
    auto txn = store->kv().begin_write().value();
    ASSERT_TRUE(txn->put(table, ContentId::of(old_token).hex(),
                         R"({"name":"olga","role":"approver","created_at":5})")
                    .ok());
    ASSERT_TRUE(txn->commit().ok());
  }
  TokenStore tokens(*store);
  auto who = tokens.authenticate(old_token);
  ASSERT_TRUE(who.ok()) << who.error().message;
  EXPECT_EQ(who->name, "olga");
  EXPECT_EQ(who->role, Role::approver);
  EXPECT_EQ(who->person, "olga");
  auto listed = tokens.list().value();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].person, "olga");
  EXPECT_EQ(listed[0].created_at, 5);
  auto stored = store->api_token(ContentId::of(old_token).hex()).value();
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->person, "olga");
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
