#include "core/mesh_token/mesh_token.hpp"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <variant>

#include "core/base/hex.hpp"
#include "core/base/name.hpp"
#include "core/canon/base64.hpp"
#include "core/canon/canonical_json.hpp"
#include "core/sign/secret_box.hpp"

namespace drover::mesh_token {
namespace {

bool known_role(std::string_view role) {
  return role == "peer" || role == "seed" || role == "origin";
}

// The rules a token's claims follow, whoever made them.
std::string claims_flaw(const Claims& c) {
  if (!known_role(c.role)) return "role must be peer, seed or origin";
  if (!is_valid_name(c.host)) return "host is not a valid name";
  // A seed serves a region; the origin serves all; a peer of a host enrolled
  // without a region announces (and is matched) with region "".
  if (c.region.empty() ? c.role == "seed" : !is_valid_name(c.region))
    return "region is not a valid name (it may be empty for the origin and for peers only)";
  if (c.expires_at <= 0) return "exp must be a positive unix time";
  return "";
}

Refusal refuse(Flaw flaw, std::string message) {
  return Refusal{flaw, std::move(message)};
}

// The payload and tag of a token of the right length and form, or why not.
struct Parts {
  std::string payload, tag;
};
std::variant<Parts, Refusal> split(std::string_view token) {
  if (token.size() > kMaxTokenBytes) {
    return refuse(Flaw::too_long, "token too long: " + std::to_string(token.size()) +
                                      " bytes, at most " + std::to_string(kMaxTokenBytes));
  }
  if (token.substr(0, kPrefix.size()) != kPrefix) {
    return refuse(Flaw::form, "token malformed: it does not start with 'dmt1.'");
  }
  const std::string_view rest = token.substr(kPrefix.size());
  const std::size_t dot = rest.find('.');
  if (dot == std::string_view::npos || rest.find('.', dot + 1) != std::string_view::npos) {
    return refuse(Flaw::form, "token malformed: the form is dmt1.PAYLOAD.TAG");
  }
  auto payload = canon::base64url_decode(rest.substr(0, dot));
  auto tag = canon::base64url_decode(rest.substr(dot + 1));
  if (!payload.ok() || !tag.ok()) {
    return refuse(Flaw::form, "token malformed: its payload or tag is not unpadded base64url");
  }
  if (tag->size() != 32) return refuse(Flaw::form, "token malformed: its tag is not 32 bytes");
  return Parts{std::move(*payload), std::move(*tag)};
}

// The claims of a payload, or why they are not claims.
std::variant<Claims, Refusal> parse_payload(std::string_view payload) {
  auto j = canon::decode(payload, kMaxTokenBytes, 16);
  if (!j.ok() || !j->is_object() || j->size() != 4 || !j->contains("exp") ||
      !(*j)["exp"].is_number_integer()) {
    return refuse(Flaw::form, "token payload is not {exp, host, region, role}");
  }
  Claims c;
  c.expires_at = (*j)["exp"].get<std::int64_t>();
  for (auto [field, out] :
       {std::pair{"host", &c.host}, std::pair{"region", &c.region}, std::pair{"role", &c.role}}) {
    auto it = j->find(field);
    if (it == j->end() || !it->is_string()) {
      return refuse(Flaw::form, std::string("token payload has no string '") + field + "'");
    }
    *out = it->get<std::string>();
  }
  if (std::string flaw = claims_flaw(c); !flaw.empty()) {
    return refuse(Flaw::form, "token payload: " + flaw);
  }
  return c;
}

}  // namespace

const char* flaw_name(Flaw flaw) {
  switch (flaw) {
    case Flaw::too_long: return "too_long";
    case Flaw::form: return "form";
    case Flaw::tag: return "tag";
    case Flaw::expired: return "expired";
  }
  return "form";
}

Result<std::string> issue(std::string_view key, const Claims& claims) {
  if (key.size() != kKeySize) {
    return make_error(Errc::invalid_argument, "a mesh token key is " + std::to_string(kKeySize) +
                                                  " bytes, not " + std::to_string(key.size()));
  }
  if (std::string flaw = claims_flaw(claims); !flaw.empty()) {
    return make_error(Errc::invalid_argument, "mesh token claims: " + flaw);
  }
  DROVER_ASSIGN(std::string payload, canon::encode(nlohmann::json{{"exp", claims.expires_at},
                                                                  {"host", claims.host},
                                                                  {"region", claims.region},
                                                                  {"role", claims.role}}));
  std::string token = std::string(kPrefix) + canon::base64url_encode(payload) + "." +
                      canon::base64url_encode(sign::hmac_sha256(key, payload));
  if (token.size() > kMaxTokenBytes) {
    return make_error(Errc::invalid_argument, "a mesh token for host '" + claims.host +
                                                  "' would be " + std::to_string(token.size()) +
                                                  " bytes, above the limit of " +
                                                  std::to_string(kMaxTokenBytes));
  }
  return token;
}

CheckResult check(std::string_view key, std::string_view token, std::int64_t now_unix) {
  auto parts = split(token);
  if (auto* r = std::get_if<Refusal>(&parts)) return std::move(*r);
  const Parts& p = std::get<Parts>(parts);
  if (key.size() != kKeySize || !sign::mac_equal(p.tag, sign::hmac_sha256(key, p.payload))) {
    return refuse(Flaw::tag, "token not issued under this tracker's key (its tag does not verify)");
  }
  // Authenticated: only a holder of the key made these bytes.
  auto claims = parse_payload(p.payload);
  if (auto* r = std::get_if<Refusal>(&claims)) return std::move(*r);
  Claims& c = std::get<Claims>(claims);
  if (now_unix >= c.expires_at) {
    return refuse(Flaw::expired, "token of host '" + c.host + "' expired at " +
                                     std::to_string(c.expires_at) + " (now " +
                                     std::to_string(now_unix) + "); get a new one");
  }
  return std::move(c);
}

Result<Claims> peek(std::string_view token) {
  auto parts = split(token);
  if (auto* r = std::get_if<Refusal>(&parts)) return make_error(Errc::invalid_argument, r->message);
  auto claims = parse_payload(std::get<Parts>(parts).payload);
  if (auto* r = std::get_if<Refusal>(&claims)) {
    return make_error(Errc::invalid_argument, r->message);
  }
  return std::get<Claims>(claims);
}

Result<std::string> load_key(Filesystem& fs, const fs::path& path) {
  DROVER_ASSIGN(auto file, fs.open_read(path));
  DROVER_ASSIGN(FileInfo info, file->info());
  if (info.mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(info.mode & 07777));
    return make_error(Errc::refused, "mesh token key file " + path.string() +
                                         " may be read by group or others (mode " + mode +
                                         "); chmod 600 it");
  }
  std::string text;
  char buf[256];
  for (;;) {
    DROVER_ASSIGN(std::size_t n, file->read(buf, sizeof buf));
    if (n == 0) break;
    text.append(buf, n);
    if (text.size() > 130) break;
  }
  if (!text.empty() && text.back() == '\n') text.pop_back();
  std::optional<std::string> key;
  if (text.size() == 2 * kKeySize) key = from_hex(text);
  if (!key) {
    return make_error(Errc::invalid_argument, "mesh token key file " + path.string() +
                                                  " must hold 64 hex digits (32 random bytes)");
  }
  return *key;
}

std::string key_file_text(std::string_view key) {
  return to_hex(key) + "\n";
}

}  // namespace drover::mesh_token
