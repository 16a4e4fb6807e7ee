// The verbs of the drover command line. Each takes the words after its own
// name and returns the process exit code.
#pragma once

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

}  // namespace drover::cli
