// What the agent's end-to-end tests share: a real store and origin (a real
// libtorrent mesh on loopback), a fake coordinator in the test process, and
// drover-agent as a real subprocess supervising drover-demo-service.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/proto/testing/fake_coordinator.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/test_support.hpp"

namespace drover::testing {

struct PushedArtifact {
  ContentId id;
  fs::path tree;              // what was pushed
  std::string manifest;       // bytes
  proto::Plan plan_template;  // service, artifact, layers filled in
};

// A healthy demo release's config.
inline nlohmann::json good() {
  return {{"error_rate", 0.01}, {"p99_ms", 12}, {"saturation", 0.2}};
}

// Matches an agent line of the plan with this seq.
inline std::function<bool(const nlohmann::json&)> seq_is(std::uint64_t seq) {
  return [seq](const nlohmann::json& j) { return j.value("seq", std::uint64_t{0}) == seq; };
}

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Pushes a release of `service` whose demo.json is `demo` plus `extra_bytes`
  // of random files (to make fetches and unpacks take a while).
  // With hooks, the release carries them as drover-service.json.
  PushedArtifact push(const std::string& service, const nlohmann::json& demo,
                      std::size_t extra_bytes = 64 << 10, std::uint64_t seed = 1,
                      const nlohmann::json& hooks = nullptr);
  // An artifact already in the store (installed by hand, say).
  PushedArtifact from_store(const ContentId& id, const std::string& service);
  // An origin with its own tracker, or beside a tracker process of its own
  // (which outlives it).
  void start_origin(bool separate_tracker = false);

  // A plan for `host` of the artifact, valid for an hour.
  proto::Plan plan(const PushedArtifact& a, std::uint64_t seq,
                   const std::vector<std::string>& hosts = {"host-1"});

  struct AgentOptions {
    std::string host = "host-1";
    bool blue_green = false;
    std::string coordinator;  // requests URL; default: the fake coordinator's
    std::string join_token = "join-1";
    std::string download_rate;    // bytes per second, "" for none
    bool artifact_hooks = false;  // start and health from the artifact, not the config
    // The service's user: as root "root" unless named (an agent running as
    // root refuses a service without one); otherwise none (the agent's own).
    std::string user;
    nlohmann::json extra = nlohmann::json::object();          // merged into the config
    nlohmann::json service_extra = nlohmann::json::object();  // merged into the service
  };
  // Writes the agent's config; returns its path.
  fs::path write_config(const AgentOptions& o);
  std::unique_ptr<DaemonProcess> start_agent(const fs::path& config);

  // Waits for an agent line of `event` (and service, if given) matching `match`.
  nlohmann::json wait_event(DaemonProcess& agent, const std::string& event,
                            const std::function<bool(const nlohmann::json&)>& match = {},
                            std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // GET /version of the service on port, or nullopt when nothing answers.
  std::optional<nlohmann::json> version(std::uint16_t port);
  // Waits until the service on port answers with release `artifact`.
  bool wait_serving(std::uint16_t port, const ContentId& artifact,
                    std::chrono::milliseconds timeout = std::chrono::seconds(30));
  nlohmann::json status(const std::string& host = "host-1");
  fs::path state_of(const std::string& host = "host-1") const { return dir_ / ("state-" + host); }

  TempDir dir_;
  FakeCoordinator coordinator_;
  std::unique_ptr<DaemonProcess> origin_, tracker_process_;
  std::string tracker_, feed_;
  std::map<std::string, std::uint16_t> ports_;  // host -> service port (blue for blue/green)
  std::map<std::string, std::uint16_t> green_ports_;
  int serial_ = 0;
};

}  // namespace drover::testing
