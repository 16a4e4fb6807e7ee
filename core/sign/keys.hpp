// ed25519 keys (libsodium): generation, key ids, key files.
//
// Key files are canonical JSON (docs/FORMATS.md, "Key files"). A secret key
// file is written with mode 0600 and refused on load when group or others may
// read it, as ssh does; the same rule holds for every secret file drover reads
// (check_secret_mode below: the webhook secret, TLS private keys).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/base/result.hpp"
#include "core/world/filesystem.hpp"
#include "core/world/random.hpp"

namespace drover::sign {

class PublicKey {
 public:
  static constexpr std::size_t kSize = 32;
  PublicKey() = default;
  explicit PublicKey(const std::array<std::uint8_t, kSize>& bytes) : bytes_(bytes) {}
  static Result<PublicKey> from_hex(std::string_view hex);

  const std::array<std::uint8_t, kSize>& bytes() const { return bytes_; }
  std::string hex() const;
  // The key id: lowercase hex SHA-256 of the 32 raw public-key bytes.
  std::string key_id() const;
  bool verify(std::string_view message, std::string_view signature) const;

  friend bool operator==(const PublicKey&, const PublicKey&) = default;

 private:
  std::array<std::uint8_t, kSize> bytes_{};
};

class KeyPair {
 public:
  static constexpr std::size_t kSeedSize = 32;
  static constexpr std::size_t kSignatureSize = 64;

  // Generates a new key pair from randomness (SystemRandom for real keys; a
  // SeededRandom gives reproducible keys in tests).
  static KeyPair generate(Random& random);
  static KeyPair from_seed(const std::array<std::uint8_t, kSeedSize>& seed);
  ~KeyPair();
  KeyPair(const KeyPair&);
  KeyPair& operator=(const KeyPair&);

  const PublicKey& public_key() const { return public_; }
  std::string key_id() const { return public_.key_id(); }
  // A detached 64-byte signature over message.
  std::string sign(std::string_view message) const;
  const std::array<std::uint8_t, kSeedSize>& seed() const { return seed_; }

 private:
  KeyPair() = default;
  std::array<std::uint8_t, kSeedSize> seed_{};
  std::array<std::uint8_t, 64> secret_{};  // libsodium's expanded secret key
  PublicKey public_;
};

// Writes path (secret, mode 0600) and path + ".pub" (public, mode 0644).
// Refuses to overwrite either file.
Status save_key_pair(Filesystem& fs, const KeyPair& key, const fs::path& path);
Result<KeyPair> load_key_pair(Filesystem& fs, const fs::path& path);
// Reads a public key file, or the public half of a secret key file.
Result<PublicKey> load_public_key(Filesystem& fs, const fs::path& path);

std::string encode_public_key_file(const PublicKey& key);

// The one rule for files that hold a secret (secret keys, the webhook secret,
// TLS private keys): refused when group or others may read them. The error
// names what the file is for, its path and its mode, and says how to fix it.
Status check_secret_mode(const FileInfo& info, const fs::path& path, std::string_view what);
// Reads a secret file (at most max_bytes), its mode checked on the open
// descriptor: what the check saw is what is read.
Result<std::string> read_secret_file(Filesystem& fs, const fs::path& path, std::uint64_t max_bytes,
                                     std::string_view what);
// Checks the mode of a secret file that another library opens by path (a TLS
// private key, which OpenSSL reads): follows symlinks, as that library will.
Status check_secret_file(const fs::path& path, std::string_view what);

}  // namespace drover::sign
