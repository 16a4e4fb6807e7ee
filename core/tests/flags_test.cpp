// Flags in flagd's format (issue 15): MurmurHash3 against its published
// reference vectors, the fractional rule against flagd's own evaluation
// cases (core/pkg/evaluator/fractional_test.go in the flagd repository:
// the same inputs must land on the same variants), and the file the agent
// writes read back the way flagd reads it: a ramp gives its share of
// targeting keys, consistently; 0 and 100 are plain off and on.
#include <gtest/gtest.h>

#include "core/flags/flagd.hpp"

namespace drover::flags {
namespace {

using nlohmann::json;

TEST(Flags, MurmurHash3MatchesItsReferenceVectors) {
  EXPECT_EQ(murmur3_32("", 0), 0u);
  EXPECT_EQ(murmur3_32("", 1), 0x514E28B7u);
  EXPECT_EQ(murmur3_32("", 0xffffffffu), 0x81F16F39u);
  EXPECT_EQ(murmur3_32(std::string(4, '\0'), 0), 0x2362F9DEu);
  EXPECT_EQ(murmur3_32("Hello, world!", 0x9747b28cu), 0x24884CBAu);
  EXPECT_EQ(murmur3_32("The quick brown fox jumps over the lazy dog", 0x9747b28cu), 0x2FA826CDu);
}

// flagd's cases: 25/25/25/25 over red, blue, green, yellow, bucketed by
// flag key + email ("headerColor") or by "my-seed" + email.
TEST(Flags, TheFractionalRuleAgreesWithFlagdsOwnCases) {
  const std::vector<std::uint32_t> quarters = {25, 25, 25, 25};
  enum { red, blue, green, yellow };
  auto variant = [&](const std::string& key) {
    return fractional_bucket(murmur3_32(key), quarters);
  };
  EXPECT_EQ(variant("headerColorrachel@faas.com"), blue);
  EXPECT_EQ(variant("headerColormonica@faas.com"), yellow);
  EXPECT_EQ(variant("headerColorjoey@faas.com"), red);
  EXPECT_EQ(variant("headerColorross@faas.com"), blue);
  EXPECT_EQ(variant("my-seedrachel@faas.com"), green);
  EXPECT_EQ(variant("my-seedmonica@faas.com"), red);
  EXPECT_EQ(variant("my-seedjoey@faas.com"), blue);
  EXPECT_EQ(variant("my-seedross@faas.com"), green);
  // Bucketed by flag key + targeting key: [blue 50, green 50] -> green,
  // [red 50, blue 50] -> blue (the second of two, both times).
  EXPECT_EQ(fractional_bucket(murmur3_32("headerColorfoo@foo.com"), {50, 50}), 1u);
  // The same through a flagd document (no bucketing string: flag key +
  // targeting key).
  const json doc = {
      {"flags",
       {{"headerColor",
         {{"state", "ENABLED"},
          {"variants", {{"blue", true}, {"green", false}}},
          {"defaultVariant", "blue"},
          {"targeting", json::parse(R"({"fractional":[["blue",50],["green",50]]})")}}}}}};
  EXPECT_FALSE(evaluate_boolean(doc, "headerColor", "foo@foo.com", true));  // green
  // No weights: nothing; no targeting key: the default variant.
  EXPECT_EQ(fractional_bucket(7, {0, 0}), 2u);
  EXPECT_TRUE(evaluate_boolean(doc, "headerColor", "", false));
}

TEST(Flags, TheFileIsFlagdsFormatAndARampGivesItsShare) {
  auto text = render(
      {{"checkout", true}, {"search", false}, {"ramp", 25}, {"dark", 0}, {"all", 100}}, "web", 7);
  ASSERT_TRUE(text.ok()) << text.error().message;
  const json doc = json::parse(*text);
  EXPECT_EQ(doc["$schema"], "https://flagd.dev/schema/v0/flags.json");
  EXPECT_EQ(doc["metadata"]["drover"], "drover.flags.v2");
  EXPECT_EQ(doc["metadata"]["seq"], 7);
  EXPECT_EQ(doc["flags"]["ramp"]["targeting"],
            json::parse(R"({"fractional":[["on",25],["off",75]]})"));
  EXPECT_FALSE(doc["flags"]["dark"].contains("targeting"));  // a kill: off, whoever asks
  int on = 0, dark = 0, all = 0;
  const int n = 20'000;
  for (int i = 0; i < n; ++i) {
    const std::string user = "user-" + std::to_string(i);
    on += evaluate_boolean(doc, "ramp", user, false);
    dark += evaluate_boolean(doc, "dark", user, true);
    all += evaluate_boolean(doc, "all", user, false);
    // Sticky: the same key, the same answer.
    ASSERT_EQ(evaluate_boolean(doc, "ramp", user, false),
              evaluate_boolean(doc, "ramp", user, true));
  }
  EXPECT_NEAR(on, n / 4, n / 100);  // 25% within one point
  EXPECT_EQ(dark, 0);
  EXPECT_EQ(all, n);
  EXPECT_TRUE(evaluate_boolean(doc, "checkout", "anyone", false));
  EXPECT_FALSE(evaluate_boolean(doc, "search", "anyone", true));
  EXPECT_TRUE(evaluate_boolean(doc, "missing", "anyone", true));  // the caller's fallback
  // Bad flags are refused naming the flag.
  for (const json& bad :
       {json{{"x", 101}}, json{{"x", -1}}, json{{"x", "on"}}, json{{"a/b", true}}, json::array()}) {
    EXPECT_FALSE(render(bad, "web", 1).ok()) << bad.dump();
  }
}

// Documents flagd would read, read the same way (review of issue 15):
// whole-number weights written as floats, negative weights clamped to 0, the
// bucketing expressions flagd's documents use, a null first element; and a
// document of the wrong shape gives the caller's fallback, never a throw.
TEST(Flags, DocumentsOfOtherShapesReadAsFlagdReadsThem) {
  auto doc = [](const std::string& targeting) {
    return json::parse(R"({"flags":{"f":{"state":"ENABLED","variants":{"on":true,"off":false},)"
                       R"("defaultVariant":"off","targeting":)" +
                       targeting + "}}}");
  };
  auto share = [](const json& d) {
    int on = 0;
    for (int i = 0; i < 1000; ++i) on += evaluate_boolean(d, "f", "u" + std::to_string(i), false);
    return on;
  };
  EXPECT_NEAR(share(doc(R"({"fractional":[["on",50.0],["off",50.0]]})")), 500, 60);
  EXPECT_EQ(share(doc(R"({"fractional":[["on",10],["off",-5]]})")), 1000);
  EXPECT_NEAR(share(doc(R"({"fractional":[{"var":"targetingKey"},["on",50],["off",50]]})")), 500,
              60);
  EXPECT_NEAR(share(doc(R"({"fractional":[null,["on",50],["off",50]]})")), 500, 60);
  EXPECT_EQ(share(doc(R"({"fractional":[["on",2147483647],["off",1]]})")), 0);  // flagd: an error
  EXPECT_EQ(share(doc(R"({"fractional":[["on",1.5],["off",1]]})")), 0);  // not whole: refused
  // {"var":"targetingKey"} buckets by the key alone, the default by flag + key.
  const json by_key = doc(R"({"fractional":[{"var":"targetingKey"},["on",50],["off",50]]})");
  const json by_default = doc(R"({"fractional":[["on",50],["off",50]]})");
  int differ = 0;
  for (int i = 0; i < 200; ++i) {
    const std::string k = "u" + std::to_string(i);
    differ +=
        evaluate_boolean(by_key, "f", k, false) != evaluate_boolean(by_default, "f", k, false);
    EXPECT_EQ(evaluate_boolean(by_key, "f", k, false),
              fractional_bucket(murmur3_32(k), {50, 50}) == 0);
  }
  EXPECT_GT(differ, 0);
  // Wrong shapes: the fallback, whichever it is.
  for (const char* bad :
       {R"({"flags":{"f":{"state":5}}})", R"({"flags":{"f":{"state":null}}})",
        R"({"flags":{"f":{"state":["ENABLED"]}}})", R"({"flags":[1]})", R"([])",
        R"({"flags":{"f":{"state":"ENABLED","variants":{"on":"yes"},"defaultVariant":"on"}}})",
        R"({"flags":{"f":{"state":"ENABLED","variants":{"on":true},"defaultVariant":null,)"
        R"("targeting":{"fractional":[["on","x"]]}}}})"}) {
    const json d = json::parse(bad);
    EXPECT_TRUE(evaluate_boolean(d, "f", "u", true)) << bad;
    EXPECT_FALSE(evaluate_boolean(d, "f", "u", false)) << bad;
  }
}

}  // namespace
}  // namespace drover::flags
