// drover-coordinator: the daemon, and the commands an operator runs beside
// it on the same machine (they open the same LMDB state; LMDB lets several
// processes share it). Only the daemon claims the data directory: a second
// daemon on it is refused.
//
//   drover-coordinator run --config FILE [--log-level L]
//   drover-coordinator token create NAME --role ROLE [--person P] --data-dir DIR
//   drover-coordinator token revoke NAME --data-dir DIR
//   drover-coordinator join-token create [--uses N] [--ttl S] --data-dir DIR
//   drover-coordinator join-token ls|revoke ID --data-dir DIR
//   drover-coordinator audit verify --data-dir DIR
#include <unistd.h>

#include <cstdlib>
#include <cxxopts.hpp>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "coordinator/config/config.hpp"
#include "coordinator/store/lmdb_coordinator_store.hpp"
#include "core/daemon/daemon.hpp"
#include "core/daemon/data_dir_lock.hpp"
#include "core/log/log.hpp"
#include "core/metrics/endpoint.hpp"

namespace {

using namespace drover;
using namespace drover::coordinator;
using nlohmann::json;

constexpr const char* kHelp =
    "drover-coordinator: decides, signs and records drover deploys\n\n"
    "  drover-coordinator run --config FILE [--log-level debug|info|warn|error]\n"
    "  drover-coordinator token create NAME --role viewer|deployer|approver|admin [--person P]\n"
    "      --data-dir DIR\n"
    "  drover-coordinator token revoke NAME --data-dir DIR\n"
    "  drover-coordinator join-token create [--uses N] [--ttl SECONDS] --data-dir DIR\n"
    "  drover-coordinator join-token ls --data-dir DIR\n"
    "  drover-coordinator join-token revoke ID --data-dir DIR\n"
    "  drover-coordinator audit verify --data-dir DIR\n\n"
    "See docs/COORDINATOR.md and docs/API.md.\n";

int usage(const std::string& what) {
  std::cerr << "drover-coordinator: " << what << "\nrun 'drover-coordinator --help' for usage\n";
  return 2;
}

int fail(const std::string& what) {
  std::cerr << "drover-coordinator: " << what << "\n";
  return 1;
}

int run(const cxxopts::ParseResult& r) {
  if (!r.count("config")) return usage("run needs --config FILE");
  LogLevel level = LogLevel::info;
  if (!parse_log_level(r["log-level"].as<std::string>(), level)) {
    return usage("bad --log-level '" + r["log-level"].as<std::string>() + "'");
  }
  PosixFilesystem fsys;
  auto config = load_coordinator_config(fsys, r["config"].as<std::string>());
  if (!config.ok()) return fail(config.error().message);
  // A test's crash point (docs/COORDINATOR.md, "Crash tests"): WHAT[:N].
  if (const char* crash = std::getenv("DROVER_TEST_CRASH_AFTER")) {
    std::string spec = crash;
    const auto colon = spec.find(':');
    config->coordinator.crash_after = spec.substr(0, colon);
    if (colon != std::string::npos)
      config->coordinator.crash_count = std::atoi(spec.c_str() + colon + 1);
  }
  // The planted early batch of a chaos test (docs/CHAOS.md, "Planted bugs").
  if (const char* early = std::getenv("DROVER_TEST_EARLY_BATCH_MS")) {
    config->coordinator.planted_early_batch_ms = std::atoll(early);
  }
  // One daemon per data directory (docs/COORDINATOR.md), claimed before the
  // state is opened and held until exit; the offline commands never claim it.
  auto claim = daemon::DataDirLock::acquire(config->coordinator.data_dir, "drover-coordinator");
  if (!claim.ok()) {
    daemon::emit_line({{"event", "failed"}, {"error", claim.error().message}});
    return 1;
  }
  daemon::install_stop_signals();
  StderrSink sink;
  SystemClock clock;
  SystemRandom random;
  Logger log(sink, clock, level);
  auto c = Coordinator::start(config->coordinator, clock, random, log);
  if (!c.ok()) {
    daemon::emit_line({{"event", "failed"}, {"error", c.error().message}});
    return 1;
  }
  auto api = HttpApi::start(**c, config->api, log);
  if (!api.ok()) {
    daemon::emit_line({{"event", "failed"}, {"error", api.error().message}});
    return 1;
  }
  nlohmann::json ready{{"event", "ready"},
                       {"api", (*api)->url()},
                       {"agents_requests", (*c)->agent_requests_url()},
                       {"agents_announcements", (*c)->agent_announcements_url()},
                       {"tracker", (*c)->tracker_url()},
                       {"pid", ::getpid()}};
  std::unique_ptr<http::Server> metrics_server;
  if (!config->metrics_listen.empty()) {
    auto served = metrics::serve(config->metrics_listen, (*c)->metrics(), log);
    if (!served.ok()) {
      daemon::emit_line(
          {{"event", "failed"}, {"error", "metrics.listen: " + served.error().message}});
      return 1;
    }
    metrics_server = std::move(*served);
    std::string host = http::parse_listen(config->metrics_listen)->first;
    if (host.find(':') != std::string::npos) host = "[" + host + "]";  // IPv6
    ready["metrics"] = "http://" + host + ":" + std::to_string(metrics_server->port()) + "/metrics";
  }
  daemon::emit_line(ready);
  while (!daemon::wait_for_stop(std::chrono::steady_clock::now() + std::chrono::seconds(3600))) {
  }
  metrics_server.reset();
  api->reset();
  c->reset();
  daemon::emit_line({{"event", "stopped"}});
  return 0;
}

// The offline commands: open the state directly.
int offline(const std::string& verb, const std::vector<std::string>& words,
            const cxxopts::ParseResult& r) {
  if (!r.count("data-dir")) return usage(verb + " needs --data-dir DIR");
  auto store = LmdbCoordinatorStore::open(r["data-dir"].as<std::string>());
  if (!store.ok()) return fail(store.error().message);
  SystemRandom random;
  SystemClock clock;
  const std::int64_t now = unix_seconds(clock.now());
  const std::string who =
      "local:" + std::string(std::getenv("USER") ? std::getenv("USER") : "root");
  auto audit = [&](const std::string& what, const json& detail) {
    AuditRecord a;
    a.at_ms = now * 1000;
    a.who = who;
    a.what = what;
    a.detail = detail.dump();
    return (*store)->append_audit(a);
  };
  if (verb == "token") {
    if (words.size() != 2) return usage("token create|revoke NAME");
    TokenStore tokens(**store);
    if (words[0] == "create") {
      if (!r.count("role")) return usage("token create needs --role ROLE");
      auto role = parse_role(r["role"].as<std::string>());
      if (!role.ok()) return usage(role.error().message);
      std::optional<std::string> person;
      if (r.count("person")) person = r["person"].as<std::string>();
      auto token = tokens.create(words[1], *role, now, random, person);
      if (!token.ok()) return fail(token.error().message);
      if (auto st = audit("token.created", {{"name", words[1]},
                                            {"role", role_name(*role)},
                                            {"person", person.value_or(words[1])}});
          !st.ok()) {
        return fail(st.error().message);
      }
      std::cout << *token << "\n";
      return 0;
    }
    if (words[0] == "revoke") {
      if (auto st = tokens.revoke(words[1]); !st.ok()) return fail(st.error().message);
      if (auto st = audit("token.revoked", {{"name", words[1]}}); !st.ok()) {
        return fail(st.error().message);
      }
      return 0;
    }
    return usage("token takes create or revoke, not '" + words[0] + "'");
  }
  if (verb == "join-token") {
    if (words.size() == 1 && words[0] == "create") {
      CoordinatorStore::JoinTokenSpec spec;
      if (r.count("uses")) spec.uses = r["uses"].as<std::uint64_t>();
      if (r.count("ttl")) spec.ttl_s = r["ttl"].as<std::int64_t>();
      if (spec.uses < 1 || spec.ttl_s < 60) return usage("join-token: --uses >= 1, --ttl >= 60");
      auto token = (*store)->create_join_token(who, now, random, spec);
      if (!token.ok()) return fail(token.error().message);
      if (auto st = audit(
              "join_token.created",
              {{"id", token->id}, {"expires_at", token->expires_at}, {"uses", token->uses_left}});
          !st.ok()) {
        return fail(st.error().message);
      }
      std::cout << token->token << "\n";
      return 0;
    }
    if (words.size() == 1 && words[0] == "ls") {
      auto all = (*store)->join_tokens();
      if (!all.ok()) return fail(all.error().message);
      for (const auto& t : *all) {
        std::cout << t.id << "\t" << t.issued_by << "\texpires " << t.expires_at << "\t"
                  << t.uses_left << " uses left\n";
      }
      return 0;
    }
    if (words.size() == 2 && words[0] == "revoke") {
      if (auto st = (*store)->revoke_join_token_id(words[1]); !st.ok()) {
        return fail(st.error().message);
      }
      if (auto st = audit("join_token.revoked", {{"id", words[1]}}); !st.ok()) {
        return fail(st.error().message);
      }
      return 0;
    }
    return usage("join-token create | ls | revoke ID");
  }
  if (verb == "audit") {
    if (words.size() != 1 || words[0] != "verify") return usage("audit verify");
    auto check = (*store)->verify_audit();
    if (!check.ok()) return fail(check.error().message);
    if (!check->ok) {
      std::cout << "audit log BROKEN after " << check->records << " records: " << check->problem
                << "\n";
      return 1;
    }
    std::cout << "audit log verified: " << check->records << " records, head " << check->head
              << "\n";
    return 0;
  }
  return usage("unknown command '" + verb + "'");
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options o("drover-coordinator", kHelp);
  o.add_options()("config", "config file", cxxopts::value<std::string>())(
      "log-level", "log level", cxxopts::value<std::string>()->default_value("info"))(
      "data-dir", "state directory", cxxopts::value<std::string>())("role", "token role",
                                                                    cxxopts::value<std::string>())(
      "uses", "join token: enrollments it admits", cxxopts::value<std::uint64_t>())(
      "ttl", "join token: seconds it lives", cxxopts::value<std::int64_t>())(
      "person", "token: whom it belongs to (default: its name)", cxxopts::value<std::string>())(
      "h,help", "help")("words", "", cxxopts::value<std::vector<std::string>>());
  o.parse_positional({"words"});
  cxxopts::ParseResult r;
  try {
    r = o.parse(argc, argv);
  } catch (const std::exception& e) {
    return usage(e.what());
  }
  if (r.count("help")) {
    std::cout << kHelp;
    return 0;
  }
  std::vector<std::string> words;
  if (r.count("words")) words = r["words"].as<std::vector<std::string>>();
  if (words.empty()) return usage("give a command: run, token, join-token or audit");
  const std::string verb = words.front();
  words.erase(words.begin());
  if (verb == "run") {
    if (!words.empty()) return usage("run takes no arguments, got '" + words.front() + "'");
    return run(r);
  }
  return offline(verb, words, r);
}
