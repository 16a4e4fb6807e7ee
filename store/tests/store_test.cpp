// The artifact store end to end through its library interface: round trips,
// determinism, deduplication, corruption, interrupted writes and gc.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "store/artifact_store.hpp"
#include "tests/support/test_support.hpp"
#include "tests/support/tree_gen.hpp"

namespace drover::store {
namespace {

using drover::testing::snapshot;
using drover::testing::TempDir;
using drover::testing::write_file;

class StoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<ArtifactStore> open(Filesystem& fsys) {
    auto s = ArtifactStore::open(dir_ / "store", fsys, clock_, random_, Logger::discard());
    EXPECT_TRUE(s.ok()) << s.error().message;
    return std::move(*s);
  }
  std::unique_ptr<ArtifactStore> open() { return open(fs_); }

  // A tree with every kind of entry the format carries.
  fs::path rich_tree(const std::string& name) {
    fs::path t = dir_ / name;
    write_file(t / "bin" / "app", "#!/bin/sh\necho hi\n", 0755);
    write_file(t / "etc" / "app.conf", "port=8080\n", 0640);
    write_file(t / "etc" / "secret", "s3cret", 0600);
    write_file(t / "share" / "big.bin", drover::testing::binary_bytes(5, 9 << 20), 0644);
    write_file(t / "share" / "text.txt", drover::testing::text_bytes(6, 300'000), 0444);
    write_file(t / "empty-file", "", 0644);
    write_file(t / "café" / "menü.txt", "unicode", 0644);
    write_file(t / std::string("latin1-\xe9\xff") / "x", "not utf-8", 0644);
    write_file(t / "percent%41", "percent", 0644);
    fs::create_directories(t / "empty-dir");
    fs::create_directories(t / "private");
    ::chmod((t / "private").c_str(), 0700);
    fs::create_directory_symlink("../etc", t / "bin" / "etc-link");
    fs::create_symlink("app", t / "bin" / "app-link");
    fs::create_symlink("missing/file", t / "dangling");
    return t;
  }

  PushResult push(ArtifactStore& s, const fs::path& tree, const std::string& sha = "0123abcd") {
    auto r = s.push(tree, PackInput{"checkout", sha, {{"build", "ci-1"}}});
    EXPECT_TRUE(r.ok()) << r.error().message;
    return std::move(*r);
  }

  TempDir dir_;
  PosixFilesystem fs_;
  ManualClock clock_;
  SeededRandom random_{5};
};

TEST_F(StoreTest, RoundTripKeepsContentModesLinksEmptyDirsAndOddNames) {
  auto store = open();
  fs::path tree = rich_tree("tree");
  PushResult pushed = push(*store, tree);
  EXPECT_FALSE(pushed.already_present);
  EXPECT_GT(pushed.new_bytes, 0u);
  auto stats = store->materialize(pushed.record.id, dir_ / "out");
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  EXPECT_EQ(drover::testing::diff(snapshot(tree), snapshot(dir_ / "out")), "");
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "out").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  // Nothing is left beside the destination.
  for (const auto& e : fs::directory_iterator(dir_.path())) {
    EXPECT_EQ(e.path().filename().string().find(".staging"), std::string::npos) << e.path();
  }
}

TEST_F(StoreTest, PackingIsDeterministicWhateverTheTimesAndCreationOrder) {
  auto store = open();
  fs::path a = rich_tree("a");
  // The same tree built in the opposite order, with other times.
  fs::path b = dir_ / "b";
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(a); it != fs::recursive_directory_iterator();
       ++it) {
    files.push_back(it->path().lexically_relative(a));
  }
  std::reverse(files.begin(), files.end());
  fs::create_directories(b);
  for (const auto& rel : files) {
    const fs::path from = a / rel, to = b / rel;
    fs::create_directories(to.parent_path());
    if (fs::is_symlink(from)) {
      fs::copy_symlink(from, to);
    } else if (fs::is_directory(from)) {
      fs::create_directories(to);
    } else {
      fs::copy_file(from, to);
    }
    if (!fs::is_symlink(from)) fs::permissions(to, fs::status(from).permissions());
  }
  for (const auto& rel : files) {
    if (!fs::is_symlink(b / rel))
      fs::last_write_time(b / rel, fs::file_time_type::clock::now() - std::chrono::hours(100));
  }
  ASSERT_EQ(drover::testing::diff(snapshot(a), snapshot(b)), "");
  PushResult pa = push(*store, a);
  PushResult pb = push(*store, b);
  EXPECT_EQ(pa.record.id, pb.record.id);
  EXPECT_TRUE(pb.already_present);
  EXPECT_EQ(pb.new_bytes, 0u);
  // Provenance is part of the id.
  EXPECT_NE(push(*store, a, "0123abce").record.id, pa.record.id);
}

TEST_F(StoreTest, OneChangedFileOfTwoThousandAddsASmallFraction) {
  auto store = open();
  drover::testing::TreeSpec spec;
  spec.small_files = 1950;
  spec.medium_files = 50;
  spec.dirs = 30;
  spec.seed = 8;
  fs::path tree = dir_ / "tree";
  auto gen = drover::testing::generate_tree(tree, spec);
  ASSERT_EQ(gen.files.size(), 2000u);
  PushResult v1 = push(*store, tree);
  drover::testing::change_file(tree / gen.files[1234], 77);
  PushResult v2 = push(*store, tree, "0123abce");
  ASSERT_NE(v1.record.id, v2.record.id);
  std::size_t shared = 0;
  for (const auto& l : v2.record.layers) {
    shared += std::count(v1.record.layers.begin(), v1.record.layers.end(), l);
  }
  // One file in one pack (and at most its neighbour) changes: the rest is shared.
  EXPECT_GE(shared + 2, v2.record.layers.size());
  EXPECT_LT(v2.new_bytes, v2.record.size_bytes / 4)
      << "v2 added " << v2.new_bytes << " of " << v2.record.size_bytes << " stored bytes";
  EXPECT_LT(v2.new_bytes, 2 * 4 * (1u << 20) + v2.record.manifest_size);
}

TEST_F(StoreTest, CorruptBlobIsCaughtByVerifyAndMaterialize) {
  auto store = open();
  PushResult pushed = push(*store, rich_tree("tree"));
  ASSERT_TRUE(store->verify(pushed.record.id)->problems.empty());
  // Flip one byte in the middle of the biggest layer.
  const auto& layers = pushed.manifest.layers;
  auto biggest = std::max_element(layers.begin(), layers.end(),
                                  [](const auto& x, const auto& y) { return x.size < y.size; });
  fs::path blob = store->blob_path(biggest->id);
  ::chmod(blob.c_str(), 0644);
  {
    std::fstream f(blob, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(biggest->size / 2));
    char c;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(biggest->size / 2));
    f.put(static_cast<char>(c ^ 0x40));
  }
  auto report = store->verify(pushed.record.id);
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->problems.size(), 1u);
  EXPECT_NE(report->problems[0].find(biggest->id.str()), std::string::npos);
  auto mat = store->materialize(pushed.record.id, dir_ / "out");
  ASSERT_FALSE(mat.ok());
  EXPECT_NE(mat.error().message.find(biggest->id.str()), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ / "out"));
  // The repair: remove the damaged blob and push the tree again.
  fs::remove(blob);
  push(*store, dir_ / "tree");
  EXPECT_TRUE(store->verify(pushed.record.id)->problems.empty());
}

TEST_F(StoreTest, TruncatedOrMissingBlobsAreReported) {
  auto store = open();
  PushResult pushed = push(*store, rich_tree("tree"));
  fs::remove(store->blob_path(pushed.manifest.layers.front().id));
  auto report = store->verify_all();
  ASSERT_TRUE(report.ok());
  ASSERT_FALSE(report->problems.empty());
  EXPECT_NE(report->problems[0].find("No such file"), std::string::npos);
}

// Stops a push at every mutating filesystem operation in turn, as a crash
// would; after each, the store must verify clean and a retry must complete.
TEST_F(StoreTest, PushInterruptedAtEveryStepLeavesAConsistentStore) {
  fs::path tree = dir_ / "tree";
  drover::testing::TreeSpec spec;
  spec.small_files = 300;
  spec.medium_files = 20;
  spec.big_files = 1;
  spec.big_min = spec.big_max = 9 << 20;
  drover::testing::generate_tree(tree, spec);
  ContentId expected;
  {
    TempDir other;
    auto s = ArtifactStore::open(other / "store", fs_, clock_, random_, Logger::discard());
    expected = (*s)->push(tree, PackInput{"svc", "0123abcd", {}})->record.id;
  }
  std::uint64_t step = 0;
  for (;; ++step) {
    FaultyFilesystem faulty(fs_, step);
    {
      auto s = ArtifactStore::open(dir_ / "store", faulty, clock_, random_, Logger::discard());
      Result<PushResult> r = s.ok() ? (*s)->push(tree, PackInput{"svc", "0123abcd", {}})
                                    : Result<PushResult>(s.error());
      if (r.ok()) {
        EXPECT_EQ(r->record.id, expected);
        break;
      }
      EXPECT_NE(r.error().message.find("injected fault"), std::string::npos) << r.error().message;
    }
    auto s = open();
    auto report = s->verify_all();
    ASSERT_TRUE(report.ok());
    EXPECT_TRUE(report->problems.empty()) << "after a fault at step " << step;
    // Only completed pushes are listed, and they are complete.
    auto listed = s->list("");
    ASSERT_TRUE(listed.ok());
    for (const auto& r : *listed) EXPECT_EQ(r.id, expected);
  }
  EXPECT_GT(step, 10u);  // the sweep really interrupted many steps
  auto s = open();
  EXPECT_EQ(s->list("")->size(), 1u);
  EXPECT_TRUE(s->verify_all()->problems.empty());
}

TEST_F(StoreTest, GcKeepsTheNewestPerServiceAndPinnedOnes) {
  auto store = open();
  fs::path tree = dir_ / "tree";
  std::vector<ContentId> ids;
  for (int v = 0; v < 4; ++v) {
    write_file(tree / "version", std::to_string(v));
    write_file(tree / "payload.bin",
               drover::testing::binary_bytes(100 + static_cast<unsigned>(v), 6 << 20));
    clock_.advance(std::chrono::minutes(1));
    ids.push_back(push(*store, tree, "0123abc" + std::to_string(v)).record.id);
  }
  write_file(tree / "payload.bin", "other service");
  auto other = store->push(tree, PackInput{"search", "0123abcd", {}});
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(store->pin(ids[0], "running in prod").ok());

  auto report = store->gc(2);
  ASSERT_TRUE(report.ok()) << report.error().message;
  ASSERT_EQ(report->removed.size(), 1u);
  EXPECT_EQ(report->removed[0].id, ids[1]);
  EXPECT_GT(report->blobs_removed, 0u);
  EXPECT_GT(report->bytes_freed, 2u << 20);
  for (ContentId kept : {ids[0], ids[2], ids[3], other->record.id}) {
    EXPECT_TRUE(store->verify(kept)->problems.empty());
    ASSERT_TRUE(store->materialize(kept, dir_ / ("out-" + kept.short_str())).ok());
  }
  EXPECT_FALSE(store->verify(ids[1]).ok());
  EXPECT_TRUE(store->verify_all()->problems.empty());
  EXPECT_EQ(store->verify_all()->orphan_blobs, 0u);
  // Unpinned, the oldest goes too.
  EXPECT_TRUE(*store->unpin(ids[0]));
  EXPECT_EQ(store->gc(2)->removed.size(), 1u);
}

TEST_F(StoreTest, RePushMakesAnArtifactNewestAgain) {
  auto store = open();
  fs::path tree = dir_ / "tree";
  write_file(tree / "f", "one");
  ContentId first = push(*store, tree).record.id;
  write_file(tree / "f", "two");
  push(*store, tree, "0123abce");
  write_file(tree / "f", "one");
  EXPECT_TRUE(push(*store, tree).already_present);
  EXPECT_EQ(store->list("checkout")->front().id, first);
  ASSERT_TRUE(store->gc(1).ok());
  EXPECT_TRUE(store->verify(first)->problems.empty());
}

TEST_F(StoreTest, PushRefusesWhatMaterializeWouldRefuseAndChangesNothing) {
  auto store = open();
  struct Case {
    std::string name;
    std::function<void(const fs::path&)> make;
    std::string needle;
  };
  std::vector<Case> cases = {
      {"escaping symlink",
       [](const fs::path& t) { fs::create_symlink("../../etc/passwd", t / "sub" / "evil"); },
       "leaves the tree"},
      {"absolute symlink", [](const fs::path& t) { fs::create_symlink("/etc/passwd", t / "abs"); },
       "absolute"},
      {"fifo", [](const fs::path& t) { ::mkfifo((t / "pipe").c_str(), 0644); }, "FIFO"},
      {"setuid", [](const fs::path& t) { write_file(t / "suid", "x", 04755); }, "setuid"},
      {"setgid dir",
       [](const fs::path& t) {
         fs::create_directories(t / "g");
         ::chmod((t / "g").c_str(), 02755);
       },
       "setgid"},
      {"group-writable file", [](const fs::path& t) { write_file(t / "sub" / "gw", "x", 0664); },
       "'sub/gw' has mode 0664: group- or world-writable"},
      {"world-writable directory",
       [](const fs::path& t) {
         fs::create_directories(t / "open");
         ::chmod((t / "open").c_str(), 0757);
       },
       "'open' has mode 0757: group- or world-writable"},
  };
  for (const auto& c : cases) {
    fs::path tree = dir_ / ("tree-" + std::to_string(&c - cases.data()));
    write_file(tree / "sub" / "ok.txt", "fine");
    c.make(tree);
    auto r = store->push(tree, PackInput{"svc", "0123abcd", {}});
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_NE(r.error().message.find(c.needle), std::string::npos)
        << c.name << ": " << r.error().message;
  }
  EXPECT_TRUE(store->list("")->empty());
  EXPECT_TRUE(fs::is_empty(dir_ / "store" / "tmp"));
  EXPECT_TRUE(fs::is_empty(dir_ / "store" / "blobs" / "sha256"));
}

// Refuses to open one file, as permissions would for a non-root build user
// (tests run as root in CI, where modes do not stop reads).
class UnreadableFile final : public Filesystem {
 public:
  UnreadableFile(Filesystem& inner, std::string name) : inner_(inner), name_(std::move(name)) {}
  Result<FileInfo> lstat(const fs::path& p) override { return inner_.lstat(p); }
  Result<std::vector<std::string>> list_dir(const fs::path& p) override {
    return inner_.list_dir(p);
  }
  Result<std::string> read_link(const fs::path& p) override { return inner_.read_link(p); }
  Result<std::unique_ptr<ReadableFile>> open_read(const fs::path& p) override {
    if (p.filename() == name_) return errno_error("open", p, EACCES);
    return inner_.open_read(p);
  }
  Result<std::unique_ptr<WritableFile>> create_new(const fs::path& p, std::uint32_t m) override {
    return inner_.create_new(p, m);
  }
  Status rename(const fs::path& a, const fs::path& b) override { return inner_.rename(a, b); }
  Status rename_noreplace(const fs::path& a, const fs::path& b) override {
    return inner_.rename_noreplace(a, b);
  }
  Status remove(const fs::path& p) override { return inner_.remove(p); }
  Status symlink(const std::string& t, const fs::path& l) override { return inner_.symlink(t, l); }
  Status make_dirs(const fs::path& p) override { return inner_.make_dirs(p); }
  Status sync_dir(const fs::path& p) override { return inner_.sync_dir(p); }
  Status sync_file(const fs::path& p) override { return inner_.sync_file(p); }

 private:
  Filesystem& inner_;
  std::string name_;
};

TEST_F(StoreTest, UnreadableFileFailsThePushAndChangesNothing) {
  fs::path tree = dir_ / "tree";
  for (int i = 0; i < 200; ++i)
    write_file(tree / ("f" + std::to_string(i)),
               drover::testing::text_bytes(static_cast<unsigned>(i), 50'000));
  write_file(tree / "locked", "secret");
  UnreadableFile fsys(fs_, "locked");
  auto store = open(fsys);
  auto r = store->push(tree, PackInput{"svc", "0123abcd", {}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("locked: Permission denied"), std::string::npos)
      << r.error().message;
  EXPECT_TRUE(store->list("")->empty());
  EXPECT_TRUE(fs::is_empty(dir_ / "store" / "tmp"));
  EXPECT_TRUE(fs::is_empty(dir_ / "store" / "blobs" / "sha256"));
}

TEST_F(StoreTest, EqualChunksAreStoredAndCountedOnce) {
  auto store = open();
  fs::path tree = dir_ / "tree";
  write_file(tree / "zeros.img", std::string(16u << 20, '\0'));  // four equal 4 MiB chunks
  write_file(tree / "note", "x");
  PushResult r = push(*store, tree);
  ASSERT_EQ(r.manifest.layers.size(), 2u);  // one chunk layer, one pack
  std::uint64_t unique = r.record.manifest_size;
  for (const auto& l : r.manifest.layers) unique += l.size;
  EXPECT_EQ(r.new_bytes, unique);
  auto mat = store->materialize(r.record.id, dir_ / "out");
  ASSERT_TRUE(mat.ok()) << mat.error().message;
  EXPECT_EQ(drover::testing::read_file(dir_ / "out" / "zeros.img"), std::string(16u << 20, '\0'));
}

TEST_F(StoreTest, ResolveAcceptsUniquePrefixesOnly) {
  auto store = open();
  fs::path tree = dir_ / "tree";
  write_file(tree / "f", "x");
  ContentId id = push(*store, tree).record.id;
  EXPECT_EQ(store->resolve(id.str())->id, id);
  EXPECT_EQ(store->resolve(id.hex().substr(0, 8))->id, id);
  EXPECT_EQ(store->resolve("sha256:" + id.hex().substr(0, 10))->id, id);
  EXPECT_EQ(store->resolve("abc").error().code, Errc::invalid_argument);
  EXPECT_EQ(store->resolve("nothex!!").error().code, Errc::invalid_argument);
  std::string other = id.hex().substr(0, 6) == "000000" ? "111111" : "000000";
  EXPECT_EQ(store->resolve(other).error().code, Errc::not_found);
}

}  // namespace
}  // namespace drover::store
