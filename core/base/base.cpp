#include <cstdio>
#include <cstdlib>

#include "core/base/hex.hpp"
#include "core/base/name.hpp"
#include "core/base/result.hpp"

namespace drover {

const char* errc_name(Errc code) {
  switch (code) {
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::not_found: return "not_found";
    case Errc::already_exists: return "already_exists";
    case Errc::io: return "io";
    case Errc::corrupt: return "corrupt";
    case Errc::refused: return "refused";
    case Errc::crypto: return "crypto";
    case Errc::unsupported: return "unsupported";
    case Errc::timeout: return "timeout";
    case Errc::exhausted: return "exhausted";
    case Errc::internal: return "internal";
  }
  return "unknown";
}

void fatal(const char* what, const char* file, int line) {
  std::fprintf(stderr, "drover: fatal: %s (%s:%d)\n", what, file, line);
  std::fflush(stderr);
  std::abort();
}

std::string to_hex(const void* data, std::size_t size) {
  static constexpr char digits[] = "0123456789abcdef";
  const auto* p = static_cast<const unsigned char*>(data);
  std::string out(size * 2, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 0xf];
  }
  return out;
}

std::string to_hex(std::string_view bytes) {
  return to_hex(bytes.data(), bytes.size());
}

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::optional<std::string> from_hex(std::string_view text) {
  if (text.size() % 2 != 0) return std::nullopt;
  std::string out(text.size() / 2, '\0');
  for (std::size_t i = 0; i < out.size(); ++i) {
    int hi = hex_value(text[2 * i]);
    int lo = hex_value(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<char>((hi << 4) | lo);
  }
  return out;
}

namespace {

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

// The name as an error may quote it: at most 64 bytes, anything outside
// printable ASCII as \xNN.
std::string quoted(std::string_view name) {
  std::string out;
  for (unsigned char c : name.substr(0, 64)) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      static constexpr char digits[] = "0123456789abcdef";
      out += "\\x";
      out += digits[c >> 4];
      out += digits[c & 0xf];
    }
  }
  if (name.size() > 64) out += "...";
  return "'" + out + "'";
}

}  // namespace

bool is_valid_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes) return false;
  const char first = name.front();
  if (first == '.' || first == '-' || first == '_') return false;
  for (char c : name) {
    if (!is_name_char(c)) return false;
  }
  return true;
}

Status validate_name(std::string_view name, std::string_view what) {
  if (is_valid_name(name)) return Ok{};
  const std::string who = std::string(what) + " " + quoted(name);
  if (name.empty() || name.size() > kMaxNameBytes) {
    return make_error(Errc::invalid_argument, who + " must be 1 to 128 characters");
  }
  for (char c : name) {
    if (!is_name_char(c)) {
      return make_error(Errc::invalid_argument,
                        who + " may only contain letters, digits, '.', '_' and '-'");
    }
  }
  return make_error(Errc::invalid_argument, who + " must start with a letter or a digit");
}

}  // namespace drover
