// The canonical encoding that drover hashes and signs (docs/FORMATS.md, section
// "Canonical JSON"). One value has exactly one encoding, so a hash or signature
// over the bytes is a hash or signature over the value. Decoding refuses any
// input that is not already in canonical form.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

#include "core/base/result.hpp"

namespace drover::canon {

inline constexpr std::size_t kMaxDepth = 32;

// Encodes a value: objects with keys sorted by their UTF-8 bytes, no white
// space, integers only. Fails on floating-point numbers, strings that are not
// valid UTF-8, and nesting deeper than kMaxDepth.
Result<std::string> encode(const nlohmann::json& value);

// Parses bytes that must be the canonical encoding of a value, at most
// max_bytes long and holding at most max_values values (counted before
// parsing, so a hostile document cannot make the parser build a huge tree).
// The error says what was wrong (size, count, depth, syntax, form).
Result<nlohmann::json> decode(std::string_view bytes, std::size_t max_bytes,
                              std::size_t max_values = SIZE_MAX);

// File names on Linux are bytes and need not be UTF-8. encode_name turns any
// byte string into JSON-safe text: every '%', control byte (0x00-0x1F, 0x7F)
// and byte that is not part of a valid UTF-8 sequence becomes %XX (uppercase
// hex); everything else is copied. decode_name inverts it and refuses text
// that encode_name would not have produced.
std::string encode_name(std::string_view raw);
Result<std::string> decode_name(std::string_view text);

// True when bytes are well-formed UTF-8 (RFC 3629: no overlongs, no surrogates).
bool valid_utf8(std::string_view bytes);

}  // namespace drover::canon
