#include "chaos/fleet/fleet.hpp"

#include <signal.h>
#include <unistd.h>

#include "core/http/http.hpp"
#include "tests/support/tree_gen.hpp"

namespace drover::chaos {

using nlohmann::json;
using testing::binary;
using testing::DaemonProcess;
using testing::ProcessResult;
using testing::run;
using testing::write_file;
using namespace std::chrono_literals;

namespace {

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

void must(const ProcessResult& r, const std::string& what) {
  if (r.exit_code != 0) throw std::runtime_error(what + " failed: " + r.err + r.out);
}

// The name in the coordinator's certificate, which the agents pin.
constexpr const char* kCoordinatorName = "drover-coordinator";

// The pipeline (docs/CHAOS.md, "The fleet"): bakes of seconds.
std::string pipeline_yaml() {
  return "format: drover.pipeline.v2\n"
         "service: web\n"
         "strategy: {kind: rolling, batch_percent: 50}\n"
         "health_checks: {bake_s: " +
         std::to_string(kBakeS) +
         ", min_samples: 3}\n"
         "timeouts: {ready_s: 60, converge_s: 60, rollback_s: " +
         std::to_string(kRollbackS) +
         ", gate_s: 600, pause_s: 600}\n"
         "watch_s: 2\n"
         "environments:\n"
         "  - name: staging\n"
         "    waves:\n"
         "      - {name: all, regions: [stg]}\n"
         "  - name: production\n"
         "    gate: {approvals: 1, deadline_s: 600}\n"
         "    waves:\n"
         "      - {name: canary, regions: [r1]}\n"
         "      - {name: rest, regions: [r2]}\n";
}

}  // namespace

Fleet::Fleet(const fs::path& dir, Network& net, const FleetShape& shape)
    : dir_(dir), net_(net), shape_(shape), regions_{kStaging, "r1", "r2"} {
  // A constructor that throws runs no destructor: take down what started.
  try {
    start_all();
  } catch (...) {
    take_down();
    throw;
  }
}

void Fleet::start_all() {
  // The services' user reaches its releases beneath dir (search only).
  if (::geteuid() == 0)
    fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  if (std::string e = net_.add_node("coordinator", 0); !e.empty()) throw std::runtime_error(e);
  if (std::string e = net_.add_node("origin", 0); !e.empty()) throw std::runtime_error(e);
  for (std::size_t r = 0; r < regions_.size(); ++r) {
    const int subnet = static_cast<int>(r) + 1;
    if (std::string e = net_.add_node("seed-" + regions_[r], subnet); !e.empty())
      throw std::runtime_error(e);
    for (int h = 1; h <= shape_.hosts_per_region; ++h) {
      const std::string host = regions_[r] + "-h" + std::to_string(h);
      if (std::string e = net_.add_node(host, subnet); !e.empty()) throw std::runtime_error(e);
      hosts_.push_back(host);
      region_[host] = regions_[r];
      service_ports_[host] = testing::free_port();
    }
  }
  api_port_ = testing::free_port();
  requests_port_ = testing::free_port();
  announcements_port_ = testing::free_port();
  tracker_port_ = testing::free_port();
  feed_port_ = testing::free_port();
  write_configs();
  start_coordinator();
  // Tokens: the admin (ops) starts deploys; bob, another person, approves.
  int status = 0;
  json bob = api("POST", "/tokens", {{"name", "bob"}, {"role", "approver"}}, &status);
  if (status != 201) throw std::runtime_error("cannot create bob's token: " + bob.dump());
  bob_ = bob.value("token", "");
  write_file(dir_ / "pipeline.yaml", pipeline_yaml());
  ProcessResult applied =
      run(net_.in("coordinator", {binary("drover").string(), "pipeline", "apply", "-f",
                                  (dir_ / "pipeline.yaml").string()}),
          60s,
          {{"DROVER_COORDINATOR", "http://127.0.0.1:" + std::to_string(api_port_)},
           {"DROVER_TOKEN", admin_}});
  must(applied, "pipeline apply");
  std::vector<std::string> origin = {binary("drover-seed").string(),
                                     "origin",
                                     "--store",
                                     (dir_ / "store").string(),
                                     "--feed-listen",
                                     net_.address("origin") + ":" + std::to_string(feed_port_),
                                     "--listen",
                                     net_.address("origin") + ":0",
                                     "--tracker",
                                     url("coordinator", tracker_port_),
                                     "--announce-interval",
                                     "1",
                                     "--report-every",
                                     "500",
                                     "--token-file",
                                     (dir_ / "origin.token").string(),
                                     "--log-level",
                                     "warn"};
  fs::create_directories(dir_ / "store");
  origin_ =
      std::make_unique<DaemonProcess>(net_.in("origin", origin), (dir_ / "origin.err").string());
  if (!origin_->wait_for_event("ready", 30s))
    throw std::runtime_error("origin did not start: " + origin_->stderr_tail());
  for (const auto& r : regions_) start_seed(r);
  for (const auto& h : shape_.small_disks) mount_small_disk(h, 64 << 20);
  for (const auto& h : hosts_) start_agent(h);
  for (const auto& h : hosts_) {
    if (!agents_[h]->wait_for_event("enrolled", 60s))
      throw std::runtime_error("agent " + h + " did not enroll: " + agents_[h]->stderr_tail());
  }
}

Fleet::~Fleet() {
  take_down();
}

void Fleet::take_down() {
  agents_.clear();
  seeds_.clear();
  origin_.reset();
  coordinator_.reset();
  // The services the agents supervised run in process groups of their own.
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir_, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->path().extension() != ".pid") continue;
    json j = json::parse(testing::read_file(it->path()), nullptr, false);
    if (j.is_object() && j.value("pid", 0) > 0) ::kill(-j.value("pid", 0), SIGKILL);
  }
  for (const auto& m : mounts_) run({"/usr/bin/umount", "-l", m.string()});
  mounts_.clear();
}

void Fleet::mount_small_disk(const std::string& host, std::uint64_t bytes) {
  const fs::path at = state_dir(host);
  fs::create_directories(at);
  must(run({"/usr/bin/mount", "-t", "tmpfs", "-o", "size=" + std::to_string(bytes) + ",mode=0700",
            "drover-chaos", at.string()}),
       "mount a small disk for " + host);
  mounts_.push_back(at);
}

void Fleet::resize_small_disk(const std::string& host, std::uint64_t bytes) {
  must(run({"/usr/bin/mount", "-o", "remount,size=" + std::to_string(bytes),
            state_dir(host).string()}),
       "resize the small disk of " + host);
}

std::uint64_t Fleet::small_disk_used(const std::string& host) const {
  const fs::space_info s = fs::space(state_dir(host));
  return s.capacity - s.free;
}

std::string Fleet::url(const std::string& node, std::uint16_t port) const {
  return "http://" + net_.address(node) + ":" + std::to_string(port);
}

std::vector<std::string> Fleet::hosts_in(const std::string& region) const {
  std::vector<std::string> out;
  for (const auto& h : hosts_) {
    if (region_.at(h) == region) out.push_back(h);
  }
  return out;
}

void Fleet::write_configs() {
  const std::string drover = binary("drover").string();
  must(run({drover, "keygen", "--out", (dir_ / "root.key").string()}), "keygen root");
  must(run({drover, "keygen", "--out", (dir_ / "online.key").string()}), "keygen online");
  must(run({drover, "key", "certify", "--root", (dir_ / "root.key").string(), "--subject",
            (dir_ / "online.key.pub").string(), "--out", (dir_ / "online.cert").string()}),
       "certify");
  write_file(dir_ / "webhook.secret", "a-webhook-secret-for-chaos\n", 0600);
  // The agent protocol over TLS; a certificate valid for 30 days, so an agent
  // whose clock runs a day ahead still accepts it.
  // Valid from two days ago (openssl under faketime), so an agent whose
  // clock runs behind accepts it too.
  std::map<std::string, std::string> backdated;
  const char* faketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
  if (::access(faketime, R_OK) == 0) backdated = {{"LD_PRELOAD", faketime}, {"FAKETIME", "-2d"}};
  must(run({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", (dir_ / "tls.key").string(),
            "-out", (dir_ / "tls.crt").string(), "-days", "30", "-subj",
            std::string("/CN=") + kCoordinatorName, "-addext",
            std::string("subjectAltName=DNS:") + kCoordinatorName},
           std::chrono::seconds(60), backdated),
       "openssl req");
  fs::permissions(dir_ / "tls.key", fs::perms::owner_read | fs::perms::owner_write);
  must(run({drover, "mesh", "token-key", "--out", (dir_ / "mesh.key").string()}), "mesh token-key");
  must(run({drover, "mesh", "token", "--key-file", (dir_ / "mesh.key").string(), "--role", "origin",
            "--host", "origin", "--out", (dir_ / "origin.token").string()}),
       "origin token");
  const std::string state = (dir_ / "coordinator").string();
  const std::string coord = binary("drover-coordinator").string();
  ProcessResult admin =
      run({coord, "token", "create", "ops", "--role", "admin", "--data-dir", state});
  must(admin, "token create");
  admin_ = trimmed(admin.out);
  ProcessResult join = run({coord, "join-token", "create", "--uses", std::to_string(hosts_.size()),
                            "--data-dir", state});
  must(join, "join-token create");
  join_ = trimmed(join.out);
  const std::string at = net_.address("coordinator");
  json config = {
      {"format", "drover.coordinator-config.v1"},
      {"data_dir", state},
      {"online_key", (dir_ / "online.key").string()},
      {"online_cert", (dir_ / "online.cert").string()},
      // The API is the operators' (drover-chaos reaches it from inside the
      // coordinator's namespace): plain HTTP, so on loopback only.
      {"api", {{"listen", "127.0.0.1:" + std::to_string(api_port_)}}},
      {"agents",
       {{"requests", "tls+tcp://" + at + ":" + std::to_string(requests_port_)},
        {"announcements", {"tls+tcp://" + at + ":" + std::to_string(announcements_port_)}},
        {"tls",
         {{"cert_file", (dir_ / "tls.crt").string()}, {"key_file", (dir_ / "tls.key").string()}}}}},
      {"tracker",
       {{"listen", at + ":" + std::to_string(tracker_port_)},
        {"interval_s", 1},
        {"token_key_file", (dir_ / "mesh.key").string()}}},
      {"origin_feed", url("origin", feed_port_)},
      {"webhook_secret_file", (dir_ / "webhook.secret").string()},
      {"tick_ms", 100}};
  if (net_.isolated()) {
    // Only the origin's and the seeds' own addresses may announce as such.
    json sources = {"origin@" + net_.address("origin")};
    for (const auto& r : regions_) sources.push_back("seed:" + r + "@" + net_.address("seed-" + r));
    config["tracker"]["sources"] = sources;
  }
  write_file(dir_ / "coordinator.json", config.dump(2));
  for (const auto& host : hosts_) {
    json service = {{"name", "web"},
                    {"port", service_ports_[host]},
                    {"start", {binary("drover-demo-service").string(), "--port", "{port}"}},
                    {"health", "http://127.0.0.1:{port}/health"},
                    {"start_timeout_s", 10}};
    // As root the services run as an unprivileged user, as in production.
    if (::geteuid() == 0) service["user"] = "nobody";
    json mesh = {{"announce_interval_s", 1}};
    if (net_.isolated()) mesh["listen"] = net_.address(host) + ":0";
    json agent = {
        {"format", "drover.agent-config.v1"},
        {"host", host},
        {"region", region_[host]},
        {"cluster", "c1"},
        {"state_dir", state_dir(host).string()},
        {"root_key", (dir_ / "root.key.pub").string()},
        {"coordinator",
         {{"requests", "tls+tcp://" + at + ":" + std::to_string(requests_port_)},
          {"announcements", "tls+tcp://" + at + ":" + std::to_string(announcements_port_)},
          {"tls", {{"ca_file", (dir_ / "tls.crt").string()}, {"server_name", kCoordinatorName}}}}},
        {"join_token", join_},
        {"poll_interval_ms", 500},
        {"health_interval_ms", 250},
        {"request_timeout_ms", 2000},
        {"mesh", mesh},
        {"services", json::array({service})}};
    write_file(dir_ / (host + ".json"), agent.dump(2));
  }
}

void Fleet::start_coordinator(const std::map<std::string, std::string>& extra,
                              const fs::path& config) {
  std::map<std::string, std::string> env = extra;
  if (shape_.planted_early_batch_ms > 0)
    env["DROVER_TEST_EARLY_BATCH_MS"] = std::to_string(shape_.planted_early_batch_ms);
  const int n = ++starts_["coordinator"];
  coordinator_ = std::make_unique<DaemonProcess>(
      net_.in("coordinator", {binary("drover-coordinator").string(), "run", "--config",
                              (config.empty() ? dir_ / "coordinator.json" : config).string(),
                              "--log-level", "info"}),
      (dir_ / ("coordinator-" + std::to_string(n) + ".err")).string(), env);
  if (!coordinator_->wait_for_event("ready", 60s)) {
    std::string said;
    for (const auto& l : coordinator_->lines()) said += l.dump() + "\n";
    throw std::runtime_error("coordinator did not start: " + said + coordinator_->stderr_tail());
  }
}

void Fleet::kill_coordinator() {
  if (coordinator_) coordinator_->kill();
  coordinator_.reset();
}

void Fleet::stop_coordinator() {
  if (coordinator_) coordinator_->stop();
  coordinator_.reset();
}

bool Fleet::wait_coordinator_exit(std::chrono::seconds timeout) {
  if (!coordinator_) return true;
  if (!coordinator_->wait_exit(timeout)) return false;
  coordinator_.reset();
  return true;
}

void Fleet::start_agent(const std::string& host, const std::map<std::string, std::string>& env) {
  const int n = ++starts_[host];
  std::vector<std::string> argv = {binary("drover-agent").string(),    "run",         "--config",
                                   (dir_ / (host + ".json")).string(), "--log-level", "info"};
  agents_[host] = std::make_unique<DaemonProcess>(
      net_.in(host, argv), (dir_ / (host + "-" + std::to_string(n) + ".err")).string(), env);
  if (n > 1 && !agents_[host]->wait_for_event("ready", 60s))
    throw std::runtime_error("agent " + host + " did not start: " + agents_[host]->stderr_tail());
}

void Fleet::kill_agent(const std::string& host) {
  if (agents_[host]) agents_[host]->kill();
  agents_[host].reset();
}

void Fleet::stop_agent(const std::string& host) {
  if (agents_[host]) agents_[host]->stop();
  agents_[host].reset();
}

DaemonProcess* Fleet::agent(const std::string& host) {
  auto found = agents_.find(host);
  return found == agents_.end() ? nullptr : found->second.get();
}

void Fleet::start_seed(const std::string& region) {
  const std::string name = "seed-" + region;
  const fs::path token = dir_ / (name + ".token");
  must(run({binary("drover").string(), "mesh", "token", "--key-file", (dir_ / "mesh.key").string(),
            "--role", "seed", "--region", region, "--host", name, "--out", token.string()}),
       "mesh token for " + name);
  const int n = ++starts_[name];
  std::vector<std::string> argv = {binary("drover-seed").string(),
                                   "seed",
                                   "--region",
                                   region,
                                   "--cache",
                                   (dir_ / name).string(),
                                   "--origin",
                                   url("origin", feed_port_),
                                   "--tracker",
                                   url("coordinator", tracker_port_),
                                   "--listen",
                                   net_.address(name) + ":0",
                                   "--host",
                                   name,
                                   "--announce-interval",
                                   "1",
                                   "--token-file",
                                   token.string(),
                                   "--log-level",
                                   "warn"};
  seeds_[region] = std::make_unique<DaemonProcess>(
      net_.in(name, argv), (dir_ / (name + "-" + std::to_string(n) + ".err")).string());
  if (!seeds_[region]->wait_for_event("ready", 60s))
    throw std::runtime_error("seed " + region + " did not start: " + seeds_[region]->stderr_tail());
}

void Fleet::kill_seed(const std::string& region) {
  if (seeds_[region]) seeds_[region]->kill();
  seeds_[region].reset();
}

std::uint64_t Fleet::origin_bytes_up() {
  std::uint64_t up = 0;
  for (const auto& l : origin_->lines()) {
    if (l.value("event", "") != "counters") continue;
    up = 0;
    for (const auto& [cls, n] : l["counters"]["up"].items()) up += n.get<std::uint64_t>();
  }
  return up;
}

std::string Fleet::push(const std::string& name, const json& demo) {
  const fs::path tree = dir_ / "trees" / name;
  write_file(tree / "demo.json", demo.dump());
  write_file(tree / "data",
             testing::binary_bytes(name.size() * 131 + static_cast<unsigned char>(name.back()),
                                   shape_.payload_bytes));
  ProcessResult r =
      run({binary("drover").string(), "artifact", "push", tree.string(), "--git-sha", "0123abcd",
           "--service", "web", "--store", (dir_ / "store").string(), "--json", "--no-register"});
  must(r, "artifact push");
  const json pushed = json::parse(r.out);
  artifact_bytes_ = shape_.payload_bytes + demo.dump().size();
  ++pushed_;
  const std::string id = pushed["artifact_id"];
  if (!testing::eventually(
          [&] {
            int status = 0;
            api("GET", "/artifacts/" + id, nullptr, &status);
            return status == 200;
          },
          60s)) {
    throw std::runtime_error("the coordinator never registered " + id);
  }
  return id;
}

json Fleet::api(const std::string& method, const std::string& path, const json& body, int* status,
                bool as_bob) {
  json out;
  int got = 0;
  net_.run_in("coordinator", [&] {
    http::ClientOptions o;
    o.timeout = 10s;
    o.headers = {{"Authorization", "Bearer " + (as_bob ? bob_ : admin_)}};
    auto r = http::request(method, "http://127.0.0.1:" + std::to_string(api_port_) + path,
                           body.is_null() ? "" : body.dump(), o);
    if (!r.ok()) return;
    got = r->status;
    out = json::parse(r->body, nullptr, false);
  });
  if (status) *status = got;
  return out;
}

std::string Fleet::deploy(const std::string& artifact) {
  int status = 0;
  json d = api("POST", "/deploys", {{"pipeline_id", "web"}, {"artifact_id", artifact}}, &status);
  if (status != 201) throw std::runtime_error("deploy of " + artifact + " refused: " + d.dump());
  return d.value("deploy_id", "");
}

int Fleet::approve_waiting() {
  int status = 0;
  json list = api("GET", "/deploys?service=web", nullptr, &status);
  int approved = 0;
  if (status != 200) return 0;
  for (const auto& d : list["deploys"]) {
    if (d.value("state", "") != "awaiting_approval") continue;
    api("POST", "/deploys/" + d.value("deploy_id", "") + "/approve",
        {{"comment", "chaos: bob approves"}}, &status, true);
    if (status == 200) ++approved;
  }
  return approved;
}

std::pair<std::string, int> Fleet::serving(const std::string& host) {
  std::pair<std::string, int> out{"", 0};
  net_.run_in(host, [&] {
    auto r = http::request(
        "GET", "http://127.0.0.1:" + std::to_string(service_ports_.at(host)) + "/version", "", 2s);
    if (!r.ok() || r->status != 200) return;
    json j = json::parse(r->body, nullptr, false);
    if (j.is_object()) out = {j.value("release", ""), j.value("pid", 0)};
  });
  return out;
}

void Fleet::save_events() {
  auto save = [&](const std::string& name, DaemonProcess* d) {
    if (d == nullptr) return;
    std::string text;
    for (const auto& l : d->lines()) text += l.dump() + "\n";
    write_file(dir_ / (name + ".out"), text);
  };
  save("coordinator", coordinator_.get());
  save("origin", origin_.get());
  for (auto& [region, d] : seeds_) save("seed-" + region, d.get());
  for (auto& [host, d] : agents_) save(host, d.get());
}

fs::path Fleet::materialize(const std::string& artifact) {
  const fs::path out = dir_ / "materialized" / artifact;
  if (fs::exists(out)) return out;
  fs::create_directories(out.parent_path());
  must(run({binary("drover").string(), "artifact", "materialize", artifact, out.string(), "--store",
            (dir_ / "store").string()}),
       "artifact materialize");
  return out;
}

}  // namespace drover::chaos
