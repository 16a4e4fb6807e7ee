// Signed envelopes and key certificates (docs/FORMATS.md, "Signed envelope").
//
// An envelope carries the exact payload bytes, their type, and detached
// ed25519 signatures with key ids. A signature covers a domain-separated
// encoding of (type, payload), so a payload signed as one type can never be
// accepted as another. open() checks the signature before anyone parses the
// payload: callers receive payload bytes only once they are authentic.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.hpp"
#include "core/sign/keys.hpp"

namespace drover::sign {

inline constexpr std::size_t kMaxEnvelopeBytes = 64 * 1024 * 1024;

struct Signature {
  std::string key_id;
  std::string sig;  // 64 raw bytes
};

struct Envelope {
  std::string payload_type;  // e.g. "drover.plan.v1"
  std::string payload;       // the exact signed bytes
  std::vector<Signature> signatures;
};

// The bytes a signature covers: "drover-sig-v1\n" type "\n" len(payload) "\n" payload.
std::string signing_input(std::string_view payload_type, std::string_view payload);

Envelope seal(std::string_view payload_type, std::string payload, const KeyPair& key);
void add_signature(Envelope& envelope, const KeyPair& key);

std::string encode_envelope(const Envelope& envelope);
// Parses the envelope's outer structure only; the payload stays opaque bytes.
Result<Envelope> decode_envelope(std::string_view bytes);

// Returns the payload when the envelope has the expected type and a valid
// signature by key; otherwise a crypto error naming what failed.
Result<std::string> open(const Envelope& envelope, std::string_view expected_type,
                         const PublicKey& key);

// A root key certifies an online signing key. version only goes up: a
// certificate with a higher version rotates the online key, and relying
// parties then refuse certificates (and so signatures) of lower versions.
struct KeyCert {
  static constexpr std::string_view kType = "drover.key-cert.v1";
  std::string role = "online";
  PublicKey subject;
  std::uint64_t version = 1;
  std::int64_t issued_at = 0;   // unix seconds
  std::int64_t expires_at = 0;  // unix seconds
};

Envelope certify(const KeyPair& root, const KeyCert& cert);

// What a relying party pins: the root public key and the lowest certificate
// version it still accepts (raised on rotation).
struct TrustRoot {
  PublicKey root;
  std::uint64_t min_cert_version = 1;
};

// Verifies the certificate's signature by the root, then its version, expiry
// (against now, unix seconds) and role.
Result<KeyCert> verify_cert(const Envelope& cert, const TrustRoot& trust, std::int64_t now);

// Verifies cert as above, then that payload is signed by the certified key
// with the expected type. Returns the certificate and the payload bytes.
struct Verified {
  KeyCert cert;
  std::string payload;
};
Result<Verified> open_certified(const Envelope& payload, std::string_view expected_type,
                                const Envelope& cert, const TrustRoot& trust, std::int64_t now);

}  // namespace drover::sign
