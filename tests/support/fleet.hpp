// A whole drover installation on loopback, as real processes, for end-to-end
// tests: keys made with `drover keygen`/`drover key certify`, artifacts
// pushed with `drover artifact push`, one drover-coordinator (hosting the
// mesh tracker), an origin, a regional seed, and agents supervising
// drover-demo-service. Ports are chosen once, so a coordinator killed and
// started again comes back at the same addresses its agents know.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/daemon_process.hpp"
#include "tests/support/nginx.hpp"
#include "tests/support/test_support.hpp"

namespace drover::testing {

// The user the fleet's services run as when the tests run as root.
inline constexpr const char* kServiceUser = "nobody";

// How start_agents runs the service. With nginx, each host runs it in
// blue/green slots behind a real nginx of its own (docs/AGENT.md,
// "Routers"), with a preview route and the agent's preview probe.
struct AgentShape {
  bool nginx = false;
  // With nginx: the first host's previews get their requests from a verify
  // hook (curl through the preview route) instead of the agent's probe.
  bool verify_first = false;
  // The services each host runs (single slot; with nginx, only "web").
  std::vector<std::string> services = {"web"};
  // Whether the agent probes the service's health and pushes samples (off:
  // the coordinator hears of the service's health only from elsewhere).
  bool health_push = true;
};

class TestFleet {
 public:
  // mesh_tokens: the tracker requires mesh tokens (the coordinator issues the
  // agents' own; the origin and seeds get theirs from the key). A fleet with
  // protocol-1 agents runs without: they cannot receive one.
  explicit TestFleet(const fs::path& dir, bool mesh_tokens = true);
  ~TestFleet();  // kills everything, services included

  // Packs a release of the demo service (demo.json as given) into the store.
  std::string push(const std::string& name, const nlohmann::json& demo,
                   const std::string& git_sha = "0123abcd", const std::string& service = "web");
  // A signed GitHub-style push event to POST /webhooks/scm; answers the status.
  int scm_push(const nlohmann::json& event, const std::string& delivery, const std::string& secret,
               nlohmann::json* answer = nullptr);

  // Merges patch into the coordinator's config file (before it starts).
  void configure_coordinator(const nlohmann::json& patch);
  // Starts the coordinator with env added (e.g. a crash point); waits for ready.
  void start_coordinator(const std::map<std::string, std::string>& env = {});
  DaemonProcess& coordinator() { return *coordinator_; }
  // The logs of every coordinator start so far (for a failing test's message).
  std::string coordinator_history() const;
  // What went wrong on the agents: their failure events and stderr tails.
  std::string agent_failures();
  // Every agent's stderr tail (its event lines), for a failed assertion.
  std::string agent_logs(std::size_t tail = 20000);
  void start_origin();
  void start_seed(const std::string& region);
  // Starts an agent per host (all in one region and cluster); waits for
  // enrollment. Protocol 1 agents speak as agents did before version 2, over
  // plain TCP to the coordinator's legacy listener (an upgrade window).
  void start_agents(const std::vector<std::string>& hosts, const std::string& region = "r1",
                    int protocol = 2, AgentShape shape = {});
  // A host behind nginx: its live port, its slots' ports, its access log.
  struct Router {
    std::unique_ptr<NginxProcess> nginx;
    std::uint16_t listen = 0, preview = 0, slots[2] = {0, 0};
    fs::path access_log;
  };
  const Router& router(const std::string& host) const { return routers_.at(host); }
  // What the demo service answers at /version on one slot (0 blue, 1 green).
  std::pair<std::string, int> slot_serving(const std::string& host, int slot);
  // The port a host's single-slot service listens on.
  std::uint16_t service_port(const std::string& host, const std::string& service = "web") const {
    return service_ports_.at(service == "web" ? host : host + "/" + service);
  }

  // The API, as the admin.
  nlohmann::json api(const std::string& method, const std::string& path,
                     const nlohmann::json& body = nullptr, int* status = nullptr);
  // Runs the drover command line against this coordinator as the admin.
  ProcessResult drover(const std::vector<std::string>& args);
  // Waits until the coordinator has registered the artifact from the origin's feed.
  bool registered(const std::string& artifact);
  // What the demo service on host answers at /version: release and pid ("" and 0 if down).
  std::pair<std::string, int> serving(const std::string& host, const std::string& service = "web");
  // Waits for a deploy to end; returns its view.
  nlohmann::json wait_done(const std::string& deploy_id,
                           std::chrono::milliseconds timeout = std::chrono::seconds(180));

  const std::vector<std::string>& hosts() const { return hosts_; }
  // Each daemon's metrics URL, from its ready line, named ("coordinator",
  // "origin", "seed-1", "agent-h1"); "" for one that named none.
  std::vector<std::pair<std::string, std::string>> metrics_targets();
  DaemonProcess& agent(const std::string& host);
  std::string api_url() const { return "http://127.0.0.1:" + std::to_string(api_port_); }
  std::string admin_token() const { return admin_; }
  fs::path dir() const { return dir_; }

 private:
  // A mesh token of role, region and host, written to a file of its own, and
  // the daemon arguments that hand it over (none without mesh tokens).
  fs::path mesh_token(const std::string& role, const std::string& region, const std::string& host);
  std::vector<std::string> token_args(const std::string& role, const std::string& region,
                                      const std::string& host);
  fs::path dir_;
  bool mesh_tokens_ = true;
  std::string admin_;
  std::uint16_t api_port_, requests_port_, announcements_port_, tracker_port_, feed_port_;
  std::uint16_t legacy_requests_port_, legacy_announcements_port_;
  std::unique_ptr<DaemonProcess> coordinator_, origin_;
  std::vector<std::unique_ptr<DaemonProcess>> seeds_, agents_;
  std::vector<std::string> hosts_;
  std::map<std::string, std::uint16_t> service_ports_;
  std::map<std::string, Router> routers_;
  int coordinator_starts_ = 0;
};

}  // namespace drover::testing
