#include "core/sign/keys.hpp"

#include <sodium.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/base/hex.hpp"
#include "core/base/text.hpp"
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
  DROVER_ASSIGN(bool pub_present, fs.exists(pub));
  if (pub_present) {
    return make_error(Errc::already_exists,
                      "key file " + pub.string() + " exists; refusing to overwrite a key");
  }
  // The rename into place refuses an existing file itself, so two keygens at
  // once cannot overwrite each other's key.
  fs::path tmp = path;
  tmp += ".tmp";
  Status st = fs.write_atomic(path, tmp, secret, 0600, /*replace=*/false);
  sodium_memzero(secret.data(), secret.size());
  if (!st.ok()) {
    if (st.error().code == Errc::already_exists) {
      return make_error(Errc::already_exists,
                        "key file " + path.string() + " exists; refusing to overwrite a key");
    }
    return st;
  }
  fs::path pub_tmp = pub;
  pub_tmp += ".tmp";
  return fs.write_atomic(pub, pub_tmp, encode_public_key_file(key.public_key()), 0644,
                         /*replace=*/false);
}

namespace {

// A string field, or nullopt when absent or of another type.
std::optional<std::string> string_field(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

struct KeyFile {
  nlohmann::json doc;
  FileInfo info;  // of the open file, not of whatever the path names later
};

Result<KeyFile> read_key_file(Filesystem& fs, const fs::path& path, std::string_view format) {
  DROVER_ASSIGN(auto file, fs.open_read(path));
  DROVER_ASSIGN(FileInfo info, file->info());
  std::string bytes;
  char buf[1024];
  for (;;) {
    DROVER_ASSIGN(std::size_t n, file->read(buf, sizeof buf));
    if (n == 0) break;
    bytes.append(buf, n);
    if (bytes.size() > kMaxKeyFileBytes) {
      return make_error(Errc::invalid_argument, "key file " + path.string() + ": too large");
    }
  }
  if (!bytes.empty() && bytes.back() == '\n') bytes.pop_back();
  auto j = canon::decode(bytes, kMaxKeyFileBytes, 64);
  sodium_memzero(bytes.data(), bytes.size());
  if (!j.ok()) return j.error().context("key file " + path.string());
  if (!j->is_object() || string_field(*j, "type") != "ed25519") {
    return make_error(Errc::invalid_argument,
                      "key file " + path.string() + ": not an ed25519 key file");
  }
  auto f = string_field(*j, "format");
  if (f != kSecretFormat && f != kPublicFormat) {
    return make_error(Errc::unsupported, "key file " + path.string() + ": format '" +
                                             clip_utf8(f.value_or("(none)"), 64) +
                                             "' is not known to this build");
  }
  if (!format.empty() && f != format) {
    return make_error(Errc::invalid_argument, "key file " + path.string() + " is a " + *f +
                                                  " file, not " + std::string(format));
  }
  return KeyFile{std::move(*j), info};
}

}  // namespace

Result<KeyPair> load_key_pair(Filesystem& fs, const fs::path& path) {
  DROVER_ASSIGN(KeyFile kf, read_key_file(fs, path, kSecretFormat));
  DROVER_TRY(check_secret_mode(kf.info, path, "secret key file"));
  auto seed_hex = string_field(kf.doc, "seed");
  std::array<std::uint8_t, KeyPair::kSeedSize> seed{};
  if (!seed_hex || !hex_to_array(*seed_hex, seed)) {
    return make_error(Errc::invalid_argument,
                      "key file " + path.string() + ": bad or missing seed");
  }
  KeyPair key = KeyPair::from_seed(seed);
  sodium_memzero(seed.data(), seed.size());
  if (string_field(kf.doc, "public") != key.public_key().hex()) {
    return make_error(Errc::corrupt,
                      "key file " + path.string() + ": public key does not match the seed");
  }
  return key;
}

Status check_secret_mode(const FileInfo& info, const fs::path& path, std::string_view what) {
  if ((info.mode & 077) == 0) return Ok{};
  return make_error(Errc::refused, std::string(what) + " " + path.string() +
                                       " may be read by group or others (mode " +
                                       octal_mode(info.mode) + "); chmod 600 it");
}

Result<std::string> read_secret_file(Filesystem& fs, const fs::path& path, std::uint64_t max_bytes,
                                     std::string_view what) {
  DROVER_ASSIGN(auto file, fs.open_read(path));
  DROVER_ASSIGN(FileInfo info, file->info());
  DROVER_TRY(check_secret_mode(info, path, what));
  std::string bytes;
  char buf[4096];
  for (;;) {
    DROVER_ASSIGN(std::size_t n, file->read(buf, sizeof buf));
    if (n == 0) break;
    bytes.append(buf, n);
    if (bytes.size() > max_bytes) {
      sodium_memzero(bytes.data(), bytes.size());
      return make_error(Errc::invalid_argument, std::string(what) + " " + path.string() +
                                                    " is larger than " + std::to_string(max_bytes) +
                                                    " bytes");
    }
  }
  sodium_memzero(buf, sizeof buf);
  return bytes;
}

Status check_secret_file(const fs::path& path, std::string_view what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return errno_error("stat", path, errno).context(std::string(what));
  }
  FileInfo info;
  info.mode = static_cast<std::uint32_t>(st.st_mode & 07777);
  return check_secret_mode(info, path, what);
}

Result<PublicKey> load_public_key(Filesystem& fs, const fs::path& path) {
  DROVER_ASSIGN(KeyFile kf, read_key_file(fs, path, ""));
  auto pub = string_field(kf.doc, "public");
  if (!pub)
    return make_error(Errc::invalid_argument, "key file " + path.string() + ": no public key");
  auto key = PublicKey::from_hex(*pub);
  if (!key.ok()) return key.error().context("key file " + path.string());
  return key;
}

}  // namespace drover::sign
