// Mesh tokens (docs/FORMATS.md, "Mesh tokens (`dmt1`)"): the credential a
// mesh node puts in its tracker announces, so that only nodes the coordinator
// (or an operator, for seeds and the origin) vouched for get peers.
//
//   dmt1.<base64url(payload)>.<base64url(HMAC-SHA256(key, payload))>
//
// payload is canonical JSON {"exp":N,"host":H,"region":R,"role":ROLE}. The
// key is 32 random bytes shared by whoever issues tokens (the coordinator,
// `drover mesh token`) and whoever checks them (the trackers). A token is a
// bearer credential: whoever holds it may announce as its host until it
// expires.
//
// Everything here is a pure function of its arguments and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/base/result.hpp"
#include "core/world/filesystem.hpp"

namespace drover::mesh_token {

inline constexpr std::size_t kKeySize = 32;
inline constexpr std::size_t kMaxTokenBytes = 512;
inline constexpr std::string_view kPrefix = "dmt1.";

struct Claims {
  std::string role;             // "peer", "seed" or "origin"
  std::string region;           // by the name rule; "" only for the origin
  std::string host;             // by the name rule
  std::int64_t expires_at = 0;  // unix seconds; the token is refused from then on
};

// Why check() refused a token. The error's message says the same in words,
// and never quotes the token's tag.
enum class Flaw { too_long, form, tag, expired };
const char* flaw_name(Flaw flaw);

struct Refusal {
  Flaw flaw = Flaw::form;
  std::string message;
};

// A token for claims under key (kKeySize bytes). Errc::invalid_argument when
// the key has another size, a claim breaks the rules above, or the token
// would exceed kMaxTokenBytes.
Result<std::string> issue(std::string_view key, const Claims& claims);

// The claims of token when it was issued under key and has not expired at
// now_unix (seconds). Checked in this order, so that nothing unauthenticated
// is parsed: length, form, tag, then the payload's fields and expiry (a
// payload whose tag verifies but whose fields are malformed is a `form`
// refusal: only a key holder could have made it).
// Either the claims or the refusal.
class CheckResult {
 public:
  CheckResult(Claims c) : claims_(std::move(c)), ok_(true) {}     // NOLINT: implicit by design
  CheckResult(Refusal r) : refusal_(std::move(r)), ok_(false) {}  // NOLINT
  bool ok() const { return ok_; }
  const Claims& claims() const { return claims_; }
  const Refusal& refusal() const { return refusal_; }

 private:
  Claims claims_{};
  Refusal refusal_;
  bool ok_;
};
CheckResult check(std::string_view key, std::string_view token, std::int64_t now_unix);

// The claims a token states, NOT verified (no key): for a node deciding
// whether a token it was handed replaces the one it holds. Never a basis for
// trust. Errc::invalid_argument when the token is not of the form.
Result<Claims> peek(std::string_view token);

// Reads a token key file: 64 hex digits (a final newline allowed). Refused
// (Errc::refused) when group or others may read it, as ssh does with its
// keys; Errc::invalid_argument when it holds anything else.
Result<std::string> load_key(Filesystem& fs, const fs::path& path);
// The text of a key file for key (64 lowercase hex digits and a newline).
std::string key_file_text(std::string_view key);

}  // namespace drover::mesh_token
