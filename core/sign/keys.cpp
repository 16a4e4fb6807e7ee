#include "core/sign/keys.hpp"

#include <sodium.h>

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/base/hex.hpp"
#include "core/canon/canonical_json.hpp"
#include "core/hash/sha256.hpp"

namespace drover::sign {
namespace {

constexpr std::string_view kSecretFormat = "drover.key.v1";
constexpr std::string_view kPublicFormat = "drover.pubkey.v1";
constexpr std::uint64_t kMaxKeyFileBytes = 4096;

std::string octal_mode(std::uint32_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", mode & 07777);
  return buf;
}

void init_sodium() {
  DROVER_ASSERT(sodium_init() >= 0);
}

template <std::size_t N>
bool hex_to_array(std::string_view hex, std::array<std::uint8_t, N>& out) {
  if (hex.size() != 2 * N) return false;
  auto raw = from_hex(hex);
  if (!raw) return false;
  std::memcpy(out.data(), raw->data(), N);
  return true;
}

}  // namespace

Result<PublicKey> PublicKey::from_hex(std::string_view hex) {
  std::array<std::uint8_t, kSize> b{};
  if (!hex_to_array(hex, b)) {
    return make_error(Errc::invalid_argument, "public key must be 64 hex digits");
  }
  return PublicKey(b);
}

std::string PublicKey::hex() const {
  return to_hex(bytes_.data(), bytes_.size());
}

std::string PublicKey::key_id() const {
  Digest d = Sha256::of(bytes_.data(), bytes_.size());
  return to_hex(d.data(), d.size());
}

bool PublicKey::verify(std::string_view message, std::string_view signature) const {
  init_sodium();
  if (signature.size() != crypto_sign_BYTES) return false;
  return crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(signature.data()),
                                     reinterpret_cast<const unsigned char*>(message.data()),
                                     message.size(), bytes_.data()) == 0;
}

KeyPair KeyPair::from_seed(const std::array<std::uint8_t, kSeedSize>& seed) {
  init_sodium();
  KeyPair k;
  k.seed_ = seed;
  std::array<std::uint8_t, PublicKey::kSize> pk{};
  DROVER_ASSERT(crypto_sign_seed_keypair(pk.data(), k.secret_.data(), seed.data()) == 0);
  k.public_ = PublicKey(pk);
  return k;
}

KeyPair KeyPair::generate(Random& random) {
  std::array<std::uint8_t, kSeedSize> seed{};
  random.fill(seed.data(), seed.size());
  KeyPair k = from_seed(seed);
  sodium_memzero(seed.data(), seed.size());
  return k;
}

KeyPair::~KeyPair() {
  sodium_memzero(seed_.data(), seed_.size());
  sodium_memzero(secret_.data(), secret_.size());
}

KeyPair::KeyPair(const KeyPair&) = default;
KeyPair& KeyPair::operator=(const KeyPair&) = default;

std::string KeyPair::sign(std::string_view message) const {
  std::string sig(crypto_sign_BYTES, '\0');
  DROVER_ASSERT(crypto_sign_detached(reinterpret_cast<unsigned char*>(sig.data()), nullptr,
                                     reinterpret_cast<const unsigned char*>(message.data()),
                                     message.size(), secret_.data()) == 0);
  return sig;
}

std::string encode_public_key_file(const PublicKey& key) {
  nlohmann::json j = {{"format", kPublicFormat},
                      {"type", "ed25519"},
                      {"public", key.hex()},
                      {"key_id", key.key_id()}};
  return *canon::encode(j) + "\n";
}

Status save_key_pair(Filesystem& fs, const KeyPair& key, const fs::path& path) {
  nlohmann::json j = {{"format", kSecretFormat},
                      {"type", "ed25519"},
                      {"public", key.public_key().hex()},
                      {"key_id", key.key_id()},
                      {"seed", to_hex(key.seed().data(), key.seed().size())}};
  std::string secret = *canon::encode(j) + "\n";
  fs::path pub = path;
  pub += ".pub";
  for (const auto& p : {path, pub}) {
    DROVER_ASSIGN(bool present, fs.exists(p));
    if (present) {
      return make_error(Errc::already_exists,
                        "key file " + p.string() + " exists; refusing to overwrite a key");
    }
  }
  fs::path tmp = path;
  tmp += ".tmp";
  DROVER_TRY(fs.write_atomic(path, tmp, secret, 0600));
  sodium_memzero(secret.data(), secret.size());
  fs::path pub_tmp = pub;
  pub_tmp += ".tmp";
  return fs.write_atomic(pub, pub_tmp, encode_public_key_file(key.public_key()), 0644);
}

namespace {

Result<nlohmann::json> read_key_json(Filesystem& fs, const fs::path& path) {
  DROVER_ASSIGN(std::string bytes, fs.read_file(path, kMaxKeyFileBytes));
  if (!bytes.empty() && bytes.back() == '\n') bytes.pop_back();
  auto j = canon::decode(bytes, kMaxKeyFileBytes);
  if (!j.ok()) return j.error().context("key file " + path.string());
  if (!j->is_object() || !j->contains("type") || (*j)["type"] != "ed25519") {
    return make_error(Errc::invalid_argument,
                      "key file " + path.string() + ": not an ed25519 key file");
  }
  return j;
}

}  // namespace

Result<KeyPair> load_key_pair(Filesystem& fs, const fs::path& path) {
  DROVER_ASSIGN(FileInfo info, fs.lstat(path));
  if (info.mode & 077) {
    return make_error(Errc::refused, "secret key file " + path.string() +
                                         " may be read by group or others (mode " +
                                         octal_mode(info.mode) + "); chmod 600 it");
  }
  DROVER_ASSIGN(nlohmann::json j, read_key_json(fs, path));
  if (j.value("format", "") != kSecretFormat || !j.contains("seed") || !j["seed"].is_string()) {
    return make_error(Errc::invalid_argument,
                      "key file " + path.string() + ": not a secret key file (no seed)");
  }
  std::array<std::uint8_t, KeyPair::kSeedSize> seed{};
  if (!hex_to_array(j["seed"].get<std::string>(), seed)) {
    return make_error(Errc::invalid_argument, "key file " + path.string() + ": bad seed");
  }
  KeyPair key = KeyPair::from_seed(seed);
  sodium_memzero(seed.data(), seed.size());
  if (j.value("public", "") != key.public_key().hex()) {
    return make_error(Errc::corrupt,
                      "key file " + path.string() + ": public key does not match the seed");
  }
  return key;
}

Result<PublicKey> load_public_key(Filesystem& fs, const fs::path& path) {
  DROVER_ASSIGN(nlohmann::json j, read_key_json(fs, path));
  if (!j.contains("public") || !j["public"].is_string()) {
    return make_error(Errc::invalid_argument, "key file " + path.string() + ": no public key");
  }
  auto key = PublicKey::from_hex(j["public"].get<std::string>());
  if (!key.ok()) return key.error().context("key file " + path.string());
  return key;
}

}  // namespace drover::sign
