#include "agent/privileges.hpp"

#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace drover::agent {
namespace {

Error privilege_error(const std::string& what) {
  return make_error(Errc::invalid_argument, what);
}

// getpwnam_r / getpwuid_r with a buffer that grows until the entry fits.
struct Passwd {
  bool found = false;
  int error = 0;
  std::string name, home;
  std::uint32_t uid = 0, gid = 0;
};

template <class Lookup>
Passwd lookup_passwd(Lookup lookup) {
  Passwd out;
  std::vector<char> buf(4096);
  for (;;) {
    passwd pw{};
    passwd* found = nullptr;
    const int rc = lookup(&pw, buf.data(), buf.size(), &found);
    if (rc == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (rc != 0 && rc != ENOENT && rc != ESRCH) out.error = rc;
    if (found != nullptr) {
      out.found = true;
      out.name = pw.pw_name;
      out.home = pw.pw_dir ? pw.pw_dir : "";
      out.uid = pw.pw_uid;
      out.gid = pw.pw_gid;
    }
    return out;
  }
}

Passwd user_named(const std::string& name) {
  return lookup_passwd([&](passwd* pw, char* buf, std::size_t n, passwd** found) {
    return ::getpwnam_r(name.c_str(), pw, buf, n, found);
  });
}

Passwd user_of(std::uint32_t uid) {
  return lookup_passwd([&](passwd* pw, char* buf, std::size_t n, passwd** found) {
    return ::getpwuid_r(static_cast<uid_t>(uid), pw, buf, n, found);
  });
}

// The group's id, or nullopt when there is none of that name.
std::optional<std::uint32_t> group_named(const std::string& name, int* error) {
  std::vector<char> buf(4096);
  for (;;) {
    group gr{};
    group* found = nullptr;
    const int rc = ::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found);
    if (rc == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (rc != 0 && rc != ENOENT) *error = rc;
    if (found == nullptr) return std::nullopt;
    return static_cast<std::uint32_t>(gr.gr_gid);
  }
}

std::vector<std::uint32_t> groups_of(const std::string& user, std::uint32_t primary) {
  int n = 64;
  for (int tries = 0; tries < 8; ++tries) {
    std::vector<gid_t> groups(static_cast<std::size_t>(n));
    int count = n;
    if (::getgrouplist(user.c_str(), static_cast<gid_t>(primary), groups.data(), &count) >= 0) {
      return {groups.begin(), groups.begin() + count};
    }
    n = std::max(count, n * 2);
  }
  return {primary};
}

}  // namespace

Result<RunAs> resolve_run_as(const std::string& user, const std::string& group,
                             std::uint32_t agent_uid, const std::string& field) {
  const std::string group_field = field.substr(0, field.rfind('.') + 1) + "group";
  if (agent_uid != 0) {
    // Not root: nothing can switch, so the service runs as the agent does.
    const Passwd me = user_of(agent_uid);
    RunAs r;
    r.uid = agent_uid;
    r.gid = static_cast<std::uint32_t>(::getegid());
    r.user = me.found ? me.name : "";
    r.home = me.found ? me.home : "";
    const std::string who = me.found ? "'" + me.name + "'" : "uid " + std::to_string(agent_uid);
    if (!user.empty() && user != r.user) {
      return privilege_error(
          field + " '" + user + "': the agent runs as " + who +
          ", not root, and runs services only as itself; remove the field or run the "
          "agent as root");
    }
    if (!group.empty()) {
      return privilege_error(
          group_field + " '" + group + "': the agent runs as " + who +
          ", not root, and cannot give a service another group; remove the field");
    }
    r.groups = {r.gid};
    return r;
  }
  if (user.empty()) {
    return privilege_error(
        field +
        " is required when the agent runs as root: name the unprivileged user the "
        "service runs as (or write \"root\" to run it as root)");
  }
  const Passwd pw = user_named(user);
  if (!pw.found) {
    if (pw.error != 0) {
      return make_error(
          Errc::io, field + " '" + user + "': cannot look the user up: " + std::strerror(pw.error));
    }
    return privilege_error(field + " '" + user +
                           "': no such user on this host; create it (useradd --system " + user +
                           ") or name another");
  }
  RunAs r;
  r.user = pw.name;
  r.uid = pw.uid;
  r.gid = pw.gid;
  r.home = pw.home;
  r.switch_ids = true;
  if (!group.empty()) {
    int error = 0;
    auto gid = group_named(group, &error);
    if (!gid) {
      if (error != 0) {
        return make_error(Errc::io, group_field + " '" + group +
                                        "': cannot look the group up: " + std::strerror(error));
      }
      return privilege_error(group_field + " '" + group + "': no such group on this host");
    }
    r.gid = *gid;
  }
  r.groups = groups_of(r.user, r.gid);
  return r;
}

std::vector<std::string> service_environment(const RunAs& run_as,
                                             const std::map<std::string, std::string>& drover,
                                             const char* const* agent_env) {
  std::vector<std::string> env = {std::string("PATH=") + kServicePath};
  if (!run_as.home.empty()) env.push_back("HOME=" + run_as.home);
  if (!run_as.user.empty()) {
    env.push_back("USER=" + run_as.user);
    env.push_back("LOGNAME=" + run_as.user);
  }
  for (const char* const* e = agent_env; e && *e; ++e) {
    const std::string_view kv(*e);
    for (std::string_view name : {"LANG=", "LC_ALL=", "TZ="}) {
      if (kv.substr(0, name.size()) == name) env.emplace_back(kv);
    }
  }
  for (const auto& [k, v] : drover) env.push_back(k + "=" + v);
  return env;
}

Status prepare_state_dir(Filesystem& fsys, const fs::path& state) {
  struct Dir {
    fs::path path;
    std::uint32_t mode;
  };
  const Dir dirs[] = {
      {state, 0711},           {state / "releases", 0711},   {state / "run", 0711},
      {state / "keys", 0700},  {state / "agent.lmdb", 0700}, {state / "manifests", 0700},
      {state / "cache", 0700}, {state / "logs", 0700}};
  for (const Dir& d : dirs) {
    DROVER_TRY(fsys.make_dirs(d.path));
    DROVER_TRY(fsys.set_access(d.path, d.mode, std::nullopt));
  }
  return Ok{};
}

namespace {

struct Capability {
  int number;
  const char* name;
};

// Switching users (setgroups, setresgid, setresuid); giving releases and the
// flags file a group; managing files it does not own (a release's read-only
// directories, a service's leftovers); signalling services of other users;
// binding a port below 1024 (the mesh or control port, if configured so).
// Reloading a local proxy needs nothing more: `nginx -s reload` and
// `systemctl reload` signal or ask a process that keeps its own capabilities.
constexpr Capability kKept[] = {{CAP_CHOWN, "cap_chown"},
                                {CAP_DAC_OVERRIDE, "cap_dac_override"},
                                {CAP_FOWNER, "cap_fowner"},
                                {CAP_KILL, "cap_kill"},
                                {CAP_SETGID, "cap_setgid"},
                                {CAP_SETUID, "cap_setuid"},
                                {CAP_NET_BIND_SERVICE, "cap_net_bind_service"}};

bool kept(int cap) {
  for (const Capability& c : kKept) {
    if (c.number == cap) return true;
  }
  return false;
}

int last_capability() {
  std::ifstream f("/proc/sys/kernel/cap_last_cap");
  int last = CAP_LAST_CAP;
  if (!(f >> last) || last < 0 || last > 63) last = CAP_LAST_CAP;
  return last;
}

}  // namespace

std::vector<std::string> kept_capability_names() {
  std::vector<std::string> out;
  for (const Capability& c : kKept) out.emplace_back(c.name);
  return out;
}

Status bound_capabilities() {
  if (::geteuid() != 0) return Ok{};
  const int last = last_capability();
  for (int cap = 0; cap <= last; ++cap) {
    if (kept(cap)) continue;
    const int present = ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
    if (present <= 0) continue;  // not in the bounding set (or unknown to this kernel)
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      return make_error(Errc::io, "cannot drop capability " + std::to_string(cap) +
                                      " from the bounding set: " + std::strerror(errno) +
                                      " (the agent needs CAP_SETPCAP at start to bound itself)");
    }
  }
  (void)::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, data) != 0) {
    return make_error(Errc::io, std::string("capget: ") + std::strerror(errno));
  }
  std::uint32_t mask[_LINUX_CAPABILITY_U32S_3] = {};
  for (const Capability& c : kKept) mask[c.number / 32] |= 1u << (c.number % 32);
  for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; ++i) {
    data[i].permitted &= mask[i];
    data[i].effective &= mask[i];
    data[i].inheritable = 0;
  }
  if (::syscall(SYS_capset, &header, data) != 0) {
    return make_error(Errc::io, std::string("capset: ") + std::strerror(errno));
  }
  return Ok{};
}

}  // namespace drover::agent
