// The drover command line as build jobs and operators use it: real processes,
// real stores in temporary directories. The verbs, flags, exit codes and the
// push --json output are a contract (docs/CLI.md).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <random>

#include "core/base/hex.hpp"
#include "core/http/http.hpp"
#include "core/log/log.hpp"
#include "core/sign/secret_box.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/hostile_artifact.hpp"
#include "tests/support/test_support.hpp"
#include "tests/support/tree_gen.hpp"

namespace drover::testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

class Cli : public ::testing::Test {
 protected:
  ProcessResult drover(std::vector<std::string> args) {
    args.insert(args.begin(), binary("drover").string());
    // No coordinator: these tests are about the store, whatever the
    // environment or the user's config file says.
    return run(args, std::chrono::seconds(120),
               {{"DROVER_CONFIG", (dir_ / "no-config").string()},
                {"DROVER_COORDINATOR", ""},
                {"DROVER_CONTEXT", ""}});
  }
  // Runs an artifact verb against this test's store.
  ProcessResult artifact(std::vector<std::string> args) {
    args.insert(args.begin(), "artifact");
    args.push_back("--store");
    args.push_back(store_.string());
    return drover(args);
  }
  fs::path sample_tree() {
    fs::path t = dir_ / "tree";
    write_file(t / "bin" / "app", "#!/bin/sh\n", 0755);
    write_file(t / "etc" / "conf", "x=1\n", 0644);
    fs::create_directories(t / "empty");
    fs::create_symlink("bin/app", t / "run");
    return t;
  }
  json push_json(const fs::path& tree, const std::string& sha = "0123abcd") {
    ProcessResult r =
        artifact({"push", tree.string(), "--service", "checkout", "--git-sha", sha, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out);
  }

  TempDir dir_;
  fs::path store_ = dir_ / "store";
};

TEST_F(Cli, PushJsonIsTheDocumentedObject) {
  fs::path tree = sample_tree();
  ProcessResult r =
      artifact({"push", tree.string(), "--service", "checkout", "--git-sha", "ABCDEF1234", "--meta",
                "build=ci-7", "arch=amd64", "--meta=team=pay", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["format"], "drover.push-result.v2");
  EXPECT_TRUE(j["registered"].is_null());  // no coordinator configured
  EXPECT_THAT(j["artifact_id"].get<std::string>(), ::testing::StartsWith("sha256:"));
  EXPECT_EQ(j["git_sha"], "abcdef1234");  // lowercased
  EXPECT_EQ(j["files"], 2);
  ASSERT_TRUE(j["layers"].is_array());
  ASSERT_FALSE(j["layers"].empty());
  EXPECT_TRUE(j["layers"][0].contains("id"));
  EXPECT_TRUE(j["layers"][0].contains("size"));
  EXPECT_GT(j["new_bytes"].get<std::uint64_t>(), 0u);
  EXPECT_GT(j["size_bytes"].get<std::uint64_t>(), 0u);
  // Metadata reached the artifact.
  ProcessResult show = artifact({"show", j["artifact_id"], "--json"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  json s = json::parse(show.out);
  EXPECT_EQ(s["meta"], (json{{"build", "ci-7"}, {"arch", "amd64"}, {"team", "pay"}}));
  // The same push again adds nothing.
  json again = json::parse(
      artifact({"push", tree.string(), "--service", "checkout", "--git-sha", "abcdef1234", "--meta",
                "build=ci-7", "arch=amd64", "--meta=team=pay", "--json"})
          .out);
  EXPECT_EQ(again["artifact_id"], j["artifact_id"]);
  EXPECT_EQ(again["new_bytes"], 0);
  EXPECT_EQ(again["already_present"], true);
}

TEST_F(Cli, LsShowVerifyMaterializeGc) {
  fs::path tree = sample_tree();
  std::string v1 = push_json(tree)["artifact_id"];
  write_file(tree / "etc" / "conf", "x=2\n");
  std::string v2 = push_json(tree, "0123abce")["artifact_id"];

  json listed = json::parse(artifact({"ls", "--service", "checkout", "--json"}).out);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0]["artifact_id"], v2);  // newest first
  ProcessResult table = artifact({"ls"});
  EXPECT_THAT(table.out, HasSubstr(v1.substr(7, 12)));

  ProcessResult show = artifact({"show", v1.substr(7, 10), "--files"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_THAT(show.out, HasSubstr("run -> bin/app"));

  EXPECT_EQ(artifact({"verify", v1}).exit_code, 0);
  ProcessResult all = artifact({"verify", "--all", "--json"});
  EXPECT_EQ(json::parse(all.out)["ok"], true);

  ProcessResult mat = artifact({"materialize", v1, (dir_ / "out").string()});
  ASSERT_EQ(mat.exit_code, 0) << mat.err;
  EXPECT_EQ(read_file(dir_ / "out" / "etc" / "conf"), "x=1\n");
  EXPECT_TRUE(fs::is_symlink(dir_ / "out" / "run"));
  ProcessResult again = artifact({"materialize", v1, (dir_ / "out").string()});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("exists"));

  ProcessResult gc = artifact({"gc", "--keep", "1", "--json"});
  ASSERT_EQ(gc.exit_code, 0) << gc.err;
  EXPECT_EQ(json::parse(gc.out)["removed"], json::array({v1}));
  EXPECT_EQ(artifact({"verify", v2}).exit_code, 0);
  ProcessResult gone = artifact({"show", v1});
  EXPECT_EQ(gone.exit_code, 1);
  EXPECT_THAT(gone.err, HasSubstr("no artifact"));
}

TEST_F(Cli, StoreComesFromFlagThenEnvironment) {
  fs::path tree = sample_tree();
  fs::path env_store = dir_ / "env-store";
  ProcessResult r = run({binary("drover").string(), "artifact", "push", tree.string(), "--service",
                         "svc", "--git-sha", "0123abcd"},
                        std::chrono::seconds(60), {{"DROVER_STORE", env_store.string()}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(env_store / "index" / "data.mdb"));
  EXPECT_FALSE(fs::exists(store_));
}

TEST_F(Cli, VerifyFailsOnACorruptBlob) {
  fs::path tree = sample_tree();
  json pushed = push_json(tree);
  std::string layer = pushed["layers"][0]["id"];
  fs::path blob = store_ / "blobs" / "sha256" / layer.substr(7, 2) / layer.substr(7);
  ::chmod(blob.c_str(), 0644);
  std::string bytes = read_file(blob);
  bytes[0] = static_cast<char>(bytes[0] ^ 1);
  write_file(blob, bytes, 0444);
  ProcessResult r = artifact({"verify", pushed["artifact_id"]});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.out, HasSubstr("MISMATCH layer " + layer));
  ProcessResult m = artifact({"materialize", pushed["artifact_id"], (dir_ / "out").string()});
  EXPECT_EQ(m.exit_code, 1);
  EXPECT_THAT(m.err, HasSubstr(layer));
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

// Every verb that talks to the coordinator shows its real arguments and
// examples in --help, without a coordinator or a token (issue 18).
TEST_F(Cli, EveryCoordinatorVerbsHelpShowsItsArgumentsAndExamples) {
  for (const std::string verb :
       {"deploy", "rollback", "redeploy", "status", "deploys", "pause", "resume", "pipeline",
        "approve", "reject", "override-freeze", "token", "join-token", "scm", "notify", "flag",
        "release", "hosts", "audit"}) {
    ProcessResult r = drover({verb, "--help"});
    EXPECT_EQ(r.exit_code, 0) << verb << r.err;
    EXPECT_THAT(r.out, HasSubstr("drover " + verb)) << verb;
    EXPECT_THAT(r.out, HasSubstr("Examples:\n  drover " + verb)) << verb;
  }
  ProcessResult typo = drover({"relase", "ls"});
  EXPECT_EQ(typo.exit_code, 2);
  EXPECT_THAT(typo.err, HasSubstr("did you mean 'release'"));
  ProcessResult far = drover({"frobnicate"});
  EXPECT_EQ(far.exit_code, 2);
  EXPECT_EQ(far.err.find("did you mean"), std::string::npos) << far.err;
}

// A coordinator that records who asked with which token, and answers an
// empty deploy list.
struct RecordingCoordinator {
  std::mutex mu;
  std::vector<std::string> tokens;
  std::vector<std::string> targets;  // what was asked, "GET /deploys?limit=20"
  std::unique_ptr<http::Server> server;
  explicit RecordingCoordinator(Logger& log) {
    server =
        http::Server::start(
            {},
            [this](const http::Request& r, http::Responder respond) {
              {
                std::lock_guard lock(mu);
                auto it = r.headers.find("authorization");
                tokens.push_back(it == r.headers.end() ? "" : it->second);
                targets.push_back(r.method + " " + r.target);
              }
              respond({200, "application/json", R"({"deploys":[],"ok":true,"records":0})", {}});
            },
            log)
            .value();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server->port()); }
  std::vector<std::string> seen() {
    std::lock_guard lock(mu);
    return tokens;
  }
};

// Contexts (issue 18): the config file names coordinators and token files;
// the current context serves by default, --context or DROVER_CONTEXT picks
// another, and a flag or an environment variable overrides any setting.
TEST_F(Cli, ContextsNameTheCoordinatorAndTokenAndFlagsAndEnvironmentOverrideThem) {
  RecordingCoordinator prod(Logger::discard()), staging(Logger::discard());
  write_file(dir_ / "prod.token", "prod-token\n", 0600);
  write_file(dir_ / "staging.token", "staging-token", 0600);
  const std::map<std::string, std::string> env = {
      {"DROVER_CONFIG", (dir_ / "cfg" / "config").string()},
      {"DROVER_COORDINATOR", ""},
      {"DROVER_TOKEN", ""},
      {"DROVER_CA_FILE", ""},
      {"DROVER_CONTEXT", ""}};
  auto cli = [&](std::vector<std::string> args, std::map<std::string, std::string> more = {}) {
    args.insert(args.begin(), binary("drover").string());
    more.insert(env.begin(), env.end());
    return run(args, std::chrono::seconds(30), more);
  };
  for (const auto& [name, c] :
       {std::pair<std::string, RecordingCoordinator*>{"prod", &prod}, {"staging", &staging}}) {
    ProcessResult set = cli({"config", "set-context", name, "--coordinator", c->url(),
                             "--token-file", (dir_ / (name + ".token")).string()});
    ASSERT_EQ(set.exit_code, 0) << set.err;
  }
  // The first context made is the current one; the file is the owner's alone.
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "cfg" / "config").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_THAT(cli({"config", "current-context"}).out, HasSubstr("prod"));
  ASSERT_EQ(cli({"deploys"}).exit_code, 0);
  ASSERT_EQ(cli({"deploys", "--context", "staging"}).exit_code, 0);
  ASSERT_EQ(cli({"deploys"}, {{"DROVER_CONTEXT", "staging"}}).exit_code, 0);
  ASSERT_EQ(cli({"deploys", "--token", "from-flag"}).exit_code, 0);
  ASSERT_EQ(cli({"deploys"}, {{"DROVER_TOKEN", "from-env"}}).exit_code, 0);
  // A context's token never goes to a coordinator named elsewhere: a flag's
  // (no token then), or the environment's over the current context.
  ProcessResult elsewhere = cli({"deploys", "--context", "staging", "--coordinator", prod.url()});
  EXPECT_EQ(elsewhere.exit_code, 8) << elsewhere.err;
  ASSERT_EQ(cli({"deploys"}, {{"DROVER_COORDINATOR", staging.url()}}).exit_code, 8);
  // A context named on purpose wins over the environment's coordinator
  // (left behind in a shell) and over its token.
  ASSERT_EQ(cli({"deploys", "--context", "staging"},
                {{"DROVER_COORDINATOR", prod.url()}, {"DROVER_TOKEN", "left-behind"}})
                .exit_code,
            0);
  EXPECT_EQ(prod.seen(),
            (std::vector<std::string>{"Bearer prod-token", "Bearer from-flag", "Bearer from-env"}));
  EXPECT_EQ(staging.seen(),
            (std::vector<std::string>{"Bearer staging-token", "Bearer staging-token",
                                      "Bearer staging-token"}));
  ASSERT_EQ(cli({"config", "use-context", "staging"}).exit_code, 0);
  ASSERT_EQ(cli({"deploys"}).exit_code, 0);
  EXPECT_EQ(staging.seen().size(), 4u);
  // The directory made for the file is private; a token file reached
  // through a symlink is read (its target checked).
  ASSERT_EQ(::stat((dir_ / "cfg").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  fs::create_symlink(dir_ / "staging.token", dir_ / "linked.token");
  ASSERT_EQ(
      cli({"config", "set-context", "staging", "--token-file", (dir_ / "linked.token").string()})
          .exit_code,
      0);
  ASSERT_EQ(cli({"deploys"}).exit_code, 0);
  EXPECT_EQ(staging.seen().back(), "Bearer staging-token");
  EXPECT_THAT(cli({"config", "get-contexts"}).out, HasSubstr("*        staging"));

  // What is wrong is named, and nothing is sent.
  ProcessResult none = cli({"deploys", "--context", "nope"});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_THAT(none.err, HasSubstr("no context 'nope'"));
  ::chmod((dir_ / "prod.token").c_str(), 0644);
  ProcessResult open_token = cli({"deploys", "--context", "prod"});
  EXPECT_EQ(open_token.exit_code, 8);
  EXPECT_THAT(open_token.err, HasSubstr("may be read by group or others"));
  write_file(dir_ / "cfg" / "config",
             "format: drover.cli-config.v1\ncontexts:\n  prod:\n    coordinatr: x\n", 0600);
  ProcessResult typo = cli({"deploys"});
  EXPECT_EQ(typo.exit_code, 1);
  EXPECT_THAT(typo.err, HasSubstr("line 4"));
  EXPECT_THAT(typo.err, HasSubstr("coordinatr"));
  // A relative token file in the file is refused, naming its field.
  write_file(dir_ / "cfg" / "config",
             "format: drover.cli-config.v1\ncontexts:\n  prod:\n    token_file: prod.token\n",
             0600);
  ProcessResult relative = cli({"deploys"});
  EXPECT_EQ(relative.exit_code, 1);
  EXPECT_THAT(relative.err, HasSubstr("contexts.prod.token_file must be an absolute path"));
  // A coordinator that is no URL is a usage error, nothing sent.
  ProcessResult no_url = cli({"deploys", "--coordinator", "prod:7080", "--token", "t"});
  EXPECT_EQ(no_url.exit_code, 2) << no_url.err;
  EXPECT_EQ(prod.seen().size(), 3u);
}

// --json on every read command (issue 18): each prints the coordinator's
// answer as one JSON document, whatever its human view would make of it.
TEST_F(Cli, EveryReadCommandPrintsTheAnswerAsJson) {
  RecordingCoordinator c(Logger::discard());
  const std::vector<std::vector<std::string>> reads = {{"status", "web-1"},
                                                       {"deploys"},
                                                       {"pipeline", "ls"},
                                                       {"pipeline", "show", "web"},
                                                       {"pipeline", "runs", "web"},
                                                       {"release", "ls"},
                                                       {"release", "status", "r-1"},
                                                       {"token", "list"},
                                                       {"join-token", "ls"},
                                                       {"flag", "ls", "web"},
                                                       {"scm", "sources"},
                                                       {"notify", "allowed"},
                                                       {"notify", "ls", "web"},
                                                       {"notify", "outbox"},
                                                       {"hosts"},
                                                       {"audit"},
                                                       {"audit", "show", "web-1"},
                                                       {"audit", "verify"}};
  for (auto args : reads) {
    const std::string line = [&] {
      std::string out;
      for (const auto& a : args) out += a + " ";
      return out;
    }();
    args.insert(args.begin(), binary("drover").string());
    args.push_back("--json");
    ProcessResult r = run(args, std::chrono::seconds(30),
                          {{"DROVER_CONFIG", (dir_ / "no-config").string()},
                           {"DROVER_CONTEXT", ""},
                           {"DROVER_COORDINATOR", c.url()},
                           {"DROVER_TOKEN", "t"}});
    EXPECT_EQ(r.exit_code, 0) << line << r.err;
    const json printed = json::parse(r.out, nullptr, false);
    EXPECT_EQ(printed, json::parse(R"({"deploys":[],"ok":true,"records":0})")) << line << r.out;
  }
  // Each asked its own endpoint.
  std::lock_guard lock(c.mu);
  EXPECT_EQ(c.targets,
            (std::vector<std::string>{
                "GET /deploys/web-1", "GET /deploys?limit=20", "GET /pipelines",
                "GET /pipelines/web", "GET /pipelines/web/runs?limit=20", "GET /releases?limit=20",
                "GET /releases/r-1", "GET /tokens", "GET /join-tokens", "GET /services/web/flags",
                "GET /scm/sources", "GET /notifications/allow", "GET /pipelines/web/notifications",
                "GET /notifications/outbox", "GET /hosts", "GET /audit?limit=100&order=newest",
                "GET /deploys/web-1/audit", "GET /audit/verify"}));
}

// Bash completion (issue 18): the script drover prints, loaded into a real
// bash, completes verbs, sub-verbs and each verb's own flags.
TEST_F(Cli, BashCompletionCompletesVerbsSubVerbsAndFlags) {
  ProcessResult script = drover({"completion", "bash"});
  ASSERT_EQ(script.exit_code, 0) << script.err;
  write_file(dir_ / "completion.bash", script.out, 0644);
  auto complete = [&](const std::string& words, int cword) {
    const std::string line = "source " + (dir_ / "completion.bash").string() + "; COMP_WORDS=(" +
                             words + "); COMP_CWORD=" + std::to_string(cword) +
                             "; _drover; for w in \"${COMPREPLY[@]}\"; do echo \"$w\"; done";
    return run({"/bin/bash", "-c", line}, std::chrono::seconds(30),
               {{"PATH", binary("drover").parent_path().string() + ":/usr/bin:/bin"}})
        .out;
  };
  EXPECT_EQ(complete("drover dep", 1), "deploy\ndeploys\n");
  EXPECT_EQ(complete("drover artifact p", 2), "push\npin\n");
  EXPECT_EQ(complete("drover deploy web --wa", 3), "--wait\n--watch\n");
  EXPECT_THAT(complete("drover artifact push --", 3), HasSubstr("--git-sha\n"));
  EXPECT_THAT(complete("drover config set-context x --", 4), HasSubstr("--token-file\n"));
  EXPECT_EQ(complete("drover frobnicate --", 2), "");
}

// Each bad command line gets exit code 2 and a message naming what was wrong;
// nothing is written to the store.
TEST_F(Cli, BadCommandLinesAreRefusedClearly) {
  fs::path tree = sample_tree();
  const std::string t = tree.string();
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  std::vector<Case> cases = {
      {{"artifact", "push", t, "--git-sha", "0123abcd"}, "missing --service"},
      {{"artifact", "push", t, "--service", "svc"}, "missing --git-sha"},
      {{"artifact", "push", "--service", "svc", "--git-sha", "0123abcd"}, "missing DIR"},
      {{"artifact", "push", t, "--service", "bad name", "--git-sha", "0123abcd"},
       "service name 'bad name'"},
      {{"artifact", "push", t, "--service", "svc", "--git-sha", "xyz"}, "git SHA 'xyz'"},
      {{"artifact", "push", t, "--service", "svc", "--git-sha", "0123abcd", "--meta", "novalue"},
       "--meta wants key=value"},
      {{"artifact", "push", t, "--service", "svc", "--git-sha", "0123abcd", "--bogus"}, "bogus"},
      {{"artifact", "push", t, "--service", "a", "--service", "b", "--git-sha", "0123abcd"},
       "given more than once"},
      {{"artifact", "push", t, "extra", "--service", "svc", "--git-sha", "0123abcd"},
       "unexpected argument 'extra'"},
      {{"artifact", "gc"}, "missing --keep"},
      {{"artifact", "gc", "--keep", "-3"}, "--keep"},
      {{"artifact", "gc", "--keep", "zero"}, "whole number"},
      {{"artifact", "verify"}, "either ID or --all"},
      {{"artifact", "materialize", "abcdef12"}, "want ID DEST"},
      {{"artifact", "frobnicate"}, "unknown verb 'frobnicate'"},
      {{"frobnicate"}, "unknown command 'frobnicate'"},
      {{"keygen"}, "missing --out"},
      {{"artifact", "ls", "--log-level", "loud"}, "--log-level wants debug, info, warn or error"},
      {{"artifact", "show", "xyz!"}, "is not an artifact id"},
      {{"artifact", "pin", "abc"}, "is not an artifact id"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = c.args;
    if (args[0] == "artifact") {
      args.push_back("--store");
      args.push_back(store_.string());
    }
    ProcessResult r = drover(args);
    EXPECT_EQ(r.exit_code, 2) << c.says << "\n" << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.says));
  }
  EXPECT_FALSE(fs::exists(store_ / "index"));
}

TEST_F(Cli, OperationalErrorsExitOneAndNameTheProblem) {
  ProcessResult missing =
      artifact({"push", (dir_ / "nope").string(), "--service", "s", "--git-sha", "0123abcd"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("nope"));
  ProcessResult unknown = artifact({"show", "sha256:" + std::string(64, 'a')});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("no artifact"));
  fs::path tree = dir_ / "fifo-tree";
  fs::create_directories(tree);
  ::mkfifo((tree / "pipe").c_str(), 0644);
  ProcessResult fifo = artifact({"push", tree.string(), "--service", "s", "--git-sha", "0123abcd"});
  EXPECT_EQ(fifo.exit_code, 1);
  EXPECT_THAT(fifo.err, HasSubstr("'pipe' is a FIFO"));
  EXPECT_EQ(json::parse(artifact({"ls", "--json"}).out).size(), 0u);
}

// Every class of hostile artifact, through the command users run: refused
// with the entry named, exit code 1, nothing at DEST.
TEST_F(Cli, MaterializeRefusesHostileArtifacts) {
  auto plain = [](const std::string& s) {
    RawLayer l;
    l.stored = s;
    return l;
  };
  RawLayer bomb = zstd_layer(std::string(16 << 20, 'A'));
  bomb.raw_size = 100;
  RawLayer oversized = plain("0123456789");
  oversized.size = 4;
  oversized.raw_size = 4;
  struct Case {
    std::string name;
    std::vector<json> entries;
    std::vector<RawLayer> layers;
    std::string says;
  };
  std::vector<Case> cases = {
      {"absolute",
       {file_entry("/etc/cron.d/x", "x", 0, 0)},
       {plain("x")},
       "'/etc/cron.d/x': absolute path"},
      {"dotdot",
       {file_entry("../x", "x", 0, 0)},
       {plain("x")},
       "'../x': path has a '..' component"},
      {"symlink",
       {link_entry("l", "../../etc"), file_entry("z", "x", 0, 0)},
       {plain("x")},
       "'l': symlink target '../../etc' leaves the tree"},
      {"through link",
       {link_entry("l", "/tmp"), file_entry("l/x", "x", 0, 0)},
       {plain("x")},
       "'l'"},
      {"hardlink",
       {{{"path", "h"}, {"type", "hardlink"}, {"target", "/etc/shadow"}},
        file_entry("z", "x", 0, 0)},
       {plain("x")},
       "'h': entry type 'hardlink' is not deployable"},
      {"device",
       {{{"path", "d"}, {"type", "chardev"}, {"mode", 420}}, file_entry("z", "x", 0, 0)},
       {plain("x")},
       "'d': entry type 'chardev'"},
      {"fifo",
       {{{"path", "p"}, {"type", "fifo"}, {"mode", 420}}, file_entry("z", "x", 0, 0)},
       {plain("x")},
       "'p': entry type 'fifo'"},
      {"setuid", {file_entry("s", "x", 0, 0, 04755)}, {plain("x")}, "'s': mode 4755 has setuid"},
      {"setgid", {file_entry("g", "x", 0, 0, 02755)}, {plain("x")}, "'g': mode 2755"},
      {"bomb",
       {file_entry("f", std::string(100, 'A'), 0, 0)},
       {bomb},
       "declares 16777216 bytes, but the manifest says 100"},
      {"oversized blob",
       {file_entry("f", "0123", 0, 0)},
       {oversized},
       "holds more bytes than the manifest's 4"},
      {"long path",
       {file_entry(std::string(5000, 'p'), "x", 0, 0)},
       {plain("x")},
       "over the limit of 4096"},
  };
  for (const auto& c : cases) {
    fs::path store = dir_ / ("store-" + std::to_string(&c - cases.data()));
    ContentId id = install_raw_artifact(store, c.entries, c.layers);
    fs::path dest = dir_ / "dest";
    ProcessResult r =
        drover({"artifact", "materialize", id.str(), dest.string(), "--store", store.string()});
    EXPECT_EQ(r.exit_code, 1) << c.name;
    EXPECT_THAT(r.err, HasSubstr(c.says)) << c.name;
    EXPECT_FALSE(fs::exists(dest)) << c.name;
    EXPECT_FALSE(fs::exists("/etc/cron.d/x"));
  }
  for (const auto& e : fs::directory_iterator(dir_.path())) {
    EXPECT_EQ(e.path().filename().string().find("staging"), std::string::npos) << e.path();
  }
}

// Kills pushes with SIGKILL at random moments. After each kill the store must
// verify clean, list only complete artifacts, and a retry must finish with the
// same artifact id as an uninterrupted push.
TEST_F(Cli, PushKilledAtRandomMomentsLeavesAConsistentStore) {
  fs::path tree = dir_ / "tree";
  TreeSpec spec;
  spec.small_files = 600;
  spec.medium_files = 40;
  spec.big_files = 2;
  spec.big_min = 6 << 20;
  spec.big_max = 10 << 20;
  generate_tree(tree, spec);
  const std::vector<std::string> push = {binary("drover").string(),
                                         "artifact",
                                         "push",
                                         tree.string(),
                                         "--service",
                                         "svc",
                                         "--git-sha",
                                         "0123abcd",
                                         "--json",
                                         "--store",
                                         store_.string()};
  // How long an uninterrupted push takes, into a throwaway store.
  std::vector<std::string> timed = push;
  timed.back() = (dir_ / "reference").string();
  ProcessResult reference = run(timed);
  ASSERT_EQ(reference.exit_code, 0) << reference.err;
  const std::string expected = json::parse(reference.out)["artifact_id"];
  const auto full = std::chrono::microseconds(static_cast<long>(reference.wall_seconds * 1e6));

  // Kill points are uniform over 90% of an uninterrupted push. A push that
  // finishes before its kill point is not an interruption: the next rounds
  // then move to a fresh store, so every kill lands in a push with work left.
  std::mt19937_64 rng(20261127);
  int killed = 0, store_number = 0;
  fs::path store = store_;
  auto push_into = [&](const fs::path& where) {
    std::vector<std::string> argv = push;
    argv.back() = where.string();
    return argv;
  };
  for (int round = 0; round < 40 && killed < 10; ++round) {
    auto at =
        std::chrono::microseconds(rng() % static_cast<std::uint64_t>(full.count() * 9 / 10 + 1));
    ProcessResult r = run_and_kill(push_into(store), at);
    ProcessResult verify =
        drover({"artifact", "verify", "--all", "--json", "--store", store.string()});
    ASSERT_EQ(verify.exit_code, 0) << "round " << round << " killed at " << at.count() << "us\n"
                                   << verify.out << verify.err;
    json listed = json::parse(drover({"artifact", "ls", "--json", "--store", store.string()}).out);
    for (const auto& a : listed) EXPECT_EQ(a["artifact_id"], expected);
    if (r.signal == SIGKILL) {
      ++killed;
    } else {
      ASSERT_EQ(r.exit_code, 0) << r.err;
      store = dir_ / ("store-" + std::to_string(++store_number));
    }
  }
  EXPECT_EQ(killed, 10) << "too few pushes were really interrupted to prove anything";
  ProcessResult retry = run(push_into(store));
  ASSERT_EQ(retry.exit_code, 0) << retry.err;
  EXPECT_EQ(json::parse(retry.out)["artifact_id"], expected);
  EXPECT_EQ(drover({"artifact", "verify", expected, "--store", store.string()}).exit_code, 0);
  // gc clears what the kills left behind.
  ProcessResult gc = drover({"artifact", "gc", "--keep", "1", "--store", store.string()});
  ASSERT_EQ(gc.exit_code, 0) << gc.err;
  EXPECT_TRUE(fs::is_empty(store / "tmp"));
  EXPECT_EQ(json::parse(drover({"artifact", "verify", "--all", "--json", "--store", store.string()})
                            .out)["orphan_blobs"],
            0);
}

TEST_F(Cli, KeygenWritesAPrivateKeyAndCertifyChainsIt) {
  ProcessResult root = drover({"keygen", "--out", (dir_ / "root.key").string()});
  ASSERT_EQ(root.exit_code, 0) << root.err;
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "root.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(fs::exists(dir_ / "root.key.pub"));
  ProcessResult twice = drover({"keygen", "--out", (dir_ / "root.key").string()});
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_THAT(twice.err, HasSubstr("refusing to overwrite"));
  ASSERT_EQ(drover({"keygen", "--out", (dir_ / "online.key").string()}).exit_code, 0);
  ProcessResult cert = drover({"key", "certify", "--root", (dir_ / "root.key").string(),
                               "--subject", (dir_ / "online.key.pub").string(), "--out",
                               (dir_ / "online.cert").string(), "--version", "2"});
  ASSERT_EQ(cert.exit_code, 0) << cert.err;
  EXPECT_THAT(read_file(dir_ / "online.cert"), HasSubstr("drover.key-cert.v1"));
  ::chmod((dir_ / "root.key").c_str(), 0644);
  ProcessResult loose =
      drover({"key", "certify", "--root", (dir_ / "root.key").string(), "--subject",
              (dir_ / "online.key.pub").string(), "--out", (dir_ / "c2").string()});
  EXPECT_EQ(loose.exit_code, 1);
  EXPECT_THAT(loose.err, HasSubstr("chmod 600"));
}

// drover notify receive (issue 14): a delivery is printed once it carries
// the secret's signature over a fresh timestamp, once per event id, with
// control characters made harmless; anything else is refused.
TEST_F(Cli, NotifyReceiveChecksEachDeliveryAndPrintsEachEventOnce) {
  EXPECT_EQ(drover({"notify", "receive", "--listen", "127.0.0.1:0"}).exit_code, 2)
      << "a receiver without a secret takes anyone's events";
  const std::string secret = "receiver-secret-0123";
  write_file(dir_ / "notify.secret", secret + "\n", 0600);
  const std::string port = std::to_string(free_port());
  DaemonProcess receiver(
      {binary("drover").string(), "notify", "receive", "--listen", "127.0.0.1:" + port,
       "--secret-file", (dir_ / "notify.secret").string(), "--count", "2", "--json"},
      (dir_ / "receive.err").string());
  auto post = [&](const std::string& id, const std::string& body, std::int64_t at,
                  const std::string& key) {
    const std::string ts = std::to_string(at);
    http::ClientOptions o;
    o.timeout = std::chrono::seconds(5);
    o.headers = {{"X-Drover-Event", "gate.waiting"},
                 {"X-Drover-Delivery", id},
                 {"X-Drover-Timestamp", ts},
                 {"X-Drover-Signature",
                  "sha256=" + to_hex(sign::hmac_sha256(key, "drover-notification-v1\n" + ts + "\n" +
                                                                id + "\n" + body))}};
    auto r = http::request("POST", "http://127.0.0.1:" + port + "/web", body, o);
    return r.ok() ? r->status : 0;
  };
  const std::int64_t now = std::time(nullptr);
  const std::string a = json{{"event_id", "sha256:a"}, {"text", "waits\u001b[2J"}}.dump();
  ASSERT_TRUE(eventually([&] { return post("sha256:a", a, now, "not-the-secret-0000") == 401; }))
      << receiver.stderr_tail();
  EXPECT_EQ(post("sha256:a", a, now - 600, secret), 401);  // too old: a replay
  EXPECT_EQ(post("sha256:a", "[1,2]", now, secret), 400);  // no object
  EXPECT_EQ(post("sha256:a", a, now, secret), 200);
  EXPECT_EQ(post("sha256:a", a, now, secret), 200);  // again: answered, not printed
  const std::string b = json{{"event_id", "sha256:b"}, {"text", "approved"}}.dump();
  EXPECT_EQ(post("sha256:b", b, now, secret), 200);
  ASSERT_EQ(receiver.wait_exit(std::chrono::seconds(20)), 0) << receiver.stderr_tail();
  const auto lines = receiver.lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["event_id"], "sha256:a");
  EXPECT_EQ(lines[1]["event_id"], "sha256:b");
  EXPECT_NE(receiver.stderr_tail().find("the signature does not match"), std::string::npos);
}

}  // namespace
}  // namespace drover::testing
