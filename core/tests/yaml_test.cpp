// YAML read as JSON with the line of every field (core/yaml), for config
// files people write: errors name the line, and nothing a small document
// can do makes a big tree.
#include <gtest/gtest.h>

#include "core/yaml/yaml_json.hpp"

namespace drover {
namespace {

TEST(YamlJson, ReadsAPipelineAsJsonAndKnowsTheLineOfEveryField) {
  const std::string text = R"(format: drover.pipeline.v2
service: web
environments:
  - name: staging
    waves:
      - {name: all, regions: [staging]}
  - name: production
    gate: {approvals: 2, deadline_s: 86400}
    waves:
      - name: canary
        regions: [us-east-2]
        bake_s: 1800
quoted: "42"
ratio: 0.25
flag: true
nothing: ~
)";
  auto doc = yaml::parse(text);
  ASSERT_TRUE(doc.ok()) << doc.error().message;
  const auto& v = doc->value;
  EXPECT_EQ(v["service"], "web");
  EXPECT_EQ(v["environments"][1]["gate"]["approvals"], 2);
  EXPECT_EQ(v["environments"][1]["waves"][0]["bake_s"], 1800);
  EXPECT_EQ(v["environments"][0]["waves"][0]["regions"][0], "staging");
  EXPECT_EQ(v["quoted"], "42");  // quoted: a string
  EXPECT_EQ(v["ratio"], 0.25);
  EXPECT_EQ(v["flag"], true);
  EXPECT_TRUE(v["nothing"].is_null());
  EXPECT_EQ(doc->lines.at("environments[1].waves[0].bake_s"), 12);
  EXPECT_EQ(doc->lines.at("environments[0].waves[0].regions[0]"), 6);
  // An error a checker raises about a field gets that field's line.
  EXPECT_EQ(doc->locate("environments[1].waves[0].bake_s must be at most 86400"),
            "line 12: environments[1].waves[0].bake_s must be at most 86400");
  EXPECT_EQ(doc->locate("something else"), "something else");
  // JSON is YAML.
  auto json_doc = yaml::parse(R"({"service": "web", "n": [1, 2]})");
  ASSERT_TRUE(json_doc.ok());
  EXPECT_EQ(json_doc->value["n"][1], 2);
}

TEST(YamlJson, RefusesWhatCouldHurtOrMislead) {
  auto expect_refused = [](const std::string& text, const std::string& needle) {
    auto doc = yaml::parse(text);
    ASSERT_FALSE(doc.ok()) << text;
    EXPECT_NE(doc.error().message.find(needle), std::string::npos) << doc.error().message;
  };
  expect_refused("a: 1\nb: [1, 2\n", "line");                                 // syntax, located
  expect_refused("a: &x [1, 2]\nb: *x\n", "line 2, column 4: YAML anchors");  // no expansion
  expect_refused("a: 1\na: 2\n", "line 2, column 1: 'a' given twice");        // duplicate keys
  expect_refused("a: !!binary aGVsbG8=\n", "tags");
  expect_refused("? [1, 2]\n: x\n", "a key must be a string");
  std::string deep;
  for (int i = 0; i < 40; ++i) deep += std::string(static_cast<std::size_t>(i) * 2, ' ') + "k:\n";
  expect_refused(deep, "nesting deeper than 32");
  expect_refused(std::string((1 << 20) + 1, '#'), "exceeds 1 MiB");
  // A long run of digits stays a string, read without deep recursion.
  auto digits = yaml::parse("n: " + std::string(500'000, '7') + "\n");
  ASSERT_TRUE(digits.ok());
  EXPECT_TRUE(digits->value["n"].is_string());
  // Text that merely looks like an alias is text.
  auto prose = yaml::parse("reason: deploy *now* & then\n");
  ASSERT_TRUE(prose.ok()) << prose.error().message;
  EXPECT_EQ(prose->value["reason"], "deploy *now* & then");
}

}  // namespace
}  // namespace drover
