#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/canon/base64.hpp"
#include "core/canon/canonical_json.hpp"
#include "core/world/random.hpp"

namespace drover::canon {
namespace {

using nlohmann::json;

TEST(CanonicalJson, SortsKeysAndDropsWhiteSpace) {
  json j = json::parse(R"({"b": 1, "a": [true, null, "x"], "B": {"z": -3, "é": 0}})");
  auto bytes = encode(j);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, R"({"B":{"z":-3,"é":0},"a":[true,null,"x"],"b":1})");
  auto back = decode(*bytes, 1024);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, j);
}

TEST(CanonicalJson, EscapesOnlyWhatTheContractSays) {
  json j = std::string("q\"b\\n\nt\tc\x01 /\x7f");
  EXPECT_EQ(*encode(j), "\"q\\\"b\\\\n\\nt\\tc\\u0001 /\x7f\"");
}

TEST(CanonicalJson, RefusesEveryOtherSpelling) {
  const std::string canonical = R"({"a":1,"b":"x"})";
  ASSERT_TRUE(decode(canonical, 100).ok());
  for (const char* other : {
           R"({"b":"x","a":1})",        // unsorted
           R"({"a": 1,"b":"x"})",       // white space
           R"({"a":1,"b":"x"} )",       // trailing space
           R"({"a":1.0,"b":"x"})",      // float
           R"({"a":1e0,"b":"x"})",      // exponent
           R"({"a":01,"b":"x"})",       // leading zero (not even JSON)
           R"({"a":1,"b":"\u0078"})",   // needless escape
           R"({"a":1,"a":1,"b":"x"})",  // duplicate key
           R"({"a":-0,"b":"x"})",       // negative zero
       }) {
    auto r = decode(other, 100);
    EXPECT_FALSE(r.ok()) << other;
  }
}

TEST(CanonicalJson, RefusesOversizedDeepAndBrokenInput) {
  EXPECT_NE(decode(std::string(200, ' '), 100).error().message.find("limit"), std::string::npos);
  std::string deep(100, '[');
  deep += std::string(100, ']');
  EXPECT_NE(decode(deep, 1000).error().message.find("deeper"), std::string::npos);
  EXPECT_FALSE(decode("{\"a\":", 100).ok());
  EXPECT_FALSE(encode(json(1.5)).ok());
  EXPECT_FALSE(encode(json(std::string("\xff"))).ok());
}

TEST(Names, ValidUtf8StaysReadable) {
  EXPECT_EQ(encode_name("café/menu.txt"), "café/menu.txt");
  EXPECT_EQ(encode_name("100%"), "100%25");
  EXPECT_EQ(encode_name(std::string("caf\xe9", 4)), "caf%E9");
  EXPECT_EQ(encode_name(std::string("a\nb\x7f", 4)), "a%0Ab%7F");
  EXPECT_EQ(encode_name("\xed\xa0\x80"), "%ED%A0%80");  // a UTF-16 surrogate is not UTF-8
  EXPECT_EQ(encode_name("\xc0\xaf"), "%C0%AF");         // overlong '/'
}

TEST(Names, RandomBytesRoundTrip) {
  SeededRandom rnd(3);
  for (int i = 0; i < 2000; ++i) {
    std::string raw = rnd.bytes(rnd.uniform(40));
    std::string text = encode_name(raw);
    ASSERT_TRUE(valid_utf8(text));
    auto back = decode_name(text);
    ASSERT_TRUE(back.ok()) << text;
    ASSERT_EQ(*back, raw);
  }
}

TEST(Names, RefusesNonCanonicalEscapes) {
  for (const char* bad : {"%e9", "%41", "%", "%4", "%ZZ", "caf%C3%A9"}) {
    EXPECT_FALSE(decode_name(bad).ok()) << bad;
  }
}

TEST(Base64, RoundTripAndCanonical) {
  EXPECT_EQ(base64_encode("hello"), "aGVsbG8=");
  EXPECT_EQ(*base64_decode("aGVsbG8="), "hello");
  EXPECT_FALSE(base64_decode("aGVsbG8").ok());   // padding missing
  EXPECT_FALSE(base64_decode("aGVsbG9=").ok());  // non-zero padding bits
  EXPECT_FALSE(base64_decode("aGV sbG8=").ok());
}

}  // namespace
}  // namespace drover::canon

namespace drover::canon {
namespace {

TEST(CanonicalJson, EncoderAndDecoderAgreeOnTheDepthLimit) {
  auto nested = [](std::size_t levels) {
    json v = 1;
    for (std::size_t i = 0; i < levels; ++i) v = json::array({v});
    return v;
  };
  auto at_limit = encode(nested(kMaxDepth));
  ASSERT_TRUE(at_limit.ok());
  EXPECT_TRUE(decode(*at_limit, 1 << 10).ok());
  EXPECT_FALSE(encode(nested(kMaxDepth + 1)).ok());
  std::string deeper = std::string(kMaxDepth + 1, '[') + "1" + std::string(kMaxDepth + 1, ']');
  EXPECT_FALSE(decode(deeper, 1 << 10).ok());
}

TEST(CanonicalJson, CountsValuesBeforeParsing) {
  std::string many = "[0";
  for (int i = 1; i < 10000; ++i) many += ",0";
  many += "]";
  ASSERT_TRUE(decode(many, 1 << 20).ok());
  auto r = decode(many, 1 << 20, 5000);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("more than 5000 values"), std::string::npos);
}

}  // namespace
}  // namespace drover::canon
