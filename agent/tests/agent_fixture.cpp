#include "agent/tests/agent_fixture.hpp"

#include <signal.h>
#include <unistd.h>

#include <fstream>

#include "core/format/manifest.hpp"
#include "core/http/http.hpp"
#include "tests/support/tree_gen.hpp"

namespace drover::testing {

using nlohmann::json;
using namespace std::chrono_literals;

void AgentTest::SetUp() {
  coordinator_.add_join_token("join-1");
  write_file(dir_ / "root.pub", sign::encode_public_key_file(coordinator_.root().public_key()));
}

void AgentTest::TearDown() {
  // Services outlive their agent by design: stop every one the tests started.
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir_.path(), ec)) {
    if (e.path().extension() != ".pid") continue;
    json j = json::parse(read_file(e.path()), nullptr, false);
    if (j.is_object() && j.value("pid", 0) > 0) ::kill(-j.value("pid", 0), SIGKILL);
  }
}

PushedArtifact AgentTest::push(const std::string& service, const json& demo,
                               std::size_t extra_bytes, std::uint64_t seed, const json& hooks) {
  const fs::path tree = dir_ / ("tree-" + std::to_string(++serial_));
  write_file(tree / "demo.json", demo.dump());
  if (!hooks.is_null()) write_file(tree / "drover-service.json", hooks.dump());
  const std::size_t chunk = 1 << 20;
  for (std::size_t i = 0, left = extra_bytes; left > 0; ++i) {
    const std::size_t n = std::min(chunk, left);
    write_file(tree / "data" / ("f" + std::to_string(i)), binary_bytes(seed * 1000 + i, n));
    left -= n;
  }
  ProcessResult r =
      run({binary("drover").string(), "artifact", "push", tree.string(), "--service", service,
           "--git-sha", "0123abcd", "--store", (dir_ / "store").string(), "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  PushedArtifact a = from_store(*ContentId::parse(j["artifact_id"].get<std::string>()), service);
  a.tree = tree;
  return a;
}

PushedArtifact AgentTest::from_store(const ContentId& id, const std::string& service) {
  PushedArtifact a;
  a.id = id;
  a.manifest =
      read_file(dir_ / "store" / "blobs" / "sha256" / a.id.hex().substr(0, 2) / a.id.hex());
  auto m = format::decode_manifest(a.manifest);
  EXPECT_TRUE(m.ok());
  proto::Plan& p = a.plan_template;
  p.service = service;
  p.deploy_id = "d-test";
  p.artifact = a.id;
  p.manifest_size = a.manifest.size();
  if (m.ok()) {
    for (const auto& l : m->layers) p.layers.push_back({l.id, l.size, l.bt_root});
  }
  coordinator_.add_manifest(a.id, a.manifest);
  return a;
}

void AgentTest::start_origin(bool separate_tracker) {
  std::vector<std::string> args = {
      binary("drover-seed").string(), "origin", "--store", (dir_ / "store").string(),
      "--announce-interval",          "1"};
  if (separate_tracker) {
    tracker_process_ = std::make_unique<DaemonProcess>(
        std::vector<std::string>{binary("drover-seed").string(), "tracker", "--listen",
                                 "127.0.0.1:0", "--interval", "1"},
        (dir_ / "tracker.err").string());
    auto ready = tracker_process_->wait_for_event("ready", 30s);
    ASSERT_TRUE(ready) << tracker_process_->stderr_tail();
    args.insert(args.end(), {"--tracker", (*ready)["tracker"].get<std::string>()});
  } else {
    args.insert(args.end(), {"--tracker-listen", "127.0.0.1:0"});
  }
  origin_ = std::make_unique<DaemonProcess>(args, (dir_ / "origin.err").string());
  auto ready = origin_->wait_for_event("ready", 30s);
  ASSERT_TRUE(ready) << origin_->stderr_tail();
  tracker_ = (*ready)["tracker"];
  feed_ = (*ready)["feed"];
}

proto::Plan AgentTest::plan(const PushedArtifact& a, std::uint64_t seq,
                            const std::vector<std::string>& hosts) {
  proto::Plan p = a.plan_template;
  p.seq = seq;
  p.hosts = hosts;
  p.tracker = tracker_.empty() ? "http://127.0.0.1:1" : tracker_;
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  p.issued_at = now - 5;
  p.expires_at = now + 3600;
  return p;
}

fs::path AgentTest::write_config(const AgentOptions& o) {
  const std::string demo = binary("drover-demo-service").string();
  if (!ports_.count(o.host)) ports_[o.host] = free_port();
  json service = {{"name", "web"}, {"stop_timeout_s", 5}};
  if (!o.user.empty()) {
    service["user"] = o.user;
  } else if (::geteuid() == 0) {
    service["user"] = "root";
  }
  if (!o.artifact_hooks) {
    service["start"] = {demo, "--port", "{port}"};
    service["health"] = "http://127.0.0.1:{port}/health";
    service["start_timeout_s"] = 10;
  }
  if (o.blue_green) {
    if (!green_ports_.count(o.host)) green_ports_[o.host] = free_port();
    service["blue_green"] = {{"ports", {ports_[o.host], green_ports_[o.host]}}};
  } else {
    service["port"] = ports_[o.host];
  }
  service.update(o.service_extra);
  json mesh = {{"announce_interval_s", 1}};
  if (!o.download_rate.empty()) mesh["download_rate"] = std::stoll(o.download_rate);
  json c = {{"format", "drover.agent-config.v1"},
            {"host", o.host},
            {"region", "r1"},
            {"cluster", "c1"},
            {"state_dir", state_of(o.host).string()},
            {"root_key", (dir_ / "root.pub").string()},
            {"coordinator",
             {{"requests", o.coordinator.empty() ? coordinator_.requests_url() : o.coordinator},
              {"announcements", o.coordinator.empty() ? coordinator_.announcements_url() : ""}}},
            {"join_token", o.join_token},
            {"poll_interval_ms", 500},
            {"health_interval_ms", 200},
            {"request_timeout_ms", 1000},
            {"fetch_stall_timeout_s", 30},
            {"mesh", mesh},
            {"services", {service}}};
  c.merge_patch(o.extra);
  const fs::path path = dir_ / ("agent-" + o.host + "-" + std::to_string(++serial_) + ".json");
  write_file(path, c.dump(2));
  return path;
}

std::unique_ptr<DaemonProcess> AgentTest::start_agent(const fs::path& config) {
  auto agent = std::make_unique<DaemonProcess>(
      std::vector<std::string>{binary("drover-agent").string(), "run", "--config", config.string(),
                               "--log-level", "debug"},
      (dir_ / ("agent-" + std::to_string(++serial_) + ".err")).string());
  auto ready = agent->wait_for_event("ready", 30s);
  EXPECT_TRUE(ready) << agent->stderr_tail();
  return agent;
}

json AgentTest::wait_event(DaemonProcess& agent, const std::string& event,
                           const std::function<bool(const json&)>& match,
                           std::chrono::milliseconds timeout) {
  auto line = agent.wait_for(
      [&](const json& j) { return j.value("event", "") == event && (!match || match(j)); },
      timeout);
  if (!line) {
    std::string seen;
    for (const auto& l : agent.lines()) seen += l.dump() + "\n";
    ADD_FAILURE() << "no '" << event << "' line; the agent said:\n" << seen;
  }
  return line ? *line : json();
}

std::optional<json> AgentTest::version(std::uint16_t port) {
  auto r = http::request("GET", "http://127.0.0.1:" + std::to_string(port) + "/version", "", 2s);
  if (!r.ok() || r->status != 200) return std::nullopt;
  json j = json::parse(r->body, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

bool AgentTest::wait_serving(std::uint16_t port, const ContentId& artifact,
                             std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto v = version(port);
    if (v && (*v)["release"] == artifact.str()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

json AgentTest::status(const std::string& host) {
  ProcessResult r = run(
      {binary("drover-agent").string(), "status", "--state", state_of(host).string(), "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out, nullptr, false);
}

}  // namespace drover::testing
