#include "tools/drover/client_config.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "core/base/name.hpp"
#include "core/canon/json_fields.hpp"
#include "core/http/http.hpp"
#include "core/yaml/yaml_json.hpp"
#include "tools/drover/cli.hpp"

namespace drover::cli {
namespace {

using canon::Fields;
using nlohmann::json;

constexpr const char* kFormat = "drover.cli-config.v1";

std::string env_of(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return s.substr(i);
}

// "~/x" as the user means it.
std::string expand_home(const std::string& path) {
  if (path.rfind("~/", 0) == 0 && !env_of("HOME").empty()) return env_of("HOME") + path.substr(1);
  return path;
}

Result<ClientConfig> parse_config(const json& j) {
  DROVER_ASSIGN(Fields f, Fields::of(j, ""));
  DROVER_TRY(f.only({"format", "current_context", "contexts"}));
  DROVER_ASSIGN(std::string format, f.str("format", 64));
  if (format != kFormat) {
    return make_error(Errc::unsupported, "format '" + format + "' is not " + kFormat);
  }
  ClientConfig c;
  DROVER_ASSIGN(auto current, f.opt_str("current_context", 64));
  c.current = current.value_or("");
  if (const json* contexts = f.raw("contexts")) {
    if (!contexts->is_object()) {
      return make_error(Errc::invalid_argument, "contexts must be a mapping of names");
    }
    if (contexts->size() > 256) {
      return make_error(Errc::invalid_argument, "contexts: at most 256");
    }
    for (const auto& [name, body] : contexts->items()) {
      const std::string at = "contexts." + name;
      if (auto st = validate_name(name, at); !st.ok()) return st.error();
      DROVER_ASSIGN(Fields e, Fields::of(body, at));
      DROVER_TRY(e.only({"coordinator", "token_file", "ca_file"}));
      ContextEntry entry;
      DROVER_ASSIGN(auto coordinator, e.opt_str("coordinator", 1024));
      DROVER_ASSIGN(auto token_file, e.opt_str("token_file", 4096));
      DROVER_ASSIGN(auto ca_file, e.opt_str("ca_file", 4096));
      entry.coordinator = coordinator.value_or("");
      entry.token_file = token_file.value_or("");
      entry.ca_file = ca_file.value_or("");
      // Relative paths would be read from wherever drover runs (a hostile
      // checkout's CA, say): absolute or under ~/ only.
      for (const auto& [field, value] :
           {std::pair<const char*, const std::string*>{"token_file", &entry.token_file},
            {"ca_file", &entry.ca_file}}) {
        if (!value->empty() && (*value)[0] != '/' && value->rfind("~/", 0) != 0) {
          return make_error(Errc::invalid_argument,
                            e.path(field) + " must be an absolute path (or start with ~/)");
        }
      }
      if (!entry.coordinator.empty() && !http::parse_url(entry.coordinator).ok()) {
        return make_error(Errc::invalid_argument,
                          e.path("coordinator") + " must be an http:// or https:// URL");
      }
      c.contexts[name] = entry;
    }
  }
  if (!c.current.empty() && !c.contexts.count(c.current)) {
    return make_error(Errc::invalid_argument,
                      "current_context '" + c.current + "' names no context of the file");
  }
  return c;
}

// Reads a file through any symlinks (a secret mounted by a vault agent, a
// config kept in dotfiles): opened once, and what was opened is checked.
// private_to_user: it must be the caller's, and closed to group and others.
Result<std::string> read_checked(const std::string& path, std::size_t max, bool private_to_user,
                                 const std::string& what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return make_error(errno == ENOENT ? Errc::not_found : Errc::io,
                      what + " " + path + ": " + std::strerror(errno));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return make_error(Errc::refused, what + " " + path + " is not a regular file");
  }
  if (private_to_user) {
    if (st.st_uid != ::getuid()) {
      return make_error(Errc::crypto,
                        what + " " + path + " belongs to another user; it must be your own");
    }
    if ((st.st_mode & 077) != 0) {
      return make_error(Errc::crypto,
                        what + " " + path + " may be read by group or others; chmod 600 it");
    }
  }
  if (static_cast<std::uint64_t>(st.st_size) > max) {
    return make_error(Errc::refused,
                      what + " " + path + " is larger than " + std::to_string(max) + " bytes");
  }
  std::string out(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  out.resize(got);
  return out;
}

Result<std::string> read_token_file(const std::string& path, const std::string& context) {
  auto text = read_checked(path, 4096, true, "the token file of " + context + ",");
  if (!text.ok()) return text.error();
  return trimmed(*text);
}

}  // namespace

std::string client_config_path() {
  if (std::string p = env_of("DROVER_CONFIG"); !p.empty()) return p;
  if (std::string x = env_of("XDG_CONFIG_HOME"); !x.empty()) return x + "/drover/config";
  if (std::string h = env_of("HOME"); !h.empty()) return h + "/.config/drover/config";
  return "";
}

Result<ClientConfig> load_client_config(Filesystem& fs, const std::string& path) {
  (void)fs;  // read through symlinks (a config kept in dotfiles), checked on the descriptor
  if (path.empty()) return ClientConfig{};
  auto text = read_checked(path, yaml::kMaxBytes, false, "the config file");
  if (!text.ok()) {
    if (text.error().code == Errc::not_found) return ClientConfig{};  // none: no contexts
    return make_error(Errc::corrupt, text.error().message);
  }
  auto doc = yaml::parse(*text);
  if (!doc.ok()) return make_error(Errc::corrupt, path + ": " + doc.error().message);
  auto c = parse_config(doc->value);
  // A file that is wrong, not a command line: exit 1, never 2.
  if (!c.ok()) return make_error(Errc::corrupt, path + ": " + doc->locate(c.error().message));
  return c;
}

json client_config_json(const ClientConfig& c) {
  json contexts = json::object();
  for (const auto& [name, e] : c.contexts) {
    json one = json::object();
    if (!e.coordinator.empty()) one["coordinator"] = e.coordinator;
    if (!e.token_file.empty()) one["token_file"] = e.token_file;
    if (!e.ca_file.empty()) one["ca_file"] = e.ca_file;
    contexts[name] = one;
  }
  json out = {{"format", kFormat}, {"contexts", contexts}};
  if (!c.current.empty()) out["current_context"] = c.current;
  return out;
}

Status save_client_config(Filesystem& fs, const std::string& path, const ClientConfig& c) {
  if (path.empty()) {
    return make_error(Errc::invalid_argument,
                      "no config file: set DROVER_CONFIG, XDG_CONFIG_HOME or HOME");
  }
  const fs::path file(path);
  if (file.has_parent_path()) {
    // Only the directories made here are made private; one that exists
    // ($HOME, say) keeps its mode.
    std::vector<fs::path> missing;
    for (fs::path d = file.parent_path(); !d.empty() && !fs::exists(d); d = d.parent_path()) {
      missing.push_back(d);
      if (d == d.parent_path()) break;
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
      if (::mkdir(it->c_str(), 0700) != 0 && errno != EEXIST) {
        return make_error(Errc::io, "cannot create " + it->string() + ": " + std::strerror(errno));
      }
    }
  }
  return fs.write_owned(file, client_config_json(c).dump(2) + "\n", 0600);
}

Result<ClientSettings> resolve_client(Filesystem& fs, const ClientFlags& flags) {
  ClientSettings s;
  // A context named on purpose (--context, DROVER_CONTEXT) beats the
  // environment's coordinator; the file's current one does not.
  std::string context = flags.context.value_or(env_of("DROVER_CONTEXT"));
  const bool named = !context.empty();
  const std::string env_coordinator = env_of("DROVER_COORDINATOR");
  const std::string path = client_config_path();
  const ContextEntry* entry = nullptr;
  ClientConfig config;
  const bool needed = named || (!flags.coordinator && env_coordinator.empty());
  if (needed) {
    DROVER_ASSIGN(config, load_client_config(fs, path));
    if (context.empty()) context = config.current;
    if (!context.empty()) {
      auto it = config.contexts.find(context);
      if (it == config.contexts.end()) {
        return make_error(Errc::invalid_argument,
                          "no context '" + context + "' in " +
                              (path.empty() ? std::string("the config file") : path) +
                              " (drover config get-contexts lists them)");
      }
      entry = &it->second;
      s.context = context;
    }
  }
  const std::string from_context = "context " + context;
  if (flags.coordinator) {
    s.coordinator = *flags.coordinator;
    s.coordinator_from = "flag";
  } else if (entry != nullptr && named && !entry->coordinator.empty()) {
    s.coordinator = entry->coordinator;
    s.coordinator_from = from_context;
  } else if (!env_coordinator.empty()) {
    s.coordinator = env_coordinator;
    s.coordinator_from = "env";
  } else if (entry != nullptr && !entry->coordinator.empty()) {
    s.coordinator = entry->coordinator;
    s.coordinator_from = from_context;
  }
  // A context's token and CA go only to that context's coordinator: never
  // to one a flag or the environment named.
  const bool context_coordinator = entry != nullptr && s.coordinator_from == from_context;
  if (flags.ca_file) {
    s.ca_file = *flags.ca_file;
  } else if (context_coordinator && !entry->ca_file.empty()) {
    s.ca_file = expand_home(entry->ca_file);
  } else {
    s.ca_file = env_of("DROVER_CA_FILE");
  }
  const std::string env_token = env_of("DROVER_TOKEN");
  if (flags.token) {
    s.token = *flags.token;
    s.token_from = "flag";
  } else if (!env_token.empty() && !(named && context_coordinator)) {
    s.token = env_token;
    s.token_from = "env";
  } else if (context_coordinator && !entry->token_file.empty()) {
    DROVER_ASSIGN(s.token, read_token_file(expand_home(entry->token_file), from_context));
    s.token_from = from_context;
  }
  return s;
}

void add_client_flags(cxxopts::Options& o) {
  o.add_options()("context",
                  "the config file's context to use (default $DROVER_CONTEXT, else its current "
                  "one)",
                  cxxopts::value<std::string>())(
      "coordinator", "API URL (default $DROVER_COORDINATOR, else the context's)",
      cxxopts::value<std::string>())("token",
                                     "API token (default $DROVER_TOKEN, else the "
                                     "context's token file)",
                                     cxxopts::value<std::string>())(
      "ca-file", "CA certificates for https (default $DROVER_CA_FILE, else the context's)",
      cxxopts::value<std::string>());
}

ClientFlags client_flags_of(const cxxopts::ParseResult& r) {
  auto flag = [&](const char* name) -> std::optional<std::string> {
    if (r.count(name)) return r[name].as<std::string>();
    return std::nullopt;
  };
  return {flag("coordinator"), flag("token"), flag("ca-file"), flag("context")};
}

Result<json> Api::call(const std::string& method, const std::string& path, const json& body) const {
  http::ClientOptions o;
  o.timeout = timeout;
  o.ca_file = ca_file;
  if (!token.empty()) o.headers.emplace_back("Authorization", "Bearer " + token);
  auto answered = http::request(method, url + path, body.is_null() ? "" : body.dump(), o);
  if (!answered.ok()) {
    return make_error(Errc::io,
                      std::string(kUnreachable) + " at " + url + ": " + answered.error().message);
  }
  const http::Response& r = *answered;
  json j = json::parse(r.body, nullptr, false);
  if (r.status < 200 || r.status > 299) {
    const std::string why = j.is_object() && j.contains("error") && j["error"].is_string()
                                ? j["error"].get<std::string>()
                                : r.body.substr(0, 500);
    // A token missing or refused: its own exit status (docs/CLI.md).
    const Errc code = r.status == 401 || r.status == 403 ? Errc::crypto
                      : r.status == 404                  ? Errc::not_found
                                                         : Errc::refused;
    return make_error(code, "coordinator answered " + std::to_string(r.status) + ": " + why);
  }
  if (j.is_discarded()) return make_error(Errc::corrupt, "coordinator answered non-JSON");
  return j;
}

Result<Api> api_from(const ClientSettings& s) {
  Api a{s.coordinator, s.token, s.ca_file};
  if (a.url.empty()) {
    return make_error(Errc::invalid_argument,
                      "no coordinator: give --coordinator URL, set DROVER_COORDINATOR, or "
                      "make a context (drover config set-context)");
  }
  while (!a.url.empty() && a.url.back() == '/') a.url.pop_back();
  auto url = http::parse_url(a.url);
  if (!url.ok()) {
    return make_error(Errc::invalid_argument, "the coordinator '" + a.url + "' (from " +
                                                  s.coordinator_from + ") " + url.error().message);
  }
  const bool loopback = url->host == "localhost" || url->host.rfind("127.", 0) == 0 ||
                        url->host == "::1" || url->host == "[::1]";
  if (!url->tls && !loopback && !a.token.empty()) {
    std::cerr << "drover: warning: the API token goes to " << url->host
              << " over plain http; anyone on the path can read it (use https)\n";
  }
  return a;
}

Result<Api> api_of(Filesystem& fs, const cxxopts::ParseResult& r) {
  DROVER_ASSIGN(ClientSettings s, resolve_client(fs, client_flags_of(r)));
  return api_from(s);
}

int report_settings(const std::string& verb, const Error& e) {
  if (e.code == Errc::invalid_argument) return usage(verb, e.message);
  return report_api(verb, e);
}

int report_api(const std::string& verb, const Error& e) {
  report(verb, e);
  if (e.code == Errc::crypto) return kExitUnauthorized;
  if (e.code == Errc::io && e.message.rfind(kUnreachable, 0) == 0) return kExitUnreachable;
  return kExitFailed;
}

}  // namespace drover::cli
