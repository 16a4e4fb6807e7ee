#include "tests/support/fleet.hpp"

#include <signal.h>
#include <unistd.h>
#include <algorithm>

#include "core/base/hex.hpp"
#include "core/http/http.hpp"
#include "core/sign/secret_box.hpp"
#include "tests/support/tls_cert.hpp"
#include "tests/support/tree_gen.hpp"

namespace drover::testing {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// The name in the coordinator's TLS certificate, which the agents expect.
constexpr const char* kCoordinatorName = "drover-coordinator";

void must(const ProcessResult& r, const std::string& what) {
  if (r.exit_code != 0) throw std::runtime_error(what + " failed: " + r.err + r.out);
}

}  // namespace

TestFleet::TestFleet(const fs::path& dir, bool mesh_tokens)
    : dir_(dir),
      mesh_tokens_(mesh_tokens),
      api_port_(free_port()),
      requests_port_(free_port()),
      announcements_port_(free_port()),
      tracker_port_(free_port()),
      feed_port_(free_port()),
      legacy_requests_port_(free_port()),
      legacy_announcements_port_(free_port()) {
  // The services' user reaches its releases beneath dir (search only).
  if (::geteuid() == 0)
    fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  const std::string drover = binary("drover").string();
  must(run({drover, "keygen", "--out", (dir_ / "root.key").string()}), "keygen root");
  must(run({drover, "keygen", "--out", (dir_ / "online.key").string()}), "keygen online");
  must(run({drover, "key", "certify", "--root", (dir_ / "root.key").string(), "--subject",
            (dir_ / "online.key.pub").string(), "--out", (dir_ / "online.cert").string()}),
       "certify");
  write_file(dir_ / "webhook.secret", "a-webhook-secret-for-tests\n", 0600);
  // The agent protocol over TLS, the agents pinning this certificate.
  const TlsFiles tls = make_self_signed_cert(dir_, kCoordinatorName);
  // Mesh tokens: the tracker serves only nodes the coordinator (for agents)
  // or an admin (for the origin and the seeds) issued one.
  must(run({drover, "mesh", "token-key", "--out", (dir_ / "mesh.key").string()}), "mesh token-key");
  const std::string state = (dir_ / "coordinator").string();
  const std::string coord = binary("drover-coordinator").string();
  ProcessResult admin =
      run({coord, "token", "create", "admin", "--role", "admin", "--data-dir", state});
  must(admin, "token create");
  admin_ = trimmed(admin.out);
  json config = {
      {"format", "drover.coordinator-config.v1"},
      {"data_dir", state},
      {"online_key", (dir_ / "online.key").string()},
      {"online_cert", (dir_ / "online.cert").string()},
      {"api", {{"listen", "127.0.0.1:" + std::to_string(api_port_)}}},
      {"agents",
       {{"requests", "tls+tcp://127.0.0.1:" + std::to_string(requests_port_)},
        {"legacy_requests", "tcp://127.0.0.1:" + std::to_string(legacy_requests_port_)},
        {"announcements",
         {"tls+tcp://127.0.0.1:" + std::to_string(announcements_port_),
          "tcp://127.0.0.1:" + std::to_string(legacy_announcements_port_)}},
        {"tls", {{"cert_file", tls.cert.string()}, {"key_file", tls.key.string()}}}}},
      {"tracker", {{"listen", "127.0.0.1:" + std::to_string(tracker_port_)}, {"interval_s", 1}}},
      {"origin_feed", "http://127.0.0.1:" + std::to_string(feed_port_)},
      {"webhook_secret_file", (dir_ / "webhook.secret").string()},
      {"tick_ms", 100},
      {"metrics", {{"listen", "127.0.0.1:0"}}}};
  if (mesh_tokens_) config["tracker"]["token_key_file"] = (dir_ / "mesh.key").string();
  write_file(dir_ / "coordinator.json", config.dump(2));
}

std::string TestFleet::coordinator_history() const {
  std::string out;
  for (int i = 1; i <= coordinator_starts_; ++i) {
    out += "--- coordinator start " + std::to_string(i) + "\n";
    std::string text = read_file(dir_ / ("coordinator-" + std::to_string(i) + ".err"));
    std::size_t pos = 0;
    while (pos < text.size()) {
      const std::size_t end = std::min(text.find('\n', pos), text.size());
      const std::string line = text.substr(pos, end - pos);
      if (line.find("level=info event=coordinator.api") == std::string::npos &&
          line.find("artifact.registered") == std::string::npos) {
        out += line + "\n";
      }
      pos = end + 1;
    }
  }
  return out;
}

TestFleet::~TestFleet() {
  agents_.clear();
  seeds_.clear();
  origin_.reset();
  coordinator_.reset();
  // The services the agents supervised run in process groups of their own.
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir_, ec)) {
    if (e.path().extension() != ".pid") continue;
    json j = json::parse(read_file(e.path()), nullptr, false);
    if (j.is_object() && j.value("pid", 0) > 0) ::kill(-j.value("pid", 0), SIGKILL);
  }
}

std::string TestFleet::push(const std::string& name, const json& demo, const std::string& git_sha,
                            const std::string& service) {
  const fs::path tree = dir_ / "trees" / name;
  write_file(tree / "demo.json", demo.dump());
  write_file(tree / "data", binary_bytes(name.size() * 7 + name.back(), 300 << 10));
  ProcessResult r =
      run({binary("drover").string(), "artifact", "push", tree.string(), "--git-sha", git_sha,
           "--service", service, "--store", (dir_ / "store").string(), "--json", "--no-register"});
  must(r, "artifact push");
  return json::parse(r.out)["artifact_id"];
}

void TestFleet::configure_coordinator(const json& patch) {
  json config = json::parse(read_file(dir_ / "coordinator.json"));
  config.merge_patch(patch);
  write_file(dir_ / "coordinator.json", config.dump(2));
}

void TestFleet::start_coordinator(const std::map<std::string, std::string>& env) {
  coordinator_ = std::make_unique<DaemonProcess>(
      std::vector<std::string>{binary("drover-coordinator").string(), "run", "--config",
                               (dir_ / "coordinator.json").string(), "--log-level", "info"},
      (dir_ / ("coordinator-" + std::to_string(++coordinator_starts_) + ".err")).string(), env);
  if (!coordinator_->wait_for_event("ready", 30s)) {
    // Why, when it said (its "failed" line goes to standard output).
    std::string said;
    for (const auto& l : coordinator_->lines()) {
      if (l.value("event", "") == "failed") said = l.value("error", "") + "\n";
    }
    throw std::runtime_error("coordinator did not start: " + said + coordinator_->stderr_tail());
  }
}

std::vector<std::string> TestFleet::token_args(const std::string& role, const std::string& region,
                                               const std::string& host) {
  if (!mesh_tokens_) return {};
  return {"--token-file", mesh_token(role, region, host).string()};
}

fs::path TestFleet::mesh_token(const std::string& role, const std::string& region,
                               const std::string& host) {
  const fs::path out = dir_ / (host + ".token");
  must(run({binary("drover").string(), "mesh", "token", "--key-file", (dir_ / "mesh.key").string(),
            "--role", role, "--region", region, "--host", host, "--out", out.string()}),
       "mesh token for " + host);
  return out;
}

void TestFleet::start_origin() {
  std::vector<std::string> argv = {binary("drover-seed").string(),
                                   "origin",
                                   "--store",
                                   (dir_ / "store").string(),
                                   "--feed-listen",
                                   "127.0.0.1:" + std::to_string(feed_port_),
                                   "--tracker",
                                   "http://127.0.0.1:" + std::to_string(tracker_port_),
                                   "--announce-interval",
                                   "1",
                                   "--metrics-listen",
                                   "127.0.0.1:0",
                                   "--log-level",
                                   "warn"};
  for (auto& a : token_args("origin", "", "origin")) argv.push_back(a);
  origin_ = std::make_unique<DaemonProcess>(argv, (dir_ / "origin.err").string());
  if (!origin_->wait_for_event("ready", 30s)) {
    throw std::runtime_error("origin did not start: " + origin_->stderr_tail());
  }
}

void TestFleet::start_seed(const std::string& region) {
  const std::string name = "seed-" + region;
  std::vector<std::string> argv = {binary("drover-seed").string(),
                                   "seed",
                                   "--region",
                                   region,
                                   "--cache",
                                   (dir_ / name).string(),
                                   "--origin",
                                   "http://127.0.0.1:" + std::to_string(feed_port_),
                                   "--tracker",
                                   "http://127.0.0.1:" + std::to_string(tracker_port_),
                                   "--host",
                                   name,
                                   "--announce-interval",
                                   "1",
                                   "--metrics-listen",
                                   "127.0.0.1:0",
                                   "--log-level",
                                   "warn"};
  for (auto& a : token_args("seed", region, name)) argv.push_back(a);
  seeds_.push_back(std::make_unique<DaemonProcess>(argv, (dir_ / (name + ".err")).string()));
  if (!seeds_.back()->wait_for_event("ready", 30s)) {
    throw std::runtime_error("seed did not start: " + seeds_.back()->stderr_tail());
  }
}

void TestFleet::start_agents(const std::vector<std::string>& hosts, const std::string& region,
                             int protocol, AgentShape shape) {
  ProcessResult join =
      run({binary("drover-coordinator").string(), "join-token", "create", "--uses",
           std::to_string(hosts.size()), "--data-dir", (dir_ / "coordinator").string()});
  must(join, "join-token create");
  for (const auto& host : hosts) {
    service_ports_[host] = free_port();
    json service = {{"name", "web"},
                    {"port", service_ports_[host]},
                    {"start", {binary("drover-demo-service").string(), "--port", "{port}"}},
                    {"health", "http://127.0.0.1:{port}/health"},
                    {"start_timeout_s", 10}};
    if (!shape.health_push) service.erase("health");
    json services = json::array();
    for (const auto& name : shape.services) {
      if (name == "web") continue;
      json more = service;
      more["name"] = name;
      more["port"] = service_ports_[host + "/" + name] = free_port();
      if (::geteuid() == 0) more["user"] = kServiceUser;
      services.push_back(std::move(more));
    }
    if (shape.nginx) {
      Router& r = routers_[host];
      r.nginx = std::make_unique<NginxProcess>(dir_ / ("nginx-" + host));
      if (!r.nginx->ok()) throw std::runtime_error(r.nginx->error());
      r.listen = service_ports_[host];
      r.preview = free_port();
      r.slots[0] = free_port();
      r.slots[1] = free_port();
      r.access_log = r.nginx->logs() / "web-access.log";
      service.erase("port");
      service["blue_green"] = {{"ports", {r.slots[0], r.slots[1]}}};
      service["router"] = {{"kind", "nginx"},
                           {"conf_file", (r.nginx->conf_d() / "drover-web.conf").string()},
                           {"listen", "127.0.0.1:" + std::to_string(r.listen)},
                           {"preview_listen", "127.0.0.1:" + std::to_string(r.preview)},
                           {"access_log", r.access_log.string()},
                           {"command", r.nginx->command()},
                           {"preview_probe", {{"path", "/work?user=probe"}, {"requests", 10}}}};
      if (shape.verify_first && host == hosts.front()) {
        service["router"].erase("preview_probe");
        service["verify"] = {
            "/bin/sh", "-c",
            "for i in 1 2 3 4 5 6 7 8 9 10; do "
            "curl -sf -o /dev/null '{preview}/work?user=verify-'$i || exit 1; done"};
      }
    }
    // As root (CI), the services run as an unprivileged user, as in
    // production (docs/AGENT.md, "Users and privileges").
    if (::geteuid() == 0) service["user"] = kServiceUser;
    if (std::find(shape.services.begin(), shape.services.end(), "web") != shape.services.end()) {
      services.insert(services.begin(), service);
    }
    json coordinator = {
        {"requests", "tls+tcp://127.0.0.1:" + std::to_string(requests_port_)},
        {"announcements", "tls+tcp://127.0.0.1:" + std::to_string(announcements_port_)},
        {"tls",
         {{"ca_file", (dir_ / (std::string(kCoordinatorName) + ".crt")).string()},
          {"server_name", kCoordinatorName}}}};
    if (protocol == 1) {
      coordinator = {
          {"requests", "tcp://127.0.0.1:" + std::to_string(legacy_requests_port_)},
          {"announcements", "tcp://127.0.0.1:" + std::to_string(legacy_announcements_port_)},
          {"protocol", 1}};
    }
    json config = {{"format", "drover.agent-config.v1"},
                   {"host", host},
                   {"region", region},
                   {"cluster", "c1"},
                   {"state_dir", (dir_ / ("state-" + host)).string()},
                   {"root_key", (dir_ / "root.key.pub").string()},
                   {"coordinator", coordinator},
                   {"join_token", trimmed(join.out)},
                   {"poll_interval_ms", 500},
                   {"health_interval_ms", 200},
                   {"request_timeout_ms", 2000},
                   {"mesh", {{"announce_interval_s", 1}}},
                   {"metrics_listen", "127.0.0.1:0"},
                   {"services", services}};
    write_file(dir_ / (host + ".json"), config.dump());
    agents_.push_back(std::make_unique<DaemonProcess>(
        std::vector<std::string>{binary("drover-agent").string(), "run", "--config",
                                 (dir_ / (host + ".json")).string(), "--log-level", "warn"},
        (dir_ / (host + ".err")).string()));
    hosts_.push_back(host);
  }
  for (auto& a : agents_) {
    if (!a->wait_for_event("enrolled", 30s)) {
      throw std::runtime_error("agent did not enroll: " + a->stderr_tail());
    }
  }
}

std::vector<std::pair<std::string, std::string>> TestFleet::metrics_targets() {
  std::vector<std::pair<std::string, std::string>> out;
  auto url_of = [](DaemonProcess& d) {
    auto ready = d.wait_for_event("ready", 5s);
    return ready ? ready->value("metrics", "") : std::string();
  };
  if (coordinator_) out.emplace_back("coordinator", url_of(*coordinator_));
  if (origin_) out.emplace_back("origin", url_of(*origin_));
  for (std::size_t i = 0; i < seeds_.size(); ++i) {
    out.emplace_back("seed-" + std::to_string(i + 1), url_of(*seeds_[i]));
  }
  for (std::size_t i = 0; i < agents_.size(); ++i) {
    auto ready = agents_[i]->wait_for_event("ready", 5s);
    const int port = ready ? ready->value("metrics_port", 0) : 0;
    out.emplace_back("agent-" + hosts_[i],
                     port ? "http://127.0.0.1:" + std::to_string(port) + "/metrics" : "");
  }
  return out;
}

std::string TestFleet::agent_failures() {
  std::string out;
  for (std::size_t i = 0; i < hosts_.size(); ++i) {
    std::string events;
    for (const auto& l : agents_[i]->lines()) {
      const std::string e = l.value("event", "");
      if (e == "apply_failed" || e == "fetch_failed" || e == "plan_refused" || e == "crash_loop") {
        events += "  " + l.dump() + "\n";
      }
    }
    if (events.empty()) continue;
    out += "--- agent " + hosts_[i] + "\n" + events + agents_[i]->stderr_tail(2000) + "\n";
  }
  return out;
}

std::string TestFleet::agent_logs(std::size_t tail) {
  std::string out;
  for (std::size_t i = 0; i < hosts_.size(); ++i) {
    out += "--- agent " + hosts_[i] + "\n" + agents_[i]->stderr_tail(tail) + "\n";
  }
  return out;
}

DaemonProcess& TestFleet::agent(const std::string& host) {
  for (std::size_t i = 0; i < hosts_.size(); ++i) {
    if (hosts_[i] == host) return *agents_[i];
  }
  throw std::runtime_error("no agent " + host);
}

json TestFleet::api(const std::string& method, const std::string& path, const json& body,
                    int* status) {
  http::ClientOptions o;
  o.timeout = 10s;
  o.headers = {{"Authorization", "Bearer " + admin_}};
  auto r = http::request(method, api_url() + path, body.is_null() ? "" : body.dump(), o);
  if (!r.ok()) {
    if (status) *status = 0;
    return json();
  }
  if (status) *status = r->status;
  return json::parse(r->body, nullptr, false);
}

ProcessResult TestFleet::drover(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {binary("drover").string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, 300s, {{"DROVER_COORDINATOR", api_url()}, {"DROVER_TOKEN", admin_}});
}

int TestFleet::scm_push(const json& event, const std::string& delivery, const std::string& secret,
                        json* answer) {
  const std::string body = event.dump();
  http::ClientOptions o;
  o.timeout = 10s;
  o.headers = {{"X-GitHub-Event", "push"},
               {"X-GitHub-Delivery", delivery},
               {"X-Hub-Signature-256", "sha256=" + to_hex(sign::hmac_sha256(secret, body))}};
  auto r = http::request("POST", api_url() + "/webhooks/scm", body, o);
  if (!r.ok()) return 0;
  if (answer) *answer = json::parse(r->body, nullptr, false);
  return r->status;
}

bool TestFleet::registered(const std::string& artifact) {
  return eventually(
      [&] {
        int status = 0;
        api("GET", "/artifacts/" + artifact, nullptr, &status);
        return status == 200;
      },
      60s);
}

std::pair<std::string, int> TestFleet::serving(const std::string& host,
                                               const std::string& service) {
  auto r = http::request(
      "GET", "http://127.0.0.1:" + std::to_string(service_port(host, service)) + "/version", "",
      2s);
  if (!r.ok() || r->status != 200) return {"", 0};
  json j = json::parse(r->body, nullptr, false);
  return {j.value("release", ""), j.value("pid", 0)};
}

std::pair<std::string, int> TestFleet::slot_serving(const std::string& host, int slot) {
  auto r = http::request(
      "GET", "http://127.0.0.1:" + std::to_string(routers_.at(host).slots[slot]) + "/version", "",
      2s);
  if (!r.ok() || r->status != 200) return {"", 0};
  json j = json::parse(r->body, nullptr, false);
  return {j.value("release", ""), j.value("pid", 0)};
}

json TestFleet::wait_done(const std::string& deploy_id, std::chrono::milliseconds timeout) {
  json d;
  eventually(
      [&] {
        int status = 0;
        d = api("GET", "/deploys/" + deploy_id, nullptr, &status);
        if (status != 200) return false;
        const std::string s = d.value("state", "");
        return s == "succeeded" || s == "rolled_back" || s == "failed";
      },
      timeout);
  return d;
}

}  // namespace drover::testing
