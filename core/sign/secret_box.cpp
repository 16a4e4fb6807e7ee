#include "core/sign/secret_box.hpp"

#include <sodium.h>

#include <array>
#include <cstring>

#include "core/hash/sha256.hpp"

namespace drover::sign {
namespace {

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

std::string hmac_sha256(std::string_view key, std::string_view message) {
  return hmac_sha256(key, {message});
}

std::string hmac_sha256(std::string_view key, std::initializer_list<std::string_view> message) {
  // RFC 2104 over core/hash's SHA-256 (OpenSSL, which uses the CPU's SHA
  // instructions where it has them): several times faster than a portable
  // implementation on plan-sized answers, and every answer is MACed. The
  // message is hashed part by part, never copied into one string; the
  // hasher is the thread's own, reset by each finish().
  constexpr std::size_t kBlock = 64;
  std::array<unsigned char, kBlock> k{}, pad{};
  if (key.size() > kBlock) {
    const Digest d = Sha256::of(key);
    std::memcpy(k.data(), d.data(), d.size());
  } else {
    std::memcpy(k.data(), key.data(), key.size());
  }
  thread_local Sha256 h;
  for (std::size_t i = 0; i < kBlock; ++i) pad[i] = k[i] ^ 0x36;
  h.update(pad.data(), kBlock);
  for (std::string_view part : message) h.update(part);
  const Digest inner = h.finish();
  for (std::size_t i = 0; i < kBlock; ++i) pad[i] = k[i] ^ 0x5c;
  h.update(pad.data(), kBlock);
  h.update(inner.data(), inner.size());
  const Digest mac = h.finish();
  sodium_memzero(k.data(), k.size());
  sodium_memzero(pad.data(), pad.size());
  return std::string(reinterpret_cast<const char*>(mac.data()), mac.size());
}

bool mac_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

Result<std::string> seal_to(const PublicKey& recipient, std::string_view plaintext) {
  DROVER_ASSERT(sodium_init() >= 0);
  std::array<unsigned char, crypto_box_PUBLICKEYBYTES> x25519{};
  if (crypto_sign_ed25519_pk_to_curve25519(x25519.data(), recipient.bytes().data()) != 0) {
    return make_error(Errc::crypto, "cannot seal to key " + recipient.key_id().substr(0, 12) +
                                        ": not a valid ed25519 public key");
  }
  std::string out(plaintext.size() + crypto_box_SEALBYTES, '\0');
  crypto_box_seal(reinterpret_cast<unsigned char*>(out.data()), bytes(plaintext), plaintext.size(),
                  x25519.data());
  return out;
}

Result<std::string> unseal(const KeyPair& recipient, std::string_view sealed) {
  DROVER_ASSERT(sodium_init() >= 0);
  if (sealed.size() < crypto_box_SEALBYTES) {
    return make_error(Errc::crypto,
                      "sealed message is too short (" + std::to_string(sealed.size()) + " bytes)");
  }
  // libsodium derives the X25519 key pair from the ed25519 seed's expansion.
  std::array<unsigned char, crypto_sign_SECRETKEYBYTES> ed_secret{};
  std::array<unsigned char, crypto_sign_PUBLICKEYBYTES> ed_public{};
  crypto_sign_seed_keypair(ed_public.data(), ed_secret.data(), recipient.seed().data());
  std::array<unsigned char, crypto_box_SECRETKEYBYTES> x_secret{};
  std::array<unsigned char, crypto_box_PUBLICKEYBYTES> x_public{};
  crypto_sign_ed25519_sk_to_curve25519(x_secret.data(), ed_secret.data());
  // The key pair is our own, made by libsodium: its public half always converts.
  DROVER_ASSERT(crypto_sign_ed25519_pk_to_curve25519(x_public.data(), ed_public.data()) == 0);
  sodium_memzero(ed_secret.data(), ed_secret.size());
  std::string out(sealed.size() - crypto_box_SEALBYTES, '\0');
  const int rc = crypto_box_seal_open(reinterpret_cast<unsigned char*>(out.data()), bytes(sealed),
                                      sealed.size(), x_public.data(), x_secret.data());
  sodium_memzero(x_secret.data(), x_secret.size());
  if (rc != 0) {
    return make_error(Errc::crypto, "sealed message does not open with key " +
                                        recipient.key_id().substr(0, 12) +
                                        " (sealed to another key, or altered)");
  }
  return out;
}

}  // namespace drover::sign
