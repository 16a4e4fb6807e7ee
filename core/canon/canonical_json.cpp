#include "core/canon/canonical_json.hpp"

#include <nlohmann/json.hpp>

namespace drover::canon {
namespace {

// Length of the valid UTF-8 sequence starting at p (n bytes available), or 0.
std::size_t utf8_sequence(const unsigned char* p, std::size_t n) {
  unsigned char c = p[0];
  if (c < 0x80) return 1;
  std::size_t len = 0;
  unsigned int lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;  // no overlongs
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;  // no overlongs
    if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (n < len) return 0;
  if (p[1] < lo || p[1] > hi) return 0;
  for (std::size_t i = 2; i < len; ++i) {
    if (p[i] < 0x80 || p[i] > 0xBF) return 0;
  }
  return len;
}

// depth: how many containers enclose v (0 at the top), so that a container's
// own nesting level is depth + 1, as shape_of() counts it.
Status check_value(const nlohmann::json& v, std::size_t depth) {
  if ((v.is_object() || v.is_array()) && depth + 1 > kMaxDepth) {
    return make_error(Errc::invalid_argument, "value nests deeper than the canonical limit");
  }
  switch (v.type()) {
    case nlohmann::json::value_t::number_float:
      return make_error(Errc::invalid_argument,
                        "floating-point numbers have no canonical encoding");
    case nlohmann::json::value_t::string:
      if (!valid_utf8(v.get_ref<const std::string&>())) {
        return make_error(Errc::invalid_argument, "string is not valid UTF-8");
      }
      return Ok{};
    case nlohmann::json::value_t::binary:
      return make_error(Errc::invalid_argument, "binary values have no canonical encoding");
    case nlohmann::json::value_t::object:
      for (const auto& [key, item] : v.items()) {
        if (!valid_utf8(key)) return make_error(Errc::invalid_argument, "key is not valid UTF-8");
        DROVER_TRY(check_value(item, depth + 1));
      }
      return Ok{};
    case nlohmann::json::value_t::array:
      for (const auto& item : v) DROVER_TRY(check_value(item, depth + 1));
      return Ok{};
    default: return Ok{};
  }
}

// Nesting depth and an upper bound on the number of values of JSON text,
// counted without parsing, so that hostile input cannot drive the recursive
// encoder into a stack overflow or the parser into building a huge tree.
struct Shape {
  std::size_t depth = 0;
  std::size_t values = 1;
};

Shape shape_of(std::string_view bytes) {
  std::size_t depth = 0, max_depth = 0, separators = 0;
  bool in_string = false, escaped = false;
  for (char c : bytes) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
      ++separators;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    } else if (c == ',' || c == ':') {
      ++separators;
    }
  }
  return {max_depth, separators + 1};
}

}  // namespace

bool valid_utf8(std::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  std::size_t n = bytes.size();
  for (std::size_t i = 0; i < n;) {
    std::size_t len = utf8_sequence(p + i, n - i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

Result<std::string> encode(const nlohmann::json& value) {
  DROVER_TRY(check_value(value, 0));  // the top value has no container around it
  // nlohmann's default object type is a std::map<std::string, ...>, ordered by
  // std::char_traits<char>::compare, which compares bytes as unsigned values.
  return value.dump();
}

Result<nlohmann::json> decode(std::string_view bytes, std::size_t max_bytes,
                              std::size_t max_values) {
  if (bytes.size() > max_bytes) {
    return make_error(Errc::invalid_argument, "document is " + std::to_string(bytes.size()) +
                                                  " bytes, more than the limit of " +
                                                  std::to_string(max_bytes));
  }
  const Shape shape = shape_of(bytes);
  if (shape.depth > kMaxDepth) {
    return make_error(Errc::invalid_argument,
                      "document nests deeper than " + std::to_string(kMaxDepth) + " levels");
  }
  if (shape.values > max_values) {
    return make_error(Errc::invalid_argument,
                      "document holds more than " + std::to_string(max_values) + " values");
  }
  nlohmann::json value = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, false);
  if (value.is_discarded()) return make_error(Errc::invalid_argument, "document is not JSON");
  auto again = encode(value);
  if (!again.ok()) return std::move(again).error();
  if (*again != bytes) {
    return make_error(Errc::invalid_argument,
                      "document is JSON but not in canonical form (sorted keys, no white space, "
                      "integers only, minimal escapes)");
  }
  return value;
}

std::string encode_name(std::string_view raw) {
  static constexpr char digits[] = "0123456789ABCDEF";
  const auto* p = reinterpret_cast<const unsigned char*>(raw.data());
  std::size_t n = raw.size();
  std::string out;
  out.reserve(n);
  for (std::size_t i = 0; i < n;) {
    unsigned char c = p[i];
    std::size_t len = (c == '%' || c < 0x20 || c == 0x7F) ? 0 : utf8_sequence(p + i, n - i);
    if (len == 0) {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 0xF];
      ++i;
    } else {
      out.append(raw.substr(i, len));
      i += len;
    }
  }
  return out;
}

Result<std::string> decode_name(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    auto hex_value = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (i + 2 >= text.size()) {
      return make_error(Errc::invalid_argument, "truncated %-escape in name");
    }
    int hi = hex_value(text[i + 1]);
    int lo = hex_value(text[i + 2]);
    if (hi < 0 || lo < 0) {
      return make_error(Errc::invalid_argument,
                        "bad %-escape in name (want %XX with uppercase hex)");
    }
    out += static_cast<char>((hi << 4) | lo);
    i += 2;
  }
  if (encode_name(out) != text) {
    return make_error(Errc::invalid_argument,
                      "name is not in canonical form (escape exactly '%', control bytes and "
                      "bytes outside valid UTF-8)");
  }
  return out;
}

}  // namespace drover::canon
