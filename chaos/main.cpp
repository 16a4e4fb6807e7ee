// drover-chaos (docs/CHAOS.md): partial failures on purpose. `sim` runs the
// seeded whole-system simulation over many fault schedules and names every
// invariant a schedule broke, with the seed that replays it; `run` strikes a
// real fleet of processes with one scenario (or all) and checks the same
// invariants; `list` names the scenarios.
#include <signal.h>
#include <cstdlib>

#include <cxxopts.hpp>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "chaos/run/run.hpp"
#include "chaos/sim/sim.hpp"

namespace {

constexpr const char* kHelp =
    "usage: drover-chaos sim [--seed N] [--seeds K] [--hosts H] [--json FILE] [--verbose] "
    "[--plant BUG]\n"
    "       drover-chaos run SCENARIO|all [--seed N] [--hosts N] [--json FILE] [--loopback] "
    "[--keep]\n"
    "       drover-chaos list\n"
    "  sim   the seeded simulation: K fault schedules from seed N (default 200 from 1);\n"
    "        --seed N alone replays exactly that one\n"
    "  run   faults against a real fleet of processes (in network namespaces as root)\n"
    "  list  the scenarios run knows, one line each\n";

// Parses a verb's command line: -1 to go on, else the exit status (help
// printed, or a usage error named).
int parse(cxxopts::Options& o, int argc, char** argv, const char* verb, cxxopts::ParseResult& r) {
  try {
    r = o.parse(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "drover-chaos " << verb << ": " << e.what() << "\n" << kHelp;
    return 2;
  }
  if (r.count("help")) {
    std::cout << o.help();
    return 0;
  }
  if (!r.unmatched().empty()) {
    std::cerr << "drover-chaos " << verb << ": unexpected argument '" << r.unmatched()[0] << "'\n";
    return 2;
  }
  return -1;
}

int sim(int argc, char** argv) {
  cxxopts::Options o("drover-chaos sim", "The seeded whole-system simulation (docs/CHAOS.md).");
  o.add_options()("seed", "the first seed (default 1)", cxxopts::value<std::uint64_t>())(
      "seeds", "how many schedules (default 200; 1 with --seed alone)",
      cxxopts::value<std::uint64_t>())("hosts", "hosts per region (1-16, default 2)",
                                       cxxopts::value<int>())(
      "json", "write the report (drover.chaos-report.v1) to FILE", cxxopts::value<std::string>())(
      "verbose", "print every schedule, not only the failing ones")(
      "plant", "test only: plant a bug (early-batch, unsynced-unpack) to see it caught",
      cxxopts::value<std::string>())("h,help", "show this help");
  cxxopts::ParseResult r;
  if (const int done = parse(o, argc, argv, "sim", r); done >= 0) return done;
  const std::uint64_t first = r.count("seed") ? r["seed"].as<std::uint64_t>() : 1;
  const std::uint64_t count =
      r.count("seeds") ? r["seeds"].as<std::uint64_t>() : (r.count("seed") ? 1 : 200);
  const int hosts = r.count("hosts") ? r["hosts"].as<int>() : 2;
  if (count == 0 || count > 1'000'000) {
    std::cerr << "drover-chaos sim: --seeds wants 1 to 1000000\n";
    return 2;
  }
  if (hosts < 1 || hosts > 16) {
    std::cerr << "drover-chaos sim: --hosts wants 1 to 16\n";
    return 2;
  }
  const std::string plant = r.count("plant") ? r["plant"].as<std::string>() : "";
  if (!plant.empty() && plant != "early-batch" && plant != "unsynced-unpack") {
    std::cerr << "drover-chaos sim: --plant wants early-batch or unsynced-unpack, not '" << plant
              << "'\n";
    return 2;
  }
  nlohmann::json runs = nlohmann::json::array();
  std::uint64_t failed = 0, deploys = 0, crashes = 0, power_losses = 0;
  for (std::uint64_t seed = first; seed < first + count; ++seed) {
    drover::chaos::SimOptions opts;
    opts.seed = seed;
    opts.hosts_per_region = hosts;
    opts.plant_early_batch = plant == "early-batch";
    opts.plant_unsynced_unpack = plant == "unsynced-unpack";
    const drover::chaos::SimResult res = drover::chaos::run_sim(opts);
    deploys += static_cast<std::uint64_t>(res.deploys);
    crashes += static_cast<std::uint64_t>(res.coordinator_crashes + res.agent_crashes);
    power_losses += static_cast<std::uint64_t>(res.power_losses);
    const bool ok = res.violations.empty();
    if (!ok) ++failed;
    if (!ok || r.count("verbose")) {
      std::cout << "seed " << seed << ": " << (ok ? "pass" : "FAIL") << ", " << res.deploys
                << " deploys (" << res.succeeded << " succeeded, " << res.rolled_back
                << " rolled back, " << res.superseded << " superseded), " << res.virtual_ms / 1000
                << " s virtual, " << res.coordinator_crashes << " coordinator and "
                << res.agent_crashes << " agent crashes (" << res.power_losses << " power losses), "
                << res.partitions << " partitions, " << res.dropped << " of " << res.messages
                << " messages dropped\n";
      for (const auto& v : res.violations) {
        std::cout << "  " << v.invariant << ": " << v.subject << " at t=" << v.at_ms
                  << " ms: " << v.detail << "\n";
      }
      if (!ok) {
        for (const auto& line : res.schedule) std::cout << "  schedule: " << line << "\n";
      }
    }
    nlohmann::json violations = nlohmann::json::array();
    for (const auto& v : res.violations) {
      violations.push_back({{"invariant", v.invariant},
                            {"subject", v.subject},
                            {"at_ms", v.at_ms},
                            {"detail", v.detail}});
    }
    runs.push_back({{"seed", seed},
                    {"pass", ok},
                    {"deploys", res.deploys},
                    {"succeeded", res.succeeded},
                    {"rolled_back", res.rolled_back},
                    {"superseded", res.superseded},
                    {"virtual_ms", res.virtual_ms},
                    {"coordinator_crashes", res.coordinator_crashes},
                    {"agent_crashes", res.agent_crashes},
                    {"power_losses", res.power_losses},
                    {"partitions", res.partitions},
                    {"messages", res.messages},
                    {"dropped", res.dropped},
                    {"violations", violations}});
  }
  std::cout << "drover-chaos sim: " << count << " schedules from seed " << first << ", " << deploys
            << " deploys, " << crashes << " crashes (" << power_losses
            << " power losses): " << (count - failed) << " passed, " << failed << " failed\n";
  if (r.count("json")) {
    std::ofstream out(r["json"].as<std::string>());
    out << nlohmann::json{{"format", "drover.chaos-report.v1"}, {"kind", "sim"}, {"runs", runs}}
               .dump(2)
        << "\n";
    if (!out) {
      std::cerr << "drover-chaos sim: cannot write " << r["json"].as<std::string>() << "\n";
      return 1;
    }
  }
  return failed == 0 ? 0 : 1;
}

int list() {
  for (const auto& s : drover::chaos::scenarios()) {
    std::cout << s.name << std::string(s.name.size() < 32 ? 32 - s.name.size() : 1, ' ')
              << s.description << (s.needs_namespaces ? " [root: network namespaces]" : "")
              << (s.small_disks.empty() ? "" : " [root: a small disk]") << "\n";
  }
  return 0;
}

std::string mib(std::uint64_t bytes) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(1) << static_cast<double>(bytes) / (1 << 20) << " MiB";
  return o.str();
}

int run(int argc, char** argv) {
  cxxopts::Options o("drover-chaos run", "Faults against a real fleet (docs/CHAOS.md).");
  o.add_options()("scenario", "a scenario's name, or all", cxxopts::value<std::string>())(
      "seed", "draws the faults' timing (default 1)", cxxopts::value<std::uint64_t>())(
      "hosts", "hosts per region (1-4, default 2)", cxxopts::value<int>())(
      "json", "write the report (drover.chaos-report.v1) to FILE", cxxopts::value<std::string>())(
      "loopback", "run on loopback even as root (the scenarios needing namespaces are skipped)")(
      "keep", "keep each run's logs and configs (a failing run's are always kept)")(
      "plant-early-batch", "test only: the coordinator passes each batch early",
      cxxopts::value<int>())("h,help", "show this help");
  o.parse_positional({"scenario"});
  o.positional_help("SCENARIO|all");
  cxxopts::ParseResult r;
  if (const int done = parse(o, argc, argv, "run", r); done >= 0) return done;
  if (!r.count("scenario")) {
    std::cerr << "drover-chaos run: name a scenario (drover-chaos list) or all\n";
    return 2;
  }
  const std::string name = r["scenario"].as<std::string>();
  std::vector<const drover::chaos::Scenario*> chosen;
  if (name == "all") {
    for (const auto& s : drover::chaos::scenarios()) chosen.push_back(&s);
  } else if (const auto* s = drover::chaos::find_scenario(name)) {
    chosen.push_back(s);
  } else {
    std::cerr << "drover-chaos run: no scenario '" << name << "' (drover-chaos list)\n";
    return 2;
  }
  drover::chaos::RunOptions opts;
  opts.seed = r.count("seed") ? r["seed"].as<std::uint64_t>() : 1;
  opts.hosts_per_region = r.count("hosts") ? r["hosts"].as<int>() : 2;
  opts.loopback = r.count("loopback") > 0;
  opts.keep = r.count("keep") > 0;
  opts.planted_early_batch_ms = r.count("plant-early-batch") ? r["plant-early-batch"].as<int>() : 0;
  if (opts.hosts_per_region < 1 || opts.hosts_per_region > 4) {
    std::cerr << "drover-chaos run: --hosts wants 1 to 4\n";
    return 2;
  }
  nlohmann::json out = nlohmann::json::array();
  int failed = 0;
  std::cout << std::left << std::setw(32) << "scenario" << std::setw(8) << "result" << std::setw(8)
            << "secs" << std::setw(13) << "deploy" << std::setw(10) << "deploy s" << std::setw(12)
            << "rollback s"
            << "origin sent\n";
  // Ctrl-C or SIGTERM stops the scenario at its next wait, so its processes,
  // mounts and namespaces are taken down.
  struct sigaction on_stop {};
  on_stop.sa_handler = [](int) { drover::chaos::interrupt(); };
  ::sigaction(SIGINT, &on_stop, nullptr);
  ::sigaction(SIGTERM, &on_stop, nullptr);
  for (const auto* s : chosen) {
    if (drover::chaos::interrupted()) break;
    const auto res = drover::chaos::run_scenario(*s, opts);
    if (!res.skipped && !res.pass) ++failed;
    std::ostringstream secs, deploy_s, rollback_s;
    secs << std::fixed << std::setprecision(0) << res.seconds;
    deploy_s << std::fixed << std::setprecision(1) << static_cast<double>(res.deploy_ms) / 1000;
    if (res.rollback_ms >= 0) {
      rollback_s << std::fixed << std::setprecision(1)
                 << static_cast<double>(res.rollback_ms) / 1000;
    } else {
      rollback_s << "-";
    }
    std::cout << std::setw(32) << s->name << std::setw(8)
              << (res.skipped ? "skip"
                  : res.pass  ? "pass"
                              : "FAIL")
              << std::setw(8) << (res.skipped ? "-" : secs.str()) << std::setw(13)
              << (res.outcome.empty() ? "-" : res.outcome) << std::setw(10)
              << (res.skipped ? "-" : deploy_s.str()) << std::setw(12) << rollback_s.str()
              << (res.skipped ? "-" : mib(res.origin_bytes)) << std::endl;
    if (res.skipped) std::cout << "  skipped: " << res.skip_reason << "\n";
    for (const auto& v : res.violations) {
      std::cout << "  " << v.invariant << ": " << v.subject << " at t=" << v.at_ms
                << " ms: " << v.detail << "\n";
    }
    if (!res.pass && !res.skipped) {
      for (const auto& l : res.log) std::cout << "  " << l << "\n";
    }
    if (!res.dir.empty()) std::cout << "  logs: " << res.dir << "\n";
    nlohmann::json violations = nlohmann::json::array();
    for (const auto& v : res.violations) {
      violations.push_back({{"invariant", v.invariant},
                            {"subject", v.subject},
                            {"at_ms", v.at_ms},
                            {"detail", v.detail}});
    }
    out.push_back({{"scenario", s->name},
                   {"seed", res.seed},
                   {"mode", res.mode},
                   {"skipped", res.skipped},
                   {"skip_reason", res.skip_reason},
                   {"pass", res.pass},
                   {"seconds", res.seconds},
                   {"outcome", res.outcome},
                   {"deploy_ms", res.deploy_ms},
                   {"rollback_ms", res.rollback_ms},
                   {"origin_bytes", res.origin_bytes},
                   {"artifact_bytes", res.artifact_bytes},
                   {"violations", violations},
                   {"log", res.log}});
  }
  if (r.count("json")) {
    std::ofstream f(r["json"].as<std::string>());
    f << nlohmann::json{{"format", "drover.chaos-report.v1"}, {"kind", "run"}, {"scenarios", out}}
             .dump(2)
      << "\n";
    if (!f) {
      std::cerr << "drover-chaos run: cannot write " << r["json"].as<std::string>() << "\n";
      return 1;
    }
  }
  if (drover::chaos::interrupted()) {
    std::cerr << "drover-chaos run: interrupted\n";
    return 130;
  }
  return failed == 0 ? 0 : 1;
}

// The daemons run beside this binary unless DROVER_BIN_DIR says otherwise.
void find_binaries() {
  if (std::getenv("DROVER_BIN_DIR") != nullptr) return;
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) ::setenv("DROVER_BIN_DIR", self.parent_path().c_str(), 1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kHelp;
    return 2;
  }
  const std::string command = argv[1];
  if (command == "sim") return sim(argc - 1, argv + 1);
  if (command == "list") return list();
  if (command == "run") {
    find_binaries();
    return run(argc - 1, argv + 1);
  }
  if (command == "help" || command == "--help" || command == "-h") {
    std::cout << kHelp;
    return 0;
  }
  std::cerr << "drover-chaos: unknown command '" << command << "'\n" << kHelp;
  return 2;
}
