// The verbs of the drover command line. Each takes the words after its own
// name and returns the process exit code.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "tools/drover/cli.hpp"

namespace drover::cli {

int artifact_command(Context& ctx, std::vector<std::string> args);
int keygen_command(Context& ctx, std::vector<std::string> args);
int key_command(Context& ctx, std::vector<std::string> args);
// mesh token-key, mesh token: the mesh token key and tokens for seeds and the origin.
int mesh_command(Context& ctx, std::vector<std::string> args);
// deploy, rollback, status, pause, resume, pipeline, token, join-token, hosts, audit.
int coordinator_command(Context& ctx, const std::string& verb, std::vector<std::string> args);
// config set-context|use-context|get-contexts|current-context|delete-context.
int config_command(Context& ctx, std::vector<std::string> args);
// completion bash (the script) and __complete CWORD WORD... (its
// candidates): verbs are the top-level verbs; run runs a whole command line
// (for each verb's --help).
int completion_command(const std::vector<std::string>& verbs,
                       const std::function<int(std::vector<std::string>)>& run,
                       std::vector<std::string> args);
// notify receive: prints each verified notification posted to listen, until
// count were received (0: until killed).
int notify_receive(Context& ctx, const std::string& listen, const std::string& secret,
                   std::size_t count, bool as_json);

}  // namespace drover::cli
