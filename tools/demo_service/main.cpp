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
//    "start_delay_ms":N}     wait before listening (a slow start)
// GET /health answers the metrics; GET /version the release
// ($DROVER_RELEASE) and the flags file's content ($DROVER_FLAGS_FILE).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/http/http.hpp"
#include "core/log/log.hpp"

namespace {

using nlohmann::json;
std::atomic<bool> g_stop{false};

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
            resp.body = json{
                {"error_rate", config.value("error_rate", 0.0)},
                {"p99_ms", config.value("p99_ms", 10.0)},
                {"saturation", config.value("saturation", 0.1)},
                {"requests",
                 100}}.dump();
          }
        } else if (r.path == "/version") {
          json flags = json::parse(slurp(flags_file), nullptr, false);
          resp.body = json{{"release", release},
                           {"flags", flags.is_discarded() ? json() : flags},
                           {"pid", ::getpid()}}
                          .dump();
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
