// drover-bench-router: what an nginx reload costs a host under load
// (docs/BENCHMARKS.md, "The nginx router"). A real nginx (its own prefix)
// routes to two slots; client threads send requests through it, first with
// no reloads (the baseline, same run), then while the agent's nginx router
// applies new weights every --every-ms (render, nginx -t, reload, confirm).
// Prints, per phase, requests per second, latency percentiles and failures,
// the ratios of the second to the first, and how long an apply takes.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <thread>

#include <cxxopts.hpp>
#include <nlohmann/json.hpp>

#include "agent/router/router.hpp"
#include "core/http/http.hpp"
#include "tests/support/nginx.hpp"
#include "tests/support/test_support.hpp"

namespace {

using namespace drover;
using nlohmann::json;
using Steady = std::chrono::steady_clock;

double ms_since(Steady::time_point t) {
  return std::chrono::duration<double, std::milli>(Steady::now() - t).count();
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

struct Phase {
  double seconds = 0;
  std::vector<double> latencies_ms;
  int failures = 0;
  std::string first_failure;
  json summary() const {
    return {{"requests", latencies_ms.size()},
            {"requests_per_s", static_cast<double>(latencies_ms.size()) / seconds},
            {"p50_ms", percentile(latencies_ms, 0.50)},
            {"p99_ms", percentile(latencies_ms, 0.99)},
            {"max_ms", percentile(latencies_ms, 1.0)},
            {"failures", failures}};
  }
};

// threads clients sending requests to url for seconds, while during() runs.
Phase load(const std::string& url, int threads, double seconds,
           const std::function<void(const std::atomic<bool>&)>& during) {
  Phase out;
  std::mutex mu;
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int i = 0; i < threads; ++i) {
    clients.emplace_back([&] {
      std::vector<double> mine;
      int failed = 0;
      std::string why;
      while (!stop) {
        const auto t = Steady::now();
        auto r = http::request("GET", url, "", std::chrono::seconds(5));
        if (r.ok() && r->status == 200) {
          mine.push_back(ms_since(t));
        } else {
          ++failed;
          if (why.empty()) why = r.ok() ? "status " + std::to_string(r->status) : r.error().message;
        }
      }
      std::lock_guard lock(mu);
      out.latencies_ms.insert(out.latencies_ms.end(), mine.begin(), mine.end());
      out.failures += failed;
      if (out.first_failure.empty()) out.first_failure = why;
    });
  }
  const auto start = Steady::now();
  std::thread side([&] { during(stop); });
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));  // the phase's length
  stop = true;
  side.join();
  for (auto& c : clients) c.join();
  out.seconds = ms_since(start) / 1000;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options o("drover-bench-router", "What nginx reloads cost a host under load.");
  o.add_options()("seconds", "length of each phase", cxxopts::value<double>()->default_value("5"))(
      "every-ms", "an apply (and reload) this often in the second phase",
      cxxopts::value<int>()->default_value("100"))(
      "threads", "client threads", cxxopts::value<int>()->default_value("2"))(
      "workers", "nginx worker processes", cxxopts::value<int>()->default_value("2"))(
      "json", "print one JSON object")("h,help", "this help");
  cxxopts::ParseResult args;
  try {
    args = o.parse(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "drover-bench-router: " << e.what() << "\n";
    return 2;
  }
  if (args.count("help")) {
    std::cout << o.help();
    return 0;
  }
  const double seconds = args["seconds"].as<double>();
  const int every_ms = args["every-ms"].as<int>();
  const int threads = args["threads"].as<int>();

  testing::TempDir dir;
  testing::NginxProcess nginx(dir.path() / "nginx", args["workers"].as<int>());
  if (!nginx.ok()) {
    std::cerr << "drover-bench-router: " << nginx.error() << "\n";
    return 1;
  }
  MemorySink sink;
  SystemClock clock;
  Logger log(sink, clock);
  std::unique_ptr<http::Server> slots[2];
  for (auto& slot : slots) {
    slot = http::Server::start(
               {}, [](const http::Request&, http::Responder respond) { respond({}); }, log)
               .value();
  }
  agent::NginxRouterConfig config;
  config.conf_file = nginx.conf_d() / "drover-bench.conf";
  config.listen = "127.0.0.1:" + std::to_string(testing::free_port());
  config.command = nginx.command();
  config.work_dir = nginx.logs();
  PosixFilesystem fs;
  auto router = agent::make_nginx_router(fs, config, clock, log);
  auto routes = [&](int green) {
    agent::Routes r;
    r.service = "bench";
    r.ports[0] = slots[0]->port();
    r.ports[1] = slots[1]->port();
    r.weights[0] = agent::kWeightTotal - green;
    r.weights[1] = green;
    return r;
  };
  if (auto st = router->apply(routes(0)); !st.ok()) {
    std::cerr << "drover-bench-router: " << st.error().message << "\n";
    return 1;
  }
  const std::string url = "http://" + config.listen + "/";

  Phase quiet = load(url, threads, seconds, [](const std::atomic<bool>&) {});
  std::vector<double> applies_ms;
  int refused = 0;
  Phase reloading = load(url, threads, seconds, [&](const std::atomic<bool>& stop) {
    for (int i = 0; !stop; ++i) {
      const auto t = Steady::now();
      if (router->apply(routes(i % 2 == 0 ? 500 : 0)).ok()) {
        applies_ms.push_back(ms_since(t));
      } else {
        ++refused;
      }
      const auto next = t + std::chrono::milliseconds(every_ms);
      while (!stop && Steady::now() < next) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  const json q = quiet.summary(), r = reloading.summary();
  auto ratio = [&](const char* key) {
    const double base = q[key].get<double>();
    return base > 0 ? r[key].get<double>() / base : 0.0;
  };
  const json out = {
      {"nginx_workers", args["workers"].as<int>()},
      {"client_threads", threads},
      {"seconds_per_phase", seconds},
      {"apply_every_ms", every_ms},
      {"no_reloads", q},
      {"reloading", r},
      {"reloads", applies_ms.size()},
      {"reloads_refused", refused},
      {"apply_p50_ms", percentile(applies_ms, 0.5)},
      {"apply_p99_ms", percentile(applies_ms, 0.99)},
      {"ratio_requests_per_s", ratio("requests_per_s")},
      {"ratio_p50", ratio("p50_ms")},
      {"ratio_p99", ratio("p99_ms")},
      {"first_failure", reloading.first_failure.empty() ? quiet.first_failure
                                                        : reloading.first_failure}};
  if (args.count("json")) {
    std::cout << out.dump() << "\n";
  } else {
    std::printf(
        "nginx %d workers, %d client threads, %.0f s per phase, an apply every %d ms\n"
        "no reloads: %zu requests (%.0f/s), p50 %.2f ms, p99 %.2f ms, max %.2f ms, %d failed\n"
        "reloading:  %zu requests (%.0f/s), p50 %.2f ms, p99 %.2f ms, max %.2f ms, %d failed\n"
        "reloads: %zu (refused %d); an apply takes p50 %.1f ms, p99 %.1f ms\n"
        "ratios (reloading / none): requests/s %.2f, p50 %.2f, p99 %.2f\n",
        args["workers"].as<int>(), threads, seconds, every_ms, quiet.latencies_ms.size(),
        q["requests_per_s"].get<double>(), q["p50_ms"].get<double>(), q["p99_ms"].get<double>(),
        q["max_ms"].get<double>(), quiet.failures, reloading.latencies_ms.size(),
        r["requests_per_s"].get<double>(), r["p50_ms"].get<double>(), r["p99_ms"].get<double>(),
        r["max_ms"].get<double>(), reloading.failures, applies_ms.size(), refused,
        out["apply_p50_ms"].get<double>(), out["apply_p99_ms"].get<double>(),
        ratio("requests_per_s"), ratio("p50_ms"), ratio("p99_ms"));
  }
  return quiet.failures + reloading.failures == 0 ? 0 : 1;
}
