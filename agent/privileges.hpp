// What the agent and the services it runs may do (docs/AGENT.md, "Users and
// privileges"): the user a service's processes run as, the environment they
// get, the modes of the agent's state directory, and the capabilities the
// agent keeps for itself.
//
// Threads: every function here may be called from any thread; bound_capabilities
// only at start, before any thread is made (capabilities are per thread).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/base/result.hpp"
#include "core/world/filesystem.hpp"

namespace drover::agent {

// Who a service's processes (the service and every hook) run as, resolved
// when the config is read, never between fork and exec.
struct RunAs {
  std::string user;  // the user's name ("" when unknown: the agent's own uid has no entry)
  std::uint32_t uid = 0, gid = 0;
  std::vector<std::uint32_t> groups;  // supplementary groups, the primary included
  std::string home;                   // "" when unknown
  // True when the agent runs as root: a child calls setgroups, setresgid and
  // setresuid before exec, and releases and the flags file are given gid.
  // False: the service runs as the agent's own user and nothing switches.
  bool switch_ids = false;
};

// Resolves a service's `user` and `group` (its user's primary group when
// ""). As root (agent_uid 0) the user is required: "root" must be written
// out. As any other user a service runs as the agent's own user: `user` may
// be "" or that user's name, and another user (or group) is refused. Errors
// name `field` (e.g. "services[0].user") and the value.
Result<RunAs> resolve_run_as(const std::string& user, const std::string& group,
                             std::uint32_t agent_uid, const std::string& field);

// The PATH every service gets, whatever the agent's own.
inline constexpr const char* kServicePath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// The environment of a service's processes: the allow-list (PATH as above;
// HOME, USER and LOGNAME of run_as; LANG, LC_ALL and TZ when the agent has
// them in agent_env) and then `drover`, the DROVER_* variables the agent
// sets. Nothing else of the agent's environment passes. "NAME=value" strings.
std::vector<std::string> service_environment(const RunAs& run_as,
                                             const std::map<std::string, std::string>& drover,
                                             const char* const* agent_env);

// Makes the state directory's tree and gives it its modes (docs/FORMATS.md,
// "Agent state"): STATE, releases/ and run/ 0711 (services reach their
// release and flags file by name, and list nothing); keys/, agent.lmdb/,
// manifests/, cache/ and logs/ 0700. Made so again at every start.
Status prepare_state_dir(Filesystem& fs, const fs::path& state);

// The capabilities the agent keeps when it runs as root (docs/AGENT.md):
// switching users, sharing releases with a group, signalling services, and
// nothing else.
std::vector<std::string> kept_capability_names();

// As root: drops every other capability from the bounding set (so no child
// ever gains one), the ambient set, and the agent's own permitted, effective
// and inheritable sets. Does nothing for another user. An error names the
// capability that could not be dropped.
Status bound_capabilities();

}  // namespace drover::agent
