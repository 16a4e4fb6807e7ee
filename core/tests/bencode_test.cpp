#include <gtest/gtest.h>

#include "core/bencode/bencode.hpp"

namespace drover::bencode {
namespace {

TEST(Bencode, WritesKeysInRawByteOrderWhateverTheOrderOfAdding) {
  Dict inner;
  inner.bytes("spam", "eggs").integer("cow", 7);
  Dict d;
  d.integer("zeta", 0)
      .bytes("\xff", std::string_view("\0b", 2))  // sorts after every ASCII key
      .dict("a", inner)
      .integer("b", 18446744073709551615ull);
  EXPECT_EQ(d.encode(), std::string("d1:ad3:cowi7e4:spam4:eggse1:bi18446744073709551615e"
                                    "4:zetai0e1:\xff") +
                            std::string("2:\0b", 4) + "e");
}

TEST(Bencode, AnEmptyDictAndAReplacedKey) {
  EXPECT_EQ(Dict().encode(), "de");
  EXPECT_EQ(Dict().integer("k", 1).bytes("k", "").encode(), "d1:k0:e");
}

}  // namespace
}  // namespace drover::bencode
