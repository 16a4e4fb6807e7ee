// drover: the command line for release engineers and operators.
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
    "  deploy PIPELINE ARTIFACT_ID [--wait]                   start a deploy\n"
    "  rollback DEPLOY_ID [--wait]                            roll a deploy back\n"
    "  redeploy DEPLOY_ID [--env E] [--wait]                  run a deploy again from its "
    "snapshot\n"
    "  status|pause|resume DEPLOY_ID                          a deploy's state; pause; resume\n"
    "  pipeline apply -f FILE|ls|show ID|runs ID              pipelines (YAML or JSON)\n"
    "  approve|reject|override-freeze DEPLOY_ID               a gate; a freeze window\n"
    "  token create|revoke|list, join-token create|ls|revoke   access (admin)\n"
    "  scm source|sources|login                               git push triggers (admin)\n"
    "  notify allow|allowed|add|ls|rm|outbox|receive          notifications of a pipeline\n"
    "  flag set|kill|ls SERVICE [FLAG VALUE] --env E           feature flags, per environment\n"
    "  release create -f FILE|ls|status|approve|reject ID      several services in dependency "
    "order\n"
    "  hosts, audit [verify|show DEPLOY_ID]                   inventory; the audit log\n"
    "  version                                                print the version\n"
    "run 'drover <command> --help' for a command's options\n";
}

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
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
  for (const char* verb : {"deploy", "rollback", "redeploy", "status", "pause", "resume",
                           "pipeline", "approve", "reject", "override-freeze", "scm", "notify",
                           "token", "join-token", "hosts", "audit", "flag", "release"}) {
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
  std::cerr << "drover: unknown command '" << command << "'\n" << kHelp;
  return drover::cli::kExitUsage;
}
