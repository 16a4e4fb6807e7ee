// The thin commands over the coordinator's HTTP API (docs/CLI.md, "Talking
// to the coordinator"): deploy, rollback, status, pause, resume, pipeline,
// token, join-token, hosts, audit. Each is one or two API calls; the
// coordinator validates everything and its error is printed as given.
#include <sys/ioctl.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "core/http/http.hpp"
#include "core/yaml/yaml_json.hpp"
#include "tools/drover/client_config.hpp"
#include "tools/drover/commands.hpp"
#include "tools/drover/watch.hpp"

namespace drover::cli {
namespace {

using nlohmann::json;

void add_coordinator_flags(cxxopts::Options& o) {
  add_client_flags(o);
  o.add_options()("json", "print the coordinator's JSON answer")("h,help", "show this help");
}

// "web-2: baking (production/canary; 3 of 8 batches passed) - reason"
std::string state_line(const json& d) {
  std::ostringstream s;
  s << d.value("deploy_id", "") << ": " << d.value("state", "") << " (";
  if (!d.value("env", "").empty()) {
    s << d.value("env", "");
    if (!d.value("wave", "").empty()) s << "/" << d.value("wave", "");
    s << "; ";
  }
  const std::size_t batches =
      d["batches"].is_array() ? d["batches"].size() : d.value("batches", std::size_t{0});
  s << d.value("batches_passed", std::size_t{0}) << " of " << batches << " batches passed)";
  if (!d.value("reason", "").empty()) s << " - " << d.value("reason", "");
  return s.str();
}

bool terminal(const std::string& state) {
  return state == "succeeded" || state == "rolled_back" || state == "failed" ||
         state == "rejected" || state == "expired" || state == "superseded" || state == "cancelled";
}

std::string region_name(const json& r) {
  const std::string cluster = r.value("cluster", "");
  const std::string region = r.value("region", "");
  return (region.empty() ? "(every host)" : region) + (cluster.empty() ? "" : "/" + cluster);
}

void print_gate(const json& env) {
  if (!env.contains("gate")) return;
  const json& g = env["gate"];
  std::cout << "    gate: " << g["approvals"].size() << " of " << g["required"] << " approvals";
  for (const auto& a : g["approvals"]) std::cout << " [" << a.value("person", "") << "]";
  if (g["rejection"].is_object()) {
    std::cout << "; rejected by " << g["rejection"].value("person", "") << ": "
              << g["rejection"].value("comment", "");
  }
  std::cout << "\n";
}

void print_status(const json& d) {
  std::cout << state_line(d) << "\n"
            << "  artifact " << d.value("artifact_id", "") << " (git " << d.value("git_sha", "")
            << ")\n  prior    " << d.value("prior_artifact_id", "") << "\n";
  if (!d.value("queued_behind", "").empty()) {
    std::cout << "  queued behind " << d.value("queued_behind", "") << "\n";
  }
  if (d.contains("rollback") && d["rollback"]["duration_ms"].is_number()) {
    std::cout << "  rollback took " << d["rollback"]["duration_ms"] << " ms\n";
  }
  if (!d["environments"].is_array()) return;
  for (const auto& e : d["environments"]) {
    std::cout << "  env " << e.value("name", "") << " " << e.value("status", "");
    if (!e.value("frozen", "").empty()) std::cout << " (frozen: " << e.value("frozen", "") << ")";
    std::cout << "\n";
    print_gate(e);
    for (const auto& w : e["waves"]) {
      std::cout << "    wave " << w.value("name", "") << " " << w.value("status", "") << "\n";
      for (const auto& r : w["regions"]) {
        std::cout << "      " << region_name(r) << " " << r.value("status", "") << " (batch "
                  << r.value("batch", 0) + 1 << " of " << r["batches"].size() << ")";
        if (!r.value("verdict", "").empty()) std::cout << " " << r.value("verdict", "");
        for (const auto& [version, n] : r["hosts_by_version"].items()) {
          std::cout << " " << n << "x " << version.substr(0, 19);
        }
        std::cout << "\n";
      }
    }
  }
  for (const auto& h : d["hosts"]) {
    std::cout << "    " << h.value("host", "") << " (" << h.value("env", "") << "/"
              << h.value("region", "") << ") runs "
              << (h.value("running", "").empty() ? "-" : h.value("running", "")) << "\n";
  }
}

void print_pipeline(const json& p) {
  std::cout << "pipeline " << p.value("id", "") << " (service " << p.value("service", "")
            << ", version " << p["version"] << ")\n";
  if (!p["environments"].is_array()) return;
  for (const auto& e : p["environments"]) {
    std::cout << "  env " << e.value("name", "");
    if (e.contains("gate") && e["gate"].is_object()) {
      std::cout << " behind a gate of " << e["gate"].value("approvals", 1) << " approval(s)";
    }
    if (e.contains("freeze") && !e["freeze"].empty()) {
      std::cout << ", " << e["freeze"].size() << " freeze window(s)";
    }
    std::cout << "\n";
    for (const auto& w : e["waves"]) {
      std::cout << "    wave " << w.value("name", "") << ": " << w["regions"].dump();
      if (w.contains("bake_s")) std::cout << ", bake " << w["bake_s"] << " s";
      std::cout << "\n";
    }
  }
}

// The Examples section of a verb's --help.
std::string examples_of(const std::string& verb) {
  static const std::map<std::string, std::vector<std::string>> kExamples = {
      {"deploy",
       {"drover deploy web 1f65cac92769 --watch       # a unique prefix of the artifact id",
        "drover deploy web sha256:1f65... --env staging --wait; echo $?",
        "drover deploy web 1f65cac92769 --batch-size 2  # a rolling override (an approver)"}},
      {"rollback", {"drover rollback web-7 --reason \"errors in eu-west-1\" --watch"}},
      {"redeploy", {"drover redeploy web-7 --env production --wait"}},
      {"status",
       {"drover status web-7", "drover status web --watch   # web's newest deploy, live"}},
      {"deploys", {"drover deploys", "drover deploys --service web --limit 5 --json"}},
      {"pause", {"drover pause web-7"}},
      {"resume", {"drover resume web-7"}},
      {"pipeline",
       {"drover pipeline apply -f pipeline.yaml", "drover pipeline ls", "drover pipeline show web",
        "drover pipeline runs web --limit 5"}},
      {"approve", {"drover approve web-7 --comment \"staging is green\""}},
      {"reject", {"drover reject web-7 --reason \"not during the sale\""}},
      {"override-freeze", {"drover override-freeze web-7 --reason \"security fix\""}},
      {"token",
       {"drover token create ci --role deployer --person build-bot", "drover token list",
        "drover token revoke ci"}},
      {"join-token",
       {"drover join-token create --uses 10 --ttl 3600 --region us-east-2",
        "drover join-token ls"}},
      {"scm",
       {"drover scm source org/web --secret-file webhook.secret",
        "drover scm login alice-gh alice"}},
      {"notify",
       {"drover notify allow https://hooks.example.com/",
        "drover notify add web chat --url https://hooks.example.com/web --format slack",
        "drover notify receive --listen 127.0.0.1:9000 --secret-file notify.secret"}},
      {"flag",
       {"drover flag set web checkout 25 --env production --watch   # a ramp: 1, 5, 25%",
        "drover flag kill web checkout --env production", "drover flag ls web"}},
      {"release",
       {"drover release create -f release.yaml --watch", "drover release status rel-1 --wait",
        "drover release approve rel-1 --comment ok"}},
      {"hosts", {"drover hosts", "drover hosts --json"}},
      {"audit",
       {"drover audit --service web --limit 20", "drover audit --since 2026-12-01T00:00:00Z",
        "drover audit show web-7", "drover audit verify"}},
  };
  auto it = kExamples.find(verb);
  if (it == kExamples.end()) return "";
  std::string out = "Examples:\n";
  for (const auto& e : it->second) out += "  " + e + "\n";
  out +=
      "Exit codes: docs/CLI.md (0 done; 2 usage; 3-7 how a followed deploy ended; 8 "
      "unauthorized; 9 unreachable).\n";
  return out;
}

// An artifact id as typed: "sha256:<hex>" or "<hex>", 6 to 64 lowercase or
// uppercase hex digits; their lowercase hex, or nothing when it is not one.
std::optional<std::string> artifact_prefix(const std::string& typed) {
  std::string hex = typed.rfind("sha256:", 0) == 0 ? typed.substr(7) : typed;
  if (hex.size() < 6 || hex.size() > 64) return std::nullopt;
  for (char& c : hex) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return std::nullopt;
  }
  return hex;
}

std::string seconds_ago(std::int64_t s) {
  if (s < 0) s = 0;
  if (s < 120) return std::to_string(s) + " s ago";
  if (s < 7200) return std::to_string(s / 60) + " min ago";
  return std::to_string(s / 3600) + " h ago";
}

std::string pad_to(std::string s, std::size_t n) {
  if (s.size() + 1 < n) {
    s.append(n - s.size(), ' ');
  } else {
    s += ' ';
  }
  return s;
}

std::string utc_of_ms(std::int64_t ms) {
  const std::time_t t = ms / 1000;
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return when;
}

// `drover audit show`: one deploy's whole record.
void print_history(const json& h) {
  const json& snap = h["snapshot"];
  std::cout << h.value("deploy_id", "") << ": " << h.value("state", "") << "\n"
            << "  service   " << h.value("service", "") << " (pipeline "
            << h.value("pipeline_id", "") << ")\n"
            << "  artifact  " << h.value("artifact_id", "") << "\n";
  if (snap.is_object()) {
    std::cout << "  git       " << snap.value("git_sha", "") << "\n"
              << "  started   by " << snap.value("started_by", "") << " in "
              << snap.value("env", "") << "\n";
    if (!snap.value("redeploy_of", "").empty()) {
      std::cout << "  redeploy  of " << snap.value("redeploy_of", "") << "\n";
    }
  }
  std::cout << "  config    " << h.value("config_hash", "") << " (drover audit show "
            << h.value("deploy_id", "") << " --json shows the snapshot)\n";
  for (const auto& a : h["records"]) {
    std::cout << "  " << utc_of_ms(a.value("at", std::int64_t{0})) << "  " << a.value("who", "")
              << "  " << a.value("what", "");
    if (!a.value("env", "").empty()) std::cout << " [" << a.value("env", "") << "]";
    if (a.contains("detail") && a["detail"].is_object() && !a["detail"].empty()) {
      std::cout << " " << a["detail"].dump();
    }
    std::cout << "\n";
  }
}

// Ctrl-C while following a deploy stops the following, not the deploy.
std::atomic<bool> interrupted{false};
extern "C" void on_interrupt(int) {
  interrupted = true;
}

// The first Ctrl-C is noted (the loop says how to follow again); the
// handler then resets, so a second one ends the process at once, even in
// the middle of a request.
void catch_interrupt() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sa.sa_flags = SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
}

int stopped_following(const std::string& id, const char* what, const std::string& again) {
  std::cerr << "\nstopped following " << id << "; the " << what << " goes on: " << again << "\n";
  return 130;
}

// Waits up to ms, waking early on Ctrl-C.
void pause_ms(int ms) {
  for (int waited = 0; waited < ms && !interrupted; waited += 50) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // a person's poll
  }
}

struct TerminalSize {
  std::size_t columns = 100, rows = 40;
};
TerminalSize terminal_size() {
  winsize ws{};
  TerminalSize t;
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0) {
    if (ws.ws_col > 0) t.columns = ws.ws_col;
    if (ws.ws_row > 0) t.rows = ws.ws_row;
  }
  return t;
}

// Whether stdout can be redrawn in place: a terminal that is not dumb.
bool live_terminal() {
  const char* term = std::getenv("TERM");
  return ::isatty(STDOUT_FILENO) == 1 && term != nullptr && std::string(term) != "dumb" &&
         std::string(term) != "";
}

// Follows a deploy until it ends (docs/CLI.md, "Watching a deploy"). With
// watch, a live view redrawn in place on a terminal, or on a pipe one line
// per audit record as it happens; without, quiet until the end, then the
// end state on one line. The exit status says how it ended.
int follow(const Api& api_in, const std::string& verb, const std::string& id, int timeout_s,
           bool as_json, bool watch) {
  catch_interrupt();
  // Short calls while following, so Ctrl-C is seen within seconds.
  Api api = api_in;
  api.timeout = std::min(api.timeout, std::chrono::milliseconds(5000));
  const std::string again = "drover status " + id + " --watch";
  const bool redraw = watch && !as_json && live_terminal();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  std::size_t drawn = 0;          // lines of the last frame (redraw)
  std::uint64_t printed_seq = 0;  // the highest record seq printed (pipe)
  std::string last_state;
  while (true) {
    auto d = api.call("GET", "/deploys/" + http::percent_encode(id));
    if (interrupted) return stopped_following(id, "deploy", again);
    if (!d.ok()) return report_api(verb, d.error());
    const std::string state = d->value("state", "");
    json records = json::array();
    if (watch && !as_json) {
      auto a = api.call("GET", "/deploys/" + http::percent_encode(id) + "/audit");
      if (a.ok() && a->contains("records") && (*a)["records"].is_array()) records = (*a)["records"];
    }
    if (redraw) {
      FrameOptions fo;
      // An older coordinator's view has no now_ms: the local clock then.
      fo.now_ms = d->value("now_ms", unix_ms(std::chrono::system_clock::now()));
      const TerminalSize size = terminal_size();
      // One column short of the edge (no line may wrap, or the count of
      // lines to move up is off), and no taller than the screen: the
      // cursor cannot move above its top row.
      fo.width = size.columns > 1 ? size.columns - 1 : 1;
      auto frame = render_frame(*d, records, fo);
      if (size.rows > 2 && frame.size() > size.rows - 1) {
        frame.resize(size.rows - 2);
        frame.push_back("... (the terminal is too short for the rest; drover status " + id + ")");
      }
      std::string out;
      if (drawn > 0) out += "\x1b[" + std::to_string(drawn) + "F";  // to the frame's first line
      out += "\x1b[J";                                              // and clear below
      for (const auto& line : frame) out += line + "\n";
      std::cout << out << std::flush;
      drawn = frame.size();
    } else if (watch && !as_json) {
      if (state != last_state) std::cout << id << ": " << state << std::endl;
      // By seq, not by place: records are listed by time, and one committed
      // later may carry an earlier time.
      std::uint64_t newest = printed_seq;
      for (const auto& rec : records) {
        const std::uint64_t seq = rec.is_object() ? rec.value("seq", std::uint64_t{0}) : 0;
        if (seq <= printed_seq) continue;
        std::cout << "  " << record_line(rec) << std::endl;
        newest = std::max(newest, seq);
      }
      printed_seq = newest;
    }
    last_state = state;
    if (terminal(state)) {
      if (as_json) {
        print_json(*d);
      } else if (!redraw) {
        std::cout << state_line(*d) << std::endl;
      }
      return exit_for_state(state);
    }
    if (interrupted) return stopped_following(id, "deploy", again);
    if (std::chrono::steady_clock::now() > deadline) {
      report(verb, make_error(Errc::timeout,
                              id + " is still " + state + " after " + std::to_string(timeout_s) +
                                  " s; it goes on: drover status " + id + " --watch"));
      return kExitGaveUp;
    }
    pause_ms(watch ? 1000 : 500);
  }
}

// One line per service of a release: its run, its state, and its state in
// each environment in the release's order. Fields are read with defaults: an
// answer of another shape prints what it has.
std::string text_of(const json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

void print_release(const json& j) {
  std::cout << "release " << j.value("release_id", "") << "\t" << j.value("state", "")
            << "\tpolicy " << j.value("policy", "") << "\tby " << j.value("started_by", "") << "\n";
  if (!j.value("reason", "").empty()) std::cout << "  reason: " << j.value("reason", "") << "\n";
  for (const auto& g : j.value("gates", json::array())) {
    const json approvals = g.value("approvals", json::array());
    std::cout << "  gate " << g.value("env", "") << ": " << approvals.size() << "/"
              << g.value("required", 0) << " approvals";
    for (const auto& a : approvals) std::cout << " " << a.value("person", "");
    if (g.contains("rejection")) {
      std::cout << " rejected by " << g.value("rejection", json::object()).value("person", "");
    }
    std::cout << "\n";
  }
  for (const auto& s : j.value("services", json::array())) {
    std::cout << "  " << s.value("service", "") << "\t" << s.value("deploy_id", "") << "\t"
              << s.value("state", "");
    const json deps = s.value("depends_on", json::array());
    if (!deps.empty()) {
      std::cout << "\tafter";
      for (const auto& d : deps) std::cout << " " << text_of(d);
    }
    std::cout << "\n   ";
    const json envs = s.value("environments", json::object());
    for (const auto& e : j.value("environments", json::array())) {
      const std::string name = text_of(e);
      std::cout << " " << name << ": " << envs.value(name, "?");
    }
    std::cout << "\n";
    if (!s.value("queued_behind", "").empty()) {
      std::cout << "    waiting: " << s.value("queued_behind", "") << "\n";
    }
  }
}

bool release_ended(const json& j) {
  const std::string state = j.value("state", "");
  if (state == "running") return false;
  // A superseded or rejected release may still be finishing its members.
  for (const auto& s : j.value("services", json::array())) {
    if (!terminal(s.value("state", ""))) return false;
  }
  return true;
}

int wait_for_release(const Api& api, const std::string& verb, const std::string& id, int timeout_s,
                     bool as_json, bool watch) {
  catch_interrupt();
  std::string last;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (true) {
    auto r = api.call("GET", "/releases/" + http::percent_encode(id));
    if (!r.ok()) return report_api(verb, r.error());
    std::string line = r->value("state", "");
    for (const auto& s : r->value("services", json::array())) {
      line += " " + s.value("service", "") + "=" + s.value("state", "");
    }
    if (line != last && !as_json && watch) std::cout << id << " " << line << std::endl;
    last = line;
    if (release_ended(*r)) {
      if (as_json) {
        print_json(*r);
      } else if (!watch) {
        std::cout << id << " " << line << std::endl;
      }
      return exit_for_state(r->value("state", ""));
    }
    if (interrupted) {
      return stopped_following(id, "release", "drover release status " + id + " --watch");
    }
    if (std::chrono::steady_clock::now() > deadline) {
      report(verb, make_error(Errc::timeout, id + " is still " + r->value("state", "") + " after " +
                                                 std::to_string(timeout_s) +
                                                 " s; it goes on: drover release status " + id));
      return kExitGaveUp;
    }
    pause_ms(500);
  }
}

// A pipeline or release file: YAML or JSON (core/yaml keeps each field's
// line, so a refusal can name it).
Result<yaml::Document> read_config_file(Context& ctx, const std::string& path) {
  DROVER_ASSIGN(std::string text, ctx.fs.read_file(path, yaml::kMaxBytes));
  auto doc = yaml::parse(text);
  if (!doc.ok()) return doc.error().context(path);
  return doc;
}

}  // namespace

int coordinator_command(Context& ctx, const std::string& verb, std::vector<std::string> args) {
  cxxopts::Options o("drover " + verb, "Talk to the drover coordinator (docs/CLI.md).");
  add_coordinator_flags(o);
  std::vector<std::string> positional = {"words"};
  o.add_options()("words", "", cxxopts::value<std::vector<std::string>>());
  if (verb == "deploy") {
    o.custom_help(
        "PIPELINE ARTIFACT_ID [--env E] [--git-sha S] [--batch-size N | --batch-percent P] "
        "[--wait] [--timeout S]");
    o.add_options()("env", "environment", cxxopts::value<std::string>())(
        "git-sha", "git commit (default: the artifact's)", cxxopts::value<std::string>())(
        "batch-size", "override: hosts per batch", cxxopts::value<std::string>())(
        "batch-percent", "override: percent of hosts per batch", cxxopts::value<std::string>());
  }
  if (verb == "redeploy") {
    o.custom_help("DEPLOY_ID [--env E] [--wait] [--timeout S]");
    o.add_options()("env", "start in this environment (past the first: an approver's call)",
                    cxxopts::value<std::string>());
  }
  if (verb == "release") {
    o.custom_help(
        "create -f FILE [--wait] | ls | status ID [--wait] | approve ID [--comment TEXT] | "
        "reject ID --reason TEXT");
    o.add_options()("f,file", "create: the release, YAML or JSON", cxxopts::value<std::string>())(
        "comment", "approve: a note kept with the approval", cxxopts::value<std::string>())(
        "reason", "reject: why (kept in the audit log)", cxxopts::value<std::string>())(
        "limit", "ls: at most N (default 20)", cxxopts::value<std::string>());
  }
  if (verb == "deploy" || verb == "rollback" || verb == "redeploy" || verb == "release") {
    o.add_options()("wait", "wait quietly until it ends; the exit status says how (docs/CLI.md)")(
        "timeout", "seconds --wait or --watch waits (default 3600)", cxxopts::value<std::string>());
  }
  if (verb == "deploy" || verb == "rollback" || verb == "redeploy" || verb == "release" ||
      verb == "status" || verb == "flag") {
    o.add_options()("watch", "follow it live until it ends; the exit status says how");
  }
  if (verb == "status") {
    o.custom_help("DEPLOY_ID | SERVICE [--watch]");
    o.add_options()("timeout", "seconds --watch waits (default 3600)",
                    cxxopts::value<std::string>());
  }
  if (verb == "deploys") {
    o.custom_help("[--service S] [--limit N]");
    o.add_options()("service", "one service's deploys", cxxopts::value<std::string>())(
        "limit", "at most N, newest first (default 20)", cxxopts::value<std::string>());
  }
  if (verb == "rollback") {
    o.custom_help("DEPLOY_ID [--reason TEXT] [--wait]");
    o.add_options()("reason", "why", cxxopts::value<std::string>());
  }
  if (verb == "pipeline") {
    o.custom_help("apply -f FILE | ls | show ID | runs ID [--limit N]");
    o.add_options()("f,file", "the pipeline, YAML or JSON", cxxopts::value<std::string>())(
        "limit", "runs: at most N (default 20)", cxxopts::value<std::string>());
  }
  if (verb == "hosts") o.custom_help("[--json]");
  if (verb == "pause" || verb == "resume") o.custom_help("DEPLOY_ID");
  if (verb == "approve") {
    o.custom_help("DEPLOY_ID [--comment TEXT]");
    o.add_options()("comment", "a note kept with the approval", cxxopts::value<std::string>());
  }
  if (verb == "reject" || verb == "override-freeze") {
    o.custom_help("DEPLOY_ID --reason TEXT");
    o.add_options()("reason", "why (required; kept in the audit log)",
                    cxxopts::value<std::string>());
  }
  if (verb == "token") {
    o.custom_help("create NAME --role ROLE [--person P] | revoke NAME | list");
    o.add_options()("role", "viewer, deployer, approver or admin", cxxopts::value<std::string>())(
        "person", "whom the token belongs to (default: its name)", cxxopts::value<std::string>());
  }
  if (verb == "scm") {
    o.custom_help("source REPOSITORY --secret-file FILE | sources | login LOGIN PERSON");
    o.add_options()("secret-file", "a file holding the repository's webhook secret",
                    cxxopts::value<std::string>());
  }
  if (verb == "notify") {
    o.custom_help(
        "allow [URL...] | allowed | add PIPELINE NAME --url URL [--secret-file F] [--format slack] "
        "[--event KIND]... | ls PIPELINE | rm PIPELINE NAME | outbox | receive --listen HOST:PORT "
        "--secret-file F [--count N]");
    o.add_options()("url", "where to post (must match the admin's allow-list)",
                    cxxopts::value<std::string>())(
        "secret-file", "a file holding the destination's signing secret",
        cxxopts::value<std::string>())("format", "drover (default) or slack",
                                       cxxopts::value<std::string>())(
        "event", "a kind to send (repeatable; default: every kind)",
        cxxopts::value<std::vector<std::string>>())("listen", "receive: the address to listen on",
                                                    cxxopts::value<std::string>())(
        "count", "receive: exit after N events", cxxopts::value<std::size_t>());
  }
  if (verb == "flag") {
    o.custom_help(
        "set SERVICE FLAG on|off|PERCENT --env E | kill SERVICE FLAG --env E | ls SERVICE");
    o.add_options()("env", "the environment", cxxopts::value<std::string>())(
        "now", "set: raise at once instead of ramping (an approver's token)")(
        "wait", "set: wait until the ramp ends; exit 0 only if it succeeded")(
        "timeout", "seconds --wait waits (default 3600)", cxxopts::value<std::string>());
  }
  if (verb == "join-token") {
    o.custom_help("create [--uses N] [--ttl S] [--region R]... [--service S]... | ls | revoke ID");
    o.add_options()("uses", "enrollments it admits (default 1)", cxxopts::value<std::int64_t>())(
        "ttl", "seconds it lives (default 86400)", cxxopts::value<std::int64_t>())(
        "region", "admit only hosts of this region (repeatable)",
        cxxopts::value<std::vector<std::string>>())(
        "service", "admit only hosts of these services (repeatable)",
        cxxopts::value<std::vector<std::string>>());
  }
  if (verb == "audit") {
    o.custom_help(
        "[verify | show DEPLOY_ID] [--service S] [--env E] [--since TIME] [--until TIME] "
        "[--limit N]");
    o.add_options()("service", "one service", cxxopts::value<std::string>())(
        "env", "one environment (any when absent)", cxxopts::value<std::string>())(
        "since", "unix ms or RFC 3339", cxxopts::value<std::string>())(
        "until", "unix ms or RFC 3339", cxxopts::value<std::string>())(
        "limit", "at most N records", cxxopts::value<std::string>());
  }
  auto parsed = parse(o, args, positional);
  if (!parsed.ok()) return usage(verb, parsed.error().message);
  const cxxopts::ParseResult& r = *parsed;
  if (r.count("help")) {
    std::cout << o.help() << "\n" << examples_of(verb);
    return kExitOk;
  }
  std::vector<std::string> words;
  if (r.count("words")) words = r["words"].as<std::vector<std::string>>();
  auto read_secret = [&](std::string& out) -> Status {
    if (!r.count("secret-file")) return {};
    DROVER_ASSIGN(std::string text, ctx.fs.read_file(r["secret-file"].as<std::string>(), 4096));
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    out = text;
    return {};
  };
  if (verb == "notify" && words.size() == 1 && words[0] == "receive") {
    if (!r.count("listen")) return usage(verb, "notify receive needs --listen HOST:PORT");
    // Unsigned deliveries are anyone's to post: the receiver checks them all.
    if (!r.count("secret-file")) return usage(verb, "notify receive needs --secret-file FILE");
    std::string secret;
    if (auto st = read_secret(secret); !st.ok()) return report_api(verb, st.error());
    if (secret.empty()) return usage(verb, "notify receive: the secret file is empty");
    return notify_receive(ctx, r["listen"].as<std::string>(), secret,
                          r.count("count") ? r["count"].as<std::size_t>() : 0, r.count("json") > 0);
  }
  auto api = api_of(ctx.fs, r);
  if (!api.ok()) return report_settings(verb, api.error());
  // Every call but these needs a token: say so here rather than let the
  // coordinator answer 401.
  if (api->token.empty()) {
    std::cerr << "drover " << verb
              << ": no API token: give --token TOKEN, set DROVER_TOKEN, or give the context a "
                 "token_file (drover config set-context); drover-coordinator token create "
                 "makes the first one\n";
    return kExitUnauthorized;
  }
  const bool as_json = r.count("json") > 0;
  auto show = [&](const Result<json>& answer, const std::function<void(const json&)>& human) {
    if (!answer.ok()) return report_api(verb, answer.error());
    if (as_json) {
      print_json(*answer);
    } else {
      human(*answer);
    }
    return kExitOk;
  };
  int timeout_s = 3600;
  if (r.count("timeout")) {
    timeout_s = std::atoi(r["timeout"].as<std::string>().c_str());
    if (timeout_s <= 0) return usage(verb, "--timeout wants a whole number of seconds");
  }

  if (verb == "deploy") {
    if (words.size() != 2) return usage(verb, "give PIPELINE and ARTIFACT_ID");
    const auto prefix = artifact_prefix(words[1]);
    if (!prefix) {
      return usage(verb, "ARTIFACT_ID '" + words[1].substr(0, 80) +
                             "' is neither sha256:<64 hex digits> nor a prefix of at least 6 hex "
                             "digits of one");
    }
    std::string artifact = "sha256:" + *prefix;
    if (prefix->size() < 64) {
      // A short id, like git's: the one registered artifact of the
      // pipeline's service it starts.
      auto pipeline = api->call("GET", "/pipelines/" + http::percent_encode(words[0]));
      if (!pipeline.ok()) return report_api(verb, pipeline.error());
      auto listed = api->call(
          "GET", "/artifacts?service=" + http::percent_encode(pipeline->value("service", "")));
      if (!listed.ok()) return report_api(verb, listed.error());
      std::vector<std::string> matches;
      for (const auto& a : listed->value("artifacts", json::array())) {
        const std::string id = a.is_object() ? a.value("artifact_id", "") : "";
        if (id.rfind(artifact, 0) == 0) matches.push_back(id);
      }
      if (matches.size() != 1) {
        std::string why = matches.empty() ? "no registered artifact of service '" +
                                                pipeline->value("service", "") + "' starts with " +
                                                *prefix + " (drover artifact ls lists the store's)"
                                          : "the prefix " + *prefix + " is ambiguous:";
        for (const auto& m : matches) why += " " + m;
        return report_api(verb, make_error(Errc::not_found, why));
      }
      artifact = matches[0];
    }
    json body = {{"pipeline_id", words[0]}, {"artifact_id", artifact}};
    if (r.count("env")) body["env"] = r["env"].as<std::string>();
    if (r.count("git-sha")) body["git_sha"] = r["git-sha"].as<std::string>();
    if (r.count("batch-size") && r.count("batch-percent")) {
      return usage(verb, "--batch-size and --batch-percent exclude each other");
    }
    if (r.count("batch-size")) {
      const int n = std::atoi(r["batch-size"].as<std::string>().c_str());
      if (n <= 0) return usage(verb, "--batch-size wants a whole number of hosts");
      body["strategy_override"] = {{"kind", "rolling"}, {"batch_size", n}};
    }
    if (r.count("batch-percent")) {
      const double p = std::atof(r["batch-percent"].as<std::string>().c_str());
      if (p <= 0 || p > 100) return usage(verb, "--batch-percent wants 0-100");
      body["strategy_override"] = {{"kind", "rolling"}, {"batch_percent", p}};
    }
    auto d = api->call("POST", "/deploys", body);
    if (!d.ok()) return report_api(verb, d.error());
    const std::string id = (*d)["deploy_id"];
    if (r.count("wait") || r.count("watch")) {
      return follow(*api, verb, id, timeout_s, as_json, r.count("watch") > 0);
    }
    return show(d, [&](const json& j) {
      std::cout << "started " << id << " in " << j.value("env", "") << ", config "
                << j.value("config_hash", "") << "\n";
    });
  }
  if (verb == "redeploy") {
    if (words.size() != 1) return usage(verb, "give DEPLOY_ID");
    json body = json::object();
    if (r.count("env")) body["env"] = r["env"].as<std::string>();
    auto d = api->call("POST", "/deploys/" + http::percent_encode(words[0]) + "/redeploy", body);
    if (!d.ok()) return report_api(verb, d.error());
    const std::string id = (*d)["deploy_id"];
    if (r.count("wait") || r.count("watch")) {
      return follow(*api, verb, id, timeout_s, as_json, r.count("watch") > 0);
    }
    return show(d, [&](const json& j) {
      std::cout << "started " << id << " in " << j.value("env", "") << ", reproducing " << words[0]
                << " (config " << j.value("config_hash", "") << ")\n";
    });
  }
  if (verb == "rollback") {
    if (words.size() != 1) return usage(verb, "give DEPLOY_ID");
    json body = {{"deploy_id", words[0]}};
    if (r.count("reason")) body["reason"] = r["reason"].as<std::string>();
    auto d = api->call("POST", "/rollback", body);
    if (!d.ok()) return report_api(verb, d.error());
    if (r.count("wait") || r.count("watch")) {
      const int code = follow(*api, verb, words[0], timeout_s, as_json, r.count("watch") > 0);
      // A rollback that reached its end is the success here.
      return code == kExitRolledBack ? kExitOk : code == kExitOk ? kExitFailed : code;
    }
    return show(d, [](const json& j) { std::cout << state_line(j) << "\n"; });
  }
  if (verb == "status") {
    if (words.size() != 1) return usage(verb, "give DEPLOY_ID or SERVICE");
    // A deploy's id, or a service: its newest deploy.
    std::string id = words[0];
    auto d = api->call("GET", "/deploys/" + http::percent_encode(id));
    if (!d.ok() && d.error().code == Errc::not_found) {
      auto newest = api->call("GET", "/deploys?limit=1&service=" + http::percent_encode(id));
      if (!newest.ok()) return report_api(verb, newest.error());
      const json listed = newest->value("deploys", json::array());
      const std::string found = listed.is_array() && !listed.empty() && listed[0].is_object()
                                    ? listed[0].value("deploy_id", "")
                                    : "";
      if (!found.empty()) {
        id = found;
        d = api->call("GET", "/deploys/" + http::percent_encode(id));
      } else {
        return report_api(
            verb, make_error(Errc::not_found, "no deploy '" + words[0] + "', and no service '" +
                                                  words[0] +
                                                  "' with a deploy (drover deploys lists them)"));
      }
    }
    if (r.count("watch")) {
      if (!d.ok()) return report_api(verb, d.error());
      return follow(*api, verb, id, timeout_s, as_json, true);
    }
    return show(d, print_status);
  }
  if (verb == "deploys") {
    if (!words.empty())
      return usage(verb, "takes no words: drover deploys [--service S] [--limit N]");
    std::string q = "/deploys?limit=" + (r.count("limit") ? r["limit"].as<std::string>() : "20");
    if (r.count("service")) q += "&service=" + http::percent_encode(r["service"].as<std::string>());
    return show(api->call("GET", q), [](const json& j) {
      std::cout << pad_to("DEPLOY", 14) << pad_to("SERVICE", 12) << pad_to("STATE", 18)
                << pad_to("ENV", 14) << pad_to("ARTIFACT", 14) << pad_to("STARTED", 22) << "BY\n";
      for (const auto& d : j.value("deploys", json::array())) {
        std::cout << pad_to(d.value("deploy_id", ""), 14) << pad_to(d.value("service", ""), 12)
                  << pad_to(d.value("state", ""), 18) << pad_to(d.value("env", ""), 14)
                  << pad_to(short_id(d.value("artifact_id", "")), 14)
                  << pad_to(utc_of_ms(d.value("created_ms", std::int64_t{0})), 22)
                  << d.value("started_by", "") << "\n";
      }
    });
  }
  if (verb == "pause" || verb == "resume") {
    if (words.size() != 1) return usage(verb, "give DEPLOY_ID");
    return show(api->call("POST", "/deploys/" + words[0] + "/" + verb),
                [](const json& j) { std::cout << state_line(j) << "\n"; });
  }
  if (verb == "pipeline") {
    const std::string kWords = "pipeline apply -f FILE | ls | show ID | runs ID [--limit N]";
    if (!words.empty() && words[0] == "apply") {
      // -f FILE, or FILE alone (the form of version 1 of this contract).
      std::string file = r.count("file") ? r["file"].as<std::string>() : "";
      if (words.size() == 2 && file.empty()) file = words[1];
      if (file.empty() || words.size() > (r.count("file") ? 1u : 2u)) {
        return usage(verb, "give the pipeline file: pipeline apply -f FILE");
      }
      auto doc = read_config_file(ctx, file);
      if (!doc.ok()) return report_api(verb, doc.error());
      auto saved = api->call("POST", "/pipelines", doc->value);
      if (!saved.ok()) {
        // The coordinator names the field; the file knows its line.
        return report_api(
            verb, make_error(saved.error().code, file + ": " + doc->locate(saved.error().message)));
      }
      return show(saved, [](const json& j) {
        std::cout << "pipeline " << j.value("id", "") << " version " << j["version"] << "\n";
      });
    }
    if (words.size() == 1 && words[0] == "ls") {
      return show(api->call("GET", "/pipelines"), [](const json& j) {
        for (const auto& p : j["pipelines"]) {
          std::cout << p.value("id", "") << "\tservice " << p.value("service", "") << "\tversion "
                    << p["version"] << "\t";
          const json& envs = p.contains("environments") ? p["environments"] : p["envs"];
          for (std::size_t i = 0; i < envs.size(); ++i) {
            std::cout << (i ? " -> " : "") << envs[i].value("name", "");
          }
          std::cout << "\n";
        }
      });
    }
    if (words.size() == 2 && words[0] == "show") {
      return show(api->call("GET", "/pipelines/" + http::percent_encode(words[1])), print_pipeline);
    }
    if (words.size() == 2 && words[0] == "runs") {
      const std::string limit = r.count("limit") ? r["limit"].as<std::string>() : "20";
      return show(api->call("GET", "/pipelines/" + http::percent_encode(words[1]) +
                                       "/runs?limit=" + http::percent_encode(limit)),
                  [](const json& j) {
                    for (const auto& d : j["runs"]) {
                      std::cout << d.value("deploy_id", "") << "\t" << d.value("state", "")
                                << "\tenv " << d.value("env", "") << "\t"
                                << d.value("artifact_id", "").substr(0, 19) << "\tby "
                                << d.value("started_by", "") << "\n";
                    }
                  });
    }
    return usage(verb, kWords);
  }
  if (verb == "release") {
    const std::string kWords =
        "release create -f FILE | ls | status ID | approve ID | reject ID --reason TEXT";
    if (!words.empty() && words[0] == "create") {
      if (!r.count("file") || words.size() != 1) {
        return usage(verb, "give the release file: release create -f FILE");
      }
      const std::string file = r["file"].as<std::string>();
      auto doc = read_config_file(ctx, file);
      if (!doc.ok()) return report_api(verb, doc.error());
      auto made = api->call("POST", "/releases", doc->value);
      if (!made.ok()) {
        return report_api(
            verb, make_error(made.error().code, file + ": " + doc->locate(made.error().message)));
      }
      const std::string id = made->value("release_id", "");
      if (r.count("wait") || r.count("watch")) {
        return wait_for_release(*api, verb, id, timeout_s, as_json, r.count("watch") > 0);
      }
      return show(made, print_release);
    }
    if (words.size() == 1 && words[0] == "ls") {
      const std::string limit = r.count("limit") ? r["limit"].as<std::string>() : "20";
      return show(api->call("GET", "/releases?limit=" + http::percent_encode(limit)),
                  [](const json& j) {
                    for (const auto& one : j.value("releases", json::array())) {
                      std::cout << one.value("release_id", "") << "\t" << one.value("state", "")
                                << "\tby " << one.value("started_by", "") << "\t";
                      for (const auto& s : one.value("services", json::array())) {
                        std::cout << text_of(s) << " ";
                      }
                      std::cout << "\n";
                    }
                  });
    }
    if (words.size() == 2 && words[0] == "status") {
      if (r.count("wait") || r.count("watch")) {
        return wait_for_release(*api, verb, words[1], timeout_s, as_json, r.count("watch") > 0);
      }
      return show(api->call("GET", "/releases/" + http::percent_encode(words[1])), print_release);
    }
    if (words.size() == 2 && (words[0] == "approve" || words[0] == "reject")) {
      json body = json::object();
      if (words[0] == "approve") {
        if (r.count("comment")) body["comment"] = r["comment"].as<std::string>();
      } else {
        if (!r.count("reason")) return usage(verb, "release reject needs --reason TEXT");
        body["reason"] = r["reason"].as<std::string>();
      }
      return show(
          api->call("POST", "/releases/" + http::percent_encode(words[1]) + "/" + words[0], body),
          print_release);
    }
    return usage(verb, kWords);
  }
  if (verb == "approve" || verb == "reject" || verb == "override-freeze") {
    if (words.size() != 1) return usage(verb, "give DEPLOY_ID");
    json body = json::object();
    if (verb == "approve") {
      if (r.count("comment")) body["comment"] = r["comment"].as<std::string>();
    } else {
      if (!r.count("reason")) return usage(verb, verb + " needs --reason TEXT");
      body["reason"] = r["reason"].as<std::string>();
    }
    return show(api->call("POST", "/deploys/" + http::percent_encode(words[0]) + "/" + verb, body),
                [](const json& j) { std::cout << state_line(j) << "\n"; });
  }
  if (verb == "token") {
    if (words.size() == 1 && words[0] == "list") {
      return show(api->call("GET", "/tokens"), [](const json& j) {
        for (const auto& t : j["tokens"]) {
          std::cout << t.value("name", "") << "\t" << t.value("role", "") << "\tperson "
                    << t.value("person", "") << "\n";
        }
      });
    }
    if (words.size() == 2 && words[0] == "create") {
      if (!r.count("role")) return usage(verb, "token create needs --role");
      json body = {{"name", words[1]}, {"role", r["role"].as<std::string>()}};
      if (r.count("person")) body["person"] = r["person"].as<std::string>();
      return show(api->call("POST", "/tokens", body),
                  [](const json& j) { std::cout << j.value("token", "") << "\n"; });
    }
    if (words.size() == 2 && words[0] == "revoke") {
      return show(api->call("DELETE", "/tokens/" + words[1]),
                  [&](const json&) { std::cout << "revoked " << words[1] << "\n"; });
    }
    return usage(verb, "token create NAME --role ROLE [--person P] | revoke NAME | list");
  }
  if (verb == "flag") {
    auto print_set = [](const json& j) {
      std::cout << j.value("service", "") << " in " << j.value("env", "") << ", flag set "
                << j.value("seq", 0) << " (" << j.value("hosts", 0) << " hosts):";
      for (const auto& [k, v] : j["flags"].items()) std::cout << " " << k << "=" << v.dump();
      std::cout << "\n";
    };
    const std::string base =
        words.size() >= 2 ? "/services/" + http::percent_encode(words[1]) + "/flags" : "";
    if (words.size() == 2 && words[0] == "ls") {
      return show(api->call("GET", base), [&](const json& j) {
        for (const auto& e : j["environments"]) print_set(e);
      });
    }
    if (!r.count("env") && (words.size() == 4 || words.size() == 3)) {
      return usage(verb, "flag " + words[0] + " needs --env ENV");
    }
    if (words.size() == 4 && words[0] == "set") {
      json value;
      if (words[3] == "on") {
        value = true;
      } else if (words[3] == "off") {
        value = false;
      } else {
        const std::string& p = words[3];
        const bool digits =
            !p.empty() && p.size() <= 3 &&
            std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; });
        if (!digits || std::stoi(p) > 100) {
          return usage(verb, "a flag's value is on, off or a percentage 0-100, not '" + p + "'");
        }
        value = std::stoi(p);
      }
      auto done = api->call(
          "POST", base + "/" + http::percent_encode(words[2]),
          json{{"env", r["env"].as<std::string>()}, {"value", value}, {"now", r.count("now") > 0}});
      if (!done.ok()) return report_api(verb, done.error());
      if (!done->contains("ramp")) return show(done, print_set);
      // A raise is a ramp run, followed like a deploy.
      const std::string id = done->value("deploy_id", "");
      if (r.count("json") && !r.count("wait")) {
        print_json(*done);
      } else if (!r.count("json")) {
        std::cout << "ramp " << id << " started: " << words[2] << " to " << words[3] << "% in "
                  << r["env"].as<std::string>() << " (follow it: drover status " << id << ")\n";
      }
      if (!r.count("wait") && !r.count("watch")) return kExitOk;
      return follow(*api, verb, id, timeout_s, r.count("json") > 0, r.count("watch") > 0);
    }
    if (words.size() == 3 && words[0] == "kill") {
      return show(api->call("POST", base + "/" + http::percent_encode(words[2]) + "/kill",
                            json{{"env", r["env"].as<std::string>()}}),
                  print_set);
    }
    return usage(
        verb, "set SERVICE FLAG on|off|PERCENT --env E | kill SERVICE FLAG --env E | ls SERVICE");
  }
  if (verb == "scm") {
    if (words.size() == 2 && words[0] == "source") {
      if (!r.count("secret-file")) return usage(verb, "scm source needs --secret-file FILE");
      auto secret = ctx.fs.read_file(r["secret-file"].as<std::string>(), 4096);
      if (!secret.ok()) return report_api(verb, secret.error());
      std::string text = *secret;
      while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
      return show(
          api->call("POST", "/scm/sources", json{{"repository", words[1]}, {"secret", text}}),
          [&](const json&) { std::cout << "secret set for " << words[1] << "\n"; });
    }
    if (words.size() == 1 && words[0] == "sources") {
      return show(api->call("GET", "/scm/sources"), [](const json& j) {
        for (const auto& src : j["sources"]) {
          std::cout << src.value("repository", "") << "\tset by " << src.value("created_by", "")
                    << "\n";
        }
      });
    }
    if (words.size() == 3 && words[0] == "login") {
      return show(api->call("POST", "/scm/logins", json{{"login", words[1]}, {"person", words[2]}}),
                  [&](const json&) {
                    std::cout << "pushes by " << words[1] << " start runs as " << words[2] << "\n";
                  });
    }
    return usage(verb, "scm source REPOSITORY --secret-file FILE | sources | login LOGIN PERSON");
  }
  if (verb == "notify") {
    if (!words.empty() && words[0] == "allow") {
      const std::vector<std::string> allow(words.begin() + 1, words.end());
      return show(
          api->call("PUT", "/notifications/allow", json{{"allow", allow}}),
          [&](const json&) { std::cout << "allow-list set: " << allow.size() << " entries\n"; });
    }
    if (words.size() == 1 && words[0] == "allowed") {
      return show(api->call("GET", "/notifications/allow"), [](const json& j) {
        for (const auto& e : j["allow"]) std::cout << e.get<std::string>() << "\n";
      });
    }
    if (words.size() == 3 && words[0] == "add") {
      if (!r.count("url")) return usage(verb, "notify add needs --url URL");
      json body = {{"name", words[2]}, {"url", r["url"].as<std::string>()}};
      std::string secret;
      if (auto st = read_secret(secret); !st.ok()) return report_api(verb, st.error());
      if (!secret.empty()) body["secret"] = secret;
      if (r.count("format")) body["format"] = r["format"].as<std::string>();
      if (r.count("event")) body["events"] = r["event"].as<std::vector<std::string>>();
      return show(api->call("POST", "/pipelines/" + words[1] + "/notifications", body),
                  [&](const json& j) {
                    std::cout << words[1] << "/" << words[2] << " posts to "
                              << j.value("origin", "") << "\n";
                  });
    }
    if (words.size() == 2 && words[0] == "ls") {
      return show(api->call("GET", "/pipelines/" + words[1] + "/notifications"), [](const json& j) {
        for (const auto& d : j["destinations"]) {
          std::cout << d.value("name", "") << "\t" << d.value("origin", "") << "\t"
                    << d.value("format", "") << "\t"
                    << (d.value("signed", false) ? "signed" : "unsigned") << "\n";
        }
      });
    }
    if (words.size() == 3 && words[0] == "rm") {
      return show(api->call("DELETE", "/pipelines/" + words[1] + "/notifications/" + words[2]),
                  [&](const json&) { std::cout << "removed " << words[2] << "\n"; });
    }
    if (words.size() == 1 && words[0] == "outbox") {
      return show(api->call("GET", "/notifications/outbox"), [](const json& j) {
        for (const auto& p : j["pending"]) {
          std::cout << p.value("pipeline_id", "") << "/" << p.value("name", "") << "\t"
                    << p.value("kind", "") << "\tattempts " << p.value("attempts", 0) << "\t"
                    << p.value("last_error", "") << "\n";
        }
      });
    }
    return usage(verb,
                 "notify allow [URL...] | allowed | add PIPELINE NAME --url URL | ls PIPELINE | "
                 "rm PIPELINE NAME | outbox | receive --listen HOST:PORT");
  }
  if (verb == "join-token") {
    if (words.size() == 1 && words[0] == "create") {
      json spec = json::object();
      if (r.count("uses")) spec["uses"] = r["uses"].as<std::int64_t>();
      if (r.count("ttl")) spec["ttl_s"] = r["ttl"].as<std::int64_t>();
      if (r.count("region")) spec["regions"] = r["region"].as<std::vector<std::string>>();
      if (r.count("service")) spec["services"] = r["service"].as<std::vector<std::string>>();
      return show(api->call("POST", "/join-tokens", spec),
                  [](const json& j) { std::cout << j.value("token", "") << "\n"; });
    }
    if (words.size() == 1 && words[0] == "ls") {
      return show(api->call("GET", "/join-tokens"), [](const json& j) {
        for (const auto& t : j["join_tokens"]) {
          std::cout << t.value("id", "") << "\t" << t.value("issued_by", "") << "\texpires "
                    << t["expires_at"].dump() << "\t" << t["uses_left"].dump() << " uses left";
          if (!t["regions"].empty()) std::cout << "\tregions " << t["regions"].dump();
          if (!t["services"].empty()) std::cout << "\tservices " << t["services"].dump();
          std::cout << "\n";
        }
      });
    }
    if (words.size() == 2 && words[0] == "revoke") {
      return show(api->call("DELETE", "/join-tokens/" + words[1]),
                  [&](const json&) { std::cout << "revoked " << words[1] << "\n"; });
    }
    return usage(verb,
                 "join-token create [--uses N] [--ttl S] [--region R]... [--service S]... | ls | "
                 "revoke ID");
  }
  if (verb == "hosts") {
    return show(api->call("GET", "/hosts"), [&](const json& j) {
      const std::int64_t now = unix_ms(ctx.clock.now());
      std::cout << pad_to("HOST", 14) << pad_to("REGION/CLUSTER", 22) << pad_to("SERVICE", 12)
                << pad_to("RELEASE", 14) << pad_to("LAST SEEN", 12) << "HEALTH\n";
      const json listed = j.value("hosts", json::array());
      std::vector<json> hosts;
      if (listed.is_array()) hosts.assign(listed.begin(), listed.end());
      std::sort(hosts.begin(), hosts.end(), [](const json& a, const json& b) {
        return a.value("host", "") < b.value("host", "");
      });
      for (const auto& h : hosts) {
        const std::string name = h.value("host", "");
        if (h.value("unreadable", false)) {
          std::cout << pad_to(name, 14) << "(record unreadable: an admin may reset it)\n";
          continue;
        }
        const std::int64_t seen = h.value("last_seen", std::int64_t{0});
        // last_seen is in seconds (docs/API.md).
        const std::string ago = seen <= 0 ? "never" : seconds_ago(now / 1000 - seen);
        const json running = h.value("running", json::object());
        const json health = h.value("health", json::object());
        bool first = true;
        for (const auto& [service, release] : running.items()) {
          std::string how = "-";
          if (health.contains(service) && health[service].is_object()) {
            const json& s = health[service];
            char buf[96];
            std::snprintf(buf, sizeof buf, "%s err %.1f%% p99 %.0f ms",
                          s.value("ok", true) ? "ok" : "UNHEALTHY",
                          s.value("error_rate", 0.0) * 100, s.value("p99_ms", 0.0));
            how = buf;
          }
          std::cout << pad_to(first ? name : "", 14)
                    << pad_to(first ? h.value("region", "") + "/" + h.value("cluster", "") : "", 22)
                    << pad_to(service, 12)
                    << pad_to(release.is_string() && !release.get<std::string>().empty()
                                  ? short_id(release.get<std::string>())
                                  : "-",
                              14)
                    << pad_to(first ? ago : "", 12) << how << "\n";
          first = false;
        }
        if (first) {
          std::cout << pad_to(name, 14)
                    << pad_to(h.value("region", "") + "/" + h.value("cluster", ""), 22)
                    << pad_to("-", 12) << pad_to("-", 14) << pad_to(ago, 12) << "-\n";
        }
      }
    });
  }
  if (verb == "audit") {
    if (words.size() == 1 && words[0] == "verify") {
      auto v = api->call("GET", "/audit/verify");
      if (!v.ok()) return report_api(verb, v.error());
      if (as_json) print_json(*v);
      if (!(*v)["ok"].get<bool>()) {
        if (!as_json)
          std::cout << "audit log BROKEN: " << (*v)["problem"].get<std::string>() << "\n";
        return kExitFailed;
      }
      if (!as_json) std::cout << "audit log verified: " << (*v)["records"] << " records\n";
      return kExitOk;
    }
    if (words.size() == 2 && words[0] == "show") {
      return show(api->call("GET", "/deploys/" + http::percent_encode(words[1]) + "/audit"),
                  print_history);
    }
    if (!words.empty()) {
      return usage(verb, "audit [verify | show DEPLOY_ID] [--service S] [--since T]");
    }
    // The newest N (up to --until), unless --since asks for the first N from then.
    std::string q = "/audit?limit=" + (r.count("limit") ? r["limit"].as<std::string>() : "100");
    if (!r.count("since")) q += "&order=newest";
    for (const char* k : {"service", "env", "since", "until"}) {
      if (r.count(k))
        q += std::string("&") + k + "=" + http::percent_encode(r[k].as<std::string>());
    }
    return show(api->call("GET", q), [](const json& j) {
      for (const auto& a : j.value("records", json::array())) {
        if (!a.is_object()) continue;
        std::cout << utc_of_ms(a.value("at", std::int64_t{0})) << "  "
                  << pad_to(a.value("deploy_id", "-"), 10) << record_text(a) << "\n";
      }
    });
  }
  return usage(verb, "unknown command");
}

}  // namespace drover::cli
