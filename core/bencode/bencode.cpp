#include "core/bencode/bencode.hpp"

namespace drover::bencode {
namespace {

// "4:spam"
std::string encode_bytes(std::string_view value) {
  std::string out = std::to_string(value.size());
  out += ':';
  out += value;
  return out;
}

// "i42e"
std::string encode_integer(std::uint64_t value) {
  return 'i' + std::to_string(value) + 'e';
}

}  // namespace

Dict& Dict::integer(std::string key, std::uint64_t value) {
  entries_[std::move(key)] = encode_integer(value);
  return *this;
}

Dict& Dict::bytes(std::string key, std::string_view value) {
  entries_[std::move(key)] = encode_bytes(value);
  return *this;
}

Dict& Dict::dict(std::string key, const Dict& value) {
  entries_[std::move(key)] = value.encode();
  return *this;
}

std::string Dict::encode() const {
  std::string out = "d";
  for (const auto& [key, value] : entries_) {
    out += encode_bytes(key);
    out += value;
  }
  out += 'e';
  return out;
}

}  // namespace drover::bencode
