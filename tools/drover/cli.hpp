// Shared plumbing of the drover command line: option parsing with clear
// errors, exit codes, human-readable sizes.
#pragma once

#include <cxxopts.hpp>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/base/result.hpp"
#include "core/log/log.hpp"
#include "core/world/clock.hpp"
#include "core/world/filesystem.hpp"
#include "core/world/random.hpp"

namespace drover::cli {

// Exit codes, documented in docs/CLI.md ("Exit codes", version 2).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  // the operation failed or found a problem
inline constexpr int kExitUsage = 2;   // the command line is wrong
// How a deploy (or release) followed with --wait or --watch ended.
inline constexpr int kExitRolledBack = 3;
inline constexpr int kExitDeployFailed = 4;
inline constexpr int kExitRejected = 5;    // refused at a gate
inline constexpr int kExitExpired = 6;     // a gate's deadline passed
inline constexpr int kExitSuperseded = 7;  // a newer run or its release ended it
// Talking to the coordinator.
inline constexpr int kExitUnauthorized = 8;  // no token, or one refused (401, 403)
inline constexpr int kExitUnreachable = 9;   // no answer from the coordinator
inline constexpr int kExitGaveUp = 10;       // --wait/--watch timed out; the deploy goes on

// The outside world a command uses.
struct Context {
  Filesystem& fs;
  const Clock& clock;
  Random& random;
  LogSink& log_sink;
  std::string program = "drover";
};

// A command line that did not parse: the message names the flag or argument.
struct UsageError {
  std::string message;
};

// Parses args (without the program and verb names) against options; checks
// that no option is given twice and that there are no stray arguments.
// positional names the options that take positional arguments, in order.
Result<cxxopts::ParseResult> parse(cxxopts::Options& options, const std::vector<std::string>& args,
                                   const std::vector<std::string>& positional);

// A verb's command line, parsed, or the exit code to return at once: 0 after
// printing --help, kExitUsage after naming what is wrong (a required option
// missing included).
struct VerbLine {
  std::optional<cxxopts::ParseResult> parsed;
  int exit = kExitOk;
};
VerbLine parse_verb(const std::string& verb, cxxopts::Options& options,
                    const std::vector<std::string>& args,
                    const std::vector<std::string>& positional,
                    std::initializer_list<const char*> required = {});

// Writes bytes to path through a temporary beside it, fsynced and renamed;
// without replace an existing file is refused ("PATH exists") and kept.
Status write_file(Context& ctx, const fs::path& path, const std::string& bytes, std::uint32_t mode,
                  bool replace);

// Removes every "--name VALUE", "--name=VALUE" and the "k=v" words that follow
// a "--name" from args, returning the values in order.
std::vector<std::string> take_repeated(std::vector<std::string>& args, const std::string& name);

// Prints "drover <verb>: <message>" to stderr and returns the exit code for it.
int report(const std::string& verb, const Error& error);
int usage(const std::string& verb, const std::string& message);

std::string human_bytes(std::uint64_t bytes);
// Refuses an unknown --log-level value (debug, info, warn, error).
Status check_log_level(const cxxopts::ParseResult& parsed);
// Prints one JSON value on one line; bytes that are not UTF-8 (a store path,
// say) are replaced rather than aborting the output.
void print_json(const nlohmann::json& value);
std::unique_ptr<Logger> make_logger(Context& ctx, const cxxopts::ParseResult& parsed);

}  // namespace drover::cli
