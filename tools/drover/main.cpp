// drover: the command line for release engineers and operators.
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "tools/drover/commands.hpp"

namespace {
constexpr const char* kHelp =
    "usage: drover <command> ...\n"
    "  artifact push|ls|show|verify|materialize|gc|pin|unpin   the artifact store\n"
    "  keygen --out PATH                                      generate an ed25519 key pair\n"
    "  key certify|rotate-root|show                           root certificates and rotation, key "
    "ids\n"
    "  mesh token-key|token                                   mesh token key; seed/origin tokens\n"
    "  deploy PIPELINE ARTIFACT_ID [--watch|--wait]           start a deploy\n"
    "  rollback DEPLOY_ID [--wait]                            roll a deploy back\n"
    "  redeploy DEPLOY_ID [--env E] [--wait]                  run a deploy again from its "
    "snapshot\n"
    "  status DEPLOY_ID|SERVICE [--watch]                     a deploy's state, live with --watch\n"
    "  deploys [--service S]                                  the newest deploys\n"
    "  pause|resume DEPLOY_ID                                 pause a deploy; resume it\n"
    "  pipeline apply -f FILE|ls|show ID|runs ID              pipelines (YAML or JSON)\n"
    "  approve|reject|override-freeze DEPLOY_ID               a gate; a freeze window\n"
    "  token create|revoke|list, join-token create|ls|revoke   access (admin)\n"
    "  scm source|sources|login                               git push triggers (admin)\n"
    "  notify allow|allowed|add|ls|rm|outbox|receive          notifications of a pipeline\n"
    "  flag set|kill|ls SERVICE [FLAG VALUE] --env E           feature flags, per environment\n"
    "  release create -f FILE|ls|status|approve|reject ID      several services in dependency "
    "order\n"
    "  hosts, audit [verify|show DEPLOY_ID]                   inventory; the audit log\n"
    "  config set-context|use-context|get-contexts            contexts: coordinator, token, CA\n"
    "  completion bash                                        a bash completion script\n"
    "  version                                                print the version\n"
    "run 'drover <command> --help' for a command's options\n";

constexpr const char* kCoordinatorVerbs[] = {"deploy",  "rollback", "redeploy",        "status",
                                             "deploys", "pause",    "resume",          "pipeline",
                                             "approve", "reject",   "override-freeze", "scm",
                                             "notify",  "token",    "join-token",      "hosts",
                                             "audit",   "flag",     "release"};

// Edit distance (insertions, deletions, substitutions) between two words.
std::size_t distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// The command a mistyped one was most likely meant to be ("" if none is
// close: at most 1 edit for words of up to 4 letters, 2 beyond).
std::string closest(const std::string& typed) {
  std::vector<std::string> all(std::begin(kCoordinatorVerbs), std::end(kCoordinatorVerbs));
  for (const char* v :
       {"artifact", "keygen", "key", "mesh", "config", "completion", "version", "help"}) {
    all.push_back(v);
  }
  std::string best;
  std::size_t best_d = (typed.size() <= 4 ? 1 : 2) + 1;
  for (const auto& v : all) {
    const std::size_t d = distance(typed, v);
    if (d < best_d) {
      best = v;
      best_d = d;
    }
  }
  return best;
}
}  // namespace

int run(std::vector<std::string> args);

int main(int argc, char** argv) {
  // An answer of a shape this drover does not expect (an older or newer
  // coordinator, a proxy's error page) is an error to report, never a crash.
  try {
    return run(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    std::cerr << "drover: an answer this drover did not expect (" << e.what()
              << "); is the coordinator the same version? (drover version)\n";
    return drover::cli::kExitFailed;
  }
}

int run(std::vector<std::string> args) {
  drover::PosixFilesystem fs;
  drover::SystemClock clock;
  drover::SystemRandom random;
  drover::StderrSink log_sink;
  drover::cli::Context ctx{fs, clock, random, log_sink};

  if (args.empty()) {
    std::cerr << kHelp;
    return drover::cli::kExitUsage;
  }
  const std::string command = args.front();
  args.erase(args.begin());
  if (command == "artifact") return drover::cli::artifact_command(ctx, std::move(args));
  if (command == "keygen") return drover::cli::keygen_command(ctx, std::move(args));
  if (command == "key") return drover::cli::key_command(ctx, std::move(args));
  if (command == "mesh") return drover::cli::mesh_command(ctx, std::move(args));
  if (command == "config") return drover::cli::config_command(ctx, std::move(args));
  if (command == "completion") {
    std::vector<std::string> verbs(std::begin(kCoordinatorVerbs), std::end(kCoordinatorVerbs));
    for (const char* v : {"artifact", "keygen", "key", "mesh", "config", "completion", "version"}) {
      verbs.push_back(v);
    }
    std::sort(verbs.begin(), verbs.end());
    return drover::cli::completion_command(verbs, run, std::move(args));
  }
  for (const char* verb : kCoordinatorVerbs) {
    if (command == verb) return drover::cli::coordinator_command(ctx, command, std::move(args));
  }
  if (command == "version" || command == "--version") {
    std::cout << "drover " << DROVER_VERSION << "\n";
    return drover::cli::kExitOk;
  }
  if (command == "help" || command == "--help" || command == "-h") {
    std::cout << kHelp;
    return drover::cli::kExitOk;
  }
  std::cerr << "drover: unknown command '" << command << "'";
  if (const std::string near = closest(command); !near.empty()) {
    std::cerr << "; did you mean '" << near << "'?";
  }
  std::cerr << "\n" << kHelp;
  return drover::cli::kExitUsage;
}
