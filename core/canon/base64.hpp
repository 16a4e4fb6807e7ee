// Base64 (RFC 4648), through libsodium.
#pragma once

#include <string>
#include <string_view>

#include "core/base/result.hpp"

namespace drover::canon {

std::string base64_encode(std::string_view bytes);
// URL-safe alphabet, no padding (RFC 4648 section 5): for tokens.
std::string base64url_encode(std::string_view bytes);
// Refuses anything but the one canonical padded encoding of some bytes.
Result<std::string> base64_decode(std::string_view text);
// The inverse of base64url_encode: refuses padding, the standard alphabet's
// '+' and '/', and any text base64url_encode would not have produced.
Result<std::string> base64url_decode(std::string_view text);

}  // namespace drover::canon
