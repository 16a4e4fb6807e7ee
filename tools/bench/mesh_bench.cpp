// drover-bench-mesh: how long a rollout of one artifact to N hosts takes over
// the mesh, against the Kumar-Ross lower bound and against one central HTTP
// origin (nginx) with the same upload capacity, measured in the same run.
//
// Every node (origin, regional seed, each peer) is a separate process limited
// to the same upload and download rate B, like hosts with equal network cards;
// nginx's total upload is capped at B too (limit_rate B/N per connection while
// all N fetch at once). Prints Markdown tables and the CPU used, so a reader
// can see the run was bound by bandwidth, not by the CPUs.
//
//   build/bin/drover-bench-mesh [--size MiB] [--rate MiB/s] [--peers 8,16,32] [--baseline 8,16]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cxxopts.hpp>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/world/clock.hpp"
#include "core/world/random.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/test_support.hpp"
#include "tests/support/tree_gen.hpp"

namespace drover::bench {
namespace {

namespace fs = std::filesystem;
using drover::testing::binary;
using drover::testing::DaemonProcess;
using nlohmann::json;
using namespace std::chrono_literals;

double mib(double bytes) {
  return bytes / (1 << 20);
}

std::int64_t now_ms() {
  return unix_ms(std::chrono::system_clock::now());
}

// CPU seconds (user + system) a process has used so far.
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 2));
  std::string f;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(f);
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

[[noreturn]] void die(const std::string& what) {
  std::cerr << "drover-bench-mesh: " << what << "\n";
  std::exit(1);
}

struct Env {
  fs::path work;
  std::string announce = "5";  // seconds between announces
  std::string rate;            // for the daemons, e.g. "2097152"
  std::uint64_t rate_bytes = 0;
  std::string artifact;
  std::uint64_t size = 0;                // stored bytes of the artifact's layers
  std::vector<std::string> layer_files;  // for nginx
  int serial = 0;
  int run = 0;  // each run's nodes live on their own 127.<run>.x.y addresses
  std::vector<std::string> peer_args, seed_args, origin_args;  // extra flags for the daemons
};

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// A loopback address of its own for every node of a run: ports and the
// TIME_WAIT sockets thousands of short connections leave are per address, so
// runs do not exhaust the ephemeral ports of 127.0.0.1.
std::string node_ip(const Env& env, int group, int index) {
  return "127." + std::to_string(env.run) + "." + std::to_string(group) + "." +
         std::to_string(index);
}

std::unique_ptr<DaemonProcess> spawn(Env& env, const std::string& name,
                                     std::vector<std::string> argv) {
  return std::make_unique<DaemonProcess>(
      argv, (env.work / "logs" / (name + "-" + std::to_string(++env.serial) + ".err")).string());
}

json wait_event(DaemonProcess& p, const std::string& event, std::chrono::milliseconds timeout) {
  auto line = p.wait_for_event(event, timeout);
  if (!line)
    die("no '" + event + "' from a daemon within " + std::to_string(timeout.count()) + " ms:\n" +
        p.stderr_tail());
  return *line;
}

// How often the seed prints its counters: the resolution of the timeline.
constexpr int kReportMs = 250;

struct Sources {
  std::unique_ptr<DaemonProcess> origin, seed;
  std::string feed, tracker;
};

// Origin (with the tracker) and the region's seed, every one limited to B.
// What every node of a run shares: the announce interval and the limit B.
std::vector<std::string> node_limits(const Env& env) {
  return {"--announce-interval", env.announce, "--upload-rate", env.rate,
          "--download-rate",     env.rate};
}

std::vector<std::string> with_args(std::vector<std::string> argv,
                                   const std::vector<std::string>& more) {
  argv.insert(argv.end(), more.begin(), more.end());
  return argv;
}

// The calibration serves one host and passes origin_unchoke 32: with the
// origin's default of 4 unchoked connections (one per layer here), a slot
// freed by a finished layer stays idle until the next unchoke round, and the
// measured rate would be that of the choker, not of the link.
Sources start_sources(Env& env, const fs::path& seed_cache, bool with_seed = true,
                      const std::string& origin_unchoke = "4") {
  ++env.run;
  Sources s;
  s.origin = spawn(
      env, "origin",
      with_args({binary("drover-seed").string(), "origin", "--store", (env.work / "store").string(),
                 "--tracker-listen", node_ip(env, 0, 1) + ":0", "--feed-listen",
                 node_ip(env, 0, 1) + ":0", "--listen", node_ip(env, 0, 2) + ":0",
                 "--unchoke-slots", origin_unchoke, "--log-level", "warn"},
                with_args(node_limits(env), env.origin_args)));
  json ready = wait_event(*s.origin, "ready", 60s);
  s.feed = ready["feed"];
  s.tracker = ready["tracker"];
  if (!with_seed) return s;
  std::vector<std::string> seed_argv = {binary("drover-seed").string(),
                                        "seed",
                                        "--listen",
                                        node_ip(env, 0, 3) + ":0",
                                        "--host=seed",
                                        "--region",
                                        "r1",
                                        "--cache",
                                        seed_cache.string(),
                                        "--origin",
                                        s.feed,
                                        "--tracker",
                                        s.tracker,
                                        "--log-level",
                                        "warn",
                                        "--report-every",
                                        std::to_string(kReportMs)};
  seed_argv = with_args(seed_argv, node_limits(env));
  seed_argv.insert(seed_argv.end(), env.seed_args.begin(), env.seed_args.end());
  s.seed = spawn(env, "seed", seed_argv);
  return s;
}

// A drover-peer fetching the artifact through src, limited to B.
std::vector<std::string> peer_argv(const Env& env, const Sources& src, const std::string& host,
                                   const std::string& ip, const std::string& cluster,
                                   const std::string& region = "r1") {
  return with_args(
      {binary("drover-peer").string(), "--listen", ip + ":0", "--cache",
       (env.work / "caches" / host).string(), "--tracker", src.tracker, "--region", region,
       "--cluster", cluster, "--host", host, "--origin", src.feed, "--artifact", env.artifact},
      node_limits(env));
}

// Where a rollout's time goes, in seconds from the go signal, from the seed's
// counters (every kReportMs) and the peers' done lines.
struct Timeline {
  double seed_first = -1;     // the seed's first byte out
  double seed_one_copy = -1;  // the seed has sent S bytes
  double seed_last = -1;      // the seed's last byte out
  // Bytes of blocks the seed had sent before, and when half of them were out.
  std::uint64_t seed_again = 0;
  double seed_half_again = -1;
  std::uint64_t seed_refused = 0;  // requests refused as repeats (first copies first)
  double peer_first_byte = 0;      // median over peers: first byte in
  double first_done = 0, median_done = 0;
};

struct SwarmResult {
  int n = 0;
  double seconds = 0;
  double cpu = 0;
  std::uint64_t origin_sent = 0, seed_sent = 0;
  std::uint64_t received = 0, from_peers = 0;
  Timeline when;
};

double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A node's bytes one way ("up" or "down"), whoever was at the other end.
std::uint64_t bytes_total(const json& counters, const char* way) {
  const json& b = counters[way];
  return b["origin"].get<std::uint64_t>() + b["seed"].get<std::uint64_t>() +
         b["peer"].get<std::uint64_t>() + b["other"].get<std::uint64_t>();
}

std::uint64_t sent_total(const json& counters) {
  return bytes_total(counters, "up");
}

// The seed's first byte, its S-th byte and its last byte, from its counters.
void seed_timeline(DaemonProcess& seed, std::int64_t go, std::uint64_t size, Timeline& t) {
  std::uint64_t at_go = 0, last_seen = 0, again_at_go = 0, refused_at_go = 0;
  std::vector<std::pair<double, std::uint64_t>> again;  // (time, bytes sent again so far)
  for (const json& line : seed.lines()) {
    if (line.value("event", "") != "counters") continue;
    const std::uint64_t sent_again = line["counters"].value("up_again", std::uint64_t{0});
    const double at = static_cast<double>(line["unix_ms"].get<std::int64_t>() - go) / 1000.0;
    const std::uint64_t sent = sent_total(line["counters"]);
    const std::uint64_t refused = line["counters"].value("repeats_refused", std::uint64_t{0});
    if (at <= 0) {
      at_go = last_seen = sent;
      again_at_go = sent_again;
      refused_at_go = refused;
      continue;
    }
    t.seed_refused = refused - refused_at_go;
    again.emplace_back(at, sent_again - again_at_go);
    if (sent > at_go && t.seed_first < 0) t.seed_first = at;
    if (sent - at_go >= size && t.seed_one_copy < 0) t.seed_one_copy = at;
    if (sent > last_seen) t.seed_last = at;
    last_seen = sent;
  }
  if (!again.empty()) t.seed_again = again.back().second;
  for (const auto& [at, bytes] : again) {
    if (t.seed_again > 0 && 2 * bytes >= t.seed_again) {
      t.seed_half_again = at;
      break;
    }
  }
}

SwarmResult run_swarm(Env& env, int n, const fs::path& seed_cache) {
  Sources src = start_sources(env, seed_cache);
  json seed_ready = wait_event(*src.seed, "ready", 60s);
  if (seed_ready["layers_held"].get<std::size_t>() == 0)
    die("the seed's cache is empty: run the prefetch first");
  // Give the seed a moment to announce its layers, so peers find it at once.
  wait_event(*src.seed, "replicated", 120s);
  const fs::path go = env.work / ("go-" + std::to_string(n));
  std::vector<std::unique_ptr<DaemonProcess>> peers;
  for (int i = 0; i < n; ++i) {
    const std::string host = "run" + std::to_string(env.serial) + "-h" + std::to_string(i);
    std::vector<std::string> argv = peer_argv(
        env, src, host, node_ip(env, 1 + i / 200, 1 + i % 200), "c" + std::to_string(i % 4));
    argv.insert(argv.end(), {"--go-file", go.string(), "--stall-timeout", "120"});
    argv.insert(argv.end(), env.peer_args.begin(), env.peer_args.end());
    peers.push_back(spawn(env, host, argv));
  }
  for (auto& p : peers) wait_event(*p, "ready", 120s);
  std::vector<pid_t> pids = {src.origin->pid(), src.seed->pid()};
  for (auto& p : peers) pids.push_back(p->pid());
  double cpu_before = 0;
  for (pid_t pid : pids) cpu_before += cpu_seconds(pid);
  const std::int64_t started = now_ms();
  std::ofstream(go).put('\n');  // all peers start now

  SwarmResult r;
  r.n = n;
  std::int64_t last = started;
  std::vector<double> done_at, first_byte;
  for (auto& p : peers) {
    json done = wait_event(*p, "done", 1800s);
    last = std::max<std::int64_t>(last, done["unix_ms"].get<std::int64_t>());
    done_at.push_back(static_cast<double>(done["unix_ms"].get<std::int64_t>() - started) / 1000.0);
    // first_byte_ms counts from the process's start, fetch_ms from the go.
    const auto waited_for_go = done["ms"].get<double>() - done["fetch_ms"].get<double>();
    first_byte.push_back((done["first_byte_ms"].get<double>() - waited_for_go) / 1000.0);
    r.received += bytes_total(done["counters"], "down");
    r.from_peers += done["counters"]["down"]["peer"].get<std::uint64_t>();
  }
  r.seconds = static_cast<double>(last - started) / 1000.0;
  double cpu_after = 0;
  for (pid_t pid : pids) cpu_after += cpu_seconds(pid);
  r.cpu = cpu_after - cpu_before;
  for (auto& p : peers) p->stop();
  if (src.seed) src.seed->stop();
  src.origin->stop();
  auto sent = [](DaemonProcess& d) -> std::uint64_t {
    auto stopped = d.wait_for_event("stopped", 1s);
    return stopped ? sent_total((*stopped)["counters"]) : 0;
  };
  r.origin_sent = sent(*src.origin);
  r.seed_sent = sent(*src.seed);
  seed_timeline(*src.seed, started, env.size, r.when);
  r.when.peer_first_byte = median_of(first_byte);
  std::sort(done_at.begin(), done_at.end());
  r.when.first_done = done_at.front();
  r.when.median_done = median_of(done_at);
  return r;
}

struct BaselineResult {
  int n = 0;
  double seconds = 0;
  double cpu = 0;
  std::uint64_t sent = 0;
};

// N hosts fetch every layer from one nginx whose total upload is B: each of the
// N concurrent connections is limited to B/N.
BaselineResult run_baseline(Env& env, int n) {
  const fs::path root = env.work / "nginx";
  fs::create_directories(root / "logs");
  const std::uint64_t per_connection = env.rate_bytes / static_cast<std::uint64_t>(n);
  const int port = drover::testing::free_port();  // nginx must be told its port
  std::ofstream(root / "nginx.conf")
      << "daemon off;\nmaster_process off;\nworker_processes 1;\npid "
      << (root / "nginx.pid").string() << ";\n"
      << "error_log " << (root / "logs" / "error.log").string() << " warn;\n"
      << "events { worker_connections 1024; }\n"
      << "http {\n  access_log off;\n  sendfile on;\n"
      << "  server {\n    listen 127.0.0.1:" << port << ";\n    root "
      << (env.work / "layers").string() << ";\n"
      << "    location / { limit_rate " << per_connection << "; }\n  }\n}\n";
  auto nginx = std::make_unique<DaemonProcess>(
      std::vector<std::string>{"/usr/sbin/nginx", "-p", root.string(), "-c",
                               (root / "nginx.conf").string()},
      (root / "logs" / "stderr.log").string());
  // Wait until it answers.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  for (;;) {
    auto probe =
        drover::testing::run({"/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                              "http://127.0.0.1:" + std::to_string(port) + "/" + env.layer_files[0],
                              "--max-time", "1", "-r", "0-0"},
                             5s);
    if (probe.out == "206" || probe.out == "200") break;
    if (std::chrono::steady_clock::now() > deadline)
      die("nginx did not start: " + nginx->stderr_tail());
    std::this_thread::sleep_for(50ms);
  }
  const double cpu_before = cpu_seconds(nginx->pid());
  const auto started = std::chrono::steady_clock::now();
  // Each host: one curl fetching every layer over one kept-alive connection.
  std::vector<std::unique_ptr<DaemonProcess>> hosts;
  for (int i = 0; i < n; ++i) {
    std::vector<std::string> argv = {"/bin/sh", "-c", ""};
    std::string cmd = "curl -sf";
    for (const auto& f : env.layer_files)
      cmd += " -o /dev/null http://127.0.0.1:" + std::to_string(port) + "/" + f;
    cmd += " && echo '{\"event\":\"done\"}'";
    argv[2] = cmd;
    hosts.push_back(spawn(env, "curl", argv));
  }
  for (auto& h : hosts) wait_event(*h, "done", 7200s);
  BaselineResult r;
  r.n = n;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  r.cpu = cpu_seconds(nginx->pid()) - cpu_before;
  r.sent = env.size * static_cast<std::uint64_t>(n);
  nginx->stop();
  return r;
}

std::vector<int> parse_list(const std::string& text) {
  std::vector<int> out;
  std::stringstream s(text);
  std::string item;
  while (std::getline(s, item, ',')) {
    if (!item.empty()) out.push_back(std::stoi(item));
  }
  return out;
}

int main_impl(int argc, char** argv) {
  cxxopts::Options o("drover-bench-mesh",
                     "Rollout time over the mesh vs the bound and a central origin.");
  o.add_options()("size", "artifact size, MiB", cxxopts::value<int>()->default_value("64"))(
      "rate", "every node's upload and download limit B, MiB/s",
      cxxopts::value<double>()->default_value("2"))(
      "peers", "N values for the swarm", cxxopts::value<std::string>()->default_value("8,16,32"))(
      "baseline", "N values for the nginx baseline (it takes N x S / B)",
      cxxopts::value<std::string>()->default_value("8,16"))(
      "work", "work directory (default: a new temporary one)", cxxopts::value<std::string>())(
      "announce", "announce interval, seconds (every node announces each layer this often)",
      cxxopts::value<int>()->default_value("5"))(
      "peer-args",
      "extra flags for every drover-peer of the swarm runs, e.g. \"--parallel-layers 2\"",
      cxxopts::value<std::string>()->default_value(""))(
      "seed-args", "extra flags for the regional seed, e.g. \"--unchoke-slots 8\"",
      cxxopts::value<std::string>()->default_value(""))(
      "origin-args", "extra flags for the origin, e.g. \"--repeat-freely\"",
      cxxopts::value<std::string>()->default_value(""))("h,help", "help");
  auto args = o.parse(argc, argv);
  if (args.count("help")) return std::cout << o.help(), 0;
  // The daemons are built beside this program (build/bin/).
  ::setenv("DROVER_BIN_DIR", fs::read_symlink("/proc/self/exe").parent_path().c_str(), 0);

  Env env;
  std::unique_ptr<drover::testing::TempDir> tmp;
  if (args.count("work")) {
    env.work = args["work"].as<std::string>();
    fs::create_directories(env.work);
  } else {
    tmp = std::make_unique<drover::testing::TempDir>();
    env.work = tmp->path();
  }
  fs::create_directories(env.work / "logs");
  // Start the address ranges where an earlier run in the last minutes did not.
  env.run = static_cast<int>(::getpid() % 150);
  env.announce = std::to_string(args["announce"].as<int>());
  env.peer_args = split_words(args["peer-args"].as<std::string>());
  env.seed_args = split_words(args["seed-args"].as<std::string>());
  env.origin_args = split_words(args["origin-args"].as<std::string>());
  env.rate_bytes = static_cast<std::uint64_t>(args["rate"].as<double>() * (1 << 20));
  env.rate = std::to_string(env.rate_bytes);
  const int size_mib = args["size"].as<int>();

  // An artifact of incompressible files (so stored bytes = S) in 4 MiB layers.
  const fs::path tree = env.work / "tree";
  SeededRandom random(42);
  for (int i = 0; i < std::max(1, size_mib / 16); ++i) {
    drover::testing::write_file(
        tree / ("bin" + std::to_string(i)),
        random.bytes(static_cast<std::size_t>(std::min(16, size_mib)) << 20));
  }
  auto pushed = drover::testing::run({binary("drover").string(), "artifact", "push", tree.string(),
                                      "--service", "bench", "--git-sha", "0123abcd", "--store",
                                      (env.work / "store").string(), "--json"});
  if (pushed.exit_code != 0) die(pushed.err);
  json p = json::parse(pushed.out);
  env.artifact = p["artifact_id"];
  env.size = p["size_bytes"];
  fs::create_directories(env.work / "layers");
  for (const auto& l : p["layers"]) {
    const std::string hex = l["id"].get<std::string>().substr(7);
    fs::copy_file(env.work / "store" / "blobs" / "sha256" / hex.substr(0, 2) / hex,
                  env.work / "layers" / hex);
    env.layer_files.push_back(hex);
  }

  std::printf("## drover-bench-mesh\n\n");
  std::printf("machine: %d CPUs, %s\n", static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN)),
              drover::testing::run({"/bin/uname", "-r"}).out.c_str());
  std::printf(
      "artifact: S = %.1f MiB in %zu layers; every node limited to B = %.2f MiB/s up and down "
      "(libtorrent counts protocol overhead in B)\n\n",
      mib(static_cast<double>(env.size)), env.layer_files.size(),
      mib(static_cast<double>(env.rate_bytes)));

  // Replicate on first build: the seed's prefetch from the origin, on its own.
  const fs::path seed_cache = env.work / "seed-cache";
  {
    const std::int64_t t0 = now_ms();
    Sources src = start_sources(env, seed_cache);
    json rep = wait_event(*src.seed, "replicated", 1800s);
    const double secs = static_cast<double>(now_ms() - t0) / 1000.0;
    src.seed->stop();
    src.origin->stop();
    std::printf(
        "seed prefetch (origin -> regional seed, both at B): %.1f s for %.1f MiB (%.2f MiB/s "
        "payload; "
        "%.1f s inside the seed)\n\n",
        secs, mib(static_cast<double>(env.size)), mib(static_cast<double>(env.size)) / secs,
        rep["ms"].get<double>() / 1000.0);
  }
  // Payload rate of one transfer at B, measured here: the B of the bound. One
  // host fetches from the origin alone; the rate counts from its first byte,
  // so announce and connection set-up do not lower it.
  double payload_rate = 0;
  {
    Sources src = start_sources(env, seed_cache, /*with_seed=*/false, /*origin_unchoke=*/"32");
    std::vector<std::string> calibrate_argv =
        peer_argv(env, src, "calibrate", node_ip(env, 1, 1), "c0", "r0");
    calibrate_argv.push_back("--exit-when-done");
    auto peer = spawn(env, "calibrate", calibrate_argv);
    json done = wait_event(*peer, "done", 1800s);
    const double secs =
        (done["fetch_ms"].get<double>() - done["first_byte_ms"].get<double>()) / 1000.0;
    payload_rate = static_cast<double>(env.size) / secs;
    src.origin->stop();
    std::printf(
        "one host from the origin: %.1f s after its first byte (%.1f s in all), so B as payload = "
        "%.2f MiB/s "
        "(%.0f%% of the limit)\n\n",
        secs, done["fetch_ms"].get<double>() / 1000.0, mib(payload_rate),
        100.0 * payload_rate / static_cast<double>(env.rate_bytes));
  }

  std::vector<BaselineResult> baselines;
  for (int n : parse_list(args["baseline"].as<std::string>())) {
    baselines.push_back(run_baseline(env, n));
    std::fprintf(stderr, "baseline N=%d: %.1f s\n", n, baselines.back().seconds);
  }
  // The central origin's time grows as N x S / B: fit seconds per host from
  // the measured points and extrapolate.
  double per_host = 0;
  for (const auto& b : baselines) per_host += b.seconds / b.n;
  if (!baselines.empty()) per_host /= static_cast<double>(baselines.size());

  std::printf("### Rollout of S to N hosts in one region\n\n");
  std::printf(
      "| N | swarm s | lower bound s | swarm / bound | origin sent / S | seed sent / S | from "
      "peers | central nginx s | nginx / swarm | CPU s (all nodes) | CPU load of 2 cores |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::vector<SwarmResult> swarms;
  for (int n : parse_list(args["peers"].as<std::string>())) {
    SwarmResult r = run_swarm(env, n, seed_cache);
    swarms.push_back(r);
    // Kumar-Ross: max{F/u_s, F/d_min, N F / (u_s + sum u_i)}, with the seed
    // as the server (the origin is not handed out while the seed answers).
    const double F = static_cast<double>(env.size);
    const double bound =
        std::max({F / payload_rate, F / payload_rate, n * F / (payload_rate * (n + 1))});
    std::string central = "-", ratio = "-";
    for (const auto& b : baselines) {
      if (b.n == n) {
        central = std::to_string(b.seconds).substr(0, 6) + " (measured)";
        ratio = std::to_string(b.seconds / r.seconds).substr(0, 5) + "x";
      }
    }
    if (central == "-" && per_host > 0) {
      central = std::to_string(per_host * n).substr(0, 6) + " (extrapolated)";
      ratio = std::to_string(per_host * n / r.seconds).substr(0, 5) + "x";
    }
    std::printf("| %d | %.1f | %.1f | %.2f | %.2f | %.2f | %.0f%% | %s | %s | %.1f | %.0f%% |\n", n,
                r.seconds, bound, r.seconds / bound, static_cast<double>(r.origin_sent) / F,
                static_cast<double>(r.seed_sent) / F,
                100.0 * static_cast<double>(r.from_peers) /
                    static_cast<double>(std::max<std::uint64_t>(1, r.received)),
                central.c_str(), ratio.c_str(), r.cpu, 100.0 * r.cpu / (2.0 * r.seconds));
    std::fflush(stdout);
  }
  // The rollout as the seed saw it: start-up until its first byte, its busy
  // time (copies of S over the share of B it used), then the tail.
  std::printf(
      "\n### Where the time goes (seconds from the go signal; the seed's counters every %d ms)\n\n"
      "| N | seed's first byte | peers' first byte (median) | seed has sent S | seed's last byte | "
      "first peer done | median peer done | last peer done | seed copies | seed busy: share of "
      "B used | seed sent again / S | half of that by | requests the seed refused as repeats "
      "|\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
      kReportMs);
  for (const auto& r : swarms) {
    const auto& w = r.when;
    const double busy = w.seed_last - w.seed_first;
    const double used = busy > 0 ? static_cast<double>(r.seed_sent) / (payload_rate * busy) : 0.0;
    std::printf(
        "| %d | %.2f | %.2f | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f | %.0f%% | %.2f | %.1f | "
        "%llu "
        "|\n",
        r.n, w.seed_first, w.peer_first_byte, w.seed_one_copy, w.seed_last, w.first_done,
        w.median_done, r.seconds, static_cast<double>(r.seed_sent) / static_cast<double>(env.size),
        100.0 * used, static_cast<double>(w.seed_again) / static_cast<double>(env.size),
        w.seed_half_again, static_cast<unsigned long long>(w.seed_refused));
  }
  std::printf(
      "\n### Central nginx baseline (one origin, total upload B)\n\n| N | seconds | origin sent / "
      "S | nginx CPU s |\n|---|---|---|---|\n");
  for (const auto& b : baselines) {
    std::printf("| %d | %.1f | %.2f | %.2f |\n", b.n, b.seconds,
                static_cast<double>(b.sent) / static_cast<double>(env.size), b.cpu);
  }
  return 0;
}

}  // namespace
}  // namespace drover::bench

int main(int argc, char** argv) {
  return drover::bench::main_impl(argc, argv);
}
