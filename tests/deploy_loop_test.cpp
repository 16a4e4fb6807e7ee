// The deploy loop with real parts: the coordinator's store, agent gateway,
// plan issuer and deploy driver (in this process), a real origin and mesh,
// and three real drover-agent processes supervising drover-demo-service.
// A rolling deploy of a good release succeeds batch by batch; a release
// whose health is bad is rolled back on its own.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "coordinator/orchestrator/batches.hpp"
#include "coordinator/orchestrator/fleet_adapter.hpp"
#include "core/http/http.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/test_support.hpp"
#include "tests/support/tree_gen.hpp"

namespace drover::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using namespace drover::coordinator;

class DeployLoop : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto now = unix_seconds(clock_.now());
    online_ = OnlineKey{online_key_, sign::certify(root_, {"online", online_key_.public_key(), 1,
                                                           now - 60, now + 86400})};
    write_file(dir_ / "root.pub", sign::encode_public_key_file(root_.public_key()));
    store_ = CoordinatorStore::open(dir_ / "coordinator").value();
    ASSERT_TRUE(store_->add_join_token("join", "admin", now).ok());
  }
  void TearDown() override {
    stop_ = true;
    if (driver_.joinable()) driver_.join();
    agents_.clear();
    std::error_code ec;
    for (const auto& e : fs::recursive_directory_iterator(dir_.path(), ec)) {
      if (e.path().extension() != ".pid") continue;
      json j = json::parse(read_file(e.path()), nullptr, false);
      if (j.is_object() && j.value("pid", 0) > 0) ::kill(-j.value("pid", 0), SIGKILL);
    }
  }

  std::string push(const std::string& name, const json& demo) {
    const fs::path tree = dir_ / name;
    write_file(tree / "demo.json", demo.dump());
    write_file(tree / "data", binary_bytes(name.size() * 7 + 1, 200 << 10));
    ProcessResult r =
        run({binary("drover").string(), "artifact", "push", tree.string(), "--service", "web",
             "--git-sha", "0123abcd", "--store", (dir_ / "store").string(), "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const std::string id = json::parse(r.out)["artifact_id"];
    manifests_[id] =
        read_file(dir_ / "store" / "blobs" / "sha256" / id.substr(7, 2) / id.substr(7));
    return id;
  }

  void start_coordinator() {
    origin_ = std::make_unique<DaemonProcess>(
        std::vector<std::string>{binary("drover-seed").string(), "origin", "--store",
                                 (dir_ / "store").string(), "--tracker-listen", "127.0.0.1:0",
                                 "--announce-interval", "1", "--log-level", "warn"},
        (dir_ / "origin.err").string());
    auto ready = origin_->wait_for_event("ready", 30s);
    ASSERT_TRUE(ready) << origin_->stderr_tail();
    defaults_.tracker = (*ready)["tracker"];
    gateway_ = AgentGateway::start(
                   {}, *store_, online_,
                   [this](const ContentId& id) -> Result<std::string> {
                     auto it = manifests_.find(id.str());
                     if (it == manifests_.end()) return make_error(Errc::not_found, id.str());
                     return it->second;
                   },
                   {}, clock_, Logger::discard())
                   .value();
    issuer_ = std::make_unique<PlanIssuer>(*store_, *gateway_);
    orchestrator_ = std::make_unique<Orchestrator>(
        *store_,
        [this](const DeployRecord& d) { return store_fleet_view(*store_, d, 60'000, true); },
        [this](const DeployRecord& d, const std::string& artifact,
               const std::vector<std::string>& hosts) {
          return issue_plan(
              *issuer_,
              [this](const ContentId& id) -> Result<std::string> {
                return manifests_.at(id.str());
              },
              defaults_, d, artifact, hosts, unix_seconds(clock_.now()));
        },
        [](const DeployRecord&) {
          DeployParams p;
          p.bake_ms = 3000;
          p.converge_timeout_ms = 60'000;
          p.rollback_timeout_ms = 60'000;
          p.health.min_samples = 5;
          return p;
        },
        clock_, Logger::discard());
    driver_ = std::thread([this] {
      while (!stop_) {
        {
          std::lock_guard lock(orchestrator_mu_);
          (void)orchestrator_->tick();
        }
        std::this_thread::sleep_for(100ms);  // the driver's own cadence, not a test wait
      }
    });
  }

  void start_agent(const std::string& host) {
    ports_[host] = free_port();
    json config = {{"format", "drover.agent-config.v1"},
                   {"host", host},
                   {"region", "r1"},
                   {"cluster", "c1"},
                   {"state_dir", (dir_ / ("state-" + host)).string()},
                   {"root_key", (dir_ / "root.pub").string()},
                   {"coordinator",
                    {{"requests", gateway_->requests_url()},
                     {"announcements", gateway_->announcements_url()}}},
                   {"join_token", "join"},
                   {"poll_interval_ms", 500},
                   {"health_interval_ms", 200},
                   {"request_timeout_ms", 2000},
                   {"mesh", {{"announce_interval_s", 1}}},
                   {"services",
                    {{{"name", "web"},
                      {"port", ports_[host]},
                      {"start", {binary("drover-demo-service").string(), "--port", "{port}"}},
                      {"health", "http://127.0.0.1:{port}/health"},
                      {"start_timeout_s", 10}}}}};
    write_file(dir_ / (host + ".json"), config.dump());
    agents_.push_back(std::make_unique<DaemonProcess>(
        std::vector<std::string>{binary("drover-agent").string(), "run", "--config",
                                 (dir_ / (host + ".json")).string(), "--log-level", "warn"},
        (dir_ / (host + ".err")).string()));
    ASSERT_TRUE(agents_.back()->wait_for_event("enrolled", 30s)) << agents_.back()->stderr_tail();
  }

  DeployRecord deploy(const std::string& id, const std::string& artifact, const std::string& prior,
                      std::size_t batch_size) {
    DeployRecord d;
    d.id = id;
    d.service = "web";
    d.artifact = artifact;
    d.prior_artifact = prior;
    d.created_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now().time_since_epoch())
            .count();
    std::vector<std::string> hosts;
    for (const auto& [h, port] : ports_) hosts.push_back(h);
    RolloutShape shape;
    shape.batch_size = batch_size;
    d.batches = pending_batches(plan_batches(hosts, shape, id));
    std::lock_guard lock(orchestrator_mu_);
    EXPECT_TRUE(orchestrator_->create(d, "alice", "0123abcd", "{\"batch_size\":1}").ok());
    return d;
  }

  DeployRecord wait_done(const std::string& id) {
    DeployRecord d;
    EXPECT_TRUE(eventually(
        [&] {
          std::lock_guard lock(orchestrator_mu_);
          d = orchestrator_->get(id).value();
          return is_terminal(d.state);
        },
        120s))
        << id << " is still " << deploy_state_name(d.state);
    return d;
  }

  std::string serving(const std::string& host) {
    auto r = http::request("GET", "http://127.0.0.1:" + std::to_string(ports_[host]) + "/version",
                           "", 2s);
    if (!r.ok() || r->status != 200) return "";
    return json::parse(r->body, nullptr, false).value("release", "");
  }

  TempDir dir_;
  SystemClock clock_;
  SeededRandom rnd_{42};
  sign::KeyPair root_ = sign::KeyPair::generate(rnd_);
  sign::KeyPair online_key_ = sign::KeyPair::generate(rnd_);
  OnlineKey online_{online_key_, {}};
  std::unique_ptr<CoordinatorStore> store_;
  std::unique_ptr<AgentGateway> gateway_;
  std::unique_ptr<PlanIssuer> issuer_;
  std::mutex orchestrator_mu_;  // the driver thread and the test share the orchestrator
  std::unique_ptr<Orchestrator> orchestrator_;
  std::thread driver_;
  std::atomic<bool> stop_{false};
  PlanDefaults defaults_;
  std::map<std::string, std::string> manifests_;
  std::map<std::string, std::uint16_t> ports_;
  std::unique_ptr<DaemonProcess> origin_;
  std::vector<std::unique_ptr<DaemonProcess>> agents_;
};

TEST_F(DeployLoop, RollsOutBatchByBatchAndRollsBackABadReleaseOnItsOwn) {
  const std::string v1 = push("v1", {{"error_rate", 0.01}, {"p99_ms", 12}, {"saturation", 0.2}});
  const std::string v2 = push("v2", {{"error_rate", 0.01}, {"p99_ms", 14}, {"saturation", 0.2}});
  const std::string v3 = push("v3", {{"error_rate", 0.40}, {"p99_ms", 14}, {"saturation", 0.2}});
  start_coordinator();
  for (const char* h : {"a1", "a2", "a3"}) start_agent(h);

  // The first release of the service, to every host at once.
  DeployRecord first = wait_done(deploy("d-1", v1, "", 3).id);
  ASSERT_EQ(first.state, DeployState::succeeded) << first.reason;
  for (const auto& [h, port] : ports_) EXPECT_EQ(serving(h), v1) << h;

  // v2 one host at a time, each batch baked.
  DeployRecord second = wait_done(deploy("d-2", v2, v1, 1).id);
  ASSERT_EQ(second.state, DeployState::succeeded) << second.reason;
  ASSERT_EQ(second.batches.size(), 3u);
  for (const auto& b : second.batches) EXPECT_GE(b.finished_ms - b.converged_ms, 3000);
  for (const auto& [h, port] : ports_) EXPECT_EQ(serving(h), v2) << h;

  // v3 errors 40x more than v2: its first batch fails and it goes back.
  DeployRecord third = wait_done(deploy("d-3", v3, v2, 1).id);
  ASSERT_EQ(third.state, DeployState::rolled_back) << third.reason;
  EXPECT_NE(third.reason.find("error_rate"), std::string::npos) << third.reason;
  EXPECT_EQ(third.batch, 0u);
  EXPECT_GT(third.rollback_done_ms, third.rollback_started_ms);
  for (const auto& [h, port] : ports_)
    EXPECT_TRUE(eventually([&] { return serving(h) == v2; })) << h;

  AuditCheck audit = store_->verify_audit().value();
  EXPECT_TRUE(audit.ok) << audit.problem;
  const auto now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now().time_since_epoch())
          .count();
  EXPECT_EQ(store_->running_at("web", now_ms).value()->artifact, v2);
}

}  // namespace
}  // namespace drover::testing
