// drover-demo-service: a small HTTP service whose health is whatever its
// release's config says, so tests, the demo fleet and benchmarks can deploy
// good and bad releases of something real.
//
//   drover-demo-service --port P [--config FILE]
//
// FILE (default $DROVER_RELEASE_DIR/demo.json) is JSON:
//   {"error_rate":0.01, "p99_ms":20, "saturation":0.3,
//    "health":"ok" | "garbage" | "status500",
//    "exit_after_ms":N,      exit with status 3 after N ms (a crashing release);
//                            0: before listening (a release that cannot start)
//    "start_delay_ms":N,     wait before listening (a slow start)
//    "try_writes":[PATH,…],  paths GET /identity tries to write ("{release}"
//                            is $DROVER_RELEASE_DIR): the attack tests
//    "flag_paths":{FLAG:{"error_rate":E,"p99_ms":L}}}
//                            the code path each feature flag turns on: the
//                            flags file (flagd's format) is read as flagd's
//                            file provider reads it, per targeting key; a
//                            request of a user the flag is on for takes
//                            that path, so a ramped bad flag degrades health
// GET /health answers the metrics (over the demo's 1,000 users "user-0" ..
// "user-999": the share each flag path takes weighs in its error rate and
// p99) and `requests`, the /work requests served since the previous
// health answer; GET /work?user=U one request of user U (503 at its path's error
// rate; the answer names the path); GET /version the release
// ($DROVER_RELEASE) and the flags file's content ($DROVER_FLAGS_FILE);
// GET /metrics the same figures for Prometheus (demo_error_ratio,
// demo_latency_p99_seconds, demo_saturation gauges; demo_requests_total by
// code, the /work requests served), so a pipeline's PromQL checks can judge
// a release without the agent's health push;
// GET /identity who the process is (uid, gid, groups), its whole
// environment, and what each write of try_writes did: "written" (the
// directory took a new file, removed again, or the file opened for writing,
// left unchanged) or the errno's name ("EACCES").
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "core/flags/flagd.hpp"
#include "core/http/http.hpp"
#include "core/log/log.hpp"
#include "core/metrics/metrics.hpp"

namespace {

using nlohmann::json;

// The flag path user takes: the first flag of flag_paths (in name order)
// the flags file has on for them; "" for the base path.
std::string path_of(const json& config, const json& flags, const std::string& user) {
  const auto paths = config.find("flag_paths");
  if (paths == config.end() || !paths->is_object() || user.empty()) return "";
  for (const auto& [flag, path] : paths->items()) {
    if (path.is_object() && drover::flags::evaluate_boolean(flags, flag, user, false)) return flag;
  }
  return "";
}

// The flags file in flagd's format, whichever the agent wrote: a
// drover.flags.v1 file is rendered as the agent would render it for flagd.
json flagd_of(const json& file) {
  if (file.is_object() && file.contains("format") && file["format"] == "drover.flags.v1" &&
      file.contains("flags")) {
    auto text = drover::flags::render(file["flags"], "", 0);
    return text.ok() ? json::parse(*text) : json();
  }
  return file;
}

struct Figures {
  double error_rate = 0, p99_ms = 0;
};

// The health of the demo's 1,000 users: each takes its path (the base, or a
// flag's), and the figures are those of the mix.
Figures health_figures(const json& config, const std::string& flags_file);

std::atomic<bool> g_stop{false};

}  // namespace

extern char** environ;

namespace {

void on_signal(int) {
  g_stop = true;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string errno_name(int err) {
  switch (err) {
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EROFS: return "EROFS";
    case ENOTDIR: return "ENOTDIR";
    case EEXIST: return "EEXIST";
    default: return std::strerror(err);
  }
}

// Tries to write path: a new file in it if it is a directory, else the file
// itself opened for writing (nothing written).
std::string try_write(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno_name(errno);
  if (S_ISDIR(st.st_mode)) {
    const std::string probe = path + "/.drover-write-probe-" + std::to_string(::getpid());
    const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return errno_name(errno);
    ::close(fd);
    ::unlink(probe.c_str());
    return "written";
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return errno_name(errno);
  ::close(fd);
  return "written";
}

Figures health_figures(const json& config, const std::string& flags_file) {
  Figures base{config.value("error_rate", 0.0), config.value("p99_ms", 10.0)};
  const auto paths = config.find("flag_paths");
  if (paths == config.end() || !paths->is_object() || paths->empty()) return base;
  const json flags = flagd_of(json::parse(slurp(flags_file), nullptr, false));
  constexpr int kUsers = 1000;
  Figures mix{0, base.p99_ms};
  std::map<std::string, int> users;  // per flag path
  for (int i = 0; i < kUsers; ++i) {
    const std::string path = path_of(config, flags, "user-" + std::to_string(i));
    mix.error_rate +=
        (path.empty() ? base.error_rate : (*paths)[path].value("error_rate", base.error_rate)) /
        kUsers;
    if (!path.empty()) ++users[path];
  }
  // The mix's p99 is a slow path's once that path holds 1% of the users.
  for (const auto& [path, n] : users) {
    if (n * 100 >= kUsers) mix.p99_ms = std::max(mix.p99_ms, (*paths)[path].value("p99_ms", 0.0));
  }
  return mix;
}

json identity(const json& config) {
  std::vector<gid_t> groups(static_cast<std::size_t>(std::max(::getgroups(0, nullptr), 0)));
  groups.resize(static_cast<std::size_t>(
      std::max(::getgroups(static_cast<int>(groups.size()), groups.data()), 0)));
  json env = json::object();
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    const auto eq = kv.find('=');
    env[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
  }
  json writes = json::object();
  for (const auto& p : config.value("try_writes", json::array())) {
    if (!p.is_string()) continue;
    std::string path = p.get<std::string>();
    if (auto at = path.find("{release}"); at != std::string::npos) {
      path.replace(at, 9, ::env("DROVER_RELEASE_DIR"));
    }
    writes[path] = try_write(path);
  }
  return {{"uid", ::getuid()}, {"euid", ::geteuid()}, {"gid", ::getgid()}, {"egid", ::getegid()},
          {"groups", groups},  {"env", env},          {"writes", writes}};
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  std::string config_path;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--port" && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else if (a == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else {
      std::cerr << "drover-demo-service: unexpected argument '" << a
                << "'\nusage: drover-demo-service --port P [--config FILE]\n";
      return 2;
    }
  }
  if (port <= 0 || port > 65535) {
    std::cerr << "drover-demo-service: --port must be 1-65535\n";
    return 2;
  }
  if (config_path.empty()) config_path = env("DROVER_RELEASE_DIR") + "/demo.json";
  json config = json::parse(slurp(config_path), nullptr, false);
  if (!config.is_object()) config = json::object();
  // A release may behave differently in some regions ("by_region": {"eu-west-1":
  // {"error_rate": 0.4}}): a regression that shows only where it is deployed.
  if (auto by = config.find("by_region"); by != config.end() && by->is_object()) {
    if (auto mine = by->find(env("DROVER_REGION")); mine != by->end() && mine->is_object()) {
      config.merge_patch(*mine);
    }
  }
  ::signal(SIGTERM, on_signal);
  ::signal(SIGINT, on_signal);
  if (int delay = config.value("start_delay_ms", 0); delay > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
  }
  const int exit_after = config.value("exit_after_ms", -1);
  if (exit_after == 0) return 3;  // a release that cannot even start
  const std::string health_mode = config.value("health", "ok");
  const std::string release = env("DROVER_RELEASE");
  const std::string flags_file = env("DROVER_FLAGS_FILE");
  drover::StderrSink sink;
  drover::SystemClock clock;
  drover::Logger log(sink, clock, drover::LogLevel::warn);
  drover::http::ServerOptions options;
  options.port = static_cast<std::uint16_t>(port);
  std::atomic<std::uint64_t> served{0};  // /work requests since the last /health
  drover::metrics::Registry metrics;
  metrics.declare("demo_requests_total", "/work requests served, by status code",
                  drover::metrics::Type::counter, {"code"});
  metrics.on_collect([&](drover::metrics::Registry& m) {
    const Figures f = health_figures(config, flags_file);
    m.gauge("demo_error_ratio", "the share of requests that fail").set(f.error_rate);
    m.gauge("demo_latency_p99_seconds", "the 99th percentile of request latency")
        .set(f.p99_ms / 1000.0);
    m.gauge("demo_saturation", "the share of capacity in use").set(config.value("saturation", 0.1));
  });
  auto server = drover::http::Server::start(
      options,
      [&](const drover::http::Request& r, drover::http::Responder respond) {
        drover::http::Response resp;
        if (r.path == "/health") {
          if (health_mode == "garbage") {
            resp.content_type = "text/plain";
            resp.body = "all good, probably";
          } else if (health_mode == "status500") {
            resp.status = 500;
            resp.body = R"({"error":"unhealthy"})";
          } else {
            const Figures f = health_figures(config, flags_file);
            // requests: what it served since the previous health answer.
            resp.body = json{{"error_rate", f.error_rate},
                             {"p99_ms", f.p99_ms},
                             {"saturation", config.value("saturation", 0.1)},
                             {"requests", served.exchange(0)}}
                            .dump();
          }
        } else if (r.path == "/work") {
          ++served;
          const std::string* user = r.param("user");
          const json flags = flagd_of(json::parse(slurp(flags_file), nullptr, false));
          const std::string path = path_of(config, flags, user ? *user : "");
          const double error_rate = path.empty()
                                        ? config.value("error_rate", 0.0)
                                        : config["flag_paths"][path].value("error_rate", 0.0);
          static thread_local std::mt19937 random{std::random_device{}()};
          if (std::uniform_real_distribution<double>(0, 1)(random) < error_rate) resp.status = 503;
          metrics.counter("demo_requests_total", "", {"code"}, {std::to_string(resp.status)}).inc();
          resp.body =
              json{{"user", user ? *user : ""}, {"path", path.empty() ? "base" : path}}.dump();
        } else if (r.path == "/metrics") {
          resp.content_type = "text/plain; version=0.0.4";
          resp.body = metrics.expose();
        } else if (r.path == "/version") {
          json flags = json::parse(slurp(flags_file), nullptr, false);
          resp.body = json{{"release", release},
                           {"flags", flags.is_discarded() ? json() : flags},
                           {"pid", ::getpid()}}
                          .dump();
        } else if (r.path == "/identity") {
          resp.body = identity(config).dump();
        } else {
          resp.status = 404;
        }
        respond(std::move(resp));
      },
      log);
  if (!server.ok()) {
    std::cerr << "drover-demo-service: " << server.error().message << "\n";
    return 1;
  }
  const auto started = std::chrono::steady_clock::now();
  while (!g_stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (exit_after >= 0 &&
        std::chrono::steady_clock::now() - started >= std::chrono::milliseconds(exit_after)) {
      return 3;
    }
  }
  return 0;
}
