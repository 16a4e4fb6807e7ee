// Materialization treats layers and manifests as hostile. Each test installs
// an artifact crafted by hand (as a compromised build machine could), asks the
// store to materialize it, and checks that it is refused with the offending
// entry named and nothing left at the destination.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "store/artifact_store.hpp"
#include "store/staging_tree.hpp"
#include "tests/support/hostile_artifact.hpp"
#include "tests/support/test_support.hpp"

namespace drover::store {
namespace {

using drover::testing::dir_entry;
using drover::testing::file_entry;
using drover::testing::install_raw_artifact;
using drover::testing::link_entry;
using drover::testing::RawLayer;
using drover::testing::TempDir;
using nlohmann::json;

class HostileTest : public ::testing::Test {
 protected:
  // Installs the artifact, then materializes it; returns the refusal.
  Error refused(const std::vector<json>& entries, const std::vector<RawLayer>& layers,
                const format::Limits& limits = {}) {
    ContentId id = install_raw_artifact(dir_ / "store", entries, layers);
    StoreOptions options;
    options.limits = limits;
    auto store =
        ArtifactStore::open(dir_ / "store", fs_, clock_, random_, Logger::discard(), options);
    EXPECT_TRUE(store.ok());
    auto r = (*store)->materialize(id, dir_ / "dest");
    EXPECT_FALSE(r.ok()) << "materialized a hostile artifact";
    EXPECT_FALSE(fs::exists(dir_ / "dest"));
    EXPECT_FALSE(fs::exists(dir_ / "outside"));
    for (const auto& e : fs::directory_iterator(dir_.path())) {
      EXPECT_EQ(e.path().filename().string().find("staging"), std::string::npos)
          << "left behind: " << e.path();
    }
    return r.ok() ? Error{} : r.error();
  }

  RawLayer layer(const std::string& raw) {
    RawLayer l;
    l.stored = raw;
    return l;
  }

  TempDir dir_;
  PosixFilesystem fs_;
  ManualClock clock_;
  SeededRandom random_{3};
};

MATCHER_P(Says, text, "") {
  if (arg.message.find(text) != std::string::npos) return true;
  *result_listener << "message: " << arg.message;
  return false;
}

TEST_F(HostileTest, AbsolutePath) {
  EXPECT_THAT(refused({file_entry("/tmp/evil", "x", 0, 0)}, {layer("x")}),
              Says("entry '/tmp/evil': absolute path"));
}

TEST_F(HostileTest, DotDotPath) {
  EXPECT_THAT(refused({dir_entry("a"), file_entry("a/../../outside", "x", 0, 0)}, {layer("x")}),
              Says("entry 'a/../../outside': path has a '..' component"));
}

TEST_F(HostileTest, SymlinkLeavingTheTree) {
  EXPECT_THAT(
      refused({dir_entry("a"), link_entry("a/up", "../../outside"), file_entry("b", "x", 0, 0)},
              {layer("x")}),
      Says("entry 'a/up': symlink target '../../outside' leaves the tree"));
  EXPECT_THAT(refused({link_entry("abs", "/etc"), file_entry("b", "x", 0, 0)}, {layer("x")}),
              Says("entry 'abs': symlink to absolute path"));
}

TEST_F(HostileTest, WriteThroughASymlinkFromAnEarlierEntry) {
  // The two-archive attack: a link, then a file "inside" it.
  EXPECT_THAT(refused({link_entry("lib", "."), file_entry("lib/x", "x", 0, 0)}, {layer("x")}),
              Says("entry 'lib/x': parent 'lib' is not a directory"));
}

TEST_F(HostileTest, HardLinkDeviceFifoAndSocketEntries) {
  for (const char* type : {"hardlink", "chardev", "blockdev", "fifo", "socket"}) {
    json entry = {{"path", "node"}, {"type", type}, {"mode", 420}};
    EXPECT_THAT(refused({entry, file_entry("z", "x", 0, 0)}, {layer("x")}),
                Says("entry 'node': entry type '" + std::string(type) + "' is not deployable"));
  }
}

TEST_F(HostileTest, SetuidSetgidAndStickyBits) {
  EXPECT_THAT(refused({file_entry("suid", "x", 0, 0, 04755)}, {layer("x")}),
              Says("entry 'suid': mode 4755 has setuid"));
  EXPECT_THAT(refused({dir_entry("sgid", 02755), file_entry("z", "x", 0, 0)}, {layer("x")}),
              Says("entry 'sgid': mode 2755"));
}

TEST_F(HostileTest, GroupOrWorldWritableEntries) {
  // The manifest format reads them (old manifests stay readable); unpacking
  // refuses them, as pushing does.
  EXPECT_THAT(refused({file_entry("w", "x", 0, 0, 0666)}, {layer("x")}),
              Says("entry 'w' has mode 0666: group- or world-writable"));
  EXPECT_THAT(refused({dir_entry("d", 0775), file_entry("d/f", "x", 0, 0)}, {layer("x")}),
              Says("entry 'd' has mode 0775: group- or world-writable"));
}

TEST_F(HostileTest, ExtentBeyondItsLayer) {
  EXPECT_THAT(refused({file_entry("f", "xyz", 0, 0)}, {layer("xy")}),
              Says("entry 'f': extent [0, 0, 3] lies outside its layer of 2 bytes"));
}

TEST_F(HostileTest, BlobBiggerThanTheManifestSays) {
  RawLayer l = layer("0123456789");
  l.size = 4;
  l.raw_size = 4;
  EXPECT_THAT(refused({file_entry("f", "0123", 0, 0)}, {l}),
              Says("holds more bytes than the manifest's 4"));
}

TEST_F(HostileTest, LayerThatExpandsBeyondItsDeclaredSize) {
  RawLayer bomb = drover::testing::zstd_layer(std::string(32 << 20, 'A'));
  bomb.raw_size = 1000;  // the manifest says 1000 bytes; the frame holds 32 MiB
  EXPECT_THAT(refused({file_entry("f", std::string(1000, 'A'), 0, 0)}, {bomb}),
              Says("declares 33554432 bytes, but the manifest says 1000"));
}

TEST_F(HostileTest, FileWhoseBytesDoNotMatchItsHash) {
  json f = file_entry("f", "abc", 0, 0);
  f["hash"] = ContentId::of("abd").str();
  EXPECT_THAT(refused({f}, {layer("abc")}), Says("entry 'f': content does not match its hash"));
}

TEST_F(HostileTest, AbsurdEntryCounts) {
  std::vector<json> entries;
  for (int i = 0; i < 600; ++i)
    entries.push_back(file_entry("f" + std::to_string(1000 + i), "", 0, 0));
  entries.push_back(file_entry("z", "x", 0, 0));
  format::Limits limits;
  limits.max_entries = 500;
  EXPECT_THAT(refused(entries, {layer("x")}, limits), Says("more than 500 entries"));
}

TEST_F(HostileTest, AbsurdPathLengths) {
  std::string longest = std::string(200, 'a');
  std::string path;
  std::vector<json> entries;
  for (int i = 0; i < 25; ++i) {
    path += (i ? "/" : "") + longest;
    entries.push_back(dir_entry(path));
  }
  entries.push_back(file_entry(path + "/f", "x", 0, 0));
  EXPECT_THAT(refused(entries, {layer("x")}), Says("over the limit of 4096"));
}

TEST_F(HostileTest, AHonestArtifactStillMaterializes) {
  // The same machinery with nothing wrong: proves the refusals above are about
  // what was wrong, not about hand-made artifacts.
  ContentId id = install_raw_artifact(dir_ / "store",
                                      {dir_entry("a"), file_entry("a/f", "hello", 0, 0),
                                       link_entry("a/l", "f"), file_entry("b", "world", 0, 5)},
                                      {layer("helloworld")});
  auto store = ArtifactStore::open(dir_ / "store", fs_, clock_, random_, Logger::discard());
  auto r = (*store)->materialize(id, dir_ / "dest");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(drover::testing::read_file(dir_ / "dest" / "a" / "l"), "hello");
  EXPECT_EQ(drover::testing::read_file(dir_ / "dest" / "b"), "world");
}

TEST(StagingTree, NeverFollowsASymlinkPlantedInTheStagingDirectory) {
  TempDir dir;
  fs::create_directories(dir / "staging");
  fs::create_directories(dir / "outside");
  fs::create_directory_symlink(dir / "outside", dir / "staging" / "planted");
  fs::create_directory_symlink("../outside", dir / "staging" / "relative");
  int root = ::open((dir / "staging").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(root, 0);
  Fd held(root);
  StagingTree tree(root);
  for (const char* path : {"planted/x", "relative/x", "../outside/x"}) {
    auto r = tree.open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    ASSERT_FALSE(r.ok()) << path;
    EXPECT_EQ(r.error().code, Errc::refused) << r.error().message;
  }
  EXPECT_FALSE(tree.mkdir("planted/d").ok());
  EXPECT_FALSE(tree.symlink("planted/l", "x").ok());
  // The last component is never followed either.
  fs::create_symlink(dir / "outside" / "target", dir / "staging" / "link-file");
  EXPECT_FALSE(tree.open("link-file", O_WRONLY | O_CREAT, 0644).ok());
  EXPECT_TRUE(fs::is_empty(dir / "outside"));
  EXPECT_TRUE(tree.open("fine", O_WRONLY | O_CREAT | O_EXCL, 0644).ok());
}

}  // namespace
}  // namespace drover::store
