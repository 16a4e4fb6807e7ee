// The fleet drover-chaos runs its scenarios on (docs/CHAOS.md, "The fleet"):
// real processes of the installed binaries. A coordinator (hosting the mesh
// tracker) and an origin on the control subnet; per region a seed and hosts,
// each host an agent supervising drover-demo-service as service "web". The
// pipeline runs staging (region stg) and, behind a gate of one approval,
// production in two waves (r1, then r2).
//
// Every process runs on its node of the Network (its own namespace as root,
// loopback otherwise); each is killed and started again at the same
// addresses, so a restarted daemon is found where it was.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "chaos/fleet/network.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/test_support.hpp"

namespace drover::chaos {

namespace fs = std::filesystem;

struct FleetShape {
  int hosts_per_region = 2;
  // Test-only: the coordinator passes each batch this long before its bake
  // ends (the planted early batch; never set outside a test).
  int planted_early_batch_ms = 0;
  // Hosts whose state directory is a small tmpfs of its own (root only).
  std::vector<std::string> small_disks;
  // The artifact's payload (random bytes, so the mesh moves real data).
  std::size_t payload_bytes = 4 << 20;
};

inline constexpr const char* kStaging = "stg";
// The pipeline's figures, which the invariants hold the fleet to.
inline constexpr int kBakeS = 3;
inline constexpr int kRollbackS = 60;

class Fleet {
 public:
  // Builds the nodes and the keys and starts every daemon; throws with the
  // reason when something does not start.
  Fleet(const fs::path& dir, Network& net, const FleetShape& shape);
  ~Fleet();  // kills everything, services included

  const std::vector<std::string>& regions() const { return regions_; }
  const std::vector<std::string>& hosts() const { return hosts_; }
  std::string region_of(const std::string& host) const { return region_.at(host); }
  std::vector<std::string> hosts_in(const std::string& region) const;
  Network& net() { return net_; }
  const fs::path& dir() const { return dir_; }

  // Daemons.
  // Starts the coordinator with env added (a crash point); waits until ready.
  // With config, another configuration file (a rogue coordinator's).
  void start_coordinator(const std::map<std::string, std::string>& env = {},
                         const fs::path& config = {});
  void kill_coordinator();
  // SIGTERM, and waits for a clean exit.
  void stop_coordinator();
  // Waits for the coordinator to exit by itself (a crash point reached).
  bool wait_coordinator_exit(std::chrono::seconds timeout);
  bool coordinator_up() const { return coordinator_ != nullptr; }
  void start_agent(const std::string& host, const std::map<std::string, std::string>& env = {});
  void kill_agent(const std::string& host);
  void stop_agent(const std::string& host);  // SIGTERM, and waits
  testing::DaemonProcess* agent(const std::string& host);
  void start_seed(const std::string& region);
  void kill_seed(const std::string& region);
  testing::DaemonProcess& origin() { return *origin_; }
  testing::DaemonProcess* seed(const std::string& region) { return seeds_[region].get(); }
  std::string tracker_url() const { return url("coordinator", tracker_port_); }
  // The agent protocol's ports (requests, announcements). Not the tracker's:
  // it takes a node's address from its connection, which a relay would hide.
  std::vector<std::uint16_t> agent_protocol_ports() const {
    return {requests_port_, announcements_port_};
  }
  // The small disk: host's state directory on a tmpfs of size bytes (root).
  void mount_small_disk(const std::string& host, std::uint64_t bytes);
  void resize_small_disk(const std::string& host, std::uint64_t bytes);
  // Bytes in use on host's small disk.
  std::uint64_t small_disk_used(const std::string& host) const;
  // Bytes the origin has sent into the mesh so far (its counters).
  std::uint64_t origin_bytes_up();

  // Packs a release of the demo service into the store and waits until the
  // coordinator has registered it; returns its artifact id.
  std::string push(const std::string& name, const nlohmann::json& demo);
  std::size_t artifact_bytes() const { return artifact_bytes_; }
  int pushed() const { return pushed_; }  // releases pushed so far

  // The API as the admin (or as bob, the approver); status 0 when unreachable.
  nlohmann::json api(const std::string& method, const std::string& path,
                     const nlohmann::json& body = nullptr, int* status = nullptr,
                     bool as_bob = false);
  // Starts a deploy of artifact through the pipeline; returns its id.
  std::string deploy(const std::string& artifact);
  // Approves every run waiting at a gate (as bob); how many.
  int approve_waiting();
  // What host's service answers at /version: release and pid ("" and 0 when down).
  std::pair<std::string, int> serving(const std::string& host);
  std::uint16_t service_port(const std::string& host) const { return service_ports_.at(host); }
  // Where host's agent keeps its releases.
  fs::path state_dir(const std::string& host) const { return dir_ / ("state-" + host); }
  // Writes every running daemon's event lines to DIR/<name>.out (for a
  // failing run's logs).
  void save_events();
  // Where an artifact's tree is materialized from the store (for comparing).
  fs::path materialize(const std::string& artifact);

 private:
  void start_all();
  void take_down();
  void write_configs();
  std::string url(const std::string& node, std::uint16_t port) const;

  fs::path dir_;
  Network& net_;
  FleetShape shape_;
  std::vector<std::string> regions_, hosts_;
  std::map<std::string, std::string> region_;
  std::string admin_, bob_, join_;
  std::uint16_t api_port_ = 0, requests_port_ = 0, announcements_port_ = 0, tracker_port_ = 0,
                feed_port_ = 0;
  std::map<std::string, std::uint16_t> service_ports_;
  std::size_t artifact_bytes_ = 0;
  int pushed_ = 0;
  std::unique_ptr<testing::DaemonProcess> coordinator_, origin_;
  std::map<std::string, std::unique_ptr<testing::DaemonProcess>> seeds_, agents_;
  std::map<std::string, int> starts_;
  std::vector<fs::path> mounts_;
};

}  // namespace drover::chaos
