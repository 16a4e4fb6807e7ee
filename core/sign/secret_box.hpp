// Symmetric message authentication and sealing to a public key (libsodium).
//
// Agents authenticate their reports with HMAC-SHA256 under a key only they and
// the coordinator know (about 30x cheaper to check than an ed25519
// signature). The agent makes that key and seals it to the coordinator's
// online signing key, converted to X25519: only the holder of the online
// secret key can open it (docs/FORMATS.md, "Agent protocol").
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

#include "core/base/result.hpp"
#include "core/sign/keys.hpp"

namespace drover::sign {

inline constexpr std::size_t kMacKeySize = 32;

// HMAC-SHA256 of message under key (any length; 32 bytes recommended): 32 raw bytes.
std::string hmac_sha256(std::string_view key, std::string_view message);
// The same over the concatenation of the parts, without building it.
std::string hmac_sha256(std::string_view key, std::initializer_list<std::string_view> message);
// Constant-time comparison of a received MAC with the expected one.
bool mac_equal(std::string_view a, std::string_view b);

// Encrypts plaintext so that only the holder of recipient's secret key can
// read it (an anonymous sender; libsodium's sealed box over X25519).
Result<std::string> seal_to(const PublicKey& recipient, std::string_view plaintext);
// Opens what seal_to produced for this key pair; a crypto error otherwise.
Result<std::string> unseal(const KeyPair& recipient, std::string_view sealed);

}  // namespace drover::sign
