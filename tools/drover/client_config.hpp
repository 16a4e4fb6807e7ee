// Where the drover command line finds its coordinator (docs/CLI.md, "The
// config file and contexts"; docs/FORMATS.md, "CLI config"): named contexts
// in ~/.config/drover/config, like kubectl's, each a coordinator URL, a token
// file and a CA file. For each setting a flag wins, then the environment
// variable, then the chosen context.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>

#include <cxxopts.hpp>
#include <nlohmann/json.hpp>

#include "core/base/result.hpp"
#include "core/world/filesystem.hpp"

namespace drover::cli {

struct ContextEntry {
  std::string coordinator, token_file, ca_file;
};

struct ClientConfig {
  std::string current;                           // current_context ("" none)
  std::map<std::string, ContextEntry> contexts;  // by name
};

// The config file's path: $DROVER_CONFIG, else $XDG_CONFIG_HOME/drover/config,
// else $HOME/.config/drover/config ("" when none of them is set).
std::string client_config_path();

// Reads the file (YAML or JSON); an absent file is an empty config. Errors
// name the file, the line and the field.
Result<ClientConfig> load_client_config(Filesystem& fs, const std::string& path);
// Writes it whole (0600, its directory created 0700), atomically.
Status save_client_config(Filesystem& fs, const std::string& path, const ClientConfig& c);
nlohmann::json client_config_json(const ClientConfig& c);

// What the command line gave (flags; nullopt: not given).
struct ClientFlags {
  std::optional<std::string> coordinator, token, ca_file, context;
};

// --coordinator, --token, --ca-file and --context as a command line gave them.
void add_client_flags(cxxopts::Options& o);
ClientFlags client_flags_of(const cxxopts::ParseResult& r);

// The settings a command uses, and where each came from ("flag", "env",
// "context NAME", or "" when unset).
struct ClientSettings {
  std::string coordinator, token, ca_file, context;
  std::string coordinator_from, token_from;
};

// Flags, then DROVER_COORDINATOR / DROVER_TOKEN / DROVER_CA_FILE, then the
// context. A context named on purpose (--context, DROVER_CONTEXT) comes
// before DROVER_COORDINATOR; the file's current one after it. A context's
// token file and CA go only to that context's coordinator, never to one a
// flag or the environment named. The token file is read (trimmed) through
// symlinks; one not the user's own, or open to group or others, is refused
// (Errc::crypto). A context named but absent is an invalid_argument.
Result<ClientSettings> resolve_client(Filesystem& fs, const ClientFlags& flags);

// Calls to the coordinator's API. A failure's code says what went wrong:
// crypto (401, 403: the token), not_found (404), refused (another error
// answer), io (no answer: the message starts with kUnreachable), corrupt
// (an answer that is not JSON).
inline constexpr const char* kUnreachable = "cannot reach the coordinator";

struct Api {
  std::string url, token, ca_file;
  std::chrono::milliseconds timeout{30'000};

  Result<nlohmann::json> call(const std::string& method, const std::string& path,
                              const nlohmann::json& body = nullptr) const;
};

// The settings as an Api, or an error when no coordinator is named.
Result<Api> api_from(const ClientSettings& s);
// resolve_client on a command line's flags, then api_from.
Result<Api> api_of(Filesystem& fs, const cxxopts::ParseResult& r);

// An API call's failure printed, as an exit status: unauthorized and
// unreachable have their own (docs/CLI.md, "Exit codes").
int report_api(const std::string& verb, const Error& e);
// A failure to settle where to go (resolve_client, api_from) as an exit
// status: a usage error (2) for what the command line or environment named
// wrong, unauthorized (8) for a token file refused, else 1.
int report_settings(const std::string& verb, const Error& e);

}  // namespace drover::cli
