#include "core/yaml/yaml_json.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <optional>
#include <regex>
#include <sstream>

namespace drover::yaml {
namespace {

using nlohmann::json;

constexpr int kMaxDepth = 32;

Error at(const YAML::Mark& m, const std::string& what) {
  return make_error(Errc::invalid_argument, "line " + std::to_string(m.line + 1) + ", column " +
                                                std::to_string(m.column + 1) + ": " + what);
}

// YAML 1.2 core schema, for plain (unquoted) scalars.
json scalar(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  if (n.Tag() == "!") return s;  // quoted: a string, whatever it looks like
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (s.size() > 64) return s;  // no number is this long (and regexes recurse per character)
  static const std::regex integer("[-+]?[0-9]+");
  static const std::regex number(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  if (std::regex_match(s, integer)) {
    try {
      std::size_t used = 0;
      const long long v = std::stoll(s, &used);
      if (used == s.size()) return v;
    } catch (const std::exception&) {
      // Out of range: read as a number below.
    }
  }
  if (std::regex_match(s, number)) {
    const double v = std::strtod(s.c_str(), nullptr);
    if (std::isfinite(v)) return v;
  }
  return s;
}

Status convert(const YAML::Node& n, const std::string& path, int depth, Document& doc, json& out) {
  if (depth > kMaxDepth) return at(n.Mark(), "nesting deeper than 32 levels");
  const std::string shown = path.empty() ? "the document" : path;
  if (n.Tag() != "" && n.Tag() != "?" && n.Tag() != "!") {
    return at(n.Mark(), shown + ": tags (" + n.Tag() + ") are not accepted");
  }
  doc.lines.emplace(path, n.Mark().line + 1);
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: out = nullptr; return Ok{};
    case YAML::NodeType::Scalar: out = scalar(n); return Ok{};
    case YAML::NodeType::Sequence: {
      out = json::array();
      std::size_t i = 0;
      for (const auto& item : n) {
        json v;
        DROVER_TRY(convert(item, path + "[" + std::to_string(i++) + "]", depth + 1, doc, v));
        out.push_back(std::move(v));
      }
      return Ok{};
    }
    case YAML::NodeType::Map: {
      out = json::object();
      for (const auto& kv : n) {
        const std::string in = path.empty() ? "" : path + ": ";
        if (!kv.first.IsScalar()) return at(kv.first.Mark(), in + "a key must be a string");
        const std::string key = kv.first.Scalar();
        if (out.contains(key)) return at(kv.first.Mark(), in + "'" + key + "' given twice");
        json v;
        DROVER_TRY(convert(kv.second, path.empty() ? key : path + "." + key, depth + 1, doc, v));
        out[key] = std::move(v);
      }
      return Ok{};
    }
  }
  return at(n.Mark(), shown + ": not a value");
}

// Notes the first alias (the only event that can multiply a tree).
class AliasFinder final : public YAML::EventHandler {
 public:
  std::optional<YAML::Mark> alias;
  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
    if (!alias) alias = mark;
  }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

}  // namespace

std::string Document::locate(const std::string& message) const {
  const std::string* best = nullptr;
  int line = 0;
  for (const auto& [path, l] : lines) {
    if (path.empty() || message.find(path) == std::string::npos) continue;
    if (!best || path.size() > best->size()) {
      best = &path;
      line = l;
    }
  }
  return best ? "line " + std::to_string(line) + ": " + message : message;
}

Result<Document> parse(std::string_view text) {
  if (text.size() > kMaxBytes) {
    return make_error(Errc::invalid_argument,
                      "a YAML document of " + std::to_string(text.size()) + " bytes exceeds 1 MiB");
  }
  try {
    // Aliases would let a few lines expand into a huge tree: a first pass
    // over the parser's events refuses them before any tree is built.
    std::istringstream events{std::string(text)};
    YAML::Parser parser(events);
    AliasFinder finder;
    while (parser.HandleNextDocument(finder)) {
    }
    if (finder.alias) return at(*finder.alias, "YAML anchors and aliases are not accepted");
  } catch (const YAML::Exception& e) {
    return at(e.mark, e.msg);
  }
  Document doc;
  try {
    const YAML::Node root = YAML::Load(std::string(text));
    DROVER_TRY(convert(root, "", 0, doc, doc.value));
  } catch (const YAML::Exception& e) {
    return at(e.mark, e.msg);
  }
  return doc;
}

}  // namespace drover::yaml
