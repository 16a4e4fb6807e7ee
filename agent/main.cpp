// drover-agent: the host agent daemon, and the commands an operator runs
// beside it.
//
//   drover-agent run --config FILE [--log-level L]
//   drover-agent status (--config FILE | --state DIR) [--json]
//   drover-agent hand-over (--config FILE | --state DIR) BUNDLE_FILE
#include <malloc.h>
#include <unistd.h>

#include <cxxopts.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "agent/agent.hpp"
#include "agent/privileges.hpp"
#include "core/daemon/daemon.hpp"
#include "core/daemon/data_dir_lock.hpp"
#include "core/http/http.hpp"
#include "core/log/log.hpp"

namespace {

using namespace drover;
using nlohmann::json;

int usage(const std::string& what) {
  std::cerr << "drover-agent: " << what << "\nrun 'drover-agent --help' for usage\n";
  return 2;
}

int fail(const std::string& what) {
  std::cerr << "drover-agent: " << what << "\n";
  return 1;
}

constexpr const char* kHelp =
    "drover-agent: the drover host agent\n\n"
    "  drover-agent run --config FILE [--log-level debug|info|warn|error]\n"
    "  drover-agent status (--config FILE | --state DIR) [--json]\n"
    "  drover-agent hand-over (--config FILE | --state DIR) BUNDLE_FILE\n\n"
    "See docs/AGENT.md.\n";

// The state directory named by --state, or by the config file.
Result<fs::path> state_dir(const cxxopts::ParseResult& r) {
  if (r.count("state")) return fs::path(r["state"].as<std::string>());
  if (!r.count("config"))
    return make_error(Errc::invalid_argument, "give --config FILE or --state DIR");
  // Only the state directory: a local user may ask the status of an agent
  // whose services run as users they could not name themselves.
  PosixFilesystem fsys;
  const std::string path = r["config"].as<std::string>();
  auto text = fsys.read_file(path, 1 << 20);
  if (!text.ok()) return text.error().context("agent config");
  auto c = agent::parse_config(*text);
  if (!c.ok()) return c.error().context(path);
  return c->state_dir;
}

Result<std::string> control_url(const fs::path& state) {
  PosixFilesystem fsys;
  auto text = fsys.read_file(state / "control.json", 4096);
  if (!text.ok()) {
    return make_error(Errc::not_found, "no agent runs with state " + state.string() + " (" +
                                           text.error().message + ")");
  }
  json j = json::parse(*text, nullptr, false);
  if (!j.is_object() || !j.contains("port")) {
    return make_error(Errc::corrupt, (state / "control.json").string() + " is unreadable");
  }
  return "http://127.0.0.1:" + std::to_string(j["port"].get<int>());
}

void print_status(const json& s) {
  const json& c = s["coordinator"];
  std::cout << "host " << s["host"].get<std::string>() << " (region "
            << s["region"].get<std::string>() << ", cluster " << s["cluster"].get<std::string>()
            << ")\ncoordinator: " << (c["reachable"].get<bool>() ? "reachable" : "unreachable")
            << (c["enrolled"].get<bool>() ? ", enrolled" : ", not enrolled") << "\n";
  for (const auto& [name, v] : s["services"].items()) {
    std::cout << "service " << name << "\n  current   " << v["current"].get<std::string>()
              << "\n  previous  ";
    for (const auto& p : v["previous"]) std::cout << p.get<std::string>() << " ";
    std::cout << "\n  plan seq  " << v["seq"] << " (" << v["seq_state"].get<std::string>() << ")"
              << "\n  phase     " << v["phase"].get<std::string>();
    const json& f = v["fetch"];
    if (f["layers"].get<int>() > 0) {
      std::cout << " (fetched " << f["layers_held"] << "/" << f["layers"] << " layers, "
                << f["bytes_held"] << "/" << f["bytes"] << " bytes)";
    }
    for (const auto& p : v["processes"]) {
      std::cout << "\n  process   " << p["state"].get<std::string>() << " pid " << p["pid"];
      if (!p["slot"].get<std::string>().empty())
        std::cout << " slot " << p["slot"].get<std::string>();
    }
    if (v["last_health"].is_object()) {
      const json& h = v["last_health"];
      std::cout << "\n  health    " << (h["ok"].get<bool>() ? "ok" : "NOT OK") << " error_rate "
                << h["error_rate"] << " p99_ms " << h["p99_ms"] << " saturation "
                << h["saturation"];
      if (!h["error"].get<std::string>().empty())
        std::cout << " (" << h["error"].get<std::string>() << ")";
    }
    if (!v["last_error"].get<std::string>().empty()) {
      std::cout << "\n  last error " << v["last_error"].get<std::string>();
    }
    std::cout << "\n";
  }
  std::cout << "reports buffered " << s["reports"]["buffered"] << ", dropped "
            << s["reports"]["dropped"] << "\nmesh port " << s["mesh"]["port"] << ", "
            << s["mesh"]["layers_held"] << " layers held and seeded\n";
}

int run_agent(const cxxopts::ParseResult& r) {
  if (!r.count("config")) return usage("run needs --config FILE");
  LogLevel level = LogLevel::info;
  if (!parse_log_level(r["log-level"].as<std::string>(), level)) {
    return usage("bad --log-level '" + r["log-level"].as<std::string>() + "'");
  }
  PosixFilesystem fsys;
  auto config = agent::load_config(fsys, r["config"].as<std::string>());
  if (!config.ok()) return fail(config.error().message);
  // As root, the agent keeps only the capabilities it needs (docs/AGENT.md,
  // "Users and privileges"): before any thread exists, as they are per thread.
  if (Status st = agent::bound_capabilities(); !st.ok()) return fail(st.error().message);
  // One agent per state directory (docs/AGENT.md), claimed before the state
  // is opened and held until exit. Its services do not inherit the claim.
  auto claim = daemon::DataDirLock::acquire(config->state_dir, "drover-agent");
  if (!claim.ok()) {
    daemon::emit_line({{"event", "failed"}, {"error", claim.error().message}});
    return 1;
  }
  daemon::install_stop_signals();
  // Layers pass through memory in buffers of up to 64 MiB while a release is
  // unpacked. glibc would serve them from its heap after the first one (its
  // mmap threshold grows) and keep that memory after they are freed; a fixed
  // threshold hands every large buffer back to the kernel when freed, so an
  // idle agent stays small (docs/BENCHMARKS.md).
  mallopt(M_MMAP_THRESHOLD, 256 << 10);
  StderrSink sink;
  SystemClock clock;
  Logger log(sink, clock, level);
  PosixFilesystem world_fs;
  SystemRandom random;
  agent::HttpHealthProbe probe;
  agent::PosixProcessHost processes(world_fs, log);
  auto a =
      agent::Agent::start(*config, {clock, world_fs, random, probe, processes}, log,
                          [](const std::string& line) { daemon::emit_line(json::parse(line)); });
  if (!a.ok()) {
    daemon::emit_line({{"event", "failed"}, {"error", a.error().message}});
    return 1;
  }
  daemon::emit_line({{"event", "ready"},
                     {"control_port", (*a)->control_port()},
                     {"mesh_port", (*a)->mesh_port()},
                     {"metrics_port", (*a)->metrics_port()},
                     {"pid", ::getpid()}});
  // Asleep until SIGTERM or SIGINT (the agent's own threads do the work).
  daemon::wait_for_stop(std::chrono::steady_clock::time_point::max());
  a->reset();
  daemon::emit_line({{"event", "stopped"}});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << kHelp;
    return argc < 2 ? 2 : 0;
  }
  const std::string verb = argv[1];
  cxxopts::Options o("drover-agent " + verb, "");
  o.add_options()("config", "agent config file", cxxopts::value<std::string>())(
      "state", "agent state directory", cxxopts::value<std::string>())("json", "print JSON")(
      "log-level", "debug, info, warn or error",
      cxxopts::value<std::string>()->default_value("info"))("h,help", "help");
  cxxopts::ParseResult r;
  try {
    r = o.parse(argc - 1, argv + 1);
  } catch (const cxxopts::exceptions::exception& e) {
    return usage(e.what());
  }
  if (r.count("help")) return std::cout << kHelp, 0;
  if (verb == "run") {
    if (!r.unmatched().empty()) return usage("unexpected argument '" + r.unmatched().front() + "'");
    return run_agent(r);
  }
  if (verb == "status") {
    if (!r.unmatched().empty()) return usage("unexpected argument '" + r.unmatched().front() + "'");
    auto state = state_dir(r);
    if (!state.ok()) return usage(state.error().message);
    auto url = control_url(*state);
    if (!url.ok()) return fail(url.error().message);
    auto resp = http::request("GET", *url + "/v1/status", "", std::chrono::seconds(5));
    if (!resp.ok()) return fail("status: " + resp.error().message);
    if (resp->status != 200) return fail("status: HTTP " + std::to_string(resp->status));
    json s = json::parse(resp->body, nullptr, false);
    if (s.is_discarded()) return fail("status: the agent answered something that is not JSON");
    if (r.count("json")) {
      std::cout << s.dump() << "\n";
    } else {
      print_status(s);
    }
    return 0;
  }
  if (verb == "hand-over") {
    if (r.unmatched().size() != 1) return usage("hand-over needs one BUNDLE_FILE");
    auto state = state_dir(r);
    if (!state.ok()) return usage(state.error().message);
    PosixFilesystem fsys;
    auto bundle = fsys.read_file(r.unmatched().front(), 600ull << 20);
    if (!bundle.ok()) return fail(bundle.error().message);
    auto url = control_url(*state);
    if (!url.ok()) return fail(url.error().message);
    auto resp = http::request("POST", *url + "/v1/plans", *bundle, std::chrono::seconds(30));
    if (!resp.ok()) return fail("hand-over: " + resp.error().message);
    if (resp->status != 202) return fail("hand-over refused: " + resp->body);
    std::cout << "queued; the agent checks it like any plan (see drover-agent status)\n";
    return 0;
  }
  return usage("unknown command '" + verb + "'");
}
