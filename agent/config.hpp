// The agent's configuration file, drover.agent-config.v1 (docs/AGENT.md).
// JSON, read once at start; every field is checked and a bad one is named.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/privileges.hpp"
#include "core/base/result.hpp"
#include "core/world/filesystem.hpp"

namespace drover::agent {

// How one service is run. Empty fields fall back to the artifact's
// drover-service.json (docs/FORMATS.md, "Service hooks").
struct ServiceConfig {
  std::string name;
  std::vector<std::string> start;  // argv; "{port}", "{release}", "{flags}" substituted
  std::vector<std::string> stop;   // optional drain command run before SIGTERM
  std::string health;              // URL of the health endpoint, "" for none
  std::optional<int> start_timeout_s, stop_timeout_s;
  std::uint16_t port = 0;  // single slot: the port the service listens on
  // Blue/green: two slots with a port each; the router file names the active one.
  bool blue_green = false;
  std::uint16_t blue_port = 0, green_port = 0;
  fs::path router_file;  // default STATE/run/<service>.router.json
  // The nginx router instead of the file (docs/AGENT.md, "Routers"):
  // router {"kind":"nginx",...}.
  struct Nginx {
    fs::path conf_file;
    std::string listen, preview_listen, access_log;
    std::vector<std::string> command = {"nginx"};
    // While a release is previewed, the agent itself sends this many GET
    // requests of this path through the preview route each health interval,
    // so the previewed slot's health has traffic to speak of (0: none).
    std::string preview_path = "/";
    int preview_requests = 0;
  };
  std::optional<Nginx> nginx;
  // The service's verify hook (argv; "{preview}" becomes the preview
  // route's URL): run as the service's user each health interval while a
  // release is previewed, instead of the router's preview probe; the
  // requests it sends count in the service's health.
  std::vector<std::string> verify;
  fs::path flags_file;  // default STATE/run/<service>.flags.json
  // The flags file's format: flagd's (docs/FORMATS.md, "Flags file,
  // version 2"), or drover.flags.v1 (the default: services written for it
  // keep reading it until their config says otherwise).
  bool flags_flagd = false;
  // Who runs the service and its hooks (docs/AGENT.md, "Users and
  // privileges"): the names as written, and what resolve_users made of them.
  std::string user, group;
  RunAs run_as;
};

struct AgentConfig {
  std::string host, region, cluster;
  fs::path state_dir;
  fs::path root_key;                      // the pinned root public key file
  std::string coordinator_requests;       // NNG URL of the coordinator's REP socket
  std::string coordinator_announcements;  // NNG URL of its PUB socket ("" for none)
  fs::path coordinator_ca_file;           // the CA (or certificate) pinned for tls+tcp://
  std::string coordinator_server_name;    // "" : the URL's host
  bool allow_plaintext = false;           // tcp:// beyond loopback
  int protocol = 2;                       // 1: speak as agents before version 2 (tests)
  std::string join_token;
  std::chrono::milliseconds poll_interval{std::chrono::seconds(30)};
  std::chrono::milliseconds health_interval{std::chrono::seconds(5)};
  std::chrono::milliseconds request_timeout{std::chrono::seconds(5)};
  std::chrono::milliseconds cert_poll_interval{std::chrono::minutes(10)};
  std::chrono::milliseconds fetch_stall_timeout{std::chrono::seconds(60)};
  std::size_t keep_releases = 3;           // the current one and up to K-1 before it
  std::size_t report_buffer_items = 4096;  // buffered while the coordinator is away
  std::string mesh_listen = "127.0.0.1:0";
  std::uint64_t mesh_upload_rate = 0, mesh_download_rate = 0;
  int mesh_announce_interval_s = 30;
  std::string control_listen = "127.0.0.1";  // status endpoint; port 0 is chosen
  std::string metrics_listen;                // "HOST:PORT" of the metrics listener; "" off
  std::vector<ServiceConfig> services;

  const ServiceConfig* service(std::string_view name) const;
};

Result<AgentConfig> parse_config(std::string_view json_text);
// Reads the file, then resolves the services' users for the agent's
// effective uid (resolve_users).
Result<AgentConfig> load_config(Filesystem& fs, const fs::path& path);
// Resolves every service's user and group for an agent running as agent_uid:
// as root each service names its user ("root" written out), otherwise
// services run as the agent's own user. Errors name the field
// (services[i].user) and the value.
Status resolve_users(AgentConfig& config, std::uint32_t agent_uid);

}  // namespace drover::agent
