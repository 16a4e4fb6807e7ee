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
// notify receive: prints each verified notification posted to listen, until
// count were received (0: until killed).
int notify_receive(Context& ctx, const std::string& listen, const std::string& secret,
                   std::size_t count, bool as_json);

}  // namespace drover::cli
