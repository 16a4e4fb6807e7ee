#include "tools/drover/cli.hpp"

#include <cstdio>
#include <iostream>

namespace drover::cli {

Result<cxxopts::ParseResult> parse(cxxopts::Options& options, const std::vector<std::string>& args,
                                   const std::vector<std::string>& positional) {
  std::vector<const char*> argv;
  argv.push_back("drover");
  for (const auto& a : args) argv.push_back(a.c_str());
  if (!positional.empty()) options.parse_positional(positional);
  try {
    auto parsed = options.parse(static_cast<int>(argv.size()), argv.data());
    if (!parsed.unmatched().empty()) {
      return make_error(Errc::invalid_argument,
                        "unexpected argument '" + parsed.unmatched().front() + "'");
    }
    for (const auto& kv : parsed.arguments()) {
      bool is_positional = false;
      for (const auto& p : positional) is_positional = is_positional || p == kv.key();
      if (!is_positional && parsed.count(kv.key()) > 1) {
        return make_error(Errc::invalid_argument, "option --" + kv.key() + " given more than once");
      }
    }
    return parsed;
  } catch (const cxxopts::exceptions::exception& e) {
    return make_error(Errc::invalid_argument, e.what());
  }
}

VerbLine parse_verb(const std::string& verb, cxxopts::Options& options,
                    const std::vector<std::string>& args,
                    const std::vector<std::string>& positional,
                    std::initializer_list<const char*> required) {
  auto parsed = parse(options, args, positional);
  if (!parsed.ok()) return {std::nullopt, usage(verb, parsed.error().message)};
  if (parsed->count("help")) {
    std::cout << options.help() << "\n";
    return {std::nullopt, kExitOk};
  }
  for (const char* need : required) {
    if (!parsed->count(need)) return {std::nullopt, usage(verb, std::string("missing --") + need)};
  }
  return {std::move(*parsed), kExitOk};
}

Status write_file(Context& ctx, const fs::path& path, const std::string& bytes, std::uint32_t mode,
                  bool replace) {
  if (!replace) {
    DROVER_ASSIGN(bool exists, ctx.fs.exists(path));
    if (exists) return make_error(Errc::already_exists, path.string() + " exists");
  }
  fs::path tmp = path;
  tmp += ".tmp";
  return ctx.fs.write_atomic(path, tmp, bytes, mode, replace);
}

std::vector<std::string> take_repeated(std::vector<std::string>& args, const std::string& name) {
  std::vector<std::string> values, rest;
  const std::string flag = "--" + name;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind(flag + "=", 0) == 0) {
      values.push_back(a.substr(flag.size() + 1));
    } else if (a == flag) {
      if (i + 1 >= args.size()) {
        values.push_back("");  // reported by the caller as a missing value
        continue;
      }
      values.push_back(args[++i]);
      // More k=v words may follow one flag.
      while (i + 1 < args.size() && args[i + 1].rfind("-", 0) != 0 &&
             args[i + 1].find('=') != std::string::npos) {
        values.push_back(args[++i]);
      }
    } else {
      rest.push_back(a);
    }
  }
  args = std::move(rest);
  return values;
}

int report(const std::string& verb, const Error& error) {
  std::cerr << "drover " << verb << ": " << error.message << "\n";
  return kExitFailed;
}

int usage(const std::string& verb, const std::string& message) {
  std::cerr << "drover " << verb << ": " << message << "\n"
            << "run 'drover " << verb << " --help' for usage\n";
  return kExitUsage;
}

std::string human_bytes(std::uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  }
  return buf;
}

Status check_log_level(const cxxopts::ParseResult& parsed) {
  if (!parsed.count("log-level")) return Ok{};
  LogLevel level;
  const std::string text = parsed["log-level"].as<std::string>();
  if (!parse_log_level(text, level)) {
    return make_error(Errc::invalid_argument,
                      "--log-level wants debug, info, warn or error, got '" + text + "'");
  }
  return Ok{};
}

void print_json(const nlohmann::json& value) {
  std::cout << value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

std::unique_ptr<Logger> make_logger(Context& ctx, const cxxopts::ParseResult& parsed) {
  LogLevel level = LogLevel::warn;
  if (parsed.count("log-level")) parse_log_level(parsed["log-level"].as<std::string>(), level);
  return std::make_unique<Logger>(ctx.log_sink, ctx.clock, level);
}

}  // namespace drover::cli
