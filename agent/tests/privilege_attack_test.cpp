// A service that turns hostile on its host (docs/SECURITY.md, "Services"):
// run as an unprivileged user by an agent running as root, it tries to write
// its own release, another service's release, its flags file, the agent's
// state and keys; every write fails with EACCES, and its environment holds
// only the allow-list. Real agent, real users: run as root (CI does);
// skipped otherwise. The config rules that need no root run everywhere.
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sstream>

#include "agent/config.hpp"
#include "agent/tests/agent_fixture.hpp"
#include "core/http/http.hpp"

namespace drover::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

agent::AgentConfig config_with(const json& service) {
  json j = {{"format", "drover.agent-config.v1"},
            {"host", "web-1"},
            {"state_dir", "/tmp/x"},
            {"root_key", "/tmp/root.pub"},
            {"coordinator", {{"requests", "tcp://127.0.0.1:1"}}},
            {"services", {{{"name", "db"}, {"start", {"/bin/true"}}, {"user", "root"}}, service}}};
  auto c = agent::parse_config(j.dump());
  EXPECT_TRUE(c.ok()) << c.error().message;
  return c.ok() ? *c : agent::AgentConfig{};
}

TEST(ServiceUsers, AsRootAServiceWithoutAUserIsRefusedNamingTheField) {
  agent::AgentConfig c = config_with({{"name", "web"}, {"start", {"/bin/true"}}});
  Status st = agent::resolve_users(c, 0);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message,
            "agent config: services[1].user is required when the agent runs as root: name the "
            "unprivileged user the service runs as (or write \"root\" to run it as root)");
  // Named, it resolves: nobody's ids, its home, switched.
  c = config_with({{"name", "web"}, {"start", {"/bin/true"}}, {"user", "nobody"}});
  ASSERT_TRUE(agent::resolve_users(c, 0).ok());
  const passwd* nobody = ::getpwnam("nobody");
  ASSERT_NE(nobody, nullptr);
  EXPECT_EQ(c.services[1].run_as.uid, nobody->pw_uid);
  EXPECT_EQ(c.services[1].run_as.gid, nobody->pw_gid);
  EXPECT_TRUE(c.services[1].run_as.switch_ids);
  EXPECT_TRUE(c.services[0].run_as.switch_ids);
  EXPECT_EQ(c.services[0].run_as.uid, 0u);
  // A user or group that does not exist is named.
  c = config_with({{"name", "web"}, {"start", {"/bin/true"}}, {"user", "no-such-user-here"}});
  st = agent::resolve_users(c, 0);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("services[1].user 'no-such-user-here': no such user"),
            std::string::npos)
      << st.error().message;
  c = config_with({{"name", "web"},
                   {"start", {"/bin/true"}},
                   {"user", "nobody"},
                   {"group", "no-such-group-here"}});
  st = agent::resolve_users(c, 0);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("services[1].group 'no-such-group-here': no such group"),
            std::string::npos)
      << st.error().message;
}

TEST(ServiceUsers, NotRootServicesRunAsTheAgentAndAnotherUserIsRefused) {
  const std::uint32_t uid = 4242;  // an agent that is not root, whoever runs the test
  agent::AgentConfig c = config_with({{"name", "web"}, {"start", {"/bin/true"}}});
  c.services.erase(c.services.begin());  // "db" names root
  ASSERT_TRUE(agent::resolve_users(c, uid).ok());
  EXPECT_FALSE(c.services[0].run_as.switch_ids);
  EXPECT_EQ(c.services[0].run_as.uid, uid);
  c = config_with({{"name", "web"}, {"start", {"/bin/true"}}, {"user", "nobody"}});
  c.services.erase(c.services.begin());
  Status st = agent::resolve_users(c, uid);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("services[0].user 'nobody': the agent runs as uid 4242, not "
                                    "root, and runs services only as itself"),
            std::string::npos)
      << st.error().message;
}

TEST(ServiceUsers, TheEnvironmentIsTheAllowListAndDroversOwn) {
  agent::RunAs as;
  as.user = "nobody";
  as.home = "/nonexistent";
  const char* agent_env[] = {"PATH=/opt/evil/bin",
                             "LD_PRELOAD=/tmp/x.so",
                             "LANG=C.UTF-8",
                             "DROVER_CRASH_AT=apply",
                             "AWS_SECRET=x",
                             "TZ=UTC",
                             nullptr};
  auto env = agent::service_environment(as, {{"DROVER_SERVICE", "web"}}, agent_env);
  EXPECT_EQ(env, (std::vector<std::string>{std::string("PATH=") + agent::kServicePath,
                                           "HOME=/nonexistent", "USER=nobody", "LOGNAME=nobody",
                                           "LANG=C.UTF-8", "TZ=UTC", "DROVER_SERVICE=web"}));
}

// The releases, flags file and state an agent running as root makes for a
// service of another user.
class PrivilegeAttack : public AgentTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) {
      DROVER_SKIP_UNPRIVILEGED("needs root: the agent must switch users (CI runs as root)");
    }
    AgentTest::SetUp();
    // The services' users must reach their releases beneath the test's
    // directory (made 0700 by mkdtemp): search only, no listing.
    ::chmod(dir_.path().c_str(), 0711);
  }

  static json identity(std::uint16_t port) {
    auto r = http::request("GET", "http://127.0.0.1:" + std::to_string(port) + "/identity", "", 5s);
    if (!r.ok() || r->status != 200) return json();
    return json::parse(r->body, nullptr, false);
  }

  static std::uint32_t mode_of(const fs::path& p) {
    struct stat st {};
    return ::lstat(p.c_str(), &st) == 0 ? st.st_mode & 07777 : 07777u;
  }
  static gid_t group_of(const fs::path& p) {
    struct stat st {};
    return ::lstat(p.c_str(), &st) == 0 ? st.st_gid : static_cast<gid_t>(-1);
  }
};

TEST_F(PrivilegeAttack, AServiceWritesNothingOutsideWhatItOwnsAndSeesOnlyTheAllowList) {
  // getpwnam's answer lives until the next call: copied at once.
  const passwd* nobody = ::getpwnam("nobody");
  ASSERT_NE(nobody, nullptr) << "the test needs the user nobody (Debian has it)";
  const uid_t nobody_uid = nobody->pw_uid;
  const gid_t nobody_gid = nobody->pw_gid;
  const std::string nobody_home = nobody->pw_dir;
  const passwd* daemon_user = ::getpwnam("daemon");
  ASSERT_NE(daemon_user, nullptr) << "the test needs the user daemon (Debian has it)";
  const gid_t daemon_gid = daemon_user->pw_gid;
  const fs::path state = state_of();

  // Another service's release, made first so the attacker can name it.
  auto other = push("api", good(), 4 << 10, 2);
  const fs::path other_release = state / "releases" / "api" / other.id.hex();
  const fs::path flags = state / "run" / "web.flags.json";
  json attack = good();
  attack["try_writes"] = {"{release}",
                          "{release}/demo.json",
                          (state / "releases" / "web").string(),
                          other_release.string(),
                          (other_release / "demo.json").string(),
                          flags.string(),
                          state.string(),
                          (state / "run").string(),
                          (state / "run" / "web.pid").string(),
                          (state / "keys").string(),
                          (state / "keys" / "agent.key").string(),
                          (state / "keys" / "report.key").string(),
                          (state / "agent.lmdb" / "data.mdb").string(),
                          (state / "control.json").string()};
  auto web = push("web", attack, 4 << 10, 1);
  start_origin();

  const std::string demo = binary("drover-demo-service").string();
  const std::uint16_t web_port = free_port(), api_port = free_port();
  json services = json::array();
  services.push_back({{"name", "web"},
                      {"user", "nobody"},
                      {"port", web_port},
                      {"start", {demo, "--port", "{port}"}},
                      {"health", "http://127.0.0.1:{port}/health"},
                      {"start_timeout_s", 10},
                      {"stop_timeout_s", 5}});
  services.push_back({{"name", "api"},
                      {"user", "daemon"},
                      {"port", api_port},
                      {"start", {demo, "--port", "{port}"}},
                      {"health", "http://127.0.0.1:{port}/health"},
                      {"start_timeout_s", 10},
                      {"stop_timeout_s", 5}});
  AgentOptions o;
  o.extra = {{"services", services}};
  auto agent = start_agent(write_config(o));
  ASSERT_TRUE(agent);
  coordinator_.publish(plan(other, 1));
  wait_event(*agent, "applied", [](const json& j) { return j.value("service", "") == "api"; });
  // Flags too: the plan's flags file is the one the service must not write.
  proto::Plan p = plan(web, 1);
  p.flags["new-checkout"] = proto::FlagValue{false, true, 0};
  coordinator_.publish(p);
  wait_event(*agent, "applied", [](const json& j) { return j.value("service", "") == "web"; });
  ASSERT_TRUE(wait_serving(web_port, web.id)) << agent->stderr_tail();

  const json id = identity(web_port);
  ASSERT_TRUE(id.is_object());
  EXPECT_EQ(id["uid"], nobody_uid);
  EXPECT_EQ(id["euid"], nobody_uid);
  EXPECT_EQ(id["gid"], nobody_gid);
  EXPECT_EQ(id["egid"], nobody_gid);
  for (const auto& g : id["groups"]) EXPECT_NE(g, 0) << "kept root's group";

  // Every write fails with EACCES.
  const fs::path release = state / "releases" / "web" / web.id.hex();
  ASSERT_EQ(id["writes"].size(), attack["try_writes"].size()) << id.dump();
  for (const auto& [path, result] : id["writes"].items()) {
    EXPECT_EQ(result, "EACCES") << path;
  }
  // It could read what is its own: its release and its flags.
  const json v = *version(web_port);
  EXPECT_EQ(v["flags"]["flags"]["new-checkout"], true);  // drover.flags.v1, the default

  // Its environment: the allow-list and drover's own, nothing of the agent's.
  std::set<std::string> names;
  for (const auto& [k, value] : id["env"].items()) names.insert(k);
  std::set<std::string> allowed = {"PATH",
                                   "HOME",
                                   "USER",
                                   "LOGNAME",
                                   "LANG",
                                   "LC_ALL",
                                   "TZ",
                                   "DROVER_SERVICE",
                                   "DROVER_RELEASE",
                                   "DROVER_RELEASE_DIR",
                                   "DROVER_PORT",
                                   "DROVER_FLAGS_FILE",
                                   "DROVER_SLOT",
                                   "DROVER_HOST",
                                   "DROVER_REGION",
                                   "DROVER_CLUSTER"};
  for (const auto& n : names) EXPECT_TRUE(allowed.count(n)) << "leaked into the service: " << n;
  EXPECT_EQ(id["env"]["PATH"], agent::kServicePath);
  EXPECT_EQ(id["env"]["USER"], "nobody");
  EXPECT_EQ(id["env"]["HOME"], nobody_home);
  EXPECT_EQ(id["env"]["DROVER_RELEASE"], web.id.str());

  // What made it so: the modes and groups on disk.
  EXPECT_EQ(mode_of(state), 0711u);
  EXPECT_EQ(mode_of(state / "keys"), 0700u);
  EXPECT_EQ(mode_of(state / "keys" / "agent.key"), 0600u);
  EXPECT_EQ(mode_of(state / "keys" / "report.key"), 0600u);
  EXPECT_EQ(mode_of(state / "agent.lmdb"), 0700u);
  EXPECT_EQ(mode_of(state / "agent.lmdb" / "data.mdb"), 0600u);
  EXPECT_EQ(mode_of(state / "releases" / "web"), 0750u);
  EXPECT_EQ(group_of(state / "releases" / "web"), nobody_gid);
  EXPECT_EQ(mode_of(release), 0750u);
  EXPECT_EQ(group_of(release), nobody_gid);
  EXPECT_EQ(group_of(release / "demo.json"), nobody_gid);
  EXPECT_EQ(mode_of(release / "demo.json") & 022, 0u);
  EXPECT_EQ(group_of(other_release), daemon_gid);
  EXPECT_EQ(mode_of(flags), 0640u);
  EXPECT_EQ(group_of(flags), nobody_gid);

  // The agent itself keeps only its capabilities (docs/AGENT.md).
  const std::uint64_t kept = (1u << CAP_CHOWN) | (1u << CAP_DAC_OVERRIDE) | (1u << CAP_FOWNER) |
                             (1u << CAP_KILL) | (1u << CAP_SETGID) | (1u << CAP_SETUID) |
                             (1u << CAP_NET_BIND_SERVICE);
  std::map<std::string, std::uint64_t> caps;
  std::istringstream status(read_file("/proc/" + std::to_string(agent->pid()) + "/status"));
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("Cap", 0) == 0 && line.find(':') == 6) {
      caps[line.substr(0, 6)] = std::stoull(line.substr(7), nullptr, 16);
    }
  }
  EXPECT_EQ(caps["CapBnd"], kept);
  EXPECT_EQ(caps["CapPrm"] & ~kept, 0u);
  EXPECT_EQ(caps["CapEff"] & ~kept, 0u);
  EXPECT_EQ(caps["CapInh"], 0u);
  EXPECT_EQ(caps["CapAmb"], 0u);
}

TEST_F(PrivilegeAttack, AHookRunsAsTheServiceDoes) {
  // The drain command, a hook, runs as the service's user: it prints its
  // ids into the service's log (which the agent opens for it).
  const passwd* nobody = ::getpwnam("nobody");
  ASSERT_NE(nobody, nullptr);
  auto v1 = push("web", good(), 4 << 10, 1);
  auto v2 = push("web", good(), 4 << 10, 2);
  start_origin();
  AgentOptions o;
  o.user = "nobody";
  o.extra = json::object();
  const fs::path config = write_config(o);
  json c = json::parse(read_file(config));
  c["services"][0]["stop"] = {"/bin/sh", "-c", "id -u; id -g"};
  write_file(config, c.dump());
  auto agent = start_agent(config);
  coordinator_.publish(plan(v1, 1));
  wait_event(*agent, "applied", seq_is(1));
  coordinator_.publish(plan(v2, 2));  // stops v1: its drain command runs
  wait_event(*agent, "applied", seq_is(2));
  const std::string log = read_file(state_of() / "logs" / "web.log");
  EXPECT_NE(log.find(std::to_string(nobody->pw_uid) + "\n" + std::to_string(nobody->pw_gid) + "\n"),
            std::string::npos)
      << log;
}

}  // namespace
}  // namespace drover::testing
