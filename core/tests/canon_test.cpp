#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/canon/base64.hpp"
#include "core/canon/canonical_json.hpp"
#include "core/canon/json_fields.hpp"
#include "core/canon/json_text.hpp"
#include "core/world/random.hpp"

namespace drover::canon {
namespace {

using nlohmann::json;

TEST(JsonText, BytesThatAreNotUtf8BecomeReplacementCharactersNotExceptions) {
  const nlohmann::json j = {{"path", "/\xff"}, {"cut", "ab\xc3"}, {"ok", "caf\u00e9"}};
  EXPECT_THROW((void)j.dump(), nlohmann::json::type_error);  // what every answer used to risk
  std::string text;
  ASSERT_NO_THROW(text = json_text(j));
  EXPECT_EQ(text, "{\"cut\":\"ab\xef\xbf\xbd\",\"ok\":\"caf\u00e9\",\"path\":\"/\xef\xbf\xbd\"}");
  EXPECT_TRUE(canon::valid_utf8(text));
}

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

// The one JSON field reader: errors name the field and the allowed values.
std::string error_of(const Status& st) {
  return st.ok() ? "ok" : st.error().message;
}
template <class T>
std::string error_of(const Result<T>& r) {
  return r.ok() ? "ok" : r.error().message;
}

TEST(Fields, RequiredAndOptionalValuesAreTypedAndBounded) {
  const json j = json::parse(R"({"s":"abc","e":"","i":-5,"u":18446744073709551615,"n":0.5,
      "b":true,"o":{"x":1},"l":["a",""],"os":[{"k":1},{"k":2}]})");
  const Fields f(j, "top");
  EXPECT_EQ(*f.str("s"), "abc");
  EXPECT_EQ(error_of(f.str("e")), "top.e is required");  // a required string is not ""
  EXPECT_EQ(*f.str("e", 10, Empty::allowed), "");
  EXPECT_EQ(error_of(f.str("missing", 10, Empty::allowed)), "top.missing is required");
  EXPECT_EQ(error_of(f.str("s", 2)), "top.s is longer than 2 bytes");
  EXPECT_EQ(error_of(f.str("i")), "top.i must be a string");
  EXPECT_EQ(*f.integer("i", -10, 10), -5);
  EXPECT_EQ(error_of(f.integer("i", 0, 10)), "top.i must be a whole number from 0 to 10");
  EXPECT_EQ(error_of(f.integer("u", 0, 10)), "top.u must be a whole number from 0 to 10");
  EXPECT_EQ(error_of(f.integer("n", 0, 10)), "top.n must be a whole number from 0 to 10");
  EXPECT_FALSE(f.opt_int("missing", 0, 1)->has_value());
  EXPECT_EQ(*f.u64("u"), 18446744073709551615ull);
  EXPECT_EQ(error_of(f.u64("i")), "top.i must be a whole number from 0 to 18446744073709551615");
  EXPECT_EQ(error_of(f.u64("u", 100)), "top.u must be a whole number from 0 to 100");
  EXPECT_EQ(error_of(f.u64("missing")), "top.missing is required");
  EXPECT_EQ(*f.num("n"), 0.5);
  EXPECT_EQ(*f.num("i"), -5);
  EXPECT_EQ(error_of(f.num("s")), "top.s must be a finite number");
  EXPECT_EQ(error_of(f.num("n", 1, 2)), "top.n must be a number from 1.0 to 2.0");
  EXPECT_TRUE(*f.boolean("b"));
  EXPECT_EQ(error_of(f.boolean("s")), "top.s must be true or false");
  EXPECT_EQ(error_of(f.boolean("missing")), "top.missing is required");
  EXPECT_EQ(*f.object("o")->integer("x", 0, 1), 1);
  EXPECT_EQ(error_of(f.object("o")->integer("x", 2, 3)),
            "top.o.x must be a whole number from 2 to 3");
  EXPECT_EQ(error_of(f.object("s")), "top.s must be a JSON object");
  EXPECT_EQ(error_of(f.str_list("l", 10)), "top.l[1] must be a non-empty string");
  EXPECT_EQ(*f.str_list("l", 10, 5, Empty::allowed), (std::vector<std::string>{"a", ""}));
  EXPECT_EQ(error_of(f.str_list("l", 1, 5, Empty::allowed)), "top.l has more than 1 items");
  auto os = f.objects("os", 2);
  ASSERT_TRUE(os.ok());
  ASSERT_EQ(os->size(), 2u);
  EXPECT_EQ(error_of((*os)[1].integer("k", 0, 1)),
            "top.os[1].k must be a whole number from 0 to 1");
  EXPECT_EQ(error_of(f.objects("os", 1)), "top.os has more than 1 items");
  EXPECT_EQ(error_of(f.objects("l", 5)), "top.l[0] must be a JSON object");
  EXPECT_EQ(error_of(f.objects("s", 5)), "top.s must be an array of objects");
  EXPECT_EQ(error_of(f.objects("missing", 5)), "top.missing is required");
}

TEST(Fields, UnknownAndMissingFieldsAreNamed) {
  const json j = json::parse(R"({"a":1,"typo":2})");
  const Fields f(j, "");
  EXPECT_EQ(error_of(f.only({"a", "b"})), "unknown field 'typo'");
  EXPECT_TRUE(f.only({"a", "typo"}).ok());
  EXPECT_EQ(error_of(f.require({"a", "b"})), "b is required");
  EXPECT_TRUE(f.require({"a", "typo"}).ok());
  EXPECT_EQ(error_of(Fields::of(json::array(), "")), "the body must be a JSON object");
}

TEST(Fields, ANullIsAbsentInApiBodiesAndAWrongTypeInFormats) {
  const json j = json::parse(R"({"s":null,"o":{"t":null}})");
  const Fields lenient(j, "");
  EXPECT_FALSE(lenient.has("s"));
  EXPECT_FALSE(lenient.opt_str("s")->has_value());
  EXPECT_EQ(error_of(lenient.str("s")), "s is required");
  const Fields strict(j, "", Nulls::refused);
  EXPECT_TRUE(strict.has("s"));
  EXPECT_EQ(error_of(strict.opt_str("s")), "s must be a string");
  EXPECT_EQ(error_of(strict.opt_int("s", 0, 1)), "s must be a whole number from 0 to 1");
  EXPECT_EQ(error_of(strict.opt_bool("s")), "s must be true or false");
  EXPECT_EQ(error_of(strict.str_list("s", 1)), "s must be an array");
  // Nested readers keep the rule.
  EXPECT_EQ(error_of(strict.object("o")->opt_str("t")), "o.t must be a string");
  EXPECT_FALSE(lenient.object("o")->opt_str("t")->has_value());
}

}  // namespace
}  // namespace drover::canon
