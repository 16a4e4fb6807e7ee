// drover config set-context | use-context | get-contexts | current-context |
// delete-context: the named contexts of the command line's config file
// (docs/CLI.md, "The config file and contexts").
#include <iostream>

#include "core/base/name.hpp"
#include "tools/drover/client_config.hpp"
#include "tools/drover/commands.hpp"

namespace drover::cli {
namespace {

using nlohmann::json;

constexpr const char* kUsage =
    "set-context NAME [--coordinator URL] [--token-file FILE] [--ca-file FILE] [--use] | "
    "use-context NAME | get-contexts [--json] | current-context | delete-context NAME";

constexpr const char* kExamples =
    "Examples:\n"
    "  drover config set-context prod --coordinator https://coordinator.example:7080 \\\n"
    "      --token-file ~/.config/drover/prod.token --ca-file /etc/drover/ca.pem --use\n"
    "  drover config use-context staging\n"
    "  drover config get-contexts\n"
    "  drover deploys --context prod      # one command against another context\n";

}  // namespace

int config_command(Context& ctx, std::vector<std::string> args) {
  const std::string verb = "config";
  cxxopts::Options o("drover config", "The contexts of the command line's config file.");
  o.custom_help(kUsage);
  o.add_options()("words", "", cxxopts::value<std::vector<std::string>>())(
      "coordinator", "set-context: the coordinator's API URL", cxxopts::value<std::string>())(
      "token-file", "set-context: a file holding the API token (mode 0600)",
      cxxopts::value<std::string>())("ca-file", "set-context: CA certificates for https",
                                     cxxopts::value<std::string>())(
      "use", "set-context: make it the current context too")("json", "get-contexts: as JSON")(
      "h,help", "show this help");
  auto parsed_or = parse(o, args, {"words"});
  if (!parsed_or.ok()) return usage(verb, parsed_or.error().message);
  const cxxopts::ParseResult& r = *parsed_or;
  if (r.count("help")) {
    std::cout << o.help() << "\n" << kExamples;
    return kExitOk;
  }
  const auto words =
      r.count("words") ? r["words"].as<std::vector<std::string>>() : std::vector<std::string>{};
  if (words.empty()) return usage(verb, std::string("give one of: ") + kUsage);
  const std::string& what = words[0];
  const std::string path = client_config_path();
  auto loaded = load_client_config(ctx.fs, path);
  if (!loaded.ok()) return report(verb, loaded.error());
  ClientConfig c = std::move(*loaded);
  auto want_name = [&](const std::string& action) -> std::optional<std::string> {
    if (words.size() != 2) return std::nullopt;
    if (!validate_name(words[1], action + " NAME").ok()) return std::nullopt;
    return words[1];
  };
  auto save = [&]() {
    if (auto st = save_client_config(ctx.fs, path, c); !st.ok()) return report(verb, st.error());
    return kExitOk;
  };

  if (what == "set-context") {
    auto name = want_name("set-context");
    if (!name) return usage(verb, "set-context wants one NAME (letters, digits, . _ -)");
    ContextEntry& e = c.contexts[*name];
    if (r.count("coordinator")) {
      e.coordinator = r["coordinator"].as<std::string>();
      if (e.coordinator.rfind("http://", 0) != 0 && e.coordinator.rfind("https://", 0) != 0) {
        return usage(verb, "--coordinator must start with http:// or https://");
      }
    }
    // Absolute: a relative path would be read from wherever drover runs.
    auto absolute = [](const std::string& p) {
      return p.rfind("~/", 0) == 0 ? p : fs::absolute(p).lexically_normal().string();
    };
    if (r.count("token-file")) e.token_file = absolute(r["token-file"].as<std::string>());
    if (r.count("ca-file")) e.ca_file = absolute(r["ca-file"].as<std::string>());
    if (r.count("use") || c.current.empty()) c.current = *name;
    if (int code = save(); code != kExitOk) return code;
    std::cout << "context " << *name << " saved in " << path
              << (c.current == *name ? " (current)" : "") << "\n";
    return kExitOk;
  }
  if (what == "use-context") {
    auto name = want_name("use-context");
    if (!name) return usage(verb, "use-context wants one NAME");
    if (!c.contexts.count(*name)) {
      return report(verb, make_error(Errc::not_found, "no context '" + *name + "' in " + path +
                                                          " (drover config get-contexts)"));
    }
    c.current = *name;
    if (int code = save(); code != kExitOk) return code;
    std::cout << "switched to context " << *name << "\n";
    return kExitOk;
  }
  if (what == "delete-context") {
    auto name = want_name("delete-context");
    if (!name) return usage(verb, "delete-context wants one NAME");
    if (c.contexts.erase(*name) == 0) {
      return report(verb, make_error(Errc::not_found, "no context '" + *name + "' in " + path));
    }
    if (c.current == *name) c.current.clear();
    return save();
  }
  if (what == "get-contexts") {
    if (words.size() != 1) return usage(verb, "get-contexts takes no argument");
    if (r.count("json")) {
      print_json(client_config_json(c));
      return kExitOk;
    }
    std::cout << "CURRENT  NAME             COORDINATOR                          TOKEN FILE\n";
    for (const auto& [name, e] : c.contexts) {
      std::string line = std::string(name == c.current ? "*" : " ") + "        " + name;
      line.resize(std::max<std::size_t>(line.size() + 1, 26), ' ');
      line += e.coordinator;
      line.resize(std::max<std::size_t>(line.size() + 1, 63), ' ');
      std::cout << line << e.token_file << "\n";
    }
    return kExitOk;
  }
  if (what == "current-context") {
    if (c.current.empty()) {
      return report(verb, make_error(Errc::not_found, "no current context in " + path));
    }
    std::cout << c.current << "\n";
    return kExitOk;
  }
  return usage(verb, "unknown config command '" + what + "'; give one of: " + kUsage);
}

}  // namespace drover::cli
