#include <gtest/gtest.h>

#include "core/format/manifest.hpp"
#include "core/hash/bt_merkle.hpp"

namespace drover::format {
namespace {

Entry dir(std::string path, std::uint32_t mode = 0755) {
  Entry e;
  e.path = std::move(path);
  e.type = EntryType::dir;
  e.mode = mode;
  return e;
}

Entry link(std::string path, std::string target) {
  Entry e;
  e.path = std::move(path);
  e.type = EntryType::symlink;
  e.target = std::move(target);
  return e;
}

Entry file(std::string path, const std::string& content, std::uint32_t layer, std::uint64_t offset,
           std::uint32_t mode = 0644) {
  Entry e;
  e.path = std::move(path);
  e.type = EntryType::file;
  e.mode = mode;
  e.size = content.size();
  e.hash = ContentId::of(content);
  if (!content.empty()) e.extents.push_back({layer, offset, content.size()});
  return e;
}

Manifest sample() {
  Manifest m;
  m.service = "checkout";
  m.git_sha = "0123abcd";
  m.meta = {{"build", "ci-1"}};
  m.packing = "drover.pack.v1";
  Layer l;
  l.id = ContentId::of("helloworld");
  l.size = 10;
  l.raw_size = 10;
  l.bt_root = BtMerkle::of("helloworld");
  m.layers.push_back(l);
  m.entries = {dir("bin"), file("bin/app", "hello", 0, 0, 0755), link("cfg", "etc/app.conf"),
               dir("etc"), file("etc/app.conf", "world", 0, 5),  file("etc/empty", "", 0, 0)};
  return m;
}

Status check(const Manifest& m) {
  return validate_manifest(m);
}

void expect_refused(const Manifest& m, const std::string& needle) {
  Status st = check(m);
  ASSERT_FALSE(st.ok()) << "expected refusal mentioning: " << needle;
  EXPECT_NE(st.error().message.find(needle), std::string::npos) << st.error().message;
}

TEST(Manifest, EncodesCanonicallyAndDecodesToTheSameValue) {
  Manifest m = sample();
  auto bytes = encode_manifest(m);
  ASSERT_TRUE(bytes.ok()) << bytes.error().message;
  auto back = decode_manifest(*bytes);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*encode_manifest(*back), *bytes);
  EXPECT_EQ(back->entries.size(), 6u);
  EXPECT_EQ(back->tree_bytes(), 10u);
  EXPECT_NE(bytes->find(R"("format":"drover.manifest.v1")"), std::string::npos);
}

TEST(Manifest, NonUtf8NamesSurviveEncoding) {
  Manifest m = sample();
  m.entries.push_back(file(std::string("z\xff\x01name", 7), "", 0, 0));
  m.entries.push_back(link(std::string("z\xff\x02", 3), std::string("z\xff\x01name", 7)));
  auto back = decode_manifest(*encode_manifest(m));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->entries[6].path, std::string("z\xff\x01name", 7));
  EXPECT_EQ(back->entries[7].target, std::string("z\xff\x01name", 7));
}

TEST(Manifest, RefusesUnsafePaths) {
  for (const auto& [path, needle] : std::vector<std::pair<std::string, std::string>>{
           {"/etc/passwd", "absolute path"},
           {"a/../../x", "'..' component"},
           {"..", "'..' component"},
           {"./x", "'.' component"},
           {"a//b", "empty component"},
           {std::string("a\0b", 3), "NUL"},
           {std::string(5000, 'a'), "over the limit"},
           {std::string(300, 'a'), "over 255 bytes"}}) {
    Manifest m = sample();
    m.entries.insert(m.entries.begin(), file(path, "", 0, 0));
    expect_refused(m, needle);
  }
}

TEST(Manifest, RefusesEscapingSymlinks) {
  for (const auto& [l, needle] : std::vector<std::pair<Entry, std::string>>{
           {link("bin/x", "/etc/passwd"), "absolute"},
           {link("bin/x", "../../etc"), "leaves the tree"},
           {link("bin/x", "../bin/../.."), "leaves the tree"}}) {
    Manifest m = sample();
    m.entries.insert(m.entries.begin() + 2, l);
    expect_refused(m, needle);
  }
  // An escape through another link: bin/up -> .., then bin/y -> up/../x
  // climbs above the root once bin/up is followed.
  Manifest m = sample();
  m.entries.insert(m.entries.begin() + 2, link("bin/up", ".."));
  m.entries.insert(m.entries.begin() + 3, link("bin/y", "up/../x"));
  expect_refused(m, "leaves the tree");
  // A loop.
  Manifest loop = sample();
  loop.entries.insert(loop.entries.begin() + 2, link("bin/p", "q"));
  loop.entries.insert(loop.entries.begin() + 3, link("bin/q", "p"));
  expect_refused(loop, "loops");
  // Links that stay inside are fine, dangling ones too.
  Manifest ok = sample();
  ok.entries.insert(ok.entries.begin() + 2, link("bin/dangling", "missing/file"));
  ok.entries.insert(ok.entries.begin() + 3, link("bin/sibling", "../etc/app.conf"));
  EXPECT_TRUE(check(ok).ok()) << check(ok).error().message;
}

TEST(Manifest, RefusesWritingThroughASymlink) {
  Manifest m = sample();
  // cfg is a symlink; nothing may be created below it.
  m.entries.insert(m.entries.begin() + 3, file("cfg/x", "", 0, 0));
  expect_refused(m, "is not a directory listed before it");
}

TEST(Manifest, RefusesSetIdBitsAndUnknownTypes) {
  Manifest setuid = sample();
  setuid.entries[1].mode = 04755;
  expect_refused(setuid, "setuid");
  Manifest sticky = sample();
  sticky.entries[0].mode = 01777;
  expect_refused(sticky, "sticky");
  for (const char* type : {"hardlink", "fifo", "chardev", "socket"}) {
    std::string bytes = *encode_manifest(sample());
    std::string from = R"({"mode":493,"path":"bin","type":"dir"})";
    std::string to = std::string(R"({"mode":493,"path":"bin","type":")") + type + "\"}";
    bytes.replace(bytes.find(from), from.size(), to);
    auto r = decode_manifest(bytes);
    ASSERT_FALSE(r.ok()) << type;
    EXPECT_NE(r.error().message.find("not deployable"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("'bin'"), std::string::npos) << r.error().message;
  }
}

TEST(Manifest, RefusesBadExtents) {
  Manifest outside = sample();
  outside.entries[4].extents[0] = {0, 8, 5};
  expect_refused(outside, "outside its layer");
  Manifest no_layer = sample();
  no_layer.entries[4].extents[0] = {3, 0, 5};
  expect_refused(no_layer, "does not exist");
  Manifest short_file = sample();
  short_file.entries[4].size = 6;
  expect_refused(short_file, "extents hold 5 bytes");
  Manifest unused = sample();
  unused.layers.push_back(unused.layers[0]);
  unused.layers[1].id = ContentId::of("other");
  expect_refused(unused, "not used by any file");
  Manifest twice = sample();
  twice.layers.push_back(twice.layers[0]);
  expect_refused(twice, "listed twice");
}

TEST(Manifest, RefusesUnsortedDuplicateAndOrphanEntries) {
  Manifest unsorted = sample();
  std::swap(unsorted.entries[3], unsorted.entries[4]);
  expect_refused(unsorted, "not a directory listed before it");
  Manifest dup = sample();
  dup.entries.insert(dup.entries.begin() + 1, dup.entries[1]);
  expect_refused(dup, "listed twice");
  Manifest orphan = sample();
  orphan.entries.push_back(file("nodir/x", "", 0, 0));
  expect_refused(orphan, "parent 'nodir'");
}

TEST(Manifest, EnforcesCountLimits) {
  Manifest m = sample();
  Limits tight;
  tight.max_entries = 3;
  Status st = validate_manifest(m, tight);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("over the limit of 3"), std::string::npos);
  auto r = decode_manifest(*encode_manifest(m), tight);
  ASSERT_FALSE(r.ok());
}

TEST(Manifest, DecodeRefusesUnknownFieldsVersionsAndForms) {
  std::string bytes = *encode_manifest(sample());
  std::string v2 = bytes;
  v2.replace(v2.find("drover.manifest.v1"), 18, "drover.manifest.v2");
  auto r = decode_manifest(v2);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::unsupported);
  std::string extra = bytes;
  extra.replace(extra.find(R"("type":"dir"})"), 13, R"("type":"dir","x":1})");
  EXPECT_FALSE(decode_manifest(extra).ok());
  EXPECT_FALSE(decode_manifest(bytes + " ").ok());
  EXPECT_FALSE(decode_manifest("{}").ok());
}

TEST(Manifest, FieldRulesNameTheValue) {
  EXPECT_TRUE(validate_service("check-out_2.x").ok());
  EXPECT_NE(validate_service("bad name").error().message.find("'bad name'"), std::string::npos);
  EXPECT_FALSE(validate_service("-x").ok());
  EXPECT_FALSE(validate_service("").ok());
  EXPECT_TRUE(validate_git_sha("0123abc").ok());
  EXPECT_FALSE(validate_git_sha("0123ab").ok());
  EXPECT_FALSE(validate_git_sha("0123ABC").ok());
  EXPECT_FALSE(validate_meta({{"bad key", "v"}}).ok());
  EXPECT_FALSE(validate_meta({{"k", std::string("\xff")}}).ok());
}

}  // namespace
}  // namespace drover::format

namespace drover::format {
namespace {

TEST(Manifest, SymlinkCheckingHasABudget) {
  Manifest m = sample();
  // 200 links whose targets wander 50 steps each before landing on a file.
  std::string wander;
  for (int i = 0; i < 25; ++i) wander += "x/../";
  for (int i = 0; i < 200; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "l%03d", i);
    m.entries.insert(m.entries.end() - 0, link(name, wander + "cfg"));
  }
  std::sort(m.entries.begin(), m.entries.end(),
            [](const Entry& a, const Entry& b) { return a.path < b.path; });
  EXPECT_TRUE(validate_manifest(m).ok()) << validate_manifest(m).error().message;
  Limits tight;
  tight.max_link_steps = 2000;
  Status st = validate_manifest(m, tight);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("too much work"), std::string::npos) << st.error().message;
}

TEST(Manifest, LongChainsAreResolvedOncePerLink) {
  // 39 links in a chain, then 20,000 links into its head: the chain is walked
  // once, not 20,000 times, so this fits a budget far below 20,000 x 39 steps.
  Manifest m = sample();
  std::vector<Entry> extra;
  for (int i = 0; i < 39; ++i) {
    char name[16], next[16];
    std::snprintf(name, sizeof name, "c%02d", i);
    std::snprintf(next, sizeof next, "c%02d", i + 1);
    extra.push_back(link(name, i == 38 ? "etc" : next));
  }
  for (int i = 0; i < 20000; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "u%05d", i);
    extra.push_back(link(name, "c00/app.conf"));
  }
  m.entries.insert(m.entries.end(), extra.begin(), extra.end());
  std::sort(m.entries.begin(), m.entries.end(),
            [](const Entry& a, const Entry& b) { return a.path < b.path; });
  Limits limits;
  limits.max_link_steps = 200'000;
  EXPECT_TRUE(validate_manifest(m, limits).ok()) << validate_manifest(m, limits).error().message;
}

TEST(Manifest, BoundsTheNumberOfExtents) {
  Manifest m = sample();
  Limits tight;
  tight.max_entries = 6;
  tight.max_layers = 1;
  // Seven extents of one byte for "hello": more than entries + layers allow.
  m.entries[1].extents.clear();
  for (std::uint64_t i = 0; i < 5; ++i) m.entries[1].extents.push_back({0, i, 1});
  m.entries[4].extents = {{0, 5, 1}, {0, 6, 1}, {0, 7, 1}, {0, 8, 1}, {0, 9, 1}};
  m.entries[4].size = 5;
  Status st = validate_manifest(m, tight);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("extents"), std::string::npos) << st.error().message;
}

}  // namespace
}  // namespace drover::format
