// Bencoding (BEP 3), the encoding of BitTorrent's info dictionaries and of
// tracker replies: drover's one encoder, used to derive layer torrents
// (core/format) and to answer announces (mesh/tracker). Writing only: bencoded
// input is parsed by libtorrent, at the mesh's edge.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace drover::bencode {

// A dictionary under construction. Entries may be added in any order: they
// are written sorted by the raw bytes of their keys, as BEP 3 requires.
// Adding a key twice replaces its value.
class Dict {
 public:
  Dict& integer(std::string key, std::uint64_t value);
  Dict& bytes(std::string key, std::string_view value);  // a byte string
  Dict& dict(std::string key, const Dict& value);
  std::string encode() const;

 private:
  // Key to its encoded value. std::string orders by unsigned bytes
  // (char_traits<char>::compare), which is the order bencoding requires.
  std::map<std::string, std::string> entries_;
};

}  // namespace drover::bencode
