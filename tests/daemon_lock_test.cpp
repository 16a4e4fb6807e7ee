// A second daemon on a data directory another one runs on (docs/COORDINATOR.md
// and docs/AGENT.md, "One daemon per directory"): two coordinators would
// both drive the same deploys and sign plans from the same seq counter, two
// agents would both switch the same release links. Each is refused at start,
// naming the one that holds the directory; the operator's offline commands
// still work beside a running coordinator. Real processes, loopback, ports
// chosen by the kernel, so the only thing the two daemons share is the
// directory.
#include <gtest/gtest.h>
#include <unistd.h>

#include <ctime>
#include <nlohmann/json.hpp>

#include "core/sign/envelope.hpp"
#include "core/sign/keys.hpp"
#include "core/world/filesystem.hpp"
#include "core/world/random.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/test_support.hpp"

namespace drover::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// The daemon's first `ready` or `failed` line.
json first_verdict(DaemonProcess& d) {
  auto line = d.wait_for(
      [](const json& j) {
        const std::string event = j.value("event", "");
        return event == "ready" || event == "failed";
      },
      60s);
  EXPECT_TRUE(line) << "neither ready nor failed: " << d.stderr_tail();
  return line ? *line : json::object();
}

class DataDirClaim : public ::testing::Test {
 protected:
  void SetUp() override {
    PosixFilesystem fsys;
    SeededRandom rnd(11);
    const sign::KeyPair root = sign::KeyPair::generate(rnd);
    const sign::KeyPair online = sign::KeyPair::generate(rnd);
    ASSERT_TRUE(sign::save_key_pair(fsys, online, dir_ / "online.key").ok());
    const std::int64_t now = std::time(nullptr);
    write_file(dir_ / "online.cert",
               sign::encode_envelope(
                   sign::certify(root, {"online", online.public_key(), 1, now - 60, now + 86400})));
    write_file(dir_ / "root.pub", sign::encode_public_key_file(root.public_key()));
  }

  // A coordinator config on the given state directory; every port is 0.
  fs::path coordinator_config(const std::string& name, const fs::path& state) {
    const json config = {
        {"format", "drover.coordinator-config.v1"},
        {"data_dir", state.string()},
        {"online_key", (dir_ / "online.key").string()},
        {"online_cert", (dir_ / "online.cert").string()},
        {"api", {{"listen", "127.0.0.1:0"}}},
        {"agents", {{"requests", "tcp://127.0.0.1:0"}, {"announcements", "tcp://127.0.0.1:0"}}}};
    const fs::path path = dir_ / (name + ".json");
    write_file(path, config.dump(2));
    return path;
  }
  std::unique_ptr<DaemonProcess> coordinator(const fs::path& config) {
    return daemon("drover-coordinator", config);
  }

  // An agent config on the given state directory. Its coordinator is a
  // port nothing listens on: an agent runs without one (docs/AGENT.md,
  // "Autonomy"), and its control port is chosen by the kernel.
  // As root a service names its user (docs/AGENT.md, "Users and privileges").
  static json service() {
    json s = {{"name", "web"}, {"port", free_port()}};
    if (::geteuid() == 0) s["user"] = "root";
    return s;
  }
  fs::path agent_config(const std::string& name, const fs::path& state) {
    const json config = {
        {"format", "drover.agent-config.v1"},
        {"host", name},
        {"region", "r1"},
        {"state_dir", state.string()},
        {"root_key", (dir_ / "root.pub").string()},
        {"coordinator", {{"requests", "tcp://127.0.0.1:" + std::to_string(free_port())}}},
        {"request_timeout_ms", 200},  // a stop waits for the request in flight
        {"mesh", {{"listen", "127.0.0.1:0"}}},
        {"services", {service()}}};
    const fs::path path = dir_ / (name + ".json");
    write_file(path, config.dump(2));
    return path;
  }
  std::unique_ptr<DaemonProcess> agent(const fs::path& config) {
    return daemon("drover-agent", config);
  }
  // `program run --config config`, its standard error kept in a file of its own.
  std::unique_ptr<DaemonProcess> daemon(const std::string& program, const fs::path& config) {
    return std::make_unique<DaemonProcess>(
        std::vector<std::string>{binary(program).string(), "run", "--config", config.string()},
        (dir_ / (program + "-" + std::to_string(++serial_) + ".err")).string());
  }

  TempDir dir_;
  int serial_ = 0;
};

TEST_F(DataDirClaim, ASecondCoordinatorOnTheSameDataDirectoryIsRefused) {
  const fs::path state = dir_ / "coordinator";
  auto first = coordinator(coordinator_config("first", state));
  ASSERT_EQ(first_verdict(*first).value("event", ""), "ready") << first->stderr_tail();

  // Same directory, other ports: only the directory is shared.
  auto second = coordinator(coordinator_config("second", state));
  const json verdict = first_verdict(*second);
  ASSERT_EQ(verdict.value("event", ""), "failed") << verdict.dump();
  const std::string error = verdict.value("error", "");
  EXPECT_NE(error.find("in use by another drover-coordinator"), std::string::npos) << error;
  EXPECT_NE(error.find("pid " + std::to_string(first->pid())), std::string::npos) << error;
  EXPECT_NE(error.find(state.string()), std::string::npos) << error;
  EXPECT_EQ(second->wait_exit(30s), std::optional<int>(1));

  // A coordinator on a directory of its own is not affected.
  auto elsewhere = coordinator(coordinator_config("elsewhere", dir_ / "other"));
  EXPECT_EQ(first_verdict(*elsewhere).value("event", ""), "ready") << elsewhere->stderr_tail();
  EXPECT_EQ(elsewhere->stop(), 0);

  // The operator's commands open the state beside the running daemon.
  const std::string coord = binary("drover-coordinator").string();
  ProcessResult token =
      run({coord, "token", "create", "ops", "--role", "viewer", "--data-dir", state.string()}, 60s);
  EXPECT_EQ(token.exit_code, 0) << token.err;
  EXPECT_EQ(token.out.rfind("drv_", 0), 0u) << token.out;
  ProcessResult join = run({coord, "join-token", "create", "--data-dir", state.string()}, 60s);
  EXPECT_EQ(join.exit_code, 0) << join.err;
  ProcessResult audit = run({coord, "audit", "verify", "--data-dir", state.string()}, 60s);
  EXPECT_EQ(audit.exit_code, 0) << audit.err << audit.out;
  EXPECT_NE(audit.out.find("audit log verified"), std::string::npos) << audit.out;

  // Stopped, or killed, the holder lets the next one start.
  EXPECT_EQ(first->stop(), 0);
  auto third = coordinator(coordinator_config("third", state));
  ASSERT_EQ(first_verdict(*third).value("event", ""), "ready") << third->stderr_tail();
  third->kill();
  auto fourth = coordinator(coordinator_config("fourth", state));
  EXPECT_EQ(first_verdict(*fourth).value("event", ""), "ready") << fourth->stderr_tail();
}

TEST_F(DataDirClaim, ASecondAgentOnTheSameStateDirectoryIsRefused) {
  const fs::path state = dir_ / "agent-state";
  const fs::path config = agent_config("host-1", state);
  auto first = agent(config);
  const json ready = first_verdict(*first);
  ASSERT_EQ(ready.value("event", ""), "ready") << first->stderr_tail();

  auto second = agent(config);
  const json verdict = first_verdict(*second);
  ASSERT_EQ(verdict.value("event", ""), "failed") << verdict.dump();
  const std::string error = verdict.value("error", "");
  EXPECT_NE(error.find("in use by another drover-agent"), std::string::npos) << error;
  EXPECT_NE(error.find("pid " + std::to_string(first->pid())), std::string::npos) << error;
  EXPECT_EQ(second->wait_exit(30s), std::optional<int>(1));

  // The refused agent did not take over the state: STATE/control.json still
  // names the first one's status endpoint.
  const json control = json::parse(read_file(state / "control.json"), nullptr, false);
  EXPECT_EQ(control.value("port", 0), ready.value("control_port", -1)) << control.dump();

  EXPECT_EQ(first->stop(), 0);
  auto third = agent(config);
  EXPECT_EQ(first_verdict(*third).value("event", ""), "ready") << third->stderr_tail();
}

}  // namespace
}  // namespace drover::testing
