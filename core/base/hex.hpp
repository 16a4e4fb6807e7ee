// Lowercase hexadecimal encoding of bytes.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace drover {

std::string to_hex(std::string_view bytes);
std::string to_hex(const void* data, std::size_t size);

// Decodes lowercase or uppercase hex; nullopt when the text is not hex of even length.
std::optional<std::string> from_hex(std::string_view text);

}  // namespace drover
