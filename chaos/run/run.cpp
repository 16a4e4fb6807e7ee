#include "chaos/run/run.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <iomanip>
#include <sstream>

#include "core/http/http.hpp"

namespace drover::chaos {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// A service is "not answering" once probes fail for this long in a row: one
// probe lost to a loaded machine is not an outage.
constexpr std::int64_t kOutageMs = 2000;

std::int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool ended(const std::string& state) {
  return state == "succeeded" || state == "rolled_back" || state == "failed" ||
         state == "rejected" || state == "expired" || state == "superseded" || state == "cancelled";
}

// Every file below root by relative path: its type and content (modes are the
// agent's to set, so they are not compared).
std::map<std::string, std::string> tree_of(const fs::path& root) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string rel = fs::relative(it->path(), root).string();
    if (it->is_symlink()) {
      out[rel] = "l:" + fs::read_symlink(it->path()).string();
    } else if (it->is_directory()) {
      out[rel] = "d";
    } else {
      out[rel] = "f:" + testing::read_file(it->path());
    }
  }
  return out;
}

std::atomic<bool> g_interrupted{false};

}  // namespace

void interrupt() {
  g_interrupted = true;
}
bool interrupted() {
  return g_interrupted;
}

void Run::pause(std::chrono::milliseconds length) {
  const auto until = std::chrono::steady_clock::now() + length;
  while (std::chrono::steady_clock::now() < until) {
    if (g_interrupted) throw std::runtime_error("interrupted");
    std::this_thread::sleep_until(
        std::min(until, std::chrono::steady_clock::now() + std::chrono::milliseconds(100)));
  }
  if (g_interrupted) throw std::runtime_error("interrupted");
}

Run::Run(Fleet& fleet, const Scenario& s, const RunOptions& options, ScenarioResult& result)
    : fleet_(fleet),
      scenario_(s),
      options_(options),
      result_(result),
      rng_(options.seed),
      start_(std::chrono::steady_clock::now()) {}

Run::~Run() {
  stop_probes();
}

std::int64_t Run::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start_)
      .count();
}

void Run::note(const std::string& what) {
  std::ostringstream line;
  line << std::fixed << std::setprecision(1) << "t=" << static_cast<double>(now_ms()) / 1000
       << " s: " << what;
  result_.log.push_back(line.str());
}

std::chrono::milliseconds Run::between(int lo_ms, int hi_ms) {
  return std::chrono::milliseconds(std::uniform_int_distribution<int>(lo_ms, hi_ms)(rng_));
}

void Run::violate(const std::string& invariant, const std::string& subject,
                  const std::string& detail) {
  std::lock_guard lock(probe_mu_);  // the probes add theirs from their threads
  result_.violations.push_back({invariant, subject, now_ms(), detail});
}

void Run::skip_agent_lines() {
  for (const auto& h : fleet_.hosts()) {
    testing::DaemonProcess* a = fleet_.agent(h);
    seen_lines_[h] = {a, a ? a->lines().size() : 0};
  }
}

void Run::check_daemons() {
  for (const auto& h : fleet_.hosts()) {
    testing::DaemonProcess* a = fleet_.agent(h);
    if (a == nullptr) continue;
    if (auto code = a->wait_exit(std::chrono::milliseconds(0))) {
      violate("daemon_died", h,
              "the agent exited (status " + std::to_string(*code) + "): " + a->stderr_tail(600));
    }
  }
  for (const auto& r : fleet_.regions()) {
    testing::DaemonProcess* d = fleet_.seed(r);
    if (d == nullptr) continue;
    if (auto code = d->wait_exit(std::chrono::milliseconds(0)))
      violate("daemon_died", "seed-" + r, "exited (status " + std::to_string(*code) + ")");
  }
  if (auto code = fleet_.origin().wait_exit(std::chrono::milliseconds(0)))
    violate("daemon_died", "origin", "exited (status " + std::to_string(*code) + ")");
}

void Run::baseline() {
  v1_ = fleet_.push("v1", {{"error_rate", 0.01}, {"p99_ms", 10}});
  note("pushed v1 " + v1_.substr(0, 19));
  const std::string id = deploy(v1_);
  json v = wait_deploy(id);
  if (v.value("state", "") != "succeeded")
    throw std::runtime_error("the baseline deploy of v1 ended " + v.value("state", "?") + ": " +
                             v.value("reason", ""));
  deploys_.clear();  // the faults start now: the baseline is not checked
  expected_state_.clear();
  expect_everywhere(v1_);
  origin_before_ = fleet_.origin_bytes_up();
  pushed_before_ = fleet_.pushed();
  skip_agent_lines();  // the baseline's own lines never trigger a fault
  start_probes();
  note("v1 runs everywhere; probes started");
}

std::string Run::push_v2(const std::set<std::string>& bad_in) {
  json demo = {{"error_rate", 0.01}, {"p99_ms", 10}};
  for (const auto& r : bad_in) demo["by_region"][r] = {{"error_rate", 0.5}};
  const std::string id = fleet_.push("v2", demo);
  std::string where;
  for (const auto& r : bad_in) where += " " + r;
  note("pushed v2 " + id.substr(0, 19) +
       (bad_in.empty() ? " (healthy)" : " (bad in" + where + ")"));
  return id;
}

std::string Run::deploy(const std::string& artifact) {
  planned_.insert(artifact);
  const std::string id = fleet_.deploy(artifact);
  deploys_.push_back(id);
  note("deploy " + id + " started");
  return id;
}

void Run::expect_everywhere(const std::string& artifact) {
  for (const auto& h : fleet_.hosts()) expected_[h] = artifact;
}

bool Run::wait_view(const std::string& id, const std::function<bool(const json&)>& pred,
                    std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (fleet_.coordinator_up()) {
      fleet_.approve_waiting();
      int status = 0;
      json v = fleet_.api("GET", "/deploys/" + id, nullptr, &status);
      if (status == 200 && pred(v)) return true;
    }
    pause(200ms);  // the poll period
  }
  return false;
}

json Run::wait_deploy(const std::string& id, const std::function<void(const json&)>& on_poll,
                      std::chrono::seconds timeout) {
  json last;
  std::string state;
  wait_view(
      id,
      [&](const json& v) {
        last = v;
        if (v.value("state", "") != state) {
          state = v.value("state", "");
          note(id + " " + state);
        }
        if (on_poll) on_poll(v);
        return ended(state);
      },
      timeout);
  return last;
}

bool Run::wait_agent_line(const std::function<bool(const std::string&, const json&)>& pred,
                          std::string* host_out, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    for (const auto& h : fleet_.hosts()) {
      testing::DaemonProcess* a = fleet_.agent(h);
      if (a == nullptr) continue;
      const auto lines = a->lines();
      auto& [process, seen] = seen_lines_[h];
      if (process != a) process = a, seen = 0;  // a restarted agent: all its lines are new
      for (; seen < lines.size(); ++seen) {
        if (pred(h, lines[seen])) {
          ++seen;
          if (host_out) *host_out = h;
          return true;
        }
      }
    }
    if (fleet_.coordinator_up()) fleet_.approve_waiting();
    pause(50ms);  // the poll period
  }
  return false;
}

void Run::kill_coordinator_for(std::chrono::milliseconds down) {
  fleet_.kill_coordinator();
  note("coordinator killed (-9), down " + std::to_string(down.count()) + " ms");
  pause(down);  // the fault's length, drawn from the seed
  fleet_.start_coordinator();
  note("coordinator restarted");
}

void Run::start_probes() {
  probing_ = true;
  for (const auto& host : fleet_.hosts()) {
    const int fd = fleet_.net().ns_fd(host);
    const std::uint16_t port = fleet_.service_port(host);
    probers_.emplace_back([this, host, fd, port] {
      if (fd >= 0 && ::setns(fd, CLONE_NEWNET) != 0) {
        std::lock_guard lock(probe_mu_);
        result_.violations.push_back(
            {"service_answered", host, now_ms(), "cannot probe: setns into its namespace failed"});
        return;
      }
      const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/version";
      while (probing_) {
        auto r = http::request("GET", url, "", 1s);
        json j;
        if (r.ok() && r->status == 200) j = json::parse(r->body, nullptr, false);
        const std::int64_t t = now_ms();
        {
          std::lock_guard lock(probe_mu_);
          Probe& p = probes_[host];
          if (j.is_object() && !j.value("release", "").empty()) {
            const std::string release = j.value("release", "");
            const int pid = j.value("pid", 0);
            const bool restarted = p.pid != 0 && pid != p.pid;
            if (p.down_since >= 0 && t - p.down_since >= kOutageMs && !restarted) {
              result_.violations.push_back({"service_answered", host, p.down_since,
                                            "the service (pid " + std::to_string(pid) +
                                                ") did not answer for " +
                                                std::to_string(t - p.down_since) + " ms"});
            }
            if (scenario_.control_plane_only && restarted && release == p.release) {
              result_.violations.push_back({"service_answered", host, t,
                                            "the service restarted (pid " + std::to_string(p.pid) +
                                                " -> " + std::to_string(pid) +
                                                ") with no switch: a control-plane fault"});
            }
            // Each switch is held to the batches (a host back on a release
            // later is checked at that time too).
            if (release != p.release) p.seen.emplace_back(release, unix_now_ms());
            p.down_since = -1;
            p.release = release;
            p.pid = pid;
          } else if (p.down_since < 0) {
            p.down_since = t;
          }
        }
        std::this_thread::sleep_for(100ms);  // the probe period
      }
    });
  }
}

void Run::stop_probes() {
  probing_ = false;
  for (auto& t : probers_) t.join();
  probers_.clear();
}

std::map<std::pair<std::string, std::string>, std::int64_t> Run::batches_named() {
  std::map<std::pair<std::string, std::string>, std::int64_t> out;
  for (const auto& id : deploys_) {
    int status = 0;
    json v;
    if (!testing::eventually(
            [&] {
              v = fleet_.api("GET", "/deploys/" + id, nullptr, &status);
              return status == 200 && v.is_object();
            },
            20s)) {
      // Without the view no host can be held to its batches: one violation
      // names why, and the per-host check leaves that deploy's release alone.
      violate("planned_only", id,
              "GET /deploys/" + id + " answered " + std::to_string(status) +
                  ": which batches named which hosts is unknown");
      unreadable_.insert(v.is_object() ? v.value("artifact_id", "") : "");
      continue;
    }
    const std::string artifact = v.value("artifact_id", "");
    // Every batch in the view (environments, waves, regions): an object
    // with its hosts and when it started.
    std::function<void(const json&)> walk = [&](const json& j) {
      if (j.is_object() && j.contains("hosts") && j["hosts"].is_array() &&
          j.value("started_ms", std::int64_t{0}) > 0) {
        const std::int64_t at = j["started_ms"].get<std::int64_t>();
        for (const auto& h : j["hosts"]) {
          if (!h.is_string()) continue;
          auto [it, fresh] = out.emplace(std::pair(h.get<std::string>(), artifact), at);
          if (!fresh) it->second = std::min(it->second, at);
        }
      }
      if (j.is_structured()) {
        for (const auto& child : j) walk(child);
      }
    };
    walk(v);
  }
  return out;
}

void Run::check_audit(const std::string& deploy_id) {
  int status = 0;
  json a = fleet_.api("GET", "/deploys/" + deploy_id + "/audit", nullptr, &status);
  if (status != 200) {
    violate("audit", deploy_id,
            "GET /deploys/" + deploy_id + "/audit answered " + std::to_string(status));
    return;
  }
  std::map<std::string, int> started, passed;
  std::map<std::string, std::int64_t> baking_first;
  for (const auto& r : a["records"]) {
    const std::string what = r.value("what", "");
    if (what != "batch.started" && what != "batch.passed" && what != "batch.baking") continue;
    const json& d = r["detail"];
    const std::string key = deploy_id + "/" + r.value("env", "") + "/" +
                            (d.is_object() ? d.value("region", "") : "") + "/batch " +
                            std::to_string(d.is_object() ? d.value("batch", -1) : -1);
    const std::int64_t at = r.value("at", std::int64_t{0});
    if (what == "batch.started" && ++started[key] > 1) violate("audit", key, "started twice");
    // A bake restarted (by a coordinator restart) is measured from its restart.
    if (what == "batch.baking") baking_first[key] = at;
    if (what == "batch.passed") {
      if (++passed[key] > 1) violate("audit", key, "passed twice");
      auto b = baking_first.find(key);
      if (b == baking_first.end() || at - b->second < kBakeS * 1000) {
        violate("bake", key,
                "passed " + std::to_string(b == baking_first.end() ? -1 : at - b->second) +
                    " ms after its bake began; the bake is " + std::to_string(kBakeS * 1000) +
                    " ms");
      }
    }
  }
}

void Run::check() {
  // Let the hosts settle: every host on what it is expected to run.
  if (!fleet_.coordinator_up()) fleet_.start_coordinator();
  testing::eventually(
      [&] {
        for (const auto& [host, want] : expected_) {
          if (fleet_.serving(host).first != want) return false;
        }
        return true;
      },
      60s);
  stop_probes();
  check_daemons();
  // 1. Converged: each host runs exactly what it should.
  for (const auto& [host, want] : expected_) {
    const auto [release, pid] = fleet_.serving(host);
    if (release != want) {
      violate("converged", host,
              "runs " + (release.empty() ? std::string("nothing") : release.substr(0, 19)) +
                  ", expected " + want.substr(0, 19));
    }
  }
  // 2. Only planned artifacts ever ran, each on a host only once a batch of
  // a deploy of it named that host; a service down at the end is down.
  const auto named = batches_named();
  for (const auto& [host, p] : probes_) {
    for (const auto& [r, at] : p.seen) {
      if (r == v1_) continue;
      if (!planned_.count(r)) {
        violate("planned_only", host, "ran " + r + ", which no deploy named");
        continue;
      }
      if (unreadable_.count(r)) continue;
      auto n = named.find({host, r});
      if (n == named.end() || n->second > at) {
        violate("planned_only", host,
                "ran " + r.substr(0, 19) + " at " + std::to_string(at) + " (unix ms), " +
                    (n == named.end() ? std::string("and no batch named it")
                                      : "before the first batch that named it (" +
                                            std::to_string(n->second) + ")"));
      }
    }
    if (p.down_since >= 0) {
      violate("service_answered", host,
              "not answering since t=" + std::to_string(p.down_since) + " ms, at the end");
    }
  }
  // 3. `current` is a complete release equal to its manifest.
  for (const auto& host : fleet_.hosts()) {
    std::error_code ec;
    fs::path current;
    for (auto it = fs::recursive_directory_iterator(fleet_.state_dir(host), ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->path().filename() == "current" && it->is_symlink()) current = it->path();
    }
    if (current.empty()) {
      violate("current_complete", host, "no current link");
      continue;
    }
    const fs::path target = fs::canonical(current, ec);
    // A release's directory is named by its id's digest.
    const std::string id = "sha256:" + target.filename().string();
    if (ec || !expected_.count(host) || id != expected_[host]) {
      violate("current_complete", host,
              "current is " + (ec ? "dangling" : id) + ", expected " + expected_[host]);
      continue;
    }
    if (tree_of(target) != tree_of(fleet_.materialize(id)))
      violate("current_complete", host, "current differs from the manifest of " + id);
  }
  // 4. The audit chain verifies; batches once; bakes in full.
  int status = 0;
  json verify = fleet_.api("GET", "/audit/verify", nullptr, &status);
  if (status != 200 || !verify.value("ok", false))
    violate("audit", "chain", "verify: " + verify.dump());
  for (const auto& id : deploys_) check_audit(id);
  // 5. Each deploy ended as expected; a rollback within the pipeline's timeout.
  for (const auto& id : deploys_) {
    json v = fleet_.api("GET", "/deploys/" + id, nullptr, &status);
    const std::string state = v.value("state", "?");
    result_.outcome = state;
    result_.deploy_ms =
        v.value("completed_ms", std::int64_t{0}) - v.value("created_ms", std::int64_t{0});
    if (v.contains("rollback") && v["rollback"].is_object() &&
        v["rollback"].contains("duration_ms")) {
      const json& took = v["rollback"]["duration_ms"];
      if (!took.is_number_integer()) {
        violate("rollback_in_time", id, "a rollback began and never finished");
        continue;
      }
      result_.rollback_ms = took.get<std::int64_t>();
      if (result_.rollback_ms > kRollbackS * 1000) {
        violate("rollback_in_time", id,
                "rollback took " + std::to_string(result_.rollback_ms) +
                    " ms; the pipeline allows " + std::to_string(kRollbackS) + " s");
      }
    }
    auto want = expected_state_.find(id);
    if (want != expected_state_.end() && state != want->second) {
      violate(want->second == "succeeded" ? "healthy_stays" : "outcome", id,
              "ended " + state + " (" + v.value("reason", "") + "), expected " + want->second);
    }
  }
  // 6. The origin sent at most 1.25 x regions x artifact bytes per release.
  result_.origin_bytes = fleet_.origin_bytes_up() - origin_before_;
  result_.artifact_bytes = fleet_.artifact_bytes();
  const double bound = 1.25 * static_cast<double>(fleet_.regions().size()) *
                       static_cast<double>(fleet_.artifact_bytes()) *
                       static_cast<double>(fleet_.pushed() - pushed_before_);
  if (static_cast<double>(result_.origin_bytes) > bound) {
    violate("origin_bytes", "origin",
            std::to_string(result_.origin_bytes) + " bytes sent; the bound is " +
                std::to_string(static_cast<std::uint64_t>(bound)));
  }
}

}  // namespace drover::chaos
