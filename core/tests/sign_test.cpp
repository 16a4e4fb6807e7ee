#include <gtest/gtest.h>
#include <sys/stat.h>

#include "core/base/hex.hpp"
#include "core/sign/envelope.hpp"
#include "core/sign/keys.hpp"
#include "core/sign/root.hpp"
#include "core/sign/secret_box.hpp"
#include "tests/support/test_support.hpp"

namespace drover::sign {
namespace {

using drover::testing::TempDir;

constexpr std::int64_t kNow = 1'800'000'000;

KeyPair key(std::uint64_t seed) {
  SeededRandom rnd(seed);
  return KeyPair::generate(rnd);
}

TEST(Keys, SaveWritesSecretWithMode0600AndLoadsBack) {
  TempDir dir;
  PosixFilesystem fs;
  KeyPair k = key(1);
  ASSERT_TRUE(save_key_pair(fs, k, dir / "root.key").ok());
  struct stat st {};
  ASSERT_EQ(::stat((dir / "root.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto loaded = load_key_pair(fs, dir / "root.key");
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->public_key(), k.public_key());
  auto pub = load_public_key(fs, dir / "root.key.pub");
  ASSERT_TRUE(pub.ok());
  EXPECT_EQ(*pub, k.public_key());
  EXPECT_EQ(pub->key_id().size(), 64u);
  // Never overwrites a key.
  auto again = save_key_pair(fs, key(2), dir / "root.key");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::already_exists);
}

TEST(Keys, RefusesSecretKeyReadableByOthers) {
  TempDir dir;
  PosixFilesystem fs;
  ASSERT_TRUE(save_key_pair(fs, key(1), dir / "k").ok());
  ::chmod((dir / "k").c_str(), 0644);
  auto r = load_key_pair(fs, dir / "k");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("chmod 600"), std::string::npos);
}

TEST(Keys, SecretFilesReadableByGroupOrOthersAreRefusedNamingPathAndMode) {
  TempDir dir;
  PosixFilesystem fs;
  drover::testing::write_file(dir / "secret", "a-secret-of-sixteen-bytes\n", 0600);
  auto ok = read_secret_file(fs, dir / "secret", 4096, "webhook_secret_file");
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(*ok, "a-secret-of-sixteen-bytes\n");
  EXPECT_TRUE(check_secret_file(dir / "secret", "api.tls_key").ok());
  for (unsigned mode : {0640u, 0604u, 0660u}) {
    ::chmod((dir / "secret").c_str(), mode);
    char octal[8];
    std::snprintf(octal, sizeof octal, "%04o", mode);
    auto read = read_secret_file(fs, dir / "secret", 4096, "webhook_secret_file");
    ASSERT_FALSE(read.ok()) << octal;
    EXPECT_EQ(read.error().code, Errc::refused);
    EXPECT_EQ(read.error().message, "webhook_secret_file " + (dir / "secret").string() +
                                        " may be read by group or others (mode " + octal +
                                        "); chmod 600 it");
    // A TLS key is checked through its symlink, as OpenSSL will read it.
    std::error_code ec;
    fs::remove(dir / "link", ec);
    fs::create_symlink(dir / "secret", dir / "link");
    auto tls = check_secret_file(dir / "link", "api.tls_key");
    ASSERT_FALSE(tls.ok()) << octal;
    EXPECT_NE(tls.error().message.find("api.tls_key " + (dir / "link").string()),
              std::string::npos);
    EXPECT_NE(tls.error().message.find(octal), std::string::npos);
  }
}

TEST(Keys, RefusesDamagedKeyFile) {
  TempDir dir;
  PosixFilesystem fs;
  drover::testing::write_file(dir / "k", "{\"type\":\"ed25519\"}\n", 0600);
  EXPECT_FALSE(load_key_pair(fs, dir / "k").ok());
  drover::testing::write_file(dir / "j", "not json", 0600);
  EXPECT_FALSE(load_public_key(fs, dir / "j").ok());
}

TEST(Envelope, RoundTripsAndVerifies) {
  KeyPair k = key(5);
  Envelope e = seal("drover.test.v1", "payload bytes", k);
  auto decoded = decode_envelope(encode_envelope(e));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  auto payload = open(*decoded, "drover.test.v1", k.public_key());
  ASSERT_TRUE(payload.ok());
  EXPECT_EQ(*payload, "payload bytes");
}

TEST(Envelope, RefusesTamperingWrongTypeAndWrongKey) {
  KeyPair k = key(5);
  Envelope e = seal("drover.test.v1", "payload bytes", k);
  Envelope changed = e;
  changed.payload = "payload bytez";
  EXPECT_EQ(open(changed, "drover.test.v1", k.public_key()).error().code, Errc::crypto);
  Envelope retyped = e;
  retyped.payload_type = "drover.other.v1";
  EXPECT_FALSE(open(retyped, "drover.other.v1", k.public_key()).ok());
  EXPECT_FALSE(open(e, "drover.other.v1", k.public_key()).ok());
  EXPECT_FALSE(open(e, "drover.test.v1", key(6).public_key()).ok());
  Envelope bad_sig = e;
  bad_sig.signatures[0].sig[3] ^= 1;
  EXPECT_FALSE(open(bad_sig, "drover.test.v1", k.public_key()).ok());
}

TEST(Envelope, DecodeRefusesMalformedEnvelopes) {
  for (
      const char* bad :
      {"{}", "[]",
       R"({"format":"drover.envelope.v2","payload":"","payload_type":"x","signatures":[]})",
       R"({"format":"drover.envelope.v1","payload":"!!","payload_type":"x","signatures":[{"key_id":"a","sig":"AA=="}]})",
       R"({"format":"drover.envelope.v1","payload":"","payload_type":"x","signatures":[]})"}) {
    EXPECT_FALSE(decode_envelope(bad).ok()) << bad;
  }
}

struct Chain {
  KeyPair root = key(100);
  KeyPair online = key(101);
  TrustRoot trust{root.public_key(), 1};
  Envelope cert(std::uint64_t version, std::int64_t expires, const KeyPair& subject,
                const std::string& role = "online") const {
    KeyCert c;
    c.subject = subject.public_key();
    c.version = version;
    c.issued_at = kNow - 10;
    c.expires_at = expires;
    c.role = role;
    return certify(root, c);
  }
};

TEST(KeyCert, RootCertifiesOnlineKey) {
  Chain ch;
  Envelope plan = seal("drover.plan.v1", "{}", ch.online);
  auto v =
      open_certified(plan, "drover.plan.v1", ch.cert(1, kNow + 100, ch.online), ch.trust, kNow);
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ(v->payload, "{}");
  EXPECT_EQ(v->cert.subject, ch.online.public_key());
}

TEST(KeyCert, RefusesExpiredSupersededForeignAndMisusedCerts) {
  Chain ch;
  Envelope plan = seal("drover.plan.v1", "{}", ch.online);
  // Expired.
  auto expired =
      open_certified(plan, "drover.plan.v1", ch.cert(1, kNow, ch.online), ch.trust, kNow);
  ASSERT_FALSE(expired.ok());
  EXPECT_NE(expired.error().message.find("expired"), std::string::npos);
  // Rotated away: the relying party has seen version 2.
  TrustRoot rotated{ch.root.public_key(), 2};
  auto old =
      open_certified(plan, "drover.plan.v1", ch.cert(1, kNow + 100, ch.online), rotated, kNow);
  ASSERT_FALSE(old.ok());
  EXPECT_NE(old.error().message.find("superseded"), std::string::npos);
  // Signed by a key the root never certified.
  KeyPair rogue = key(7);
  Envelope forged = seal("drover.plan.v1", "{}", rogue);
  EXPECT_FALSE(
      open_certified(forged, "drover.plan.v1", ch.cert(1, kNow + 100, ch.online), ch.trust, kNow)
          .ok());
  // A certificate signed by someone other than the root.
  KeyCert c;
  c.subject = rogue.public_key();
  c.expires_at = kNow + 100;
  EXPECT_FALSE(open_certified(forged, "drover.plan.v1", certify(rogue, c), ch.trust, kNow).ok());
  // Wrong role.
  EXPECT_FALSE(open_certified(plan, "drover.plan.v1", ch.cert(1, kNow + 100, ch.online, "admin"),
                              ch.trust, kNow)
                   .ok());
}

}  // namespace
}  // namespace drover::sign

namespace drover::sign {
namespace {

TEST(Envelope, HostileOuterFieldsAreErrorsNotCrashes) {
  for (
      const char* bad :
      {R"({"format":1,"payload":"","payload_type":"","signatures":[]})",
       R"({"format":["x"],"payload":"","payload_type":"x","signatures":[{"key_id":"a","sig":"AA=="}]})",
       R"({"format":"drover.envelope.v9","payload":"","payload_type":"x","signatures":[{"key_id":"a","sig":"AA=="}]})"}) {
    auto r = decode_envelope(bad);
    ASSERT_FALSE(r.ok()) << bad;
  }
  auto v9 = decode_envelope(
      R"({"format":"drover.envelope.v9","payload":"","payload_type":"x","signatures":[{"key_id":"a","sig":"AA=="}]})");
  EXPECT_EQ(v9.error().code, Errc::unsupported);
  EXPECT_NE(v9.error().message.find("drover.envelope.v9"), std::string::npos);
}

TEST(Envelope, AForgedSignatureDoesNotHideAValidOne) {
  KeyPair k = key(5);
  Envelope e = seal("drover.test.v1", "payload", k);
  // Anyone can prepend an entry with the trusted key id: the list is unsigned.
  Signature forged{k.key_id(), std::string(64, '\x01')};
  e.signatures.insert(e.signatures.begin(), forged);
  auto r = open(*decode_envelope(encode_envelope(e)), "drover.test.v1", k.public_key());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, "payload");
}

TEST(KeyCert, RefusesNegativeVersions) {
  KeyPair root = key(100);
  // Hand-made payload: certify() cannot produce a negative version.
  std::string payload =
      R"({"expires_at":1900000000,"format":"drover.key-cert.v1","issued_at":1,"role":"online","subject_key":")" +
      key(101).public_key().hex() + R"(","subject_key_id":"x","version":-1})";
  Envelope cert = seal(KeyCert::kType, payload, root);
  auto r = verify_cert(cert, TrustRoot{root.public_key(), 1}, kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("version"), std::string::npos);
}

TEST(Keys, KeyFilesOfUnknownFormatsAreNamed) {
  TempDir dir;
  PosixFilesystem fs;
  drover::testing::write_file(dir / "k",
                              R"({"format":"drover.key.v7","type":"ed25519"})"
                              "\n",
                              0600);
  auto r = load_key_pair(fs, dir / "k");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::unsupported);
  EXPECT_NE(r.error().message.find("drover.key.v7"), std::string::npos);
}

TEST(SecretBox, OnlyTheRecipientOpensASealedKey) {
  KeyPair coordinator = key(10), other = key(11);
  auto sealed = seal_to(coordinator.public_key(), "a 32-byte report key, say.......");
  ASSERT_TRUE(sealed.ok()) << sealed.error().message;
  auto opened = unseal(coordinator, *sealed);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  EXPECT_EQ(*opened, "a 32-byte report key, say.......");
  auto wrong = unseal(other, *sealed);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code, Errc::crypto);
  std::string altered = *sealed;
  altered[altered.size() / 2] ^= 1;
  EXPECT_FALSE(unseal(coordinator, altered).ok());
  EXPECT_FALSE(unseal(coordinator, "short").ok());
}

TEST(SecretBox, HmacMatchesOnlyTheSameKeyAndMessage) {
  const std::string mac = hmac_sha256("key-1", "report 7");
  EXPECT_EQ(mac.size(), 32u);
  EXPECT_TRUE(mac_equal(mac, hmac_sha256("key-1", "report 7")));
  EXPECT_FALSE(mac_equal(mac, hmac_sha256("key-2", "report 7")));
  EXPECT_FALSE(mac_equal(mac, hmac_sha256("key-1", "report 8")));
  EXPECT_FALSE(mac_equal(mac, mac.substr(0, 31)));
  // RFC 4231 test case 2.
  EXPECT_EQ(to_hex(hmac_sha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // Over parts, the MAC of their concatenation; a long key is hashed first.
  EXPECT_EQ(to_hex(hmac_sha256("Jefe", {"what do ya ", "", "want for nothing?"})),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  const std::string long_key(131, '\xaa');  // RFC 4231 test case 6
  EXPECT_EQ(
      to_hex(hmac_sha256(long_key, {"Test Using Larger Than Block-Size Key - ", "Hash Key First"})),
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

// Root rotation (issue 12, item 8): one version at a time, both roots sign.
TEST(RootChain, EachDocumentIsTakenOnlyAfterTheOneBeforeAndWithBothSignatures) {
  SeededRandom rnd(21);
  const KeyPair r1 = KeyPair::generate(rnd), r2 = KeyPair::generate(rnd),
                r3 = KeyPair::generate(rnd);
  auto doc = [&](const KeyPair& from, const KeyPair& to, std::uint64_t version) {
    return sign_root(from, to, {to.public_key(), version, kNow - 10, kNow + 3600}).value();
  };
  const Root pinned{r1.public_key(), 1};
  auto two = next_root(doc(r1, r2, 2), pinned, kNow);
  ASSERT_TRUE(two.ok()) << two.error().message;
  EXPECT_EQ(two->version, 2u);
  EXPECT_EQ(two->key, r2.public_key());
  auto three = next_root(doc(r2, r3, 3), *two, kNow);
  ASSERT_TRUE(three.ok()) << three.error().message;
  EXPECT_EQ(three->key, r3.public_key());

  // Skipping a link: version 3 straight from the pinned root, even signed by it.
  auto skip = next_root(doc(r1, r3, 3), pinned, kNow);
  ASSERT_FALSE(skip.ok());
  EXPECT_NE(skip.error().message.find("one version at a time"), std::string::npos);
  // Version 3 offered to a holder of version 1 (signed by root 2, not by root 1).
  EXPECT_FALSE(next_root(doc(r2, r3, 3), pinned, kNow).ok());
  // Signed by one root only.
  Envelope only_old = seal(std::string(RootDoc::kType), doc(r1, r2, 2).payload, r1);
  auto one = next_root(only_old, pinned, kNow);
  ASSERT_FALSE(one.ok());
  EXPECT_NE(one.error().message.find("new root's own key"), std::string::npos);
  Envelope only_new = seal(std::string(RootDoc::kType), doc(r1, r2, 2).payload, r2);
  EXPECT_FALSE(next_root(only_new, pinned, kNow).ok());
  // Expired, and a certificate passed off as a root document.
  EXPECT_FALSE(next_root(doc(r1, r2, 2), pinned, kNow + 3600).ok());
  EXPECT_FALSE(
      next_root(certify(r1, {"online", r2.public_key(), 2, kNow, kNow + 60}), pinned, kNow).ok());
  // The new key must be the one that signs.
  EXPECT_FALSE(sign_root(r1, r2, {r3.public_key(), 2, kNow, kNow + 60}).ok());
}

}  // namespace
}  // namespace drover::sign
