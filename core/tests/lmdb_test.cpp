#include <gtest/gtest.h>
#include <sys/stat.h>

#include "core/lmdb/lmdb.hpp"
#include "tests/support/test_support.hpp"

namespace drover::lmdb {
namespace {

using drover::testing::TempDir;

TEST(Lmdb, CommittedWritesSurviveReopenAbortedOnesDoNot) {
  TempDir dir;
  {
    auto env = Env::open(dir.path(), {.map_size = 1 << 20});
    ASSERT_TRUE(env.ok()) << env.error().message;
    auto t = (*env)->table("things");
    ASSERT_TRUE(t.ok());
    {
      auto txn = (*env)->begin_write();
      ASSERT_TRUE(txn->put(*t, "a", "1").ok());
      ASSERT_TRUE(txn->commit().ok());
    }
    {
      auto txn = (*env)->begin_write();
      ASSERT_TRUE(txn->put(*t, "b", "2").ok());
      // Destroyed without commit: aborted.
    }
  }
  auto env = Env::open(dir.path(), {.map_size = 1 << 20});
  ASSERT_TRUE(env.ok());
  auto t = (*env)->table("things");
  auto txn = (*env)->begin_read();
  EXPECT_EQ(txn->get(*t, "a")->value_or("?"), "1");
  EXPECT_FALSE(txn->get(*t, "b")->has_value());
}

TEST(Lmdb, CursorWalksInByteOrderAndSeeks) {
  TempDir dir;
  auto env = Env::open(dir.path(), {.map_size = 1 << 20});
  auto t = (*env)->table("t");
  {
    auto txn = (*env)->begin_write();
    for (std::string k : {"b", "a", "c\xff", "c\x01"}) ASSERT_TRUE(txn->put(*t, k, k).ok());
    ASSERT_TRUE(txn->commit().ok());
  }
  auto txn = (*env)->begin_read();
  auto cur = txn->cursor(*t);
  ASSERT_TRUE(cur.ok());
  std::vector<std::string> keys;
  for (auto more = cur->first(); *more; more = cur->next()) keys.emplace_back(cur->key());
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "b", "c\x01", "c\xff"}));
  ASSERT_TRUE(*cur->seek("bb"));
  EXPECT_EQ(cur->key(), "c\x01");
  EXPECT_FALSE(*cur->seek("d"));
}

TEST(Lmdb, PutNewAndEraseReportWhatHappened) {
  TempDir dir;
  auto env = Env::open(dir.path(), {.map_size = 1 << 20});
  auto t = (*env)->table("t");
  auto txn = (*env)->begin_write();
  EXPECT_TRUE(*txn->put_new(*t, "k", "v1"));
  EXPECT_FALSE(*txn->put_new(*t, "k", "v2"));
  EXPECT_EQ(txn->get(*t, "k")->value(), "v1");
  EXPECT_TRUE(*txn->erase(*t, "k"));
  EXPECT_FALSE(*txn->erase(*t, "k"));
}

TEST(Lmdb, FullMapIsAnErrorThatSaysWhatToDo) {
  TempDir dir;
  auto env = Env::open(dir.path(), {.map_size = 64 * 1024});
  auto t = (*env)->table("t");
  auto txn = (*env)->begin_write();
  Status last;
  for (int i = 0; i < 1000 && last.ok(); ++i) {
    last = txn->put(*t, "key" + std::to_string(i), std::string(1000, 'x'));
  }
  ASSERT_FALSE(last.ok());
  EXPECT_NE(last.error().message.find("raise it"), std::string::npos);
}

TEST(Lmdb, TheEnvironmentIsPrivateItsDirectory0700ItsFiles0600) {
  TempDir dir;
  const auto db = dir.path() / "db";
  auto mode = [](const std::filesystem::path& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 ? st.st_mode & 07777 : 07777u;
  };
  {
    auto env = Env::open(db, {.map_size = 1 << 20});
    ASSERT_TRUE(env.ok()) << env.error().message;
  }
  EXPECT_EQ(mode(db), 0700u);
  EXPECT_EQ(mode(db / "data.mdb"), 0600u);
  EXPECT_EQ(mode(db / "lock.mdb"), 0600u);
  // One made before the rule (world-readable) is made private when opened.
  ::chmod(db.c_str(), 0755);
  ::chmod((db / "data.mdb").c_str(), 0644);
  ::chmod((db / "lock.mdb").c_str(), 0644);
  {
    auto env = Env::open(db, {.map_size = 1 << 20});
    ASSERT_TRUE(env.ok()) << env.error().message;
  }
  EXPECT_EQ(mode(db), 0700u);
  EXPECT_EQ(mode(db / "data.mdb"), 0600u);
  EXPECT_EQ(mode(db / "lock.mdb"), 0600u);
}

TEST(Lmdb, MapSizeMustBeSet) {
  TempDir dir;
  auto env = Env::open(dir.path(), {});
  ASSERT_FALSE(env.ok());
  EXPECT_NE(env.error().message.find("map size"), std::string::npos);
}

}  // namespace
}  // namespace drover::lmdb
