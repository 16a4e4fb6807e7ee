// YAML read as the JSON the rest of drover already checks (yaml-cpp), with
// the line of every value kept, so that an error naming a field can name its
// line too: "line 12: environments[1].waves[0].regions[2] ...". Config files
// written by people (pipelines, releases) come through here; anything that
// is JSON reads as itself (YAML is a superset).
//
// Scalars become JSON strings, numbers, booleans or null by YAML 1.2's core
// schema (quoted scalars always stay strings); anchors and aliases are
// refused (a small document must not expand into a huge one), and so are
// tags, non-string mapping keys, duplicate keys and nesting beyond 32 levels.
#pragma once

#include <cstddef>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/base/result.hpp"

namespace drover::yaml {

inline constexpr std::size_t kMaxBytes = 1 << 20;

struct Document {
  nlohmann::json value;
  // Field path as json_fields names it ("a.b[2].c"; "" for the root) -> its
  // line, counting from 1.
  std::map<std::string, int> lines;

  // The message with "line N: " in front when it names a field of this
  // document (the longest path it contains); otherwise unchanged.
  std::string locate(const std::string& message) const;
};

// Parses text (at most kMaxBytes). Errors name the line and column.
Result<Document> parse(std::string_view text);

}  // namespace drover::yaml
