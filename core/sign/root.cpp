#include "core/sign/root.hpp"

#include <nlohmann/json.hpp>

#include "core/canon/canonical_json.hpp"

namespace drover::sign {
namespace {

constexpr std::size_t kMaxRootBytes = 4096;

Error bad(const std::string& what) {
  return make_error(Errc::invalid_argument, "root document: " + what);
}

Result<RootDoc> parse(std::string_view payload) {
  auto parsed = canon::decode(payload, kMaxRootBytes);
  if (!parsed.ok()) return parsed.error().context("root document");
  const nlohmann::json& j = *parsed;
  if (!j.is_object()) return bad("not an object");
  auto format = j.find("format");
  if (format == j.end() || *format != RootDoc::kType) {
    return make_error(Errc::unsupported, "root document: format is not drover.root.v1");
  }
  for (const char* k : {"issued_at", "expires_at"}) {
    if (!j.contains(k) || !j[k].is_number_integer()) return bad(std::string("missing ") + k);
  }
  if (!j.contains("version") || !j["version"].is_number_unsigned()) {
    return bad("version must be a whole number");
  }
  if (!j.contains("key") || !j["key"].is_string()) return bad("missing key");
  RootDoc d;
  DROVER_ASSIGN(d.key, PublicKey::from_hex(j["key"].get<std::string>()));
  d.version = j["version"].get<std::uint64_t>();
  d.issued_at = j["issued_at"].get<std::int64_t>();
  d.expires_at = j["expires_at"].get<std::int64_t>();
  if (!j.contains("key_id") || j["key_id"] != d.key.key_id()) {
    return bad("key_id does not match key");
  }
  return d;
}

}  // namespace

Result<Envelope> sign_root(const KeyPair& previous, const KeyPair& next, const RootDoc& doc) {
  if (!(doc.key == next.public_key())) {
    return make_error(Errc::invalid_argument, "root document: its key is not the new root's");
  }
  if (doc.version < 2) {
    return make_error(Errc::invalid_argument,
                      "root document: version 1 is the pinned root; documents start at 2");
  }
  const nlohmann::json j = {{"format", RootDoc::kType},   {"key", doc.key.hex()},
                            {"key_id", doc.key.key_id()}, {"version", doc.version},
                            {"issued_at", doc.issued_at}, {"expires_at", doc.expires_at}};
  DROVER_ASSIGN(std::string payload, canon::encode(j));
  Envelope e = seal(RootDoc::kType, std::move(payload), previous);
  add_signature(e, next);
  return e;
}

Result<Root> next_root(const Envelope& doc, const Root& current, std::int64_t now,
                       bool check_expiry) {
  // Signed by the root trusted now: only then is the payload read.
  auto by_current = open(doc, RootDoc::kType, current.key);
  if (!by_current.ok()) {
    return by_current.error().context("root document: not signed by root version " +
                                      std::to_string(current.version));
  }
  DROVER_ASSIGN(RootDoc d, parse(*by_current));
  if (d.version != current.version + 1) {
    return make_error(Errc::refused, "root document: version " + std::to_string(d.version) +
                                         " does not follow version " +
                                         std::to_string(current.version) +
                                         " (roots are taken one version at a time)");
  }
  if (auto by_new = open(doc, RootDoc::kType, d.key); !by_new.ok()) {
    return by_new.error().context("root document version " + std::to_string(d.version) +
                                  ": not signed by the new root's own key");
  }
  if (check_expiry && now >= d.expires_at) {
    return make_error(Errc::refused,
                      "root document version " + std::to_string(d.version) + " has expired");
  }
  return Root{d.key, d.version};
}

Result<std::uint64_t> claimed_root_version(const Envelope& doc) {
  if (doc.payload_type != RootDoc::kType) {
    return make_error(Errc::invalid_argument, "not a root document: " + doc.payload_type);
  }
  DROVER_ASSIGN(RootDoc d, parse(doc.payload));
  return d.version;
}

}  // namespace drover::sign
