// Attacks on the coordinator's HTTP API through what a token's role allows
// (docs/COORDINATOR.md, "Access"): a deployer who edits or strips a
// pipeline's approval gate, or overrides the reviewed rollout shape with a
// strategy_override; and a caller who makes the state store fail to learn
// where the coordinator keeps its data. A real Coordinator on LMDB in a
// temporary directory behind a real HTTP server on loopback.
#include <gtest/gtest.h>

#include <sys/resource.h>
#include <algorithm>

#include <atomic>
#include <csignal>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "coordinator/api/http_api.hpp"
#include "coordinator/service/coordinator.hpp"
#include "core/base/hex.hpp"
#include "core/format/manifest.hpp"
#include "core/http/http.hpp"
#include "core/sign/secret_box.hpp"
#include "tests/support/notify_receiver.hpp"
#include "tests/support/small_manifest.hpp"
#include "tests/support/test_support.hpp"

namespace drover::coordinator {
namespace {

using drover::testing::TempDir;
using nlohmann::json;
using namespace std::chrono_literals;

struct Answer {
  int status = 0;
  std::string raw;
  json body;
  std::string error() const { return body.is_object() ? body.value("error", "") : ""; }
};

// Lowers this process's file size limit (RLIMIT_FSIZE) for its lifetime: a
// write that would grow a file past it fails with EFBIG (SIGXFSZ ignored),
// as a write to a full disk fails with ENOSPC.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::signal(SIGXFSZ, SIG_IGN);
    ::getrlimit(RLIMIT_FSIZE, &old_);
    rlimit lower = old_;
    lower.rlim_cur = bytes;
    EXPECT_EQ(::setrlimit(RLIMIT_FSIZE, &lower), 0);
  }
  ~FileSizeLimit() { ::setrlimit(RLIMIT_FSIZE, &old_); }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit old_{};
};

constexpr const char* kWebhookSecret = "webhook-secret-of-the-attack";

class AccessAttack : public ::testing::Test {
 protected:
  // The options every case starts from: the state in `state`, no driver
  // (deploys stay where they were started), the webhook on.
  CoordinatorOptions options(const std::string& state = "state") {
    const auto now = unix_seconds(clock_.now());
    CoordinatorOptions o;
    o.data_dir = dir_.path() / state;
    o.online = OnlineKey{
        online_, sign::certify(root_, {"online", online_.public_key(), 1, now - 60, now + 86400})};
    o.run_driver = false;
    o.webhook_secret = kWebhookSecret;
    return o;
  }
  // Stops the coordinator running (if any) and starts one on o.
  void restart(const CoordinatorOptions& o) {
    api_.reset();
    coordinator_.reset();
    coordinator_ = Coordinator::start(o, clock_, random_, log_).value();
    api_ = HttpApi::start(*coordinator_, {}, log_).value();
  }
  void SetUp() override {
    const auto now = unix_seconds(clock_.now());
    restart(options());
    auto token = [&](const char* name, Role role) {
      return coordinator_->tokens().create(name, role, now, random_).value();
    };
    viewer_ = token("vee", Role::viewer);
    deployer_ = token("dee", Role::deployer);
    approver_ = token("ada", Role::approver);
    admin_ = token("root", Role::admin);
  }
  void TearDown() override {
    api_.reset();
    coordinator_.reset();
  }

  Answer call(const std::string& method, const std::string& path, const std::string& body,
              const std::string& token) {
    http::ClientOptions o;
    o.timeout = 10s;
    o.headers.emplace_back("Authorization", "Bearer " + token);
    auto r = http::request(method, api_->url() + path, body, o);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    if (!r.ok()) return {};
    return {r->status, r->body, json::parse(r->body, nullptr, false)};
  }
  Answer call(const std::string& method, const std::string& path, const json& body,
              const std::string& token) {
    return call(method, path, body.dump(), token);
  }
  // A webhook delivery as a checker sends it (docs/API.md, version 2).
  Answer deliver(const std::string& body, const std::string& timestamp, const std::string& id,
                 const std::string& signed_body) {
    const std::string sig =
        "sha256=" + to_hex(sign::hmac_sha256(kWebhookSecret, "drover-webhook-v2\n" + timestamp +
                                                                 "\n" + id + "\n" + signed_body));
    http::ClientOptions o;
    o.timeout = 10s;
    o.headers = {
        {"X-Drover-Signature", sig}, {"X-Drover-Timestamp", timestamp}, {"X-Drover-Delivery", id}};
    auto r = http::request("POST", api_->url() + "/webhooks/health", body, o);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    if (!r.ok()) return {};
    return {r->status, r->body, json::parse(r->body, nullptr, false)};
  }

  json pipeline(bool gated) {
    json p = {
        {"service", "web"},
        {"envs", {{{"name", "staging"}, {"region", "r1"}}, {{"name", "prod"}, {"region", "r1"}}}},
        {"strategy", {{"kind", "canary"}, {"batch_size", 2}, {"canary_percents", {25}}}},
        {"approval_gates", json::array()}};
    if (gated) p["approval_gates"] = {"prod"};
    return p;
  }
  // Host `host` of service web enrolled in region, its key drawn from seed.
  void enroll(const std::string& host, const std::string& region, std::uint64_t seed) {
    HostRecord h;
    h.host = host;
    h.region = region;
    h.services = {"web"};
    SeededRandom rnd(seed);
    h.key = sign::KeyPair::generate(rnd).public_key();
    h.report_key = std::string(32, 'k');
    EXPECT_TRUE(coordinator_->store().enroll(h).ok());
  }
  // A registered artifact of service web and four enrolled hosts in r1.
  std::string ready_to_deploy() {
    for (const char* host : {"h1", "h2", "h3", "h4"}) enroll(host, "r1", host[1]);
    const std::string bytes = drover::testing::small_manifest_bytes("web", "v1");
    ArtifactRecord a;
    a.artifact_id = ContentId::of(bytes).str();
    a.service = "web";
    a.git_sha = "0123abcd";
    EXPECT_TRUE(coordinator_->store().put_artifact(a, bytes).value());
    return a.artifact_id;
  }

  TempDir dir_;
  SystemClock clock_;
  SystemRandom random_;
  MemorySink sink_;
  Logger log_{sink_, clock_};
  SeededRandom keys_{7};
  sign::KeyPair root_ = sign::KeyPair::generate(keys_);
  sign::KeyPair online_ = sign::KeyPair::generate(keys_);
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<HttpApi> api_;
  std::string viewer_, deployer_, approver_, admin_;
};

// A gate is a promise that a person with the approver role looks before a
// release reaches the env. A deployer who could write the pipeline could
// drop the gate and then deploy straight through: so a deployer may neither
// create a gated pipeline nor change, or remove the gate of, one.
TEST_F(AccessAttack, ADeployerCannotAddChangeOrStripAnApprovalGate) {
  Answer add = call("POST", "/pipelines", pipeline(true), deployer_);
  EXPECT_EQ(add.status, 403) << add.raw;
  EXPECT_NE(add.error().find("needs role approver"), std::string::npos) << add.raw;
  EXPECT_NE(add.error().find("approval gate"), std::string::npos) << add.raw;
  EXPECT_EQ(call("GET", "/pipelines/web", std::string(), viewer_).status, 404);

  Answer gated = call("POST", "/pipelines", pipeline(true), approver_);
  ASSERT_EQ(gated.status, 201) << gated.raw;

  // Stripping the gate, or editing anything else of the gated pipeline.
  Answer strip = call("POST", "/pipelines", pipeline(false), deployer_);
  EXPECT_EQ(strip.status, 403) << strip.raw;
  EXPECT_NE(strip.error().find("needs role approver"), std::string::npos) << strip.raw;
  json bigger = pipeline(true);
  bigger["strategy"]["batch_size"] = 1000;
  EXPECT_EQ(call("POST", "/pipelines", bigger, deployer_).status, 403);

  Answer stored = call("GET", "/pipelines/web", std::string(), viewer_);
  ASSERT_EQ(stored.status, 200);
  EXPECT_EQ(stored.body["version"], 1);
  EXPECT_EQ(stored.body["approval_gates"], json::array({"prod"}));
  EXPECT_EQ(stored.body["strategy"]["batch_size"], 2);

  // An approver may change it; a deployer keeps editing ungated pipelines.
  EXPECT_EQ(call("POST", "/pipelines", bigger, approver_).status, 200);
  json api = pipeline(false);
  api["service"] = "api";
  EXPECT_EQ(call("POST", "/pipelines", api, deployer_).status, 201);
  api["strategy"]["batch_size"] = 3;
  EXPECT_EQ(call("POST", "/pipelines", api, deployer_).status, 200);

  // Every change of the gated pipeline in the audit log is the approver's.
  Answer audit = call("GET", "/audit?service=web", std::string(), viewer_);
  std::vector<std::string> changes;
  for (const auto& r : audit.body["records"]) {
    const std::string what = r["what"];
    if (what.rfind("pipeline.", 0) == 0)
      changes.push_back(what + "/" + r["who"].get<std::string>());
  }
  EXPECT_EQ(changes, (std::vector<std::string>{"pipeline.created/ada", "pipeline.updated/ada"}))
      << audit.raw;
}

// The pipeline's strategy is what was reviewed; a strategy_override replaces
// it for one deploy (all hosts in one batch, no canary), so it needs the
// approver role.
TEST_F(AccessAttack, ADeployerCannotOverrideTheStrategy) {
  const std::string artifact = ready_to_deploy();
  ASSERT_EQ(call("POST", "/pipelines", pipeline(false), deployer_).status, 201);
  const json all_at_once = {{"pipeline_id", "web"},
                            {"artifact_id", artifact},
                            {"env", "prod"},
                            {"strategy_override", {{"kind", "rolling"}, {"batch_percent", 100}}}};
  Answer d = call("POST", "/deploys", all_at_once, deployer_);
  EXPECT_EQ(d.status, 403) << d.raw;
  EXPECT_NE(d.error().find("needs role approver"), std::string::npos) << d.raw;
  EXPECT_NE(d.error().find("strategy_override"), std::string::npos) << d.raw;
  EXPECT_EQ(call("GET", "/deploys", std::string(), viewer_).body["deploys"].size(), 0u);

  // The same deploy on the pipeline's own strategy is the deployer's to start.
  json plain = all_at_once;
  plain.erase("strategy_override");
  Answer ok = call("POST", "/deploys", plain, deployer_);
  ASSERT_EQ(ok.status, 201) << ok.raw;
  EXPECT_EQ(ok.body["state"], "pending");
  ASSERT_EQ(call("POST", "/deploys/web-1/pause", std::string(), deployer_).status, 200);

  // An approver may override.
  Answer approved = call("POST", "/deploys", all_at_once, approver_);
  ASSERT_EQ(approved.status, 201) << approved.raw;
  EXPECT_EQ(approved.body["deploy_id"], "web-2");
}

// Tokens are the admin's: a deployer who could mint one could give itself
// any role, or a second person to approve its own deploys.
TEST_F(AccessAttack, ADeployerCannotCreateAToken) {
  const auto audit_before = coordinator_->store().verify_audit().value().records;
  for (const std::string* token : {&deployer_, &approver_}) {
    for (const char* role : {"admin", "approver", "viewer"}) {
      Answer a = call("POST", "/tokens",
                      json{{"name", "mine"}, {"role", role}, {"person", "someone-else"}}, *token);
      EXPECT_EQ(a.status, 403) << a.raw;
      EXPECT_NE(a.error().find("needs role admin"), std::string::npos) << a.raw;
    }
  }
  EXPECT_EQ(call("GET", "/tokens", std::string(), deployer_).status, 403);
  Answer listed = call("GET", "/tokens", std::string(), admin_);
  ASSERT_EQ(listed.status, 200) << listed.raw;
  EXPECT_EQ(listed.body["tokens"].size(), 4u) << listed.raw;
  EXPECT_EQ(listed.raw.find("mine"), std::string::npos) << listed.raw;
  EXPECT_EQ(coordinator_->store().verify_audit().value().records, audit_before);
}

// A person is compared across tokens and written to audit records and
// terminals: one with control characters (a forged line, an escape
// sequence, a NUL that ends a C string early) or beyond the name rule's
// length is refused, naming the field, and the refusal does not echo the
// bytes raw.
TEST_F(AccessAttack, APersonWithControlCharactersOrOverlongIsRefused) {
  const auto audit_before = coordinator_->store().verify_audit().value().records;
  const std::vector<std::string> bad = {std::string("ann\nwho: root"), std::string("ann\r"),
                                        std::string("\x1b[2Jann"),     std::string("ann\0root", 8),
                                        std::string("ann\t"),          std::string("ann\x7f"),
                                        std::string(129, 'a'),         std::string(100000, 'a')};
  for (const auto& person : bad) {
    Answer a = call("POST", "/tokens", json{{"name", "t"}, {"role", "viewer"}, {"person", person}},
                    admin_);
    EXPECT_EQ(a.status, 400) << a.raw.substr(0, 200);
    EXPECT_EQ(a.error().rfind("person", 0), 0u) << a.raw.substr(0, 200);
    for (char c : a.error()) {
      EXPECT_TRUE(c >= 0x20 && c != 0x7f)
          << "raw byte " << int(c) << " in " << a.raw.substr(0, 200);
    }
    EXPECT_LT(a.error().size(), 300u);  // an overlong value is not echoed whole
  }
  Answer listed = call("GET", "/tokens", std::string(), admin_);
  EXPECT_EQ(listed.body["tokens"].size(), 4u) << listed.raw;
  EXPECT_EQ(coordinator_->store().verify_audit().value().records, audit_before);
  // The same person within the rule is taken.
  Answer ok =
      call("POST", "/tokens", json{{"name", "t"}, {"role", "viewer"}, {"person", "ann"}}, admin_);
  ASSERT_EQ(ok.status, 201) << ok.raw;
  EXPECT_EQ(ok.body["person"], "ann");
}

// The state store's errors name the data directory (LMDB's say "lmdb commit
// DIR: …"). A store that cannot grow its file (a full disk; here the file
// size limit, which fails a write past it with EFBIG) fails a deployer's
// pipeline write: the answer must say that the coordinator failed, not where
// its data lives, and point at the log line that has the detail.
TEST_F(AccessAttack, AStoreFailureDoesNotEchoTheDataDirectory) {
  const fs::path data_dir = dir_.path() / "state";
  const std::uintmax_t size = fs::file_size(data_dir / "data.mdb");
  std::optional<Answer> failed;
  std::string failed_id;
  {
    FileSizeLimit limit(static_cast<rlim_t>(size));
    // Records of several pages each: LMDB grows the file for them.
    json p = pipeline(false);
    p["source_repo"] = std::string(1000, 'r');
    p["envs"] = json::array();
    for (int e = 0; e < 64; ++e) {
      p["envs"].push_back({{"name", "env-" + std::to_string(e) + std::string(100, 'e')},
                           {"region", std::string(100, 'r')}});
    }
    for (int i = 0; i < 50 && !failed; ++i) {
      p["id"] = "p" + std::to_string(i);
      Answer a = call("POST", "/pipelines", p, deployer_);
      if (a.status >= 500) failed = a, failed_id = p["id"];
      ASSERT_TRUE(a.status == 201 || a.status >= 500) << a.raw;
    }
  }
  ASSERT_TRUE(failed) << "the store never needed to grow its file";
  const Answer& a = *failed;
  EXPECT_EQ(a.raw.find(data_dir.string()), std::string::npos) << a.raw;
  EXPECT_EQ(a.raw.find(dir_.path().string()), std::string::npos) << a.raw;
  EXPECT_EQ(a.raw.find("lmdb"), std::string::npos) << a.raw;
  EXPECT_TRUE(a.status == 500 || a.status == 503) << a.raw;

  // The answer names the log line with the detail.
  const std::string error = a.error();
  const auto at = error.find("ref=");
  ASSERT_NE(at, std::string::npos) << a.raw;
  const std::string ref = error.substr(at, error.find_first_not_of("ref=0123456789", at) - at);
  std::string logged;
  for (const auto& line : sink_.lines()) {
    if (line.find("event=coordinator.api.failed " + ref + " ") != std::string::npos) logged = line;
  }
  EXPECT_NE(logged.find(data_dir.string()), std::string::npos)
      << "no log line with " << ref << " and the detail";

  // Nothing was half-written, and the store works again once it can grow.
  EXPECT_EQ(call("GET", "/pipelines/" + failed_id, std::string(), viewer_).status, 404);
  EXPECT_EQ(call("POST", "/pipelines", pipeline(false), deployer_).status, 201);
}

// Issue 11, item 11. Before: the signature covered the body only, so a
// captured delivery could be posted again and again (its samples counted
// every time while their at_ms was within 5 minutes).
TEST_F(AccessAttack, AReplayedWebhookDeliveryIsRefusedDurably) {
  ready_to_deploy();
  const std::int64_t now_ms = unix_ms(clock_.now());
  const std::string now_s = std::to_string(now_ms / 1000);
  const std::string body =
      json{{"service", "web"},
           {"samples", {{{"host", "h1"}, {"error_rate", 0.9}, {"at_ms", now_ms}}}}}
          .dump();
  Answer first = deliver(body, now_s, "d-0001", body);
  ASSERT_EQ(first.status, 200) << first.raw;
  Answer again = deliver(body, now_s, "d-0001", body);
  EXPECT_EQ(again.status, 409) << again.raw;
  EXPECT_NE(again.error().find("replay"), std::string::npos) << again.raw;
  // A fresh id on the captured signature: the id is signed.
  const std::string sig_for_old =
      "sha256=" + to_hex(sign::hmac_sha256(kWebhookSecret,
                                           "drover-webhook-v2\n" + now_s + "\nd-0001\n" + body));
  http::ClientOptions o;
  o.headers = {{"X-Drover-Signature", sig_for_old},
               {"X-Drover-Timestamp", now_s},
               {"X-Drover-Delivery", "d-0002"}};
  auto renamed = http::request("POST", api_->url() + "/webhooks/health", body, o);
  ASSERT_TRUE(renamed.ok());
  EXPECT_EQ(renamed->status, 401) << renamed->body;
  // An old timestamp, even correctly signed, is refused.
  const std::string old_s = std::to_string(now_ms / 1000 - 3600);
  EXPECT_EQ(deliver(body, old_s, "d-0003", body).status, 401);
  // Without the new headers (the body-only signature of version 1): 401.
  http::ClientOptions v1;
  v1.headers = {
      {"X-Drover-Signature", "sha256=" + to_hex(sign::hmac_sha256(kWebhookSecret, body))}};
  auto old_scheme = http::request("POST", api_->url() + "/webhooks/health", body, v1);
  ASSERT_TRUE(old_scheme.ok());
  EXPECT_EQ(old_scheme->status, 401);
  EXPECT_EQ(coordinator_->store().fleet("web", 0).value().samples.size(), 1u);
  // Durably: a restarted coordinator still knows the delivery.
  restart(options());
  EXPECT_EQ(deliver(body, now_s, "d-0001", body).status, 409);
  EXPECT_EQ(coordinator_->store().fleet("web", 0).value().samples.size(), 1u);
}

// Issue 11, item 10. Before: registering an artifact asked the origin on
// one of the API's two workers, for up to 30 s: two slow registrations held
// the whole API, and queued requests waited without bound.
TEST_F(AccessAttack, ASlowOriginNeverHoldsTheApi) {
  // An origin that accepts and never answers, until the test lets it.
  std::mutex mu;
  std::vector<http::Responder> parked;
  auto origin = http::Server::start(
                    {},
                    [&](const http::Request&, http::Responder respond) {
                      std::lock_guard lock(mu);
                      parked.push_back(std::move(respond));
                    },
                    log_)
                    .value();
  CoordinatorOptions o = options("slow");
  o.origin_feed = "http://127.0.0.1:" + std::to_string(origin->port());
  o.follow_feed = false;
  restart(o);
  const auto now = unix_seconds(clock_.now());
  const std::string deployer =
      coordinator_->tokens().create("d2", Role::deployer, now, random_).value();

  const std::string id = ContentId::of("never served").str();
  std::vector<std::thread> clients;
  std::atomic<int> busy{0}, done{0};
  for (int i = 0; i < 24; ++i) {
    clients.emplace_back([&] {
      http::ClientOptions co;
      co.timeout = 60s;
      co.headers.emplace_back("Authorization", "Bearer " + deployer);
      auto r =
          http::request("POST", api_->url() + "/artifacts", json{{"artifact_id", id}}.dump(), co);
      if (r.ok() && r->status == 503) ++busy;
      ++done;
    });
  }
  // The registration worker is stuck on the origin; the rest of the API is not.
  ASSERT_TRUE(drover::testing::eventually([&] {
    std::lock_guard lock(mu);
    return !parked.empty();
  }));
  Answer deploys = call("GET", "/deploys", std::string(), deployer);
  EXPECT_EQ(deploys.status, 200) << deploys.raw;
  // Beyond the registrations' own queue, the answer is 503 at once.
  ASSERT_TRUE(drover::testing::eventually([&] { return busy.load() > 0; }));
  EXPECT_LT(done.load(), 24);  // the others still wait on the origin
  // From now on the origin answers at once: every client ends.
  ASSERT_TRUE(drover::testing::eventually(
      [&] {
        std::lock_guard lock(mu);
        for (auto& respond : parked) respond(http::Response{404, "application/json", "{}", {}});
        parked.clear();
        return done.load() == 24;
      },
      120s));
  for (auto& t : clients) t.join();
}

// The gate's endpoints (issue 13): only an approver acts at a gate, never
// the person who started the run (whichever token either holds), each person
// once; a malformed or oversized body is refused naming the field and
// changes nothing.
TEST_F(AccessAttack, TheGateTakesOnlyAnotherPersonsApprovalAndRefusesBadBodies) {
  const std::string artifact = ready_to_deploy();
  ASSERT_EQ(call("POST", "/pipelines", pipeline(true), approver_).status, 201);
  Answer d =
      call("POST", "/deploys",
           json{{"pipeline_id", "web"}, {"artifact_id", artifact}, {"env", "prod"}}, deployer_);
  ASSERT_EQ(d.status, 201) << d.raw;
  auto state = [&] {
    return call("GET", "/deploys/web-1", std::string(), viewer_).body.value("state", "");
  };
  for (int i = 0; i < 5 && state() != "awaiting_approval"; ++i) {
    ASSERT_TRUE(coordinator_->drive_once().ok());
  }
  ASSERT_EQ(state(), "awaiting_approval");
  const std::string path = "/deploys/web-1/approve";

  EXPECT_EQ(call("POST", path, json::object(), deployer_).status, 403);
  EXPECT_EQ(call("POST", path, json::object(), viewer_).status, 403);
  EXPECT_EQ(call("POST", "/deploys/web-1/override-freeze", json{{"reason", "x"}}, deployer_).status,
            403);
  EXPECT_EQ(call("POST", "/deploys/web-9/approve", json::object(), approver_).status, 404);
  for (const json& bad : {json{{"comment", 5}}, json{{"comment", std::string(2000, 'x')}},
                          json{{"comment", "ok\u001b[2J"}}, json{{"comment", "a\nb"}},
                          json{{"approve", true}}, json::array()}) {
    Answer a = call("POST", path, bad, approver_);
    EXPECT_EQ(a.status, 400) << bad.dump().substr(0, 80) << " " << a.raw;
  }
  EXPECT_EQ(call("POST", path, std::string("{not json"), approver_).status, 400);
  Answer no_reason = call("POST", "/deploys/web-1/reject", json::object(), approver_);
  EXPECT_EQ(no_reason.status, 400) << no_reason.raw;
  EXPECT_NE(no_reason.error().find("reason"), std::string::npos) << no_reason.raw;

  // The starter's own approver token: the same person, refused.
  const auto now = unix_seconds(clock_.now());
  const std::string own =
      coordinator_->tokens().create("dee-approves", Role::approver, now, random_, "dee").value();
  Answer self = call("POST", path, json::object(), own);
  EXPECT_EQ(self.status, 409) << self.raw;
  EXPECT_NE(self.error().find("person 'dee' started deploy 'web-1'"), std::string::npos)
      << self.raw;
  EXPECT_EQ(state(), "awaiting_approval");

  ASSERT_EQ(call("POST", path, json{{"comment", "ok"}}, approver_).status, 200);
  const std::string again =
      coordinator_->tokens().create("ada-phone", Role::approver, now, random_, "ada").value();
  Answer twice = call("POST", path, json::object(), again);
  EXPECT_EQ(twice.status, 409) << twice.raw;
  EXPECT_NE(twice.error().find("already approved"), std::string::npos) << twice.raw;
  const json view = call("GET", "/deploys/web-1", std::string(), viewer_).body;
  ASSERT_EQ(view["environments"][0]["gate"]["approvals"].size(), 1u) << view.dump();
  EXPECT_EQ(view["environments"][0]["gate"]["approvals"][0]["person"], "ada");
}

// A release's gate (issue 16): one approval for all its services, never by
// the release's starter (whichever token), each person once; a member's gate
// never opens on its own; bad bodies are refused naming the field.
TEST_F(AccessAttack, AReleasesGateIsFourEyedAndNoMembersGateOpensAlone) {
  const std::string artifact = ready_to_deploy();
  const json gated = {{"format", "drover.pipeline.v2"},
                      {"service", "web"},
                      {"environments",
                       {{{"name", "prod"},
                         {"gate", {{"approvals", 1}}},
                         {"waves", {{{"name", "all"}, {"regions", {"r1"}}}}}}}}};
  ASSERT_EQ(call("POST", "/pipelines", gated, approver_).status, 201);
  Answer made =
      call("POST", "/releases",
           json{{"services", {{{"pipeline_id", "web"}, {"artifact_id", artifact}}}}}, deployer_);
  ASSERT_EQ(made.status, 201) << made.raw;
  auto at_gate = [&] {
    const json r = call("GET", "/releases/rel-1", std::string(), viewer_).body;
    return r["services"][0]["environments"].value("prod", "") == "awaiting_approval";
  };
  for (int i = 0; i < 5 && !at_gate(); ++i) ASSERT_TRUE(coordinator_->drive_once().ok());
  ASSERT_TRUE(at_gate());
  const std::string path = "/releases/rel-1/approve";

  EXPECT_EQ(call("POST", path, json::object(), deployer_).status, 403);
  EXPECT_EQ(call("POST", path, json::object(), viewer_).status, 403);
  EXPECT_EQ(call("POST", "/releases/rel-9/approve", json::object(), approver_).status, 404);
  const std::pair<const char*, json> alone_acts[] = {{"approve", json{{"comment", "x"}}},
                                                     {"reject", json{{"reason", "x"}}}};
  for (const auto& [verb, body] : alone_acts) {
    Answer alone = call("POST", std::string("/deploys/web-1/") + verb, body, approver_);
    EXPECT_EQ(alone.status, 409) << verb << " " << alone.raw;
    EXPECT_NE(alone.error().find("belongs to release 'rel-1'"), std::string::npos) << alone.raw;
  }
  for (const json& bad : {json{{"comment", 5}}, json{{"comment", "a\nb"}},
                          json{{"comment", std::string(2000, 'x')}}, json::array()}) {
    EXPECT_EQ(call("POST", path, bad, approver_).status, 400) << bad.dump().substr(0, 60);
  }
  EXPECT_EQ(call("POST", "/releases/rel-1/reject", json::object(), approver_).status, 400);

  const auto now = unix_seconds(clock_.now());
  const std::string own =
      coordinator_->tokens().create("dee-approves", Role::approver, now, random_, "dee").value();
  Answer self = call("POST", path, json::object(), own);
  EXPECT_EQ(self.status, 409) << self.raw;
  EXPECT_NE(self.error().find("person 'dee' started release 'rel-1'"), std::string::npos)
      << self.raw;

  ASSERT_EQ(call("POST", path, json{{"comment", "ok"}}, approver_).status, 200);
  const std::string again =
      coordinator_->tokens().create("ada-phone", Role::approver, now, random_, "ada").value();
  Answer twice = call("POST", path, json::object(), again);
  EXPECT_EQ(twice.status, 409) << twice.raw;
  EXPECT_NE(twice.error().find("already approved"), std::string::npos) << twice.raw;
  const json run = call("GET", "/deploys/web-1", std::string(), viewer_).body;
  ASSERT_EQ(run["environments"][0]["gate"]["approvals"].size(), 1u) << run.dump();
  EXPECT_EQ(run["environments"][0]["gate"]["approvals"][0]["person"], "ada");
}

// No way around a gate through a second path (review of issue 13): once a
// service has a gated pipeline, another pipeline of it is the approver's to
// write; a version-2 pipeline is its service's only one; starting a
// version-2 run past its first environment is the approver's call; a
// service has at most kMaxActiveRunsPerService runs not finished.
TEST_F(AccessAttack, NoSecondPathAroundAGateAndABoundOnWaitingRuns) {
  const std::string artifact = ready_to_deploy();
  enroll("s9", "r9", 99);  // staging's one host
  const json gated = {{"format", "drover.pipeline.v2"},
                      {"id", "web"},
                      {"service", "web"},
                      {"environments",
                       {{{"name", "staging"}, {"waves", {{{"name", "all"}, {"regions", {"r9"}}}}}},
                        {{"name", "prod"},
                         {"gate", {{"approvals", 1}}},
                         {"waves", {{{"name", "all"}, {"regions", {"r1"}}}}}}}}};
  ASSERT_EQ(call("POST", "/pipelines", gated, approver_).status, 201);
  json hotfix = {{"format", "drover.pipeline.v2"},
                 {"id", "web-hotfix"},
                 {"service", "web"},
                 {"environments",
                  {{{"name", "hotfix"}, {"waves", {{{"name", "all"}, {"regions", {"r1"}}}}}}}}};
  Answer sneaky = call("POST", "/pipelines", hotfix, deployer_);
  EXPECT_EQ(sneaky.status, 403) << sneaky.raw;
  EXPECT_NE(sneaky.error().find("pipeline 'web' with an approval gate"), std::string::npos)
      << sneaky.raw;
  Answer second = call("POST", "/pipelines", hotfix, approver_);
  EXPECT_EQ(second.status, 409) << second.raw;
  EXPECT_NE(second.error().find("only pipeline of its service"), std::string::npos) << second.raw;
  json v1 = pipeline(false);
  v1["id"] = "web-old";
  EXPECT_EQ(call("POST", "/pipelines", v1, approver_).status, 409);
  EXPECT_EQ(call("GET", "/pipelines", std::string(), viewer_).body["pipelines"].size(), 1u);

  // Straight to prod skips staging: not a deployer's call.
  Answer skip =
      call("POST", "/deploys",
           json{{"pipeline_id", "web"}, {"artifact_id", artifact}, {"env", "prod"}}, deployer_);
  EXPECT_EQ(skip.status, 403) << skip.raw;
  EXPECT_NE(skip.error().find("skips env 'staging'"), std::string::npos) << skip.raw;
  EXPECT_EQ(call("GET", "/deploys", std::string(), viewer_).body["deploys"].size(), 0u);

  // Runs that wait (no driver here: each stays pending) are bounded.
  for (std::size_t i = 0; i < kMaxActiveRunsPerService; ++i) {
    Answer d = call("POST", "/deploys", json{{"pipeline_id", "web"}, {"artifact_id", artifact}},
                    deployer_);
    ASSERT_EQ(d.status, 201) << i << " " << d.raw;
  }
  Answer over =
      call("POST", "/deploys", json{{"pipeline_id", "web"}, {"artifact_id", artifact}}, deployer_);
  EXPECT_EQ(over.status, 409) << over.raw;
  EXPECT_NE(over.error().find("'web-1'"), std::string::npos) << over.raw;
}

// Issue 14, reproducibility: a deploy's snapshot is served byte for byte
// (its hash is the one in the audit chain); a redeploy runs the snapshot's
// strategy and checks through the pipeline's current gates, recorded as a
// redeploy of the original; starting it past the first environment is the
// approver's call; bad bodies are refused naming the field.
TEST_F(AccessAttack, ARedeployReproducesItsSnapshotAndStillPassesTheCurrentGate) {
  const std::string artifact = ready_to_deploy();
  enroll("s9", "r9", 99);  // staging's one host
  json p = {{"format", "drover.pipeline.v2"},
            {"service", "web"},
            {"strategy", {{"kind", "rolling"}, {"batch_size", 2}}},
            {"health_checks", {{"bake_s", 30}, {"min_samples", 4}}},
            {"environments",
             {{{"name", "staging"},
               {"gate", {{"approvals", 1}}},
               {"waves", {{{"name", "all"}, {"regions", {"r9"}}}}}},
              {{"name", "prod"}, {"waves", {{{"name", "all"}, {"regions", {"r1"}}}}}}}}};
  ASSERT_EQ(call("POST", "/pipelines", p, approver_).status, 201);
  ASSERT_EQ(
      call("POST", "/deploys", json{{"pipeline_id", "web"}, {"artifact_id", artifact}}, deployer_)
          .status,
      201);
  auto state = [&](const std::string& id) {
    return call("GET", "/deploys/" + id, std::string(), viewer_).body.value("state", "");
  };
  for (int i = 0; i < 5 && state("web-1") != "awaiting_approval"; ++i) {
    ASSERT_TRUE(coordinator_->drive_once().ok());
  }
  ASSERT_EQ(state("web-1"), "awaiting_approval");
  ASSERT_EQ(call("POST", "/deploys/web-1/reject", json{{"reason", "not today"}}, approver_).status,
            200);

  // The snapshot, byte for byte, and the hash the audit chain holds.
  http::ClientOptions o;
  o.headers = {{"Authorization", "Bearer " + viewer_}};
  auto snap = http::request("GET", api_->url() + "/deploys/web-1/snapshot", "", o).value();
  ASSERT_EQ(snap.status, 200) << snap.body;
  const std::string hash = ContentId::of(snap.body).str();
  bool header = false;
  for (auto [k, v] : snap.headers) {
    std::transform(k.begin(), k.end(), k.begin(), [](unsigned char c) { return std::tolower(c); });
    header |= (k == "x-drover-config-hash" && v == hash);
  }
  EXPECT_TRUE(header) << hash;
  Answer history = call("GET", "/deploys/web-1/audit", std::string(), viewer_);
  ASSERT_EQ(history.status, 200) << history.raw;
  EXPECT_EQ(history.body["config_hash"], hash);
  ASSERT_FALSE(history.body["records"].empty());
  EXPECT_EQ(history.body["records"][0]["what"], "deploy.created");
  EXPECT_EQ(history.body["records"].back()["what"], "gate.rejected") << history.raw;
  for (const auto& r : history.body["records"]) EXPECT_EQ(r["deploy_id"], "web-1");

  // The pipeline changes its strategy and checks; the redeploy keeps the old ones.
  p["strategy"] = {{"kind", "rolling"}, {"batch_size", 1}};
  p["health_checks"] = {{"bake_s", 5}, {"min_samples", 1}};
  ASSERT_EQ(call("POST", "/pipelines", p, approver_).status, 200);
  Answer skip = call("POST", "/deploys/web-1/redeploy", json{{"env", "prod"}}, deployer_);
  EXPECT_EQ(skip.status, 409) << skip.raw;
  EXPECT_NE(skip.error().find("skips env 'staging'"), std::string::npos) << skip.raw;
  for (const json& bad : {json{{"env", ".."}}, json{{"env", 5}}, json{{"artifact_id", "x"}},
                          json{{"env", "nowhere"}}}) {
    Answer a = call("POST", "/deploys/web-1/redeploy", bad, deployer_);
    EXPECT_EQ(a.status, 400) << bad.dump() << " " << a.raw;
  }
  EXPECT_EQ(call("POST", "/deploys/web-9/redeploy", json::object(), deployer_).status, 404);
  // The snapshot's strategy and checks are no longer today's: bringing them
  // back is an approver's call, as an override is (a deployer could
  // otherwise replay an approver's override, or thresholds since tightened).
  Answer deployer_redo = call("POST", "/deploys/web-1/redeploy", json::object(), deployer_);
  EXPECT_EQ(deployer_redo.status, 409) << deployer_redo.raw;
  EXPECT_NE(deployer_redo.error().find("needs role approver"), std::string::npos)
      << deployer_redo.raw;
  Answer again = call("POST", "/deploys/web-1/redeploy", json::object(), approver_);
  ASSERT_EQ(again.status, 201) << again.raw;
  const std::string id = again.body["deploy_id"];
  const json redone = json::parse(
      http::request("GET", api_->url() + "/deploys/" + id + "/snapshot", "", o).value().body);
  EXPECT_EQ(redone["redeploy_of"], "web-1");
  EXPECT_EQ(redone["artifact_id"], artifact);
  EXPECT_EQ(redone["pipeline"]["strategy"]["batch_size"], 2);
  EXPECT_EQ(redone["pipeline"]["health_checks"]["bake_s"], 30);
  EXPECT_EQ(redone["pipeline"]["version"], 2);  // the current pipeline's gates and waves
  EXPECT_EQ(call("GET", "/deploys/" + id, std::string(), viewer_).body["redeploy_of"], "web-1");
  // No way around the gate: the redeploy waits at it like any run.
  for (int i = 0; i < 5 && state(id) != "awaiting_approval"; ++i) {
    ASSERT_TRUE(coordinator_->drive_once().ok());
  }
  EXPECT_EQ(state(id), "awaiting_approval");
  Answer created = call("GET", "/deploys/" + id + "/audit", std::string(), viewer_);
  ASSERT_FALSE(created.body["records"].empty());
  EXPECT_EQ(created.body["records"][0]["detail"]["redeploy_of"], "web-1") << created.raw;
}

// Issue 14, the SCM webhook: only the repository's secret over the exact body
// signs; a delivery id or a commit counts once, durably; pushes start the
// pipelines of their repository and branch, wait for an artifact that comes
// later (superseded by a newer push, ended by their deadline), refuse an
// ambiguous SHA; an unmapped pusher starts runs as scm:<login>.
class ScmWebhook : public AccessAttack {
 protected:
  static constexpr const char* kSecret = "the-org-web-secret";
  Answer push(const json& body, const std::string& delivery, const std::string& secret = kSecret,
              const std::string& event = "push") {
    const std::string bytes = body.dump();
    http::ClientOptions o;
    o.timeout = 10s;
    o.headers = {{"X-GitHub-Event", event},
                 {"X-GitHub-Delivery", delivery},
                 {"X-Hub-Signature-256", "sha256=" + to_hex(sign::hmac_sha256(secret, bytes))}};
    auto r = http::request("POST", api_->url() + "/webhooks/scm", bytes, o);
    EXPECT_TRUE(r.ok());
    if (!r.ok()) return {};
    return {r->status, r->body, json::parse(r->body, nullptr, false)};
  }
  static json event(const std::string& after, const std::string& ref = "refs/heads/main",
                    const std::string& login = "octo") {
    return {{"ref", ref},
            {"after", after},
            {"repository", {{"full_name", "org/web"}, {"ssh_url", "git@git.example:org/web.git"}}},
            {"pusher", {{"name", login}}}};
  }
  std::string artifact(const std::string& salt, const std::string& git_sha) {
    const std::string bytes = drover::testing::small_manifest_bytes("web", salt);
    ArtifactRecord a;
    a.artifact_id = ContentId::of(bytes).str();
    a.service = "web";
    a.git_sha = git_sha;
    EXPECT_TRUE(coordinator_->store().put_artifact(a, bytes).ok());
    return a.artifact_id;
  }
  std::size_t audited(const std::string& what) {
    std::size_t n = 0;
    const auto records = coordinator_->audit({}).value();  // kept: the loop reads it
    for (const auto& r : records) n += r.what == what;
    return n;
  }
  std::size_t deploys() {
    return call("GET", "/deploys", std::string(), viewer_).body["deploys"].size();
  }
  void SetUp() override {
    AccessAttack::SetUp();
    ready_to_deploy();  // hosts in r1 and an artifact of git SHA 0123abcd
    json p = {{"format", "drover.pipeline.v2"},
              {"service", "web"},
              {"source_repo", "git@git.example:org/web.git"},
              {"environments",
               {{{"name", "prod"}, {"waves", {{{"name", "all"}, {"regions", {"r1"}}}}}}}}};
    ASSERT_EQ(call("POST", "/pipelines", p, deployer_).status, 201);
    ASSERT_EQ(
        call("POST", "/scm/sources", json{{"repository", "org/web"}, {"secret", kSecret}}, admin_)
            .status,
        200);
  }
};

TEST_F(ScmWebhook, OnlyTheSecretSignsAndEachDeliveryAndCommitCountsOnce) {
  const std::string sha = "0123abcd" + std::string(32, 'e');
  EXPECT_EQ(push(event(sha), "d-1", "not-the-secret-16").status, 401);
  json other = event(sha);
  other["repository"]["full_name"] = "org/unknown";
  Answer unknown = push(other, "d-1");
  EXPECT_EQ(unknown.status, 401);
  // The same answer as a wrong signature: an unsigned caller cannot tell
  // which repositories are sources. The log names why.
  EXPECT_EQ(unknown.error(), push(event(sha), "d-1", "not-the-secret-16").error());
  bool logged = false;
  for (const auto& line : sink_.lines()) logged |= line.find("no SCM source") != std::string::npos;
  EXPECT_TRUE(logged);
  EXPECT_EQ(push(event(sha), "d-1", kSecret, "ping").status, 200);
  EXPECT_EQ(push(event(sha), "d-1", kSecret, "issues").status, 202);
  EXPECT_EQ(deploys(), 0u);
  // Refused pushes stored nothing: the same delivery id is still fresh.
  ASSERT_EQ(call("POST", "/scm/logins", json{{"login", "octo"}, {"person", "olga"}}, admin_).status,
            200);
  Answer first = push(event(sha), "d-1");
  ASSERT_EQ(first.status, 202) << first.raw;
  ASSERT_EQ(first.body["triggers"].size(), 1u) << first.raw;
  EXPECT_EQ(first.body["triggers"][0]["state"], "started");
  const std::string id = first.body["triggers"][0]["deploy_id"];
  EXPECT_EQ(call("GET", "/deploys/" + id, std::string(), viewer_).body["started_by"], "olga");
  Answer again = push(event(sha), "d-1");
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.body["duplicate"], "delivery");
  Answer replayed = push(event(sha), "d-2");  // the captured body under a fresh id
  EXPECT_EQ(replayed.status, 200);
  EXPECT_EQ(replayed.body["duplicate"], "commit");
  EXPECT_EQ(deploys(), 1u);
  // Replays under ever fresh ids store nothing: the state cannot be grown.
  const auto kept = coordinator_->store().settings_under("scm/").value().size();
  for (int i = 0; i < 20; ++i) push(event(sha), "replay-" + std::to_string(i));
  EXPECT_EQ(coordinator_->store().settings_under("scm/").value().size(), kept);

  // Another repository's secret holder names org/web's URLs in its body:
  // matched by the full_name its secret signed, it starts nothing here.
  ASSERT_EQ(call("POST", "/scm/sources",
                 json{{"repository", "team-a/tool"}, {"secret", "team-a-secret-0123"}}, admin_)
                .status,
            200);
  json forged = event("0123abcd" + std::string(32, 'a'));
  forged["repository"] = {{"full_name", "team-a/tool"},
                          {"clone_url", "git@git.example:org/web.git"},
                          {"ssh_url", "git@git.example:org/web.git"}};
  Answer cross = push(forged, "x-1", "team-a-secret-0123");
  EXPECT_EQ(cross.status, 202) << cross.raw;
  EXPECT_TRUE(cross.body["triggers"].empty()) << cross.raw;
  EXPECT_EQ(deploys(), 1u);
  // A version-1 pipeline naming the repository never opted in: a push
  // waits for web's artifact only.
  json v1 = pipeline(false);
  v1["service"] = "api";
  v1["source_repo"] = "org/web";
  ASSERT_EQ(call("POST", "/pipelines", v1, deployer_).status, 201);
  Answer only_v2 = push(event("9999999" + std::string(33, 'b')), "v-1");
  ASSERT_EQ(only_v2.status, 202) << only_v2.raw;
  ASSERT_EQ(only_v2.body["triggers"].size(), 1u) << only_v2.raw;
  EXPECT_EQ(only_v2.body["triggers"][0]["pipeline_id"], "web");
  EXPECT_EQ(only_v2.body["triggers"][0]["state"], "waiting");
  // Another branch, or a tag: nothing to start.
  Answer dev = push(event("0123abcd" + std::string(32, 'f'), "refs/heads/dev"), "d-3");
  EXPECT_EQ(dev.status, 202);
  EXPECT_TRUE(dev.body["triggers"].empty()) << dev.raw;
  // Bad bodies and headers.
  json broken = event(sha);
  broken["after"] = "xyz";
  EXPECT_EQ(push(broken, "d-4").status, 400);
  EXPECT_EQ(push(event(sha), "../etc").status, 400);
  EXPECT_EQ(deploys(), 1u);
}

TEST_F(ScmWebhook, APushWaitsForItsArtifactANewerOneSupersedesItAndAmbiguityIsRefused) {
  const std::string x = "aaaaaaa" + std::string(33, '1');
  const std::string y = "bbbbbbb" + std::string(33, '2');
  Answer waits = push(event(x), "w-1");
  ASSERT_EQ(waits.status, 202) << waits.raw;
  EXPECT_EQ(waits.body["triggers"][0]["state"], "waiting");
  Answer newer = push(event(y), "w-2");
  EXPECT_EQ(newer.body["triggers"][0]["state"], "waiting");
  EXPECT_EQ(audited("scm.superseded"), 1u);
  artifact("x", x.substr(0, 7));  // x's artifact arrives: x was superseded, nothing starts
  ASSERT_TRUE(coordinator_->drive_once().ok());
  EXPECT_EQ(deploys(), 0u);
  const std::string for_y = artifact("y", y);
  ASSERT_TRUE(coordinator_->drive_once().ok());
  ASSERT_EQ(deploys(), 1u);
  EXPECT_EQ(call("GET", "/deploys/web-1", std::string(), viewer_).body["artifact_id"], for_y);
  // Unmapped pusher: the run is scm:<login>'s, a person no token can hold.
  EXPECT_EQ(call("GET", "/deploys/web-1", std::string(), viewer_).body["started_by"], "scm:octo");
  EXPECT_EQ(call("POST", "/tokens",
                 json{{"name", "t"}, {"role", "approver"}, {"person", "scm:octo"}}, admin_)
                .status,
            400);
  // Two artifacts whose SHAs both name the commit: refused, naming them.
  const std::string z = "ccccccc" + std::string(33, '3');
  const std::string one = artifact("z1", z.substr(0, 7));
  const std::string two = artifact("z2", z.substr(0, 12));
  Answer ambiguous = push(event(z), "a-1");
  ASSERT_EQ(ambiguous.body["triggers"][0]["state"], "ambiguous") << ambiguous.raw;
  EXPECT_EQ(ambiguous.body["triggers"][0]["artifacts"].size(), 2u);
  EXPECT_NE(ambiguous.raw.find(one), std::string::npos);
  EXPECT_NE(ambiguous.raw.find(two), std::string::npos);
  EXPECT_EQ(audited("scm.ambiguous"), 1u);
}

// A push is recorded with its triggers in one transaction: a coordinator
// that stops right after (before acting on it) starts the run at its next
// tick, and one that stopped after starting it, before ending the trigger,
// does not start a second.
TEST_F(ScmWebhook, APushSurvivesAStopRightAfterItAndNeverStartsTwice) {
  const std::string sha = "0123abcd" + std::string(32, '9');
  const json trigger = {{"pipeline", "web"},
                        {"service", "web"},
                        {"commit", sha},
                        {"person", "olga"},
                        {"delivery", "k-1"},
                        {"pushed_ms", coordinator_->now_ms()},
                        {"deadline_ms", coordinator_->now_ms() + 3'600'000}};
  auto seen = coordinator_->store().note_push("scm/delivery/k-1", "scm/commit/org/web\nx\n" + sha,
                                              coordinator_->now_ms(),
                                              {{"scm/trigger/web", trigger.dump()}});
  ASSERT_EQ(seen.value(), CoordinatorStore::PushSeen::fresh);
  // The stop: nothing acted on the push yet. (Plans name a tracker; this
  // one answers nobody, so the run waits for its artifact, and a tick that
  // goes as far as it can never tries to issue a plan without one.)
  CoordinatorOptions o = options();
  o.tracker_url = "http://127.0.0.1:1";
  restart(o);
  ASSERT_TRUE(coordinator_->drive_once().ok());
  ASSERT_EQ(deploys(), 1u);
  EXPECT_EQ(call("GET", "/deploys/web-1", std::string(), viewer_).body["started_by"], "olga");
  EXPECT_FALSE(coordinator_->store().setting("scm/trigger/web").value());
  // As if the trigger outlived the start (a stop between the two writes).
  ASSERT_TRUE(coordinator_->store().put_setting("scm/trigger/web", trigger.dump()).ok());
  const auto again = coordinator_->drive_once();
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(deploys(), 1u);
  EXPECT_FALSE(coordinator_->store().setting("scm/trigger/web").value());
}

TEST_F(ScmWebhook, AWaitingPushEndsAtItsDeadline) {
  CoordinatorOptions o = options();
  o.scm_wait_s = 0;  // past due at the first tick after the push
  restart(o);
  ASSERT_EQ(push(event("ddddddd" + std::string(33, '4')), "e-1").body["triggers"][0]["state"],
            "waiting");
  EXPECT_TRUE(drover::testing::eventually([&] {
    (void)coordinator_->drive_once();
    return audited("scm.expired") == 1;
  }));
  artifact("late", "ddddddd");
  ASSERT_TRUE(coordinator_->drive_once().ok());
  EXPECT_EQ(deploys(), 0u);
}

// Notifications (issue 14): only an admin sets the allow-list; a deployer's
// destination must match it (so no one makes the coordinator call its own
// API, its tracker or anything an admin did not name), and a URL dressed to
// look allowed (a user part, a '..' step, an escape) is refused; the secret
// and the URL are never read back; bodies are checked field by field.
TEST_F(AccessAttack, NotificationDestinationsStayInsideTheAdminsAllowList) {
  ASSERT_EQ(call("POST", "/pipelines", pipeline(false), deployer_).status, 201);
  drover::testing::NotifyReceiver receiver("receiver-secret-0123");
  const std::string hooks = "http://127.0.0.1:" + std::to_string(receiver.port()) + "/hooks/";
  const std::string secret = "destination-secret-0123";
  auto destination = [&](const std::string& url) {
    return json{{"name", "ops"}, {"url", url}, {"secret", secret}};
  };
  auto listed = [&] {
    return call("GET", "/pipelines/web/notifications", std::string(), viewer_).body;
  };

  // The allow-list is the admin's alone, and a bad entry stores nothing.
  for (const auto& who : {deployer_, approver_, viewer_}) {
    EXPECT_EQ(call("PUT", "/notifications/allow", json{{"allow", {hooks}}}, who).status, 403);
    EXPECT_EQ(call("GET", "/notifications/outbox", std::string(), who).status, 403);
  }
  json too_many = json::array();
  for (int i = 0; i < 65; ++i) too_many.push_back("http://10.0.0." + std::to_string(i) + "/");
  for (const json& bad : {json{{"allow", {"https://u@x/"}}}, json{{"allow", "http://x"}},
                          json{{"allow", {hooks}}, {"extra", 1}}, json::object(),
                          json{{"allow", {"http://x/a/../b"}}}, json{{"allow", too_many}},
                          json{{"allow", {"http://x/" + std::string(3000, 'a')}}},
                          json{{"allow", {"http://h\u00e9.example/"}}}, json{{"allow", {5}}}}) {
    Answer a = call("PUT", "/notifications/allow", bad, admin_);
    EXPECT_EQ(a.status, 400) << bad.dump() << " " << a.raw;
  }
  EXPECT_EQ(call("PUT", "/notifications/allow", std::string("{not json"), admin_).status, 400);
  EXPECT_EQ(call("GET", "/notifications/allow", std::string(), admin_).body["allow"],
            json::array());

  // Until an admin allows something, nothing is: not even the coordinator's own API.
  Answer own =
      call("POST", "/pipelines/web/notifications", destination(api_->url() + "/ready"), deployer_);
  EXPECT_EQ(own.status, 409) << own.raw;
  EXPECT_NE(own.error().find("not on the notification allow-list"), std::string::npos) << own.raw;
  ASSERT_EQ(call("PUT", "/notifications/allow", json{{"allow", {hooks}}}, admin_).status, 200);
  Answer outside = call("POST", "/pipelines/web/notifications",
                        destination(api_->url() + "/hooks/x"), deployer_);
  EXPECT_EQ(outside.status, 409) << outside.raw;
  const std::string port = std::to_string(receiver.port());
  for (const std::string& dressed :
       {"http://127.0.0.1:" + port + "/other", "http://127.0.0.1:" + port + "/hooks/../tokens",
        "http://127.0.0.1:" + port + "/hooks/%2e%2e/tokens",
        "http://127.0.0.1:" + port + "@" + api_->url().substr(7) + "/hooks/x",
        "http://localhost:" + port + "/hooks/x", "https://127.0.0.1:" + port + "/hooks/x",
        "http://127.0.0.1:" + port + "/hooks/x#frag", "gopher://127.0.0.1:" + port + "/hooks/"}) {
    Answer a = call("POST", "/pipelines/web/notifications", destination(dressed), deployer_);
    EXPECT_TRUE(a.status == 400 || a.status == 409) << dressed << " " << a.raw;
  }
  EXPECT_EQ(listed()["destinations"], json::array());

  // Each field is checked, naming it; a viewer may not add one.
  for (const json& bad :
       {json{{"name", "a/b"}, {"url", hooks + "x"}, {"secret", secret}},
        json{{"name", "ops"}, {"url", hooks + "x"}},
        json{{"name", "ops"}, {"url", hooks + "x"}, {"secret", "short"}},
        json{{"name", "ops"},
             {"url", hooks + "x"},
             {"secret", secret},
             {"events", {"token.created"}}},
        json{{"name", "ops"}, {"url", hooks + "x"}, {"secret", secret}, {"format", "html"}},
        json{{"name", "ops"},
             {"url", hooks + "x"},
             {"secret", secret},
             {"headers", {{"Authorization", "x"}}}},
        json{{"name", "ops"}, {"url", hooks + std::string(3000, 'x')}, {"secret", secret}},
        json{{"name", "ops"}, {"url", hooks + "\u00e9"}, {"secret", secret}},
        json{{"name", "ops"}, {"url", hooks + "x"}, {"secret", std::string(300, 's')}},
        json::array()}) {
    Answer a = call("POST", "/pipelines/web/notifications", bad, deployer_);
    EXPECT_EQ(a.status, 400) << bad.dump() << " " << a.raw;
  }
  EXPECT_EQ(call("POST", "/pipelines/web/notifications", destination(hooks + "x"), viewer_).status,
            403);
  EXPECT_EQ(
      call("POST", "/pipelines/nope/notifications", destination(hooks + "x"), deployer_).status,
      404);

  // Allowed: stored, and read back without its secret or its URL's path.
  Answer added = call("POST", "/pipelines/web/notifications",
                      destination(hooks + "T0/B1/path-is-a-credential"), deployer_);
  ASSERT_EQ(added.status, 201) << added.raw;
  const std::string shown = listed().dump();
  EXPECT_EQ(shown.find(secret), std::string::npos) << shown;
  EXPECT_EQ(shown.find("path-is-a-credential"), std::string::npos) << shown;
  EXPECT_EQ(added.raw.find(secret), std::string::npos) << added.raw;
  EXPECT_EQ(listed()["destinations"][0]["origin"], "http://127.0.0.1:" + port);
  EXPECT_EQ(listed()["destinations"][0]["signed"], true);
  // Nor in the audit record of the change.
  const std::string audit = call("GET", "/audit?limit=1000", std::string(), viewer_).raw;
  EXPECT_EQ(audit.find(secret), std::string::npos);
  EXPECT_EQ(audit.find("path-is-a-credential"), std::string::npos);
  EXPECT_NE(audit.find("notify.destination_set"), std::string::npos);

  // At most 8 per pipeline; removal by a deployer only, 404 for an unknown one.
  for (int i = 1; i < 8; ++i) {
    json d = destination(hooks + "x");
    d["name"] = "d" + std::to_string(i);
    ASSERT_EQ(call("POST", "/pipelines/web/notifications", d, deployer_).status, 201);
  }
  json ninth = destination(hooks + "x");
  ninth["name"] = "d9";
  Answer over = call("POST", "/pipelines/web/notifications", ninth, deployer_);
  EXPECT_EQ(over.status, 409) << over.raw;
  EXPECT_EQ(call("DELETE", "/pipelines/web/notifications/ops", std::string(), viewer_).status, 403);
  EXPECT_EQ(call("DELETE", "/pipelines/web/notifications/nope", std::string(), deployer_).status,
            404);
  EXPECT_EQ(call("DELETE", "/pipelines/web/notifications/ops", std::string(), deployer_).status,
            200);
  EXPECT_EQ(listed()["destinations"].size(), 7u);

  // Another deployer cannot point dee's destination elsewhere, nor remove
  // it; an approver can, and the audit log shows the URL changed.
  const std::string eve = coordinator_->tokens()
                              .create("eve", Role::deployer, unix_seconds(clock_.now()), random_)
                              .value();
  json taken = destination(hooks + "eve-listens-here");
  taken["name"] = "d1";
  Answer take = call("POST", "/pipelines/web/notifications", taken, eve);
  EXPECT_EQ(take.status, 409) << take.raw;
  EXPECT_NE(take.error().find("is dee's"), std::string::npos) << take.raw;
  EXPECT_EQ(call("DELETE", "/pipelines/web/notifications/d1", std::string(), eve).status, 409);
  ASSERT_EQ(call("POST", "/pipelines/web/notifications", taken, approver_).status, 200);
  const json records = call("GET", "/audit?limit=1000", std::string(), viewer_).body["records"];
  bool replaced = false;
  for (const auto& r : records) {
    replaced |= r["what"] == "notify.destination_set" &&
                r["detail"].contains("replaced_url_sha256") &&
                r["detail"]["replaced_created_by"] == "dee";
  }
  EXPECT_TRUE(replaced) << records.dump();
}

// A run at a gate is heard at a real receiver: signed, with who may approve
// (approvers and admins, never the starter), once per event (by event id)
// even when the receiver first refuses and the coordinator retries; the
// outbox shows why it waits.
TEST_F(AccessAttack, AGateIsHeardSignedWithWhoMayApproveOncePerEvent) {
  const std::string artifact = ready_to_deploy();
  ASSERT_EQ(call("POST", "/pipelines", pipeline(true), approver_).status, 201);
  drover::testing::NotifyReceiver receiver("destination-secret-0123");
  ASSERT_EQ(call("PUT", "/notifications/allow", json{{"allow", {receiver.url("/hooks/")}}}, admin_)
                .status,
            200);
  ASSERT_TRUE(coordinator_->notify_once().ok());  // the notifier's cursor: from here on
  ASSERT_EQ(call("POST", "/pipelines/web/notifications",
                 json{{"name", "ops"},
                      {"url", receiver.url("/hooks/ops")},
                      {"secret", "destination-secret-0123"},
                      {"events", {"gate.waiting", "gate.approved", "gate.rejected"}}},
                 deployer_)
                .status,
            201);
  ASSERT_EQ(
      call("POST", "/deploys",
           json{{"pipeline_id", "web"}, {"artifact_id", artifact}, {"env", "prod"}}, deployer_)
          .status,
      201);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(coordinator_->drive_once().ok());
  ASSERT_TRUE(coordinator_->notify_once().ok());
  ASSERT_EQ(receiver.kinds(), std::vector<std::string>{"gate.waiting"});
  const auto waiting = receiver.accepted()[0];
  EXPECT_TRUE(waiting.signature_ok);
  EXPECT_EQ(waiting.path, "/hooks/ops");
  EXPECT_EQ(waiting.body["event_id"], waiting.event_id);
  EXPECT_EQ(waiting.body["deploy_id"], "web-1");
  EXPECT_EQ(waiting.body["env"], "prod");
  EXPECT_EQ(waiting.body["may_approve"], json({"ada", "root"}));  // not dee, who started it
  EXPECT_NE(waiting.body["text"].get<std::string>().find("ada, root"), std::string::npos);

  // The receiver refuses for a while: retried, the outbox says why, and the
  // event arrives once it accepts, under one id.
  receiver.answer(503);
  ASSERT_EQ(call("POST", "/deploys/web-1/approve", json{{"comment", "ok"}}, approver_).status, 200);
  ASSERT_TRUE(coordinator_->notify_once().ok());
  Answer outbox = call("GET", "/notifications/outbox", std::string(), admin_);
  ASSERT_EQ(outbox.body["pending"].size(), 1u) << outbox.raw;
  EXPECT_EQ(outbox.body["pending"][0]["kind"], "gate.approved");
  EXPECT_EQ(outbox.body["pending"][0]["last_error"], "answered 503");
  receiver.answer(200);
  ASSERT_TRUE(drover::testing::eventually([&] {
    (void)coordinator_->notify_once();
    return receiver.kinds().size() == 2;
  }));
  EXPECT_EQ(receiver.kinds(), (std::vector<std::string>{"gate.waiting", "gate.approved"}));
  const auto all = receiver.deliveries();
  ASSERT_GE(all.size(), 3u);
  std::set<std::string> approved_ids;
  for (const auto& d : all) {
    if (d.kind == "gate.approved") approved_ids.insert(d.event_id);
  }
  EXPECT_EQ(approved_ids.size(), 1u);
  EXPECT_TRUE(call("GET", "/notifications/outbox", std::string(), admin_).body["pending"].empty());
}

}  // namespace
}  // namespace drover::coordinator
