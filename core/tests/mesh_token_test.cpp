// Mesh tokens (docs/FORMATS.md, "Mesh tokens (`dmt1`)"): what the tracker's
// check refuses, and why. Each refusal names its flaw; a forged, altered,
// expired or oversized token never yields claims.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/canon/base64.hpp"
#include "core/canon/canonical_json.hpp"
#include "core/mesh_token/mesh_token.hpp"
#include "core/sign/secret_box.hpp"
#include "tests/support/test_support.hpp"

namespace drover::mesh_token {
namespace {

using drover::testing::TempDir;

constexpr std::int64_t kNow = 1'800'000'000;
const std::string kKey(32, '\x11');
const std::string kOtherKey(32, '\x22');

Claims peer(std::int64_t exp = kNow + 3600) {
  return Claims{"peer", "eu-west", "web-1", exp};
}

std::string token(const Claims& c, const std::string& key = kKey) {
  auto t = issue(key, c);
  EXPECT_TRUE(t.ok()) << t.error().message;
  return t.ok() ? *t : "";
}

// A token over payload bytes of our choosing, tagged under key: what a key
// holder (or a forger without the key) could build by hand.
std::string forge(const std::string& payload, const std::string& key) {
  return "dmt1." + canon::base64url_encode(payload) + "." +
         canon::base64url_encode(sign::hmac_sha256(key, payload));
}

Flaw flaw_of(const std::string& t, std::int64_t now = kNow) {
  auto r = check(kKey, t, now);
  EXPECT_FALSE(r.ok()) << t;
  return r.ok() ? Flaw::form : r.refusal().flaw;
}

TEST(MeshToken, IssuedTokenChecksAndStatesItsClaims) {
  const std::string t = token(peer());
  EXPECT_EQ(t.rfind("dmt1.", 0), 0u);
  EXPECT_LE(t.size(), kMaxTokenBytes);
  auto r = check(kKey, t, kNow);
  ASSERT_TRUE(r.ok()) << r.refusal().message;
  EXPECT_EQ(r.claims().role, "peer");
  EXPECT_EQ(r.claims().region, "eu-west");
  EXPECT_EQ(r.claims().host, "web-1");
  EXPECT_EQ(r.claims().expires_at, kNow + 3600);
  // The payload is the canonical JSON the format names.
  const std::string payload = *canon::base64url_decode(t.substr(5, t.rfind('.') - 5));
  EXPECT_EQ(payload, R"({"exp":1800003600,"host":"web-1","region":"eu-west","role":"peer"})");
  // The origin alone may have no region.
  EXPECT_TRUE(check(kKey, token({"origin", "", "origin-1", kNow + 60}), kNow).ok());
}

TEST(MeshToken, ATokenUnderAnotherKeyIsABadTag) {
  const std::string t = token(peer(), kOtherKey);
  auto r = check(kKey, t, kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.refusal().flaw, Flaw::tag);
  EXPECT_NE(r.refusal().message.find("tag does not verify"), std::string::npos);
}

TEST(MeshToken, AlteredClaimsOrTagAreABadTag) {
  const std::string t = token(peer());
  // A peer that makes itself a seed: same tag, another payload.
  const std::string seed_payload =
      R"({"exp":1800003600,"host":"web-1","region":"eu-west","role":"seed"})";
  const std::string tag = t.substr(t.rfind('.') + 1);
  EXPECT_EQ(flaw_of("dmt1." + canon::base64url_encode(seed_payload) + "." + tag), Flaw::tag);
  // A longer life.
  const std::string later = R"({"exp":1900000000,"host":"web-1","region":"eu-west","role":"peer"})";
  EXPECT_EQ(flaw_of("dmt1." + canon::base64url_encode(later) + "." + tag), Flaw::tag);
  // One bit of the tag flipped.
  std::string bad_tag = *canon::base64url_decode(tag);
  bad_tag[0] = static_cast<char>(bad_tag[0] ^ 1);
  EXPECT_EQ(flaw_of(t.substr(0, t.rfind('.') + 1) + canon::base64url_encode(bad_tag)), Flaw::tag);
  // A tag over the payload without a key.
  EXPECT_EQ(flaw_of(forge(seed_payload, "")), Flaw::tag);
}

TEST(MeshToken, ExpiredAtItsExpiry) {
  const std::string t = token(peer(kNow + 10));
  EXPECT_TRUE(check(kKey, t, kNow + 9).ok());
  auto r = check(kKey, t, kNow + 10);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.refusal().flaw, Flaw::expired);
  EXPECT_NE(r.refusal().message.find("expired at 1800000010"), std::string::npos)
      << r.refusal().message;
}

TEST(MeshToken, OverLongTokensAreRefusedBeforeAnythingElse) {
  std::string t = token(peer());
  t += std::string(kMaxTokenBytes, 'A');
  auto r = check(kKey, t, kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.refusal().flaw, Flaw::too_long);
  EXPECT_NE(r.refusal().message.find("at most 512"), std::string::npos);
  // Claims that would make a token too long are never issued.
  Claims huge = peer();
  huge.host = std::string(128, 'h');
  huge.region = std::string(128, 'r');
  EXPECT_TRUE(issue(kKey, huge).ok());  // 128-byte names still fit
}

TEST(MeshToken, MalformedTokensAreRefusedAsForm) {
  const std::string t = token(peer());
  const std::size_t dot = t.rfind('.');
  for (const std::string& bad : {
           std::string(),                             // missing
           std::string("dmt2") + t.substr(4),         // another version
           t.substr(5),                               // no prefix
           t.substr(0, dot),                          // no tag
           t + ".x",                                  // a third part
           t.substr(0, dot) + ".",                    // an empty tag
           t.substr(0, dot + 1) + t.substr(dot + 2),  // a tag one character short
           t + "=",                                   // padding
           t.substr(0, 5) + "+" + t.substr(6),        // the standard alphabet
       }) {
    EXPECT_EQ(flaw_of(bad), Flaw::form) << bad;
  }
  // Payloads a key holder could tag but the format does not allow.
  for (const std::string& payload : {
           std::string(R"({"exp":1800003600,"host":"web-1","region":"eu-west"})"),
           std::string(R"({"exp":1800003600,"host":"web-1","region":"eu-west","role":"admin"})"),
           std::string(R"({"exp":"soon","host":"web-1","region":"eu-west","role":"peer"})"),
           std::string(R"({"exp":1800003600,"host":"../x","region":"eu-west","role":"peer"})"),
           std::string(R"({"exp":1800003600,"host":"web-1","region":"","role":"seed"})"),
           std::string(R"({"region":"eu-west","exp":1800003600,"host":"web-1","role":"peer"})"),
           std::string(
               R"({"exp":1800003600,"host":"web-1","region":"eu-west","role":"peer","x":1})"),
           std::string("not json"),
       }) {
    EXPECT_EQ(flaw_of(forge(payload, kKey)), Flaw::form) << payload;
  }
}

TEST(MeshToken, IssueRefusesWhatCheckWouldRefuse) {
  EXPECT_FALSE(issue(std::string(31, 'k'), peer()).ok());
  EXPECT_FALSE(issue(kKey, {"admin", "eu", "h", kNow}).ok());
  EXPECT_FALSE(issue(kKey, {"seed", "", "h", kNow}).ok());
  EXPECT_FALSE(issue(kKey, {"seed", "eu west", "h", kNow}).ok());
  EXPECT_FALSE(issue(kKey, {"peer", "eu", "", kNow}).ok());
  EXPECT_FALSE(issue(kKey, {"peer", "eu", "h", 0}).ok());
  // A key of another size checks nothing.
  EXPECT_FALSE(check(std::string(16, '\x11'), token(peer()), kNow).ok());
}

TEST(MeshToken, PeekReadsClaimsWithoutTheKeyAndProvesNothing) {
  auto c = peek(token(peer(), kOtherKey));
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->host, "web-1");
  EXPECT_FALSE(peek("dmt1.x").ok());
}

TEST(MeshToken, KeyFileIsSixtyFourHexDigitsReadableByItsOwnerOnly) {
  TempDir dir;
  PosixFilesystem fs;
  drover::testing::write_file(dir / "k", key_file_text(kKey), 0600);
  auto k = load_key(fs, dir / "k");
  ASSERT_TRUE(k.ok()) << k.error().message;
  EXPECT_EQ(*k, kKey);

  drover::testing::write_file(dir / "open", key_file_text(kKey), 0640);
  auto open = load_key(fs, dir / "open");
  ASSERT_FALSE(open.ok());
  EXPECT_EQ(open.error().code, Errc::refused);
  EXPECT_NE(open.error().message.find("chmod 600"), std::string::npos);

  for (const std::string& text :
       {std::string("abc\n"), std::string(63, 'a'), std::string(64, 'g'), std::string(66, 'a')}) {
    drover::testing::write_file(dir / "bad", text, 0600);
    auto bad = load_key(fs, dir / "bad");
    ASSERT_FALSE(bad.ok()) << text;
    EXPECT_EQ(bad.error().code, Errc::invalid_argument);
  }
}

TEST(Base64Url, DecodesOnlyWhatEncodeProduces) {
  for (const std::string& bytes : {std::string(), std::string("a"), std::string("ab"),
                                   std::string("abc"), std::string("\xff\xfe\xfd\xfc", 4)}) {
    auto back = canon::base64url_decode(canon::base64url_encode(bytes));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, bytes);
  }
  EXPECT_FALSE(canon::base64url_decode("YQ==").ok());  // padded
  EXPECT_FALSE(canon::base64url_decode("YR").ok());    // stray low bits
  EXPECT_FALSE(canon::base64url_decode("+/8").ok());   // standard alphabet
  EXPECT_TRUE(canon::base64url_decode("-_8").ok());
}

}  // namespace
}  // namespace drover::mesh_token
