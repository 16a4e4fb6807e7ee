// The scenarios of `drover-chaos run` (docs/CHAOS.md, "Scenarios"). Each
// starts from v1 running everywhere (Run::baseline), deploys v2 through the
// pipeline, strikes while it runs, and says what every host must run at the
// end and how the deploy must end; Run::check holds the run to that and to
// the invariants.
#include <unistd.h>

#include "chaos/run/run.hpp"

namespace drover::chaos {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// v2 healthy everywhere: it must succeed and run everywhere.
std::string healthy_v2(Run& r) {
  const std::string v2 = r.push_v2();
  const std::string id = r.deploy(v2);
  r.expect_everywhere(v2);
  r.expect_outcome(id, "succeeded");
  return id;
}

// v2 bad in `bad`: production rolls back (both waves), staging keeps v2.
std::string degrading_v2(Run& r, const std::string& bad) {
  const std::string v2 = r.push_v2({bad});
  const std::string id = r.deploy(v2);
  for (const auto& h : r.fleet().hosts()) {
    r.expect(h, r.fleet().region_of(h) == kStaging ? v2 : r.v1());
  }
  r.expect_outcome(id, "rolled_back");
  return id;
}

bool in_production(const json& v) { return v.value("current_env", "") == "production"; }

void must(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what);
}

// Kills the agent of each of `kills` hosts when it emits `event` for the new
// release, and starts it again after a drawn delay.
void kill_agents_at(Run& r, const std::string& event, int kills) {
  const std::string id = healthy_v2(r);
  std::set<std::string> struck;
  for (int i = 0; i < kills; ++i) {
    std::string host;
    if (!r.wait_agent_line(
            [&](const std::string& h, const json& l) {
              return !struck.count(h) && l.value("event", "") == event;
            },
            &host, 120s)) {
      r.note("no more '" + event + "' lines: " + std::to_string(i) + " agents killed");
      break;
    }
    struck.insert(host);
    r.fleet().kill_agent(host);
    const auto down = r.between(200, 3000);
    r.note("agent " + host + " killed (-9) at '" + event + "', down " +
           std::to_string(down.count()) + " ms");
    std::this_thread::sleep_for(down);  // the fault's length, drawn from the seed
    r.fleet().start_agent(host);
    r.note("agent " + host + " restarted");
  }
  r.wait_deploy(id);
}

// The coordinator SIGKILLs itself right after committing its n-th `what`
// transition (its crash point, docs/COORDINATOR.md), and comes back after a
// drawn delay.
void crash_coordinator_after(Run& r, const std::string& id, const std::string& what, int n) {
  Fleet& f = r.fleet();
  f.stop_coordinator();  // a clean stop, so the crash point counts from here
  f.start_coordinator({{"DROVER_TEST_CRASH_AFTER", what + ":" + std::to_string(n)}});
  r.note("coordinator armed to crash after its " + std::to_string(n) + "th '" + what + "'");
  if (!f.wait_coordinator_exit(180s)) {
    r.note("the crash point was never reached");
    f.kill_coordinator();
  } else {
    r.note("coordinator crashed after '" + what + "'");
  }
  const auto down = r.between(500, 5000);
  std::this_thread::sleep_for(down);  // the fault's length, drawn from the seed
  f.start_coordinator();
  r.note("coordinator restarted after " + std::to_string(down.count()) + " ms");
  r.wait_deploy(id);
}

std::vector<Scenario> all() {
  std::vector<Scenario> s;
  s.push_back({"no-faults",
               "a healthy release through staging, the gate and two production waves, unharmed: "
               "the reference",
               false, true, [](Run& r) {
                 r.baseline();
                 r.wait_deploy(healthy_v2(r));
               }});
  s.push_back({"agents-kill-mid-fetch",
               "kill -9 three agents as they start fetching the new release; each restarts "
               "after up to 3 s",
               false, false, [](Run& r) {
                 r.baseline();
                 kill_agents_at(r, "fetching", 3);
               }});
  s.push_back({"agents-kill-mid-apply",
               "kill -9 three agents as they switch to the new release; each restarts after "
               "up to 3 s",
               false, false, [](Run& r) {
                 r.baseline();
                 kill_agents_at(r, "switching", 3);
               }});
  s.push_back({"coordinator-kill-mid-deploy",
               "kill -9 the coordinator right after it starts a batch; restarted after up to 5 s",
               false, true, [](Run& r) {
                 r.baseline();
                 const std::string id = healthy_v2(r);
                 crash_coordinator_after(r, id, "batch.started",
                                         static_cast<int>(r.between(1, 6).count()));
               }});
  s.push_back({"coordinator-kill-mid-bake",
               "kill -9 the coordinator right after a batch begins baking; restarted after up "
               "to 5 s",
               false, true, [](Run& r) {
                 r.baseline();
                 const std::string id = healthy_v2(r);
                 crash_coordinator_after(r, id, "batch.baking",
                                         static_cast<int>(r.between(1, 6).count()));
               }});
  s.push_back({"coordinator-kill-mid-rollback",
               "a release bad in r2; kill -9 the coordinator right after it starts the "
               "rollback; restarted after up to 5 s",
               false, true, [](Run& r) {
                 r.baseline();
                 const std::string id = degrading_v2(r, "r2");
                 crash_coordinator_after(r, id, "rollback.started", 1);
               }});
  s.push_back({"agents-restart-all",
               "kill -9 every agent at once as production's first wave runs; all restart "
               "after up to 3 s",
               false, false, [](Run& r) {
                 r.baseline();
                 const std::string id = healthy_v2(r);
                 must(r.wait_view(id,
                                  [](const json& v) {
                                    return in_production(v) && v.value("state", "") == "deploying";
                                  }),
                      "the deploy never reached production");
                 for (const auto& h : r.fleet().hosts()) r.fleet().kill_agent(h);
                 const auto down = r.between(200, 3000);
                 r.note("every agent killed (-9), down " + std::to_string(down.count()) + " ms");
                 std::this_thread::sleep_for(down);  // the fault's length
                 for (const auto& h : r.fleet().hosts()) r.fleet().start_agent(h);
                 r.note("every agent restarted");
                 r.wait_deploy(id);
               }});
  s.push_back({"region-degrades",
               "a release whose health degrades only in r2: production rolls back, staging "
               "keeps it",
               false, false, [](Run& r) {
                 r.baseline();
                 r.wait_deploy(degrading_v2(r, "r2"));
               }});
  s.push_back({"seed-lost",
               "kill -9 r2's seed as the deploy enters production; its hosts fetch from peers "
               "and the origin",
               false, false, [](Run& r) {
                 r.baseline();
                 const std::string id = healthy_v2(r);
                 must(r.wait_view(id, in_production), "the deploy never reached production");
                 r.fleet().kill_seed("r2");
                 r.note("seed of r2 killed (-9)");
                 r.wait_deploy(id);
               }});
  s.push_back({"region-partition",
               "cut r1 off from the coordinator for 5 to 15 s while its wave runs, then heal",
               true, true, [](Run& r) {
                 r.baseline();
                 const std::string id = healthy_v2(r);
                 must(r.wait_view(id, in_production), "the deploy never reached production");
                 Network& n = r.net();
                 const auto cut = Network::cut(n.subnet_cidr(2), n.address("coordinator"));
                 if (std::string e = n.set_rules("partition", cut); !e.empty())
                   throw std::runtime_error(e);
                 const auto length = r.between(5000, 15000);
                 r.note("r1 cut off from the coordinator for " + std::to_string(length.count()) +
                        " ms");
                 r.wait_deploy(id, {}, std::chrono::duration_cast<std::chrono::seconds>(length));
                 if (std::string e = n.set_rules("partition", {}); !e.empty())
                   throw std::runtime_error(e);
                 r.note("healed");
                 r.wait_deploy(id);
               }});
  s.push_back({"coordinator-partition-rollback",
               "a release bad in r2; the coordinator cut off from every host as the rollback "
               "starts, for 5 to 15 s",
               true, true, [](Run& r) {
                 r.baseline();
                 const std::string id = degrading_v2(r, "r2");
                 must(r.wait_view(id,
                                  [](const json& v) {
                                    return v.value("state", "") == "rolling_back" ||
                                           v.value("state", "") == "rolled_back";
                                  },
                                  240s),
                      "the deploy never rolled back");
                 Network& n = r.net();
                 std::vector<std::string> rules;
                 for (int subnet = 1; subnet <= 3; ++subnet) {
                   for (auto& rule : Network::cut(n.subnet_cidr(subnet), n.address("coordinator")))
                     rules.push_back(rule);
                 }
                 if (std::string e = n.set_rules("partition", rules); !e.empty())
                   throw std::runtime_error(e);
                 const auto length = r.between(5000, 15000);
                 r.note("coordinator cut off from every host for " +
                        std::to_string(length.count()) + " ms");
                 std::this_thread::sleep_for(length);  // the fault's length
                 if (std::string e = n.set_rules("partition", {}); !e.empty())
                   throw std::runtime_error(e);
                 r.note("healed");
                 r.wait_deploy(id);
               }});
  s.push_back({"slow-lossy-link",
               "r2's links shaped to 20 Mbit/s and 10% of packets between r2 and the rest "
               "dropped, for the whole deploy",
               true, false, [](Run& r) {
                 r.baseline();
                 Network& n = r.net();
                 std::vector<std::string> rules;
                 for (int subnet : {0, 1, 2}) {
                   for (auto& rule : Network::lossy(n.subnet_cidr(3), n.subnet_cidr(subnet), 10))
                     rules.push_back(rule);
                 }
                 if (std::string e = n.set_rules("lossy", rules); !e.empty())
                   throw std::runtime_error(e);
                 for (const auto& h : r.fleet().hosts_in("r2")) {
                   if (std::string e = n.shape(h, "20mbit"); !e.empty())
                     throw std::runtime_error(e);
                 }
                 r.note("r2 shaped to 20 Mbit/s, 10% loss to and from r2");
                 r.wait_deploy(healthy_v2(r));
                 (void)n.set_rules("lossy", {});
               }});
  return s;
}

}  // namespace

const std::vector<Scenario>& scenarios() {
  static const std::vector<Scenario> list = all();
  return list;
}

const Scenario* find_scenario(const std::string& name) {
  for (const auto& s : scenarios()) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

ScenarioResult run_scenario(const Scenario& s, const RunOptions& options) {
  ScenarioResult result;
  result.name = s.name;
  result.seed = options.seed;
  const auto began = std::chrono::steady_clock::now();
  std::unique_ptr<Network> net;
  std::string why = "--loopback";
  if (!options.loopback) net = Network::namespaces(3, &why);
  if (!net) {
    if (s.needs_namespaces) {
      result.skipped = true;
      result.skip_reason = "needs network namespaces: " + why;
      return result;
    }
    net = Network::loopback();
  }
  result.mode = net->isolated() ? "namespaces" : "loopback";
  testing::TempDir dir;
  try {
    FleetShape shape;
    shape.hosts_per_region = options.hosts_per_region;
    shape.planted_early_batch_ms = options.planted_early_batch_ms;
    Fleet fleet(dir.path(), *net, shape);
    Run run(fleet, s, options, result);
    try {
      s.body(run);
      run.check();
    } catch (const std::exception& e) {
      run.violate("run", s.name, e.what());
    }
  } catch (const std::exception& e) {
    result.violations.push_back({"setup", s.name, 0, e.what()});
  }
  result.pass = result.violations.empty();
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  if (options.keep || !result.pass) {
    // Keep the logs and configs (the files at the top of the run's directory).
    const fs::path kept = fs::temp_directory_path() /
                          ("drover-chaos-" + s.name + "-" + std::to_string(options.seed) + "-" +
                           std::to_string(::getpid()));
    std::error_code ec;
    fs::create_directories(kept, ec);
    for (const auto& e : fs::directory_iterator(dir.path(), ec)) {
      if (e.is_regular_file() && e.file_size() < (1 << 24)) {
        fs::copy_file(e.path(), kept / e.path().filename(), ec);
      }
    }
    result.dir = kept.string();
  }
  return result;
}

}  // namespace drover::chaos
