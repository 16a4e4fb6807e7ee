// drover-bench-agent: the agent's local rollback latency and its idle cost.
//
// A real drover-agent supervises drover-demo-service against the fake
// coordinator, with a real origin and mesh on loopback. After v1 and v2 are
// applied, the benchmark alternates plans naming the release that is not
// running (both are kept, so each is a local rollback: nothing is fetched)
// and times, from the moment the plan is published to the moment the
// service answers with the prior release:
//   - single slot: stop the old process, switch `current`, start, health;
//   - blue/green: the prior release still runs in the idle slot; the flip
//     is the router file.
// The service's own start time (spawn to first healthy answer, measured
// directly, without an agent) is the baseline the switch is compared to.
// Then it leaves the agent idle with the default intervals and reads its
// anonymous memory and CPU time from /proc.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cxxopts.hpp>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/format/manifest.hpp"
#include "core/http/http.hpp"
#include "core/proto/testing/fake_coordinator.hpp"
#include "core/world/clock.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/test_support.hpp"
#include "tests/support/tree_gen.hpp"

namespace {

using namespace drover;
using namespace drover::testing;
using nlohmann::json;
using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

std::string read_file_or_empty(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

double ms_since(Steady::time_point t) {
  return std::chrono::duration<double, std::milli>(Steady::now() - t).count();
}

std::optional<std::string> serving(std::uint16_t port) {
  auto r = http::request("GET", "http://127.0.0.1:" + std::to_string(port) + "/version", "", 1s);
  if (!r.ok() || r->status != 200) return std::nullopt;
  json j = json::parse(r->body, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  return j.value("release", "");
}

// Polls (1 ms) until the service on port serves release; returns ms waited.
double wait_serving(std::uint16_t port, const std::string& release, Steady::time_point from) {
  while (ms_since(from) < 60'000) {
    if (serving(port) == release) return ms_since(from);
    std::this_thread::sleep_for(1ms);
  }
  throw std::runtime_error("release " + release + " never served on port " + std::to_string(port));
}

// Polls (1 ms) until the router file names release; returns ms waited.
double wait_router(const fs::path& file, const std::string& release, Steady::time_point from) {
  while (ms_since(from) < 60'000) {
    json j = json::parse(read_file_or_empty(file), nullptr, false);
    if (j.is_object() && j.value("release", "") == release) return ms_since(from);
    std::this_thread::sleep_for(1ms);
  }
  throw std::runtime_error("router file never named " + release);
}

struct Artifact {
  ContentId id;
  proto::Plan plan;
};

Artifact push(const fs::path& dir, const std::string& name, std::size_t bytes, std::uint64_t seed,
              FakeCoordinator& coordinator) {
  const fs::path tree = dir / name;
  write_file(tree / "demo.json", R"({"error_rate":0.01,"p99_ms":12,"saturation":0.2})");
  for (std::size_t i = 0; i * (1 << 20) < bytes; ++i) {
    write_file(
        tree / "data" / ("f" + std::to_string(i)),
        binary_bytes(seed * 1000 + i, std::min<std::size_t>(1 << 20, bytes - i * (1 << 20))));
  }
  ProcessResult r =
      run({binary("drover").string(), "artifact", "push", tree.string(), "--service", "web",
           "--git-sha", "0123abcd", "--store", (dir / "store").string(), "--json"});
  if (r.exit_code != 0) throw std::runtime_error(r.err);
  Artifact a;
  a.id = *ContentId::parse(json::parse(r.out)["artifact_id"].get<std::string>());
  const std::string manifest =
      read_file(dir / "store" / "blobs" / "sha256" / a.id.hex().substr(0, 2) / a.id.hex());
  auto m = format::decode_manifest(manifest);
  a.plan.service = "web";
  a.plan.deploy_id = "bench";
  a.plan.artifact = a.id;
  a.plan.manifest_size = manifest.size();
  for (const auto& l : m->layers) a.plan.layers.push_back({l.id, l.size, l.bt_root});
  coordinator.add_manifest(a.id, manifest);
  return a;
}

proto::Plan plan_of(const Artifact& a, std::uint64_t seq, const std::string& tracker,
                    const std::string& kind, const std::string& host) {
  proto::Plan p = a.plan;
  p.hosts = {host};
  p.seq = seq;
  p.tracker = tracker;
  p.strategy_kind = kind;
  const auto now = unix_seconds(std::chrono::system_clock::now());
  p.issued_at = now - 5;
  p.expires_at = now + 3600;
  return p;
}

struct ProcStat {
  long anon_kb = 0, file_kb = 0, rss_kb = 0;
  double cpu_s = 0;
  int threads = 0;
};

ProcStat read_proc(pid_t pid) {
  ProcStat s;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  long value;
  std::string line;
  while (std::getline(status, line)) {
    std::istringstream in(line);
    in >> key >> value;
    if (key == "RssAnon:") s.anon_kb = value;
    if (key == "RssFile:") s.file_kb = value;
    if (key == "VmRSS:") s.rss_kb = value;
    if (key == "Threads:") s.threads = static_cast<int>(value);
  }
  s.cpu_s = process_cpu_seconds(pid);
  return s;
}

void percentiles(const char* what, std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::printf("%-44s p50 %7.1f ms  min %7.1f  max %7.1f  (n=%zu)\n", what, v[v.size() / 2],
              v.front(), v.back(), v.size());
}

// Per thread (by name, as /proc/PID/task/TID/comm gives it): the context
// switches (voluntary ones are wakeups from a wait) and the CPU time in
// nanoseconds (schedstat's run time: exact, unlike utime + stime in 10 ms
// ticks). Threads of one name are summed.
struct ThreadStat {
  long long switches = 0;
  long long run_ns = 0;
};

std::map<std::string, ThreadStat> read_threads(pid_t pid) {
  std::map<std::string, ThreadStat> out;
  std::error_code ec;
  const fs::path tasks = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& t : fs::directory_iterator(tasks, ec)) {
    std::string name;
    std::getline(std::ifstream(t.path() / "comm") >> std::ws, name);
    ThreadStat& s = out[name.empty() ? "?" : name];
    std::ifstream status(t.path() / "status");
    std::string line;
    while (std::getline(status, line)) {
      std::istringstream in(line);
      std::string key;
      long long value = 0;
      in >> key >> value;
      if (key == "voluntary_ctxt_switches:" || key == "nonvoluntary_ctxt_switches:") {
        s.switches += value;
      }
    }
    long long run_ns = 0;
    std::ifstream(t.path() / "schedstat") >> run_ns;
    s.run_ns += run_ns;
  }
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options o("drover-bench-agent", "Rollback latency and idle cost of drover-agent.");
  o.add_options()("rollbacks", "rollbacks per mode", cxxopts::value<int>()->default_value("10"))(
      "size", "MiB per release", cxxopts::value<int>()->default_value("16"))(
      "idle", "seconds of idle measurement", cxxopts::value<int>()->default_value("60"))("h,help",
                                                                                         "help");
  auto r = o.parse(argc, argv);
  if (r.count("help")) return std::cout << o.help(), 0;
  if (!std::getenv("DROVER_BIN_DIR")) {
    const fs::path self = fs::read_symlink("/proc/self/exe").parent_path();
    ::setenv("DROVER_BIN_DIR", self.c_str(), 1);
  }
  const int rollbacks = r["rollbacks"].as<int>();
  const std::size_t size = static_cast<std::size_t>(r["size"].as<int>()) << 20;
  TempDir dir;
  FakeCoordinator coordinator;
  coordinator.add_join_token("bench");
  write_file(dir / "root.pub", sign::encode_public_key_file(coordinator.root().public_key()));
  Artifact v1 = push(dir.path(), "v1", size, 1, coordinator);
  Artifact v2 = push(dir.path(), "v2", size, 2, coordinator);
  DaemonProcess origin(
      {binary("drover-seed").string(), "origin", "--store", (dir / "store").string(),
       "--tracker-listen", "127.0.0.1:0", "--announce-interval", "1", "--log-level", "warn"},
      (dir / "origin.err").string());
  auto ready = origin.wait_for_event("ready", 30s);
  if (!ready) return std::cerr << origin.stderr_tail(), 1;
  const std::string tracker = (*ready)["tracker"];

  // Baseline: the demo service's own start (spawn to first healthy answer)
  // and stop (SIGTERM to exit).
  std::vector<double> service_start, service_stop;
  for (int i = 0; i < 5; ++i) {
    const std::uint16_t port = free_port();
    const auto t0 = Steady::now();
    DaemonProcess svc({binary("drover-demo-service").string(), "--port", std::to_string(port)},
                      (dir / "svc.err").string());
    while (ms_since(t0) < 10'000) {
      auto h = http::request("GET", "http://127.0.0.1:" + std::to_string(port) + "/health", "", 1s);
      if (h.ok() && h->status == 200) break;
      std::this_thread::sleep_for(1ms);
    }
    service_start.push_back(ms_since(t0));
    const auto t1 = Steady::now();
    svc.stop();  // SIGTERM, then wait for the exit
    service_stop.push_back(ms_since(t1));
  }
  const double start_ms = median(service_start);
  const double stop_ms = median(service_stop);
  std::printf("machine: %u cores; release %d MiB; %d rollbacks per mode\n",
              std::thread::hardware_concurrency(), r["size"].as<int>(), rollbacks);
  percentiles("service start (baseline, no agent)", service_start);
  percentiles("service stop (baseline, no agent)", service_stop);

  json idle_line;
  for (const std::string mode : {"single", "blue-green"}) {
    const std::uint16_t port_a = free_port(), port_b = free_port();
    json service = {{"name", "web"},
                    {"start", {binary("drover-demo-service").string(), "--port", "{port}"}},
                    {"health", "http://127.0.0.1:{port}/health"}};
    // As root a service names its user; root here, so the figures compare
    // with runs before users existed (docs/AGENT.md, "Users and privileges").
    if (::geteuid() == 0) service["user"] = "root";
    if (mode == "single") {
      service["port"] = port_a;
    } else {
      service["blue_green"] = {{"ports", {port_a, port_b}}};
    }
    const fs::path state = dir / ("state-" + mode);
    json config = {{"format", "drover.agent-config.v1"},
                   {"host", "bench-" + mode},
                   {"region", "r1"},
                   {"cluster", "c1"},
                   {"state_dir", state.string()},
                   {"root_key", (dir / "root.pub").string()},
                   {"coordinator",
                    {{"requests", coordinator.requests_url()},
                     {"announcements", coordinator.announcements_url()}}},
                   {"join_token", "bench"},
                   {"services", {service}}};
    write_file(dir / (mode + ".json"), config.dump());
    DaemonProcess agent({binary("drover-agent").string(), "run", "--config",
                         (dir / (mode + ".json")).string(), "--log-level", "warn"},
                        (dir / (mode + ".err")).string());
    auto up = agent.wait_for_event("ready", 30s);
    if (!up) return std::cerr << agent.stderr_tail(), 1;
    const pid_t pid = (*up)["pid"];
    std::uint64_t seq = 0;
    const std::string kind = mode == "single" ? "rolling" : "blue_green";
    for (const Artifact* a : {&v1, &v2}) {
      coordinator.publish(plan_of(*a, ++seq, tracker, kind, "bench-" + mode));
      if (!agent.wait_for(
              [&](const json& j) { return j.value("event", "") == "applied" && j["seq"] == seq; },
              120s)) {
        return std::cerr << agent.stderr_tail(), 1;
      }
    }
    std::vector<double> latency, agent_ms;
    std::uint64_t downloaded = 0;
    for (int i = 0; i < rollbacks; ++i) {
      const Artifact& to = (i % 2 == 0) ? v1 : v2;
      const std::uint16_t port = mode == "single" ? port_a : (i % 2 == 0 ? port_a : port_b);
      const auto t0 = Steady::now();
      coordinator.publish(plan_of(to, ++seq, tracker, kind, "bench-" + mode));
      // Single slot: until the prior release answers. Blue/green: the prior
      // release never stopped in its slot; until the router file names it.
      latency.push_back(mode == "single"
                            ? wait_serving(port, to.id.str(), t0)
                            : wait_router(state / "run" / "web.router.json", to.id.str(), t0));
      auto applied = agent.wait_for(
          [&](const json& j) { return j.value("event", "") == "applied" && j["seq"] == seq; }, 60s);
      if (!applied) return std::cerr << agent.stderr_tail(), 1;
      agent_ms.push_back((*applied)["ms"].get<double>());
      downloaded += (*applied)["downloaded"].get<std::uint64_t>();
      if (mode == "blue-green" && serving(port) != to.id.str()) {
        return std::cerr << "the slot the router names does not serve " << to.id.str() << "\n", 1;
      }
    }
    const std::string label = mode == "single" ? "single slot" : "blue/green flip";
    percentiles(("rollback, plan published -> prior live, " + label).c_str(), latency);
    percentiles(("rollback, agent's own apply time, " + label).c_str(), agent_ms);
    // What the agent adds on top of the service's own stop and start.
    const double own = mode == "single" ? start_ms + stop_ms : 0;
    std::printf(
        "%-44s %.1f ms (%.2fx the service's own stop+start of %.1f ms); bytes "
        "downloaded %llu\n",
        ("  " + label + ": p50 minus the service's own").c_str(), median(latency) - own,
        median(latency) / (start_ms + stop_ms), start_ms + stop_ms,
        static_cast<unsigned long long>(downloaded));
    if (mode == "single") {
      // Idle: the defaults (health every 5 s, poll every 30 s), nothing to do.
      const int idle = r["idle"].as<int>();
      std::this_thread::sleep_for(5s);  // settle after the last apply
      const ProcStat a = read_proc(pid);
      const auto threads_a = read_threads(pid);
      std::this_thread::sleep_for(std::chrono::seconds(idle));
      const ProcStat b = read_proc(pid);
      const auto threads_b = read_threads(pid);
      std::printf(
          "idle agent: anonymous RSS %.1f MiB, file-backed RSS %.1f MiB, total RSS %.1f "
          "MiB, %d threads\n",
          a.anon_kb / 1024.0, a.file_kb / 1024.0, a.rss_kb / 1024.0, a.threads);
      std::printf("idle agent: CPU %.3f s over %d s = %.2f%% of one core\n", b.cpu_s - a.cpu_s,
                  idle, 100.0 * (b.cpu_s - a.cpu_s) / idle);
      // Where it wakes: per thread name, what changed over the idle time
      // (a thread that came or went in it counts from zero).
      double wakeups = 0, run_ms = 0;
      for (const auto& [name, after] : threads_b) {
        const auto before = threads_a.count(name) ? threads_a.at(name) : ThreadStat{};
        const double w = static_cast<double>(after.switches - before.switches) / idle;
        const double ms = static_cast<double>(after.run_ns - before.run_ns) / 1e6;
        wakeups += w;
        run_ms += ms;
        std::printf("idle agent: thread %-16s %6.1f wakeups/s, CPU %7.1f ms\n", name.c_str(), w,
                    ms);
      }
      std::printf("idle agent: all threads %.1f wakeups/s, CPU %.1f ms = %.3f%% of one core\n",
                  wakeups, run_ms, run_ms / 10.0 / idle);
    }
    agent.stop();
  }
  // Services outlive their agent by design: stop what the benchmark started.
  for (const auto& e : fs::recursive_directory_iterator(dir.path())) {
    if (e.path().extension() != ".pid") continue;
    json j = json::parse(read_file(e.path()), nullptr, false);
    if (j.is_object() && j.value("pid", 0) > 0) ::kill(-j.value("pid", 0), SIGKILL);
  }
  return 0;
}
