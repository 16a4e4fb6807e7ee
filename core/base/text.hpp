// Quoting untrusted text in messages.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>

namespace drover {

// At most max_bytes of text, never cutting a UTF-8 character in two: error
// messages quote what they refuse and may be sent on as JSON, which must be
// UTF-8 (what was not UTF-8 to begin with stays as it was).
inline std::string clip_utf8(std::string_view text, std::size_t max_bytes) {
  std::size_t n = std::min(text.size(), max_bytes);
  while (n > 0 && n < text.size() && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  return std::string(text.substr(0, n));
}

}  // namespace drover
