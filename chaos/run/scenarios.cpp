// The scenarios of `drover-chaos run` (docs/CHAOS.md, "Scenarios"). Each
// starts from v1 running everywhere (Run::baseline), deploys v2 through the
// pipeline, strikes while it runs, and says what every host must run at the
// end and how the deploy must end; Run::check holds the run to that and to
// the invariants.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>

#include "chaos/run/run.hpp"
#include "core/http/http.hpp"

namespace drover::chaos {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// v2 healthy everywhere: it must succeed and run everywhere.
std::string healthy_v2(Run& r, std::string* artifact = nullptr) {
  const std::string v2 = r.push_v2();
  if (artifact) *artifact = v2;
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

// Production's first wave (r1) is rolling out.
bool in_canary_wave(const json& v) {
  const std::string state = v.value("state", "");
  return v.value("env", "") == "production" && v.value("wave", "") == "canary" &&
         (state == "deploying" || state == "baking");
}

bool in_production(const json& v) {
  return v.value("env", "") == "production";
}

void must(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what);
}

// Kills the agent of each of `kills` hosts when it emits `event` for the new
// release, and starts it again after a drawn delay.
void kill_agents_at(Run& r, const std::string& event, int kills) {
  std::string v2;
  const std::string id = healthy_v2(r, &v2);
  std::set<std::string> struck;
  for (int i = 0; i < kills; ++i) {
    std::string host;
    if (!r.wait_agent_line(
            [&](const std::string& h, const json& l) {
              return !struck.count(h) && l.value("event", "") == event &&
                     l.value("artifact", "") == v2;
            },
            &host, 120s)) {
      throw std::runtime_error("only " + std::to_string(i) + " agents reached '" + event +
                               "' for v2: the fault did not happen as drawn");
    }
    struck.insert(host);
    r.fleet().kill_agent(host);
    const auto down = r.between(200, 3000);
    r.note("agent " + host + " killed (-9) at '" + event + "', down " +
           std::to_string(down.count()) + " ms");
    r.pause(down);  // the fault's length
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
  // Gates are approved meanwhile, so the deploy goes on toward the point.
  bool crashed = false;
  for (int i = 0; i < 900 && !crashed; ++i) {
    crashed = f.wait_coordinator_exit(0s);
    if (!crashed) {
      f.approve_waiting();
      r.pause(200ms);  // the poll period
    }
  }
  if (!crashed) throw std::runtime_error("the crash point was never reached: no fault happened");
  r.note("coordinator crashed after '" + what + "'");
  const auto down = r.between(500, 5000);
  r.pause(down);  // the fault's length
  f.start_coordinator();
  r.note("coordinator restarted after " + std::to_string(down.count()) + " ms");
  r.wait_deploy(id);
}

// Restarts host's agent with its clock moved by offset (faketime's syntax)
// and deploys a healthy release. drover requires hosts' clocks within the
// coordinator's max_clock_skew (5 min; docs/CHAOS.md, "Clock skew"): the
// skewed host is refused, naming its clock, keeps running what it ran, and
// the deploy rolls back where that host is (its batch cannot converge).
void skewed(Run& r, const std::string& host, const std::string& offset) {
  const char* lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
  if (::access(lib, R_OK) != 0)
    throw std::runtime_error(std::string("no ") + lib + " (Debian package faketime)");
  r.baseline();
  Fleet& f = r.fleet();
  f.stop_agent(host);
  f.start_agent(host, {{"LD_PRELOAD", lib}, {"FAKETIME", offset}});
  r.note("agent " + host + " restarted with its clock at " + offset);
  const std::string v2 = r.push_v2();
  const std::string id = r.deploy(v2);
  // Staging keeps v2 unless the skewed host is in staging.
  const bool in_staging = f.region_of(host) == kStaging;
  for (const auto& h : f.hosts()) {
    r.expect(h, !in_staging && f.region_of(h) == kStaging ? v2 : r.v1());
  }
  r.expect_outcome(id, "rolled_back");
  r.wait_deploy(id);
  // The skew took effect: the agent stamped its log lines by its own clock.
  const std::string log = testing::read_file(f.dir() / (host + "-2.err"));
  const auto at = log.rfind("ts=");
  std::tm tm{};
  must(at != std::string::npos && ::strptime(log.c_str() + at + 3, "%Y-%m-%dT%H:%M:%S", &tm),
       "the skewed agent logged nothing");
  const auto skew = static_cast<long>(::timegm(&tm)) - static_cast<long>(std::time(nullptr));
  r.note("the agent's clock is " + std::to_string(skew) + " s off");
  const long want = offset == "+1d" ? 86400 : offset == "-1h" ? -3600 : 0;
  must(std::labs(skew - want) < 600, "the skew did not take effect");
  // And the refusal named the clock, so an operator knows what to fix.
  must(log.find("check the host's clock") != std::string::npos,
       "the skewed host was not told to check its clock");
  r.note("the coordinator refused " + host + ", naming its clock");
}

void forged_plans(Run& r) {
  r.baseline();
  Fleet& f = r.fleet();
  const fs::path dir = f.dir();
  // The backup: the real coordinator's state as it is now, before v2.
  f.stop_coordinator();
  fs::copy(dir / "coordinator", dir / "coordinator-backup", fs::copy_options::recursive);
  fs::copy(dir / "coordinator", dir / "coordinator-rogue", fs::copy_options::recursive);
  f.start_coordinator();
  // The rogue's keys: a root of its own, and an online key it certified.
  const std::string drover = testing::binary("drover").string();
  for (const auto& argv : std::vector<std::vector<std::string>>{
           {drover, "keygen", "--out", (dir / "rogue-root.key").string()},
           {drover, "keygen", "--out", (dir / "rogue-online.key").string()},
           {drover, "key", "certify", "--root", (dir / "rogue-root.key").string(), "--subject",
            (dir / "rogue-online.key.pub").string(), "--out",
            (dir / "rogue-online.cert").string()}}) {
    testing::ProcessResult p = testing::run(argv);
    if (p.exit_code != 0) throw std::runtime_error("rogue keys: " + p.err);
  }
  json config = json::parse(testing::read_file(dir / "coordinator.json"));
  json rogue = config, backup = config;
  rogue["data_dir"] = (dir / "coordinator-rogue").string();
  rogue["online_key"] = (dir / "rogue-online.key").string();
  rogue["online_cert"] = (dir / "rogue-online.cert").string();
  backup["data_dir"] = (dir / "coordinator-backup").string();
  testing::write_file(dir / "rogue.json", rogue.dump(2));
  testing::write_file(dir / "backup.json", backup.dump(2));
  const std::string evil = f.push("evil", {{"error_rate", 0.01}, {"p99_ms", 10}});
  r.note("pushed evil " + evil.substr(0, 19) + ", which no deploy of the real coordinator names");
  const std::string id = healthy_v2(r);
  must(r.wait_view(id, in_production), "the deploy never reached production");
  f.stop_coordinator();
  f.start_coordinator({}, dir / "rogue.json");
  r.note("the rogue coordinator took the agents' address");
  int status = 0;
  testing::eventually(
      [&] {
        f.api("GET", "/artifacts/" + evil, nullptr, &status);
        return status == 200;
      },
      30s);
  // What the agents said during a window: refusals by kind, and any switch.
  std::map<std::string, std::size_t> mark;
  auto begin_window = [&] {
    for (const auto& h : f.hosts()) mark[h] = f.agent(h) ? f.agent(h)->lines().size() : 0;
  };
  auto end_window = [&](const std::string& who) {
    std::map<std::string, int> refused;
    for (const auto& h : f.hosts()) {
      testing::DaemonProcess* a = f.agent(h);
      if (a == nullptr) continue;
      const auto lines = a->lines();
      for (std::size_t i = mark[h]; i < lines.size(); ++i) {
        const std::string event = lines[i].value("event", "");
        if (event == "plan_refused") ++refused[lines[i].value("kind", "?")];
        if (event == "switching" || event == "applied")
          r.violate("planned_only", h, "switched while " + who + " held its address");
      }
    }
    std::string said;
    for (const auto& [kind, n] : refused) said += " " + kind + " x" + std::to_string(n);
    r.note("refused while " + who + " held the address:" + (said.empty() ? " nothing" : said));
    return refused;
  };
  json d = f.api("POST", "/deploys", {{"pipeline_id", "web"}, {"artifact_id", evil}}, &status);
  must(status == 201, "the rogue did not start its deploy: " + d.dump());
  r.note("the rogue deploys evil: " + d.value("deploy_id", ""));
  begin_window();
  r.pause(10s);  // the fault's length
  f.stop_coordinator();
  const auto forged = end_window("the rogue");
  must(!forged.empty(), "no agent was offered the rogue's plan: the scenario proved nothing");
  f.start_coordinator({}, dir / "backup.json");
  r.note("an old backup of the real coordinator took the agents' address");
  begin_window();
  r.pause(10s);  // the fault's length
  f.stop_coordinator();
  const auto stale = end_window("the old backup");
  must(stale.count("replay_refused") > 0,
       "no agent was offered the backup's stale plans: the scenario proved nothing");
  f.start_coordinator();
  r.note("the real coordinator is back");
  r.wait_deploy(id);
}

void announce_flood(Run& r) {
  r.baseline();
  Fleet& f = r.fleet();
  const std::string flooder = f.hosts_in("r1").back();  // an enrolled host, gone rogue
  const fs::path token = f.dir() / "flood.token";
  testing::ProcessResult t =
      testing::run({testing::binary("drover").string(), "mesh", "token", "--key-file",
                    (f.dir() / "mesh.key").string(), "--role", "peer", "--region", "r1", "--host",
                    flooder, "--out", token.string()});
  if (t.exit_code != 0) throw std::runtime_error("flood token: " + t.err);
  std::string own = testing::read_file(token);
  while (!own.empty() && own.back() == '\n') own.pop_back();
  const std::string id = healthy_v2(r);
  std::atomic<bool> flooding{true};
  std::atomic<std::uint64_t> sent{0}, answered{0};
  std::vector<std::thread> flood;
  // However the deploy ends (or the run is interrupted), the flood stops first.
  struct Join {
    std::atomic<bool>& on;
    std::vector<std::thread>& threads;
    ~Join() {
      on = false;
      for (auto& t : threads) t.join();
    }
  } join{flooding, flood};
  for (int i = 0; i < 4; ++i) {
    flood.emplace_back([&, i] {
      r.net().run_in(flooder, [&] {
        std::mt19937_64 rng(static_cast<std::uint64_t>(i) * 7919 + 1);
        while (flooding) {
          std::string hash;
          for (int b = 0; b < 20; ++b) {
            char hex[4];
            std::snprintf(hex, sizeof hex, "%%%02x", static_cast<unsigned>(rng() & 0xff));
            hash += hex;
          }
          const std::string tok = (rng() & 1) ? own : "dmt1.forged" + std::to_string(rng());
          auto a = http::request("GET",
                                 f.tracker_url() +
                                     "/announce?role=peer&region=r1&cluster=c1"
                                     "&host=" +
                                     flooder + "&token=" + http::percent_encode(tok) +
                                     "&info_hash=" + hash + "&peer_id=-DR0001-chaosflood00&port=" +
                                     std::to_string(6881 + i) + "&uploaded=0&downloaded=0&left=0",
                                 "", 2s);
          ++sent;
          if (a.ok()) ++answered;
        }
      });
    });
  }
  r.note("flooding the tracker from " + flooder + " (4 connections at a time)");
  r.wait_deploy(id);
  flooding = false;
  r.note(std::to_string(sent.load()) + " announces sent, " + std::to_string(answered.load()) +
         " answered");
  must(answered > 0, "the tracker answered none of the flood: it never reached the tracker");
}

void corrupt_seed(Run& r) {
  r.baseline();
  Fleet& f = r.fleet();
  const fs::path layers = f.dir() / "seed-r1" / "layers";
  std::set<fs::path> before;
  for (const auto& e : fs::directory_iterator(layers)) before.insert(e.path());
  const std::string v2 = r.push_v2();
  must(f.seed("r1")
           ->wait_for(
               [&](const json& l) {
                 return l.value("event", "") == "replicated" && l.value("artifact", "") == v2;
               },
               60s)
           .has_value(),
       "r1's seed never replicated v2");
  int rotted = 0;
  for (const auto& e : fs::directory_iterator(layers)) {
    if (before.count(e.path()) || !e.is_regular_file()) continue;
    std::fstream file(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    const std::string junk(e.file_size(), '\x5a');  // same size: only the bytes rot
    file.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    file.close();
    must(!file.fail(), "cannot rot " + e.path().string());
    ++rotted;
  }
  must(rotted > 0, "found none of v2's layers at r1's seed");
  r.note("r1's seed's copy of v2 rotted (" + std::to_string(rotted) + " layers)");
  const std::string id = r.deploy(v2);
  r.expect_everywhere(v2);
  r.expect_outcome(id, "succeeded");
  r.wait_deploy(id);
  // Some host must have been served the rotted bytes (a piece failed its
  // hash), or the scenario proved nothing.
  int failures = 0;
  for (const auto& h : f.hosts()) {
    const std::string log = testing::read_file(f.dir() / (h + "-1.err"));
    for (std::size_t at = 0; (at = log.find("mesh.piece.hash_failed", at)) != std::string::npos;
         ++at)
      ++failures;
  }
  r.note(std::to_string(failures) + " pieces failed their hash at the hosts");
  must(failures > 0, "no host was served the rotted bytes: the scenario proved nothing");
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
                 must(r.wait_view(id, [](const json& v) { return in_canary_wave(v); }),
                      "the deploy never reached production");
                 for (const auto& h : r.fleet().hosts()) r.fleet().kill_agent(h);
                 const auto down = r.between(200, 3000);
                 r.note("every agent killed (-9), down " + std::to_string(down.count()) + " ms");
                 r.pause(down);  // the fault's length
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
               "cut r1 off from the coordinator for 5 to 15 s while its wave runs, then heal", true,
               true, [](Run& r) {
                 r.baseline();
                 const std::string id = healthy_v2(r);
                 must(r.wait_view(id, in_canary_wave), "the deploy never reached r1's wave");
                 Network& n = r.net();
                 const auto cut = Network::cut(n.subnet_cidr(2), n.address("coordinator"));
                 if (std::string e = n.set_rules("partition", cut); !e.empty())
                   throw std::runtime_error(e);
                 const auto length = r.between(5000, 15000);
                 r.note("r1 cut off from the coordinator for " + std::to_string(length.count()) +
                        " ms");
                 r.pause(length);  // the fault's length
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
                 must(r.wait_view(
                          id,
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
                 // The cut must land while the rollback runs, or nothing was tested.
                 int status = 0;
                 must(r.fleet().api("GET", "/deploys/" + id, nullptr, &status).value("state", "") ==
                          "rolling_back",
                      "the rollback ended before the cut: the fault did not happen");
                 const auto length = r.between(5000, 15000);
                 r.note("coordinator cut off from every host for " +
                        std::to_string(length.count()) + " ms");
                 r.pause(length);  // the fault's length
                 if (std::string e = n.set_rules("partition", {}); !e.empty())
                   throw std::runtime_error(e);
                 r.note("healed");
                 r.wait_deploy(id);
               }});
  s.push_back({"slow-lossy-link",
               "r2's links shaped to 20 Mbit/s, 10% of packets between r2 and the rest "
               "dropped, and 100 ms each way between r2 and the coordinator, for the whole deploy",
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
                 // 100 ms more each way between r2 and the coordinator.
                 if (std::string e = n.delay("slow", n.subnet_cidr(3), n.address("coordinator"),
                                             r.fleet().agent_protocol_ports(), 100ms);
                     !e.empty())
                   throw std::runtime_error(e);
                 r.note(
                     "r2 shaped to 20 Mbit/s, 10% loss to and from r2, 100 ms each way "
                     "between r2 and the coordinator");
                 r.wait_deploy(healthy_v2(r));
                 const Relay* relay = n.relay("slow");
                 r.note("the relay held " + std::to_string(relay->connections()) +
                        " connections; each chunk " + std::to_string(relay->held_min_ms()) + "-" +
                        std::to_string(relay->held_max_ms()) + " ms");
                 must(relay->connections() > 0, "no flow went through the delay relay");
                 (void)n.set_rules("lossy", {});
                 (void)n.delay("slow", "", "", {}, 0ms);
               }});
  Scenario disk{"disk-full-mid-fetch",
                "stg-h1's disk fills up as it fetches the new release: the deploy rolls back with "
                "nothing half-written; with room again, the next deploy succeeds",
                false, false, [](Run& r) {
                  r.baseline();
                  Fleet& f = r.fleet();
                  f.resize_small_disk("stg-h1", f.small_disk_used("stg-h1") + (1 << 20));
                  r.note("stg-h1's disk has 1 MiB left; the release is " +
                         std::to_string(f.artifact_bytes() >> 20) + " MiB");
                  const std::string v2 = r.push_v2();
                  const std::string first = r.deploy(v2);
                  r.expect_everywhere(r.v1());
                  r.expect_outcome(first, "rolled_back");
                  r.wait_deploy(first);
                  f.resize_small_disk("stg-h1", 64 << 20);
                  r.note("stg-h1's disk has room again");
                  const std::string second = r.deploy(v2);
                  r.expect_everywhere(v2);
                  r.expect_outcome(second, "succeeded");
                  r.wait_deploy(second);
                }};
  disk.small_disks = {"stg-h1"};
  s.push_back(disk);
  s.push_back({"clock-ahead-day",
               "r1-h1's clock runs a day ahead (faketime): refused naming its clock, production "
               "rolls back",
               false, false, [](Run& r) { skewed(r, "r1-h1", "+1d"); }});
  s.push_back({"clock-behind-hour",
               "stg-h1's clock runs an hour behind (faketime): refused naming its clock, the "
               "deploy rolls back",
               false, false, [](Run& r) { skewed(r, "stg-h1", "-1h"); }});
  s.push_back({"forged-plans",
               "mid-deploy, a rogue coordinator (the real one's TLS key, host keys and state, "
               "an online key no root certified) deploys a release nobody planned, then an old "
               "backup of the real one offers stale plans; 10 s each",
               false, false, forged_plans});
  s.push_back({"announce-flood",
               "an enrolled host floods the tracker with announces (its own token and forged "
               "ones, random swarms) through a whole deploy",
               false, false, announce_flood});
  s.push_back({"corrupt-seed",
               "r1's seed serves corrupt bytes of the new release (its copy rots after it "
               "verified it); r1's hosts must ban it and fetch elsewhere",
               false, false, corrupt_seed});
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
  if (!s.small_disks.empty() && ::geteuid() != 0) {
    result.skipped = true;
    result.skip_reason = "needs root to mount a small disk";
    return result;
  }
  result.mode = net->isolated() ? "namespaces" : "loopback";
  testing::TempDir dir;
  try {
    FleetShape shape;
    shape.hosts_per_region = options.hosts_per_region;
    shape.planted_early_batch_ms = options.planted_early_batch_ms;
    shape.small_disks = s.small_disks;
    Fleet fleet(dir.path(), *net, shape);
    Run run(fleet, s, options, result);
    try {
      s.body(run);
      run.check();
    } catch (const std::exception& e) {
      run.violate("run", s.name, e.what());
    }
    if (!result.violations.empty() || options.keep) fleet.save_events();
  } catch (const std::exception& e) {
    result.violations.push_back({"setup", s.name, 0, e.what()});
  }
  result.pass = result.violations.empty();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  if (options.keep || !result.pass) {
    // Keep the logs and configs (the files at the top of the run's directory).
    const fs::path kept =
        fs::temp_directory_path() / ("drover-chaos-" + s.name + "-" + std::to_string(options.seed) +
                                     "-" + std::to_string(::getpid()));
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
