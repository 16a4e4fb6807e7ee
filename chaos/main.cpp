// drover-chaos (docs/CHAOS.md): partial failures on purpose. `sim` runs the
// seeded whole-system simulation over many fault schedules and names every
// invariant a schedule broke, with the seed that replays it.
#include <cxxopts.hpp>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "chaos/sim/sim.hpp"

namespace {

constexpr const char* kHelp =
    "usage: drover-chaos sim [--seed N] [--seeds K] [--hosts H] [--json FILE] [--verbose]\n"
    "  sim   the seeded simulation: K fault schedules from seed N (default 200 from 1);\n"
    "        --seed N alone replays exactly that one\n";

int sim(int argc, char** argv) {
  cxxopts::Options o("drover-chaos sim", "The seeded whole-system simulation (docs/CHAOS.md).");
  o.add_options()("seed", "the first seed (default 1)", cxxopts::value<std::uint64_t>())(
      "seeds", "how many schedules (default 200; 1 with --seed alone)",
      cxxopts::value<std::uint64_t>())("hosts", "hosts per region (1-16, default 2)",
                                       cxxopts::value<int>())(
      "json", "write the report (drover.chaos-report.v1) to FILE", cxxopts::value<std::string>())(
      "verbose", "print every schedule, not only the failing ones")("h,help", "show this help");
  cxxopts::ParseResult r;
  try {
    r = o.parse(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "drover-chaos sim: " << e.what() << "\n" << kHelp;
    return 2;
  }
  if (r.count("help")) {
    std::cout << o.help();
    return 0;
  }
  if (!r.unmatched().empty()) {
    std::cerr << "drover-chaos sim: unexpected argument '" << r.unmatched()[0] << "'\n";
    return 2;
  }
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
  nlohmann::json runs = nlohmann::json::array();
  std::uint64_t failed = 0, deploys = 0, crashes = 0;
  for (std::uint64_t seed = first; seed < first + count; ++seed) {
    drover::chaos::SimOptions opts;
    opts.seed = seed;
    opts.hosts_per_region = hosts;
    const drover::chaos::SimResult res = drover::chaos::run_sim(opts);
    deploys += static_cast<std::uint64_t>(res.deploys);
    crashes += static_cast<std::uint64_t>(res.coordinator_crashes + res.agent_crashes);
    const bool ok = res.violations.empty();
    if (!ok) ++failed;
    if (!ok || r.count("verbose")) {
      std::cout << "seed " << seed << ": " << (ok ? "pass" : "FAIL") << ", " << res.deploys
                << " deploys (" << res.succeeded << " succeeded, " << res.rolled_back
                << " rolled back, " << res.superseded << " superseded), " << res.virtual_ms / 1000
                << " s virtual, " << res.coordinator_crashes << " coordinator and "
                << res.agent_crashes << " agent crashes, " << res.partitions << " partitions, "
                << res.dropped << " of " << res.messages << " messages dropped\n";
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
                    {"partitions", res.partitions},
                    {"messages", res.messages},
                    {"dropped", res.dropped},
                    {"violations", violations}});
  }
  std::cout << "drover-chaos sim: " << count << " schedules from seed " << first << ", " << deploys
            << " deploys, " << crashes << " crashes: " << (count - failed) << " passed, " << failed
            << " failed\n";
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

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kHelp;
    return 2;
  }
  const std::string command = argv[1];
  if (command == "sim") return sim(argc - 1, argv + 1);
  if (command == "help" || command == "--help" || command == "-h") {
    std::cout << kHelp;
    return 0;
  }
  std::cerr << "drover-chaos: unknown command '" << command << "'\n" << kHelp;
  return 2;
}
