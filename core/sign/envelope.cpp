#include "core/sign/envelope.hpp"

#include <nlohmann/json.hpp>

#include "core/base/text.hpp"
#include "core/canon/base64.hpp"
#include "core/canon/canonical_json.hpp"

namespace drover::sign {
namespace {
constexpr std::string_view kEnvelopeFormat = "drover.envelope.v1";
constexpr std::size_t kMaxSignatures = 16;
constexpr std::size_t kMaxCertBytes = 4096;

Error crypto_error(std::string message) {
  return make_error(Errc::crypto, std::move(message));
}
}  // namespace

std::string signing_input(std::string_view payload_type, std::string_view payload) {
  std::string out = "drover-sig-v1\n";
  out += payload_type;
  out += '\n';
  out += std::to_string(payload.size());
  out += '\n';
  out += payload;
  return out;
}

void add_signature(Envelope& envelope, const KeyPair& key) {
  envelope.signatures.push_back(
      {key.key_id(), key.sign(signing_input(envelope.payload_type, envelope.payload))});
}

Envelope seal(std::string_view payload_type, std::string payload, const KeyPair& key) {
  Envelope e{std::string(payload_type), std::move(payload), {}};
  add_signature(e, key);
  return e;
}

std::string encode_envelope(const Envelope& envelope) {
  nlohmann::json sigs = nlohmann::json::array();
  for (const auto& s : envelope.signatures) {
    sigs.push_back({{"key_id", s.key_id}, {"sig", canon::base64_encode(s.sig)}});
  }
  nlohmann::json j = {{"format", kEnvelopeFormat},
                      {"payload_type", envelope.payload_type},
                      {"payload", canon::base64_encode(envelope.payload)},
                      {"signatures", sigs}};
  return *canon::encode(j);
}

Result<Envelope> decode_envelope(std::string_view bytes) {
  auto parsed = canon::decode(bytes, kMaxEnvelopeBytes);
  if (!parsed.ok()) return parsed.error().context("signed envelope");
  const nlohmann::json& j = *parsed;
  auto bad = [](const std::string& what) {
    return make_error(Errc::invalid_argument, "signed envelope: " + what);
  };
  if (!j.is_object()) return bad("not an object");
  if (j.size() != 4) return bad("expected exactly format, payload, payload_type, signatures");
  auto format = j.find("format");
  if (format == j.end() || !format->is_string()) return bad("missing format");
  if (format->get<std::string>() != kEnvelopeFormat) {
    return make_error(Errc::unsupported, "signed envelope: format '" +
                                             clip_utf8(format->get<std::string>(), 64) +
                                             "' is not known to this build (it reads " +
                                             std::string(kEnvelopeFormat) + ")");
  }
  if (!j.contains("payload_type") || !j["payload_type"].is_string()) {
    return bad("missing payload_type");
  }
  if (!j.contains("payload") || !j["payload"].is_string()) return bad("missing payload");
  if (!j.contains("signatures") || !j["signatures"].is_array()) return bad("missing signatures");
  if (j["signatures"].empty() || j["signatures"].size() > kMaxSignatures) {
    return bad("needs 1 to " + std::to_string(kMaxSignatures) + " signatures");
  }
  Envelope e;
  e.payload_type = j["payload_type"].get<std::string>();
  auto payload = canon::base64_decode(j["payload"].get<std::string>());
  if (!payload.ok()) return bad("payload: " + payload.error().message);
  e.payload = std::move(*payload);
  for (const auto& s : j["signatures"]) {
    if (!s.is_object() || s.size() != 2 || !s.contains("key_id") || !s["key_id"].is_string() ||
        !s.contains("sig") || !s["sig"].is_string()) {
      return bad("each signature needs key_id and sig");
    }
    auto sig = canon::base64_decode(s["sig"].get<std::string>());
    if (!sig.ok() || sig->size() != KeyPair::kSignatureSize) {
      return bad("signature is not 64 base64-encoded bytes");
    }
    e.signatures.push_back({s["key_id"].get<std::string>(), std::move(*sig)});
  }
  return e;
}

Result<std::string> open(const Envelope& envelope, std::string_view expected_type,
                         const PublicKey& key) {
  if (envelope.payload_type != expected_type) {
    return crypto_error("envelope holds '" + clip_utf8(envelope.payload_type, 64) +
                        "', expected '" + std::string(expected_type) + "'");
  }
  const std::string key_id = key.key_id();
  // Any signature by the key will do: the list itself is not signed, so a
  // forged entry with the right key id must not hide a valid one.
  bool seen = false;
  for (const auto& s : envelope.signatures) {
    if (s.key_id != key_id) continue;
    seen = true;
    if (key.verify(signing_input(envelope.payload_type, envelope.payload), s.sig)) {
      return envelope.payload;
    }
  }
  if (seen) return crypto_error("signature by key " + key_id.substr(0, 16) + " does not verify");
  return crypto_error("no signature by key " + key_id.substr(0, 16));
}

Envelope certify(const KeyPair& root, const KeyCert& cert) {
  nlohmann::json j = {
      {"format", KeyCert::kType},          {"role", cert.role},
      {"subject_key", cert.subject.hex()}, {"subject_key_id", cert.subject.key_id()},
      {"version", cert.version},           {"issued_at", cert.issued_at},
      {"expires_at", cert.expires_at}};
  return seal(KeyCert::kType, *canon::encode(j), root);
}

Result<KeyCert> verify_cert(const Envelope& cert, const TrustRoot& trust, std::int64_t now) {
  auto payload = open(cert, KeyCert::kType, trust.root);
  if (!payload.ok()) return payload.error().context("key certificate");
  // Authentic from here on: the root signed these bytes.
  auto parsed = canon::decode(*payload, kMaxCertBytes);
  if (!parsed.ok()) return parsed.error().context("key certificate");
  const nlohmann::json& j = *parsed;
  auto bad = [](const std::string& what) {
    return make_error(Errc::invalid_argument, "key certificate: " + what);
  };
  if (!j.is_object()) return bad("not an object");
  auto format = j.find("format");
  if (format == j.end() || !format->is_string()) return bad("missing format");
  if (format->get<std::string>() != KeyCert::kType) {
    return make_error(Errc::unsupported, "key certificate: format '" +
                                             clip_utf8(format->get<std::string>(), 64) +
                                             "' is not known to this build");
  }
  for (const char* k : {"issued_at", "expires_at"}) {
    if (!j.contains(k) || !j[k].is_number_integer()) return bad(std::string("missing ") + k);
  }
  if (!j.contains("version") || !j["version"].is_number_unsigned()) {
    return bad("version must be a non-negative integer");
  }
  if (!j.contains("role") || !j["role"].is_string() || !j.contains("subject_key") ||
      !j["subject_key"].is_string()) {
    return bad("missing role or subject_key");
  }
  KeyCert c;
  c.role = j["role"].get<std::string>();
  auto subject = PublicKey::from_hex(j["subject_key"].get<std::string>());
  if (!subject.ok()) return bad(subject.error().message);
  c.subject = *subject;
  c.version = j["version"].get<std::uint64_t>();
  c.issued_at = j["issued_at"].get<std::int64_t>();
  c.expires_at = j["expires_at"].get<std::int64_t>();
  if (c.version < trust.min_cert_version) {
    return crypto_error("key certificate version " + std::to_string(c.version) +
                        " was superseded (lowest accepted is " +
                        std::to_string(trust.min_cert_version) + ")");
  }
  if (now >= c.expires_at) {
    return crypto_error("key certificate expired at " + std::to_string(c.expires_at) + " (now " +
                        std::to_string(now) + ")");
  }
  if (c.role != "online") return crypto_error("key certificate role is '" + c.role + "'");
  return c;
}

Result<Verified> open_certified(const Envelope& payload, std::string_view expected_type,
                                const Envelope& cert, const TrustRoot& trust, std::int64_t now) {
  DROVER_ASSIGN(KeyCert c, verify_cert(cert, trust, now));
  DROVER_ASSIGN(std::string bytes, open(payload, expected_type, c.subject));
  return Verified{std::move(c), std::move(bytes)};
}

}  // namespace drover::sign
