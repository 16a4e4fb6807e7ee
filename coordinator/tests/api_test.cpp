// The coordinator's HTTP API, endpoint by endpoint (docs/API.md): who may
// call what, bad input refused with the field named and nothing changed,
// and each endpoint's answer. A real Coordinator behind a real HTTP server
// on loopback; the origin's feed is a small server speaking its contract.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "coordinator/api/http_api.hpp"
#include "coordinator/service/coordinator.hpp"
#include "core/base/hex.hpp"
#include "core/format/manifest.hpp"
#include "core/http/http.hpp"
#include "core/sign/secret_box.hpp"
#include "core/world/random.hpp"
#include "tests/support/small_manifest.hpp"
#include "tests/support/test_support.hpp"
#include "tests/support/tls_cert.hpp"

namespace drover::coordinator {
namespace {

using drover::testing::TempDir;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kWebhookSecret = "webhook-secret-of-the-test";

struct Answer {
  int status = 0;
  json body;
};

class Api : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto now = unix_seconds(clock_.now());
    CoordinatorOptions o;
    o.data_dir = dir_.path() / "state";
    o.online = OnlineKey{
        online_, sign::certify(root_, {"online", online_.public_key(), 1, now - 60, now + 86400})};
    o.webhook_secret = kWebhookSecret;
    origin_ = http::Server::start(
                  {},
                  [this](const http::Request& req, http::Responder respond) {
                    http::Response r;
                    const std::string prefix = "/v1/manifests/";
                    auto it = req.path.rfind(prefix, 0) == 0
                                  ? manifests_.find(req.path.substr(prefix.size()))
                                  : manifests_.end();
                    if (it == manifests_.end()) {
                      r.status = 404;
                      r.body = R"({"error":"no such manifest"})";
                    } else {
                      r.content_type = "application/octet-stream";
                      r.body = it->second;
                    }
                    respond(std::move(r));
                  },
                  Logger::discard())
                  .value();
    o.origin_feed = "http://127.0.0.1:" + std::to_string(origin_->port());
    o.follow_feed = false;  // registration by POST /artifacts only
    coordinator_ = Coordinator::start(o, clock_, random_, Logger::discard()).value();
    api_ = HttpApi::start(*coordinator_, {}, Logger::discard()).value();
    admin_ = coordinator_->tokens().create("root", Role::admin, now, random_).value();
    deployer_ = coordinator_->tokens().create("dee", Role::deployer, now, random_).value();
    viewer_ = coordinator_->tokens().create("vee", Role::viewer, now, random_).value();
  }
  void TearDown() override {
    api_.reset();
    coordinator_.reset();
  }

  Answer call(const std::string& method, const std::string& path, const std::string& body,
              const std::string& token,
              std::vector<std::pair<std::string, std::string>> headers = {}) {
    http::ClientOptions o;
    o.timeout = 10s;
    o.headers = std::move(headers);
    if (!token.empty()) o.headers.emplace_back("Authorization", "Bearer " + token);
    auto r = http::request(method, api_->url() + path, body, o);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    if (!r.ok()) return {};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  Answer call(const std::string& method, const std::string& path, const json& body,
              const std::string& token) {
    return call(method, path, body.is_null() ? std::string() : body.dump(), token);
  }
  // The headers of a webhook delivery (docs/API.md, version 2), signed now.
  std::vector<std::pair<std::string, std::string>> webhook_headers(const std::string& body,
                                                                   const std::string& id) {
    const std::string ts = std::to_string(unix_seconds(clock_.now()));
    const std::string sig =
        "sha256=" + to_hex(sign::hmac_sha256(kWebhookSecret,
                                             "drover-webhook-v2\n" + ts + "\n" + id + "\n" + body));
    return {{"X-Drover-Signature", sig}, {"X-Drover-Timestamp", ts}, {"X-Drover-Delivery", id}};
  }

  // An artifact the origin serves: its id.
  std::string publish(const std::string& service, const std::string& salt) {
    const std::string m = drover::testing::small_manifest_bytes(service, salt);
    manifests_[ContentId::of(m).hex()] = m;
    return ContentId::of(m).str();
  }
  void enroll(const std::string& host, const std::string& region = "r1") {
    HostRecord h;
    h.host = host;
    h.region = region;
    h.cluster = "c1";
    h.services = {"web"};
    SeededRandom rnd(host.size() * 31 + host.back());
    h.key = sign::KeyPair::generate(rnd).public_key();
    h.report_key = std::string(32, 'k');
    ASSERT_TRUE(coordinator_->store().enroll(h).ok());
  }
  json pipeline_body() {
    return {{"service", "web"},
            {"envs", {{{"name", "prod"}, {"region", "r1"}}}},
            {"strategy", {{"kind", "canary"}, {"batch_size", 2}, {"canary_percents", {25}}}},
            {"health_checks", {{"bake_s", 30}}}};
  }

  TempDir dir_;
  SystemClock clock_;
  SystemRandom random_;
  SeededRandom keys_{7};
  sign::KeyPair root_ = sign::KeyPair::generate(keys_);
  sign::KeyPair online_ = sign::KeyPair::generate(keys_);
  std::map<std::string, std::string> manifests_;  // hex -> bytes
  std::unique_ptr<http::Server> origin_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<HttpApi> api_;
  std::string admin_, deployer_, viewer_;
};

// Every endpoint that needs a token, with the role it needs.
struct Endpoint {
  const char* method;
  const char* path;
  Role role;
};
const Endpoint kEndpoints[] = {
    {"GET", "/pipelines", Role::viewer},
    {"POST", "/pipelines", Role::deployer},
    {"GET", "/pipelines/web", Role::viewer},
    {"GET", "/pipelines/web/runs", Role::viewer},
    {"GET", "/deploys", Role::viewer},
    {"POST", "/deploys", Role::deployer},
    {"GET", "/deploys/web-1", Role::viewer},
    {"POST", "/deploys/web-1/pause", Role::deployer},
    {"POST", "/deploys/web-1/resume", Role::deployer},
    {"POST", "/rollback", Role::deployer},
    {"GET", "/artifacts", Role::viewer},
    {"POST", "/artifacts", Role::deployer},
    {"GET", "/artifacts/sha256:00", Role::viewer},
    {"GET", "/hosts", Role::viewer},
    {"POST", "/hosts/h1/reset", Role::admin},
    {"GET", "/audit", Role::viewer},
    {"GET", "/audit/verify", Role::viewer},
    {"GET", "/audit/running?service=web", Role::viewer},
    {"GET", "/audit/running?service=web&host=h1", Role::viewer},
    {"GET", "/hosts/h1/releases?service=web", Role::viewer},
    {"GET", "/scm/sources", Role::admin},
    {"POST", "/scm/sources", Role::admin},
    {"POST", "/scm/logins", Role::admin},
    {"GET", "/deploys/web-1/snapshot", Role::viewer},
    {"GET", "/deploys/web-1/audit", Role::viewer},
    {"POST", "/deploys/web-1/redeploy", Role::deployer},
    {"GET", "/tokens", Role::admin},
    {"POST", "/tokens", Role::admin},
    {"DELETE", "/tokens/vee", Role::admin},
    {"POST", "/join-tokens", Role::admin},
    {"POST", "/join-tokens/revoke", Role::admin},
    {"GET", "/services/web/flags", Role::viewer},
    {"POST", "/services/web/flags/checkout", Role::deployer},
    {"POST", "/services/web/flags/checkout/kill", Role::deployer},
    {"GET", "/releases", Role::viewer},
    {"POST", "/releases", Role::deployer},
    {"GET", "/releases/rel-1", Role::viewer},
    {"POST", "/releases/rel-1/approve", Role::approver},
    {"POST", "/releases/rel-1/reject", Role::approver},
};

TEST_F(Api, EveryEndpointRefusesAMissingOrUnknownToken) {
  for (const auto& e : kEndpoints) {
    Answer none = call(e.method, e.path, std::string("{}"), "");
    EXPECT_EQ(none.status, 401) << e.method << " " << e.path;
    EXPECT_NE(none.body.value("error", "").find("bearer token"), std::string::npos);
    Answer forged = call(e.method, e.path, std::string("{}"), "drv_forged");
    EXPECT_EQ(forged.status, 401) << e.method << " " << e.path;
    EXPECT_EQ(forged.body.value("error", ""), "unknown or revoked token");
  }
}

TEST_F(Api, EveryEndpointChecksTheRole) {
  const std::string approver =
      coordinator_->tokens().create("ap", Role::approver, 1, random_).value();
  const std::map<Role, std::string> tokens = {{Role::viewer, viewer_},
                                              {Role::deployer, deployer_},
                                              {Role::approver, approver},
                                              {Role::admin, admin_}};
  for (const auto& e : kEndpoints) {
    for (const auto& [role, token] : tokens) {
      if (allows(role, e.role)) continue;
      Answer a = call(e.method, e.path, std::string("{}"), token);
      EXPECT_EQ(a.status, 403) << e.method << " " << e.path << " as " << role_name(role);
      EXPECT_NE(a.body.value("error", "").find(std::string("needs role ") + role_name(e.role)),
                std::string::npos)
          << a.body.dump();
    }
  }
  // Allowed roles get past the check (whatever the operation then answers).
  for (const auto& e : kEndpoints) {
    if (std::string(e.method) != "GET" || e.role != Role::viewer) continue;
    Answer a = call(e.method, e.path, std::string(), viewer_);
    EXPECT_NE(a.status, 401);
    EXPECT_NE(a.status, 403) << e.path;
  }
}

TEST_F(Api, UnknownPathsAndMethodsAreNamed) {
  Answer a = call("GET", "/nope", std::string(), admin_);
  EXPECT_EQ(a.status, 404);
  EXPECT_NE(a.body["error"].get<std::string>().find("/nope"), std::string::npos);
  Answer b = call("PUT", "/pipelines", std::string("{}"), admin_);
  EXPECT_EQ(b.status, 405);
  EXPECT_NE(b.body["error"].get<std::string>().find("GET, POST"), std::string::npos);
  EXPECT_EQ(call("GET", "/ready", std::string(), "").status, 200);
}

TEST_F(Api, MalformedBodiesAreRefusedNamingTheFieldAndChangeNothing) {
  const auto audit_before = coordinator_->store().verify_audit().value().records;
  struct Case {
    const char* path;
    std::string body;
    const char* names;
  };
  const std::vector<Case> cases = {
      {"/pipelines", "{not json", "not valid JSON"},
      {"/services/web/flags/checkout", R"({"env":"production","value":"yes"})", "value"},
      {"/services/web/flags/checkout", R"({"env":"production","value":101})", "value"},
      {"/services/web/flags/checkout", R"({"value":5})", "env"},
      {"/services/web/flags/checkout", R"({"env":"production","value":5,"x":1})", "x"},
      {"/services/web/flags/checkout/kill", R"({"env":1})", "env"},
      {"/pipelines",
       R"({"format":"drover.pipeline.v2","service":"web","depends_on":["nope"],)"
       R"("environments":[{"name":"p","waves":[{"name":"a","regions":["r"]}]}]})",
       "no pipeline deploys"},
      {"/pipelines", "[1,2]", "must be a JSON object"},
      {"/pipelines", R"({"service":5})", "service must be a string"},
      {"/pipelines", R"({"envs":[]})", "service is required"},
      {"/pipelines", R"({"service":"web","colour":"red"})", "unknown field 'colour'"},
      {"/pipelines", R"({"service":"../etc"})", "service"},
      {"/pipelines", R"({"service":"web","strategy":{"batch_size":0}})", "strategy.batch_size"},
      {"/pipelines", R"({"service":"web","strategy":{"batch_size":2,"batch_percent":5}})",
       "exclude each other"},
      {"/pipelines", R"({"service":"web","strategy":{"kind":"canary","canary_percents":[25,5]}})",
       "canary"},
      {"/pipelines", R"({"service":"web","strategy":{"kind":"feature_flag"}})", "strategy.kind"},
      {"/pipelines", R"({"service":"web","health_checks":{"min_samples":-1}})",
       "health_checks.min_samples"},
      {"/pipelines", R"({"service":"web","health_checks":{"judge":"vibes"}})",
       "health_checks.judge"},
      {"/pipelines", R"({"service":"web","envs":[{"name":"a"},{"name":"a"}]})", "twice"},
      {"/pipelines", R"({"service":"web","approval_gates":["prod"]})", "approval_gates[0]"},
      {"/pipelines", R"({"service":"web","timeouts":{"converge_s":0}})", "timeouts.converge_s"},
      {"/deploys", R"({})", "pipeline_id is required"},
      {"/deploys", R"({"pipeline_id":"web"})", "artifact_id is required"},
      {"/deploys", R"({"pipeline_id":"web","artifact_id":"md5:xyz"})", "artifact_id"},
      {"/deploys", R"({"pipeline_id":"web","artifact_id":"sha256:00","extra":1})",
       "unknown field 'extra'"},
      {"/rollback", R"({})", "deploy_id is required"},
      {"/rollback", R"({"deploy_id":7})", "deploy_id must be a string"},
      {"/artifacts", R"({"artifact_id":"nope"})", "artifact_id"},
      {"/tokens", R"({"name":"x","role":"god"})", "role"},
      {"/tokens", R"({"role":"viewer"})", "name is required"},
      {"/tokens", R"({"name":"x","role":"viewer","person":"ann smith"})", "person 'ann smith'"},
      {"/tokens", R"({"name":"x","role":"viewer","person":""})", "person"},
      {"/tokens", R"({"name":"x","role":"viewer","person":7})", "person must be a string"},
      {"/join-tokens/revoke", R"({})", "token is required"},
      {"/releases", R"({})", "services is required"},
      {"/releases", R"({"services":[]})", "at least one service"},
      {"/releases", R"({"services":[{"pipeline_id":"web"}]})", "services[0].artifact_id"},
      {"/releases", R"({"services":[{"pipeline_id":"web","artifact_id":"md5:1"}]})",
       "services[0].artifact_id"},
      {"/releases", R"({"services":[{"pipeline_id":"web","artifact_id":"sha256:00","x":1}]})",
       "unknown field 'services[0].x'"},
      {"/releases",
       R"({"services":[{"pipeline_id":"web","artifact_id":"sha256:)" + std::string(64, '0') +
           R"("}],"policy":"some"})",
       "policy"},
      {"/releases", R"({"services":{"pipeline_id":"web"}})", "services"},
      {"/releases",
       "{\"services\":[" +
           [] {
             std::string many;
             for (int i = 0; i < 33; ++i) many += std::string(i ? "," : "") + "{}";
             return many;
           }() +
           "]}",
       "services"},
  };
  for (const auto& c : cases) {
    Answer a = call("POST", c.path, c.body, admin_);
    EXPECT_EQ(a.status, 400) << c.path << " " << c.body << " -> " << a.body.dump();
    EXPECT_NE(a.body.value("error", "").find(c.names), std::string::npos)
        << c.body << " -> " << a.body.dump();
  }
  EXPECT_TRUE(call("GET", "/pipelines", std::string(), viewer_).body["pipelines"].empty());
  EXPECT_TRUE(call("GET", "/deploys", std::string(), viewer_).body["deploys"].empty());
  EXPECT_EQ(coordinator_->store().verify_audit().value().records, audit_before);
}

// A release through the API (docs/API.md, "POST /releases"): created with a
// run per service, dependencies first; shown as a DAG; its gate is the
// release's, never a member's alone.
TEST_F(Api, AReleaseIsCreatedShownAndGatedAsOne) {
  const std::string approver =
      coordinator_->tokens().create("ap", Role::approver, 1, random_).value();
  for (const std::string service : {"web", "api"}) {
    HostRecord h;
    h.host = service + "-1";
    h.region = "r1";
    h.services = {service};
    SeededRandom rnd(service.size());
    h.key = sign::KeyPair::generate(rnd).public_key();
    h.report_key = std::string(32, 'k');
    ASSERT_TRUE(coordinator_->store().enroll(h).ok());
  }
  auto pipeline = [](const std::string& service, const json& depends_on) {
    return json{{"format", "drover.pipeline.v2"},
                {"service", service},
                {"depends_on", depends_on},
                {"environments",
                 {{{"name", "production"},
                   {"gate", {{"approvals", 1}}},
                   {"waves", {{{"name", "all"}, {"regions", {"r1"}}}}}}}}};
  };
  ASSERT_EQ(call("POST", "/pipelines", pipeline("web", json::array()), approver).status, 201);
  ASSERT_EQ(call("POST", "/pipelines", pipeline("api", {"web"}), approver).status, 201);
  const std::string web = publish("web", "1"), api = publish("api", "1");
  ASSERT_EQ(call("POST", "/artifacts", json{{"artifact_id", web}}, deployer_).status, 201);
  ASSERT_EQ(call("POST", "/artifacts", json{{"artifact_id", api}}, deployer_).status, 201);

  // An artifact of another service is refused, naming where, and nothing is made.
  Answer wrong =
      call("POST", "/releases",
           json{{"services", {{{"pipeline_id", "api"}, {"artifact_id", web}}}}}, deployer_);
  EXPECT_EQ(wrong.status, 400) << wrong.body.dump();
  EXPECT_NE(wrong.body.value("error", "").find("services[0]"), std::string::npos);
  EXPECT_TRUE(call("GET", "/releases", std::string(), viewer_).body["releases"].empty());

  Answer made = call("POST", "/releases",
                     json{{"services",
                           {{{"pipeline_id", "api"}, {"artifact_id", api}},
                            {{"pipeline_id", "web"}, {"artifact_id", web}}}},
                          {"policy", "all"}},
                     deployer_);
  ASSERT_EQ(made.status, 201) << made.body.dump();
  EXPECT_EQ(made.body["release_id"], "rel-1");
  EXPECT_EQ(made.body["policy"], "all");
  ASSERT_EQ(made.body["services"].size(), 2u);
  EXPECT_EQ(made.body["services"][0]["service"], "web");  // dependencies first
  EXPECT_EQ(made.body["services"][1]["depends_on"], json({"web"}));
  EXPECT_EQ(made.body["services"][1]["environments"]["production"], "pending");
  const std::string api_run = made.body["services"][1]["deploy_id"];
  EXPECT_EQ(call("GET", "/releases", std::string(), viewer_).body["releases"].size(), 1u);
  EXPECT_EQ(call("GET", "/releases/rel-1", std::string(), viewer_).body["state"], "running");
  EXPECT_EQ(call("GET", "/releases/rel-9", std::string(), viewer_).status, 404);

  // Nothing waits at a gate yet; and a member's gate is the release's.
  Answer early = call("POST", "/releases/rel-1/approve", json::object(), approver);
  EXPECT_EQ(early.status, 409) << early.body.dump();
  EXPECT_NE(early.body.value("error", "").find("not waiting at a gate"), std::string::npos);
  Answer alone = call("POST", "/deploys/" + api_run + "/approve", json::object(), approver);
  EXPECT_EQ(alone.status, 409) << alone.body.dump();
  EXPECT_NE(alone.body.value("error", "").find("belongs to release 'rel-1'"), std::string::npos);
  // The run shows which release it belongs to.
  EXPECT_EQ(call("GET", "/deploys/" + api_run, std::string(), viewer_).body["release"], "rel-1");
}

TEST_F(Api, ABodyBeyondTheLimitIs413) {
  const std::string big = "{\"service\":\"" + std::string(2 << 20, 'a') + "\"}";
  http::ClientOptions o;
  o.headers = {{"Authorization", "Bearer " + admin_}};
  auto r = http::request("POST", api_->url() + "/pipelines", big, o);
  // The server may answer 413 or close the connection mid-upload; either way nothing is stored.
  if (r.ok()) {
    EXPECT_EQ(r->status, 413);
  }
  EXPECT_TRUE(call("GET", "/pipelines", std::string(), viewer_).body["pipelines"].empty());
}

TEST_F(Api, PipelinesAreVersionedAndKeepTheirService) {
  Answer created = call("POST", "/pipelines", pipeline_body(), deployer_);
  ASSERT_EQ(created.status, 201) << created.body.dump();
  EXPECT_EQ(created.body["id"], "web");
  EXPECT_EQ(created.body["version"], 1);
  EXPECT_EQ(created.body["updated_by"], "dee");
  EXPECT_EQ(created.body["strategy"]["canary_percents"], json::array({25}));
  EXPECT_EQ(created.body["health_checks"]["p99_delta_ms"], 50);  // the default
  json changed = pipeline_body();
  changed["health_checks"]["bake_s"] = 90;
  Answer updated = call("POST", "/pipelines", changed, deployer_);
  ASSERT_EQ(updated.status, 200);
  EXPECT_EQ(updated.body["version"], 2);
  EXPECT_EQ(call("GET", "/pipelines/web", std::string(), viewer_).body["health_checks"]["bake_s"],
            90);
  json moved = pipeline_body();
  moved["service"] = "api";
  moved["id"] = "web";
  Answer refused = call("POST", "/pipelines", moved, deployer_);
  EXPECT_EQ(refused.status, 409);
  EXPECT_NE(refused.body["error"].get<std::string>().find("cannot change"), std::string::npos);
  EXPECT_EQ(call("GET", "/pipelines/none", std::string(), viewer_).status, 404);
}

TEST_F(Api, ArtifactsRegisterFromTheOriginAndAreListed) {
  const std::string v1 = publish("web", "v1");
  Answer a = call("POST", "/artifacts", json{{"artifact_id", v1}}, deployer_);
  ASSERT_EQ(a.status, 201) << a.body.dump();
  EXPECT_EQ(a.body["service"], "web");
  EXPECT_EQ(a.body["git_sha"], "0123abcd");
  EXPECT_EQ(a.body["registered_by"], "dee");
  EXPECT_EQ(call("GET", "/artifacts?service=web", std::string(), viewer_).body["artifacts"].size(),
            1u);
  EXPECT_EQ(call("GET", "/artifacts?service=api", std::string(), viewer_).body["artifacts"].size(),
            0u);
  EXPECT_EQ(call("GET", "/artifacts/" + v1, std::string(), viewer_).body["artifact_id"], v1);
  // Unknown to the origin: 404, nothing registered.
  const std::string absent = ContentId::of("absent").str();
  EXPECT_EQ(call("POST", "/artifacts", json{{"artifact_id", absent}}, deployer_).status, 404);
  // The origin serves bytes that are not the artifact: refused.
  const std::string lie = ContentId::of("lie").str();
  manifests_[ContentId::of("lie").hex()] = drover::testing::small_manifest_bytes("web", "other");
  Answer forged = call("POST", "/artifacts", json{{"artifact_id", lie}}, deployer_);
  EXPECT_EQ(forged.status, 502);
  EXPECT_NE(forged.body["error"].get<std::string>().find("hashes to"), std::string::npos);
  EXPECT_EQ(call("GET", "/artifacts/" + lie, std::string(), viewer_).status, 404);
}

TEST_F(Api, DeploysStartPauseResumeAndRollBack) {
  for (const char* h : {"h1", "h2", "h3", "h4"}) enroll(h);
  enroll("elsewhere", "r2");
  const std::string v1 = publish("web", "v1");
  const std::string other = publish("api", "x");
  ASSERT_EQ(call("POST", "/pipelines", pipeline_body(), deployer_).status, 201);
  ASSERT_EQ(call("POST", "/artifacts", json{{"artifact_id", v1}}, deployer_).status, 201);
  ASSERT_EQ(call("POST", "/artifacts", json{{"artifact_id", other}}, deployer_).status, 201);

  EXPECT_EQ(call("POST", "/deploys", json{{"pipeline_id", "nope"}, {"artifact_id", v1}}, deployer_)
                .status,
            404);
  Answer unregistered =
      call("POST", "/deploys",
           json{{"pipeline_id", "web"}, {"artifact_id", ContentId::of("x").str()}}, deployer_);
  EXPECT_EQ(unregistered.status, 404);
  EXPECT_NE(unregistered.body["error"].get<std::string>().find("not registered"),
            std::string::npos);
  Answer wrong_service =
      call("POST", "/deploys", json{{"pipeline_id", "web"}, {"artifact_id", other}}, deployer_);
  EXPECT_EQ(wrong_service.status, 400);
  EXPECT_EQ(call("POST", "/deploys",
                 json{{"pipeline_id", "web"}, {"artifact_id", v1}, {"env", "staging"}}, deployer_)
                .status,
            400);

  Answer d = call("POST", "/deploys", json{{"pipeline_id", "web"}, {"artifact_id", v1}}, deployer_);
  ASSERT_EQ(d.status, 201) << d.body.dump();
  EXPECT_EQ(d.body["deploy_id"], "web-1");
  EXPECT_EQ(d.body["env"], "prod");
  EXPECT_EQ(d.body["git_sha"], "0123abcd");
  // Batches are cut when the run's wave starts (the hosts enrolled then).
  EXPECT_EQ(d.body["batches"], 0);
  EXPECT_EQ(d.body["state"], "pending");

  Answer view = call("GET", "/deploys/web-1", std::string(), viewer_);
  ASSERT_EQ(view.status, 200);
  ASSERT_EQ(view.body["environments"].size(), 1u);  // a version-1 deploy: the env it names
  EXPECT_EQ(view.body["environments"][0]["name"], "prod");
  EXPECT_EQ(view.body["environments"][0]["status"], "pending");
  EXPECT_EQ(view.body["started_by"], "dee");

  // A second run of the service is created; the driver queues it behind
  // the first for the environment the first holds.
  Answer second =
      call("POST", "/deploys", json{{"pipeline_id", "web"}, {"artifact_id", v1}}, deployer_);
  EXPECT_EQ(second.status, 201) << second.body.dump();
  EXPECT_EQ(second.body["deploy_id"], "web-2");

  Answer paused = call("POST", "/deploys/web-1/pause", std::string(), deployer_);
  ASSERT_EQ(paused.status, 200) << paused.body.dump();
  EXPECT_EQ(paused.body["state"], "paused");
  EXPECT_EQ(call("POST", "/deploys/web-1/pause", std::string(), deployer_).status, 409);
  Answer resumed = call("POST", "/deploys/web-1/resume", std::string(), deployer_);
  ASSERT_EQ(resumed.status, 200);
  EXPECT_NE(resumed.body["state"], "paused");
  EXPECT_EQ(call("POST", "/deploys/nope/pause", std::string(), deployer_).status, 404);

  // A run that changed nothing (and a first deploy, with nothing before it)
  // has nothing to roll back: refused, and nothing changes.
  Answer back =
      call("POST", "/rollback", json{{"deploy_id", "web-1"}, {"reason", "test"}}, deployer_);
  EXPECT_EQ(back.status, 409) << back.body.dump();
  EXPECT_EQ(call("GET", "/deploys/web-1", std::string(), viewer_).body["state"], "pending");

  Answer runs = call("GET", "/pipelines/web/runs?limit=20", std::string(), viewer_);
  ASSERT_EQ(runs.status, 200);
  ASSERT_EQ(runs.body["runs"].size(), 2u);
  EXPECT_EQ(runs.body["runs"][0]["deploy_id"], "web-2");
  EXPECT_EQ(call("GET", "/pipelines/web/runs?limit=0", std::string(), viewer_).status, 400);

  // Who did what is in the audit log.
  Answer audit = call("GET", "/audit?service=web", std::string(), viewer_);
  std::set<std::string> whats;
  for (const auto& r : audit.body["records"])
    whats.insert(r["what"].get<std::string>() + "/" + r["who"].get<std::string>());
  EXPECT_TRUE(whats.count("deploy.created/dee")) << audit.body.dump();
  EXPECT_TRUE(whats.count("deploy.paused/dee")) << audit.body.dump();
  EXPECT_TRUE(whats.count("pipeline.created/dee")) << audit.body.dump();
}

TEST_F(Api, TheHealthWebhookNeedsItsSignature) {
  enroll("h1");
  const std::string body =
      json{{"service", "web"},
           {"samples", {{{"host", "h1"}, {"error_rate", 0.5}, {"p99_ms", 900}}}}}
          .dump();
  int deliveries = 0;
  auto signed_as = [&](const std::string& b) {
    return webhook_headers(b, "d-" + std::to_string(++deliveries));
  };
  EXPECT_EQ(call("POST", "/webhooks/health", body, "").status, 401);
  auto forged_headers = signed_as(body + " ");
  Answer forged = call("POST", "/webhooks/health", body, "", forged_headers);
  EXPECT_EQ(forged.status, 401);
  Answer ok = call("POST", "/webhooks/health", body, "", signed_as(body));
  ASSERT_EQ(ok.status, 200) << ok.body.dump();
  EXPECT_EQ(ok.body["accepted"], 1);
  auto fleet = coordinator_->store().fleet("web", 0).value();
  ASSERT_EQ(fleet.samples.size(), 1u);
  EXPECT_EQ(fleet.samples[0].error_rate, 0.5);

  const std::string stranger =
      json{{"service", "web"}, {"samples", {{{"host", "ghost"}, {"error_rate", 0.1}}}}}.dump();
  Answer unknown = call("POST", "/webhooks/health", stranger, "", signed_as(stranger));
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(unknown.body["error"].get<std::string>().find("samples[0].host"), std::string::npos);
  const std::string stale =
      json{{"service", "web"}, {"samples", {{{"host", "h1"}, {"error_rate", 0.1}, {"at_ms", 1}}}}}
          .dump();
  Answer old = call("POST", "/webhooks/health", stale, "", signed_as(stale));
  EXPECT_EQ(old.status, 400);
  EXPECT_NE(old.body["error"].get<std::string>().find("samples[0].at_ms"), std::string::npos);
  EXPECT_EQ(coordinator_->store().fleet("web", 0).value().samples.size(), 1u);
}

// Health that only an outside checker sees still rolls a batch back.
TEST_F(Api, TheHealthWebhookCanRollADeployBack) {
  enroll("h1");
  enroll("h2");
  const std::string v1 = publish("web", "v1"), v2 = publish("web", "v2");
  ASSERT_EQ(call("POST", "/artifacts", json{{"artifact_id", v1}}, deployer_).status, 201);
  ASSERT_EQ(call("POST", "/artifacts", json{{"artifact_id", v2}}, deployer_).status, 201);
  json pipeline = {{"service", "web"},
                   {"strategy", {{"batch_size", 1}}},
                   {"health_checks", {{"bake_s", 60}, {"min_samples", 1}, {"consecutive", 3}}}};
  ASSERT_EQ(call("POST", "/pipelines", pipeline, deployer_).status, 201);
  // The fleet runs v1 (as an earlier deploy left it) and reports healthy samples.
  AuditRecord released;
  released.at_ms = unix_seconds(clock_.now()) * 1000 - 60'000;
  released.who = "system";
  released.what = "service.release";
  released.service = "web";
  released.artifact = v1;
  ASSERT_TRUE(coordinator_->store().append_audit(released).ok());
  std::map<std::string, std::uint64_t> seq;
  auto report = [&](const std::string& host, const std::string& release, bool applied) {
    proto::ReportBody r;
    r.seq = ++seq[host];
    proto::HealthItem h;
    h.service = "web";
    h.release = release;
    h.at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now().time_since_epoch())
                  .count();
    h.ok = true;
    h.error_rate = 0.01;
    h.p99_ms = 10;
    r.items.push_back({h, std::nullopt});
    if (applied)
      r.items.push_back({std::nullopt, proto::EventItem{"web", h.at_ms, "applied", 0, release}});
    ASSERT_TRUE(coordinator_->store().ingest_report(host, r, h.at_ms / 1000).ok());
  };
  for (int i = 0; i < 3; ++i) {
    report("h1", v1, i == 0);
    report("h2", v1, i == 0);
  }
  Answer d = call("POST", "/deploys", json{{"pipeline_id", "web"}, {"artifact_id", v2}}, deployer_);
  ASSERT_EQ(d.status, 201) << d.body.dump();
  const std::string id = d.body["deploy_id"];
  auto state = [&] { return call("GET", "/deploys/" + id, std::string(), viewer_).body; };
  ASSERT_TRUE(drover::testing::eventually([&] { return state()["state"] == "deploying"; }));
  const std::string first = state()["batches"][0]["hosts"][0];
  report(first, v2, true);  // the first batch's host applied v2
  ASSERT_TRUE(drover::testing::eventually([&] { return state()["state"] == "baking"; }));

  // The checker sees v2 failing on that host; the agent's own samples do not.
  const std::int64_t at =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now().time_since_epoch())
          .count();
  for (int i = 0; i < 3; ++i) {
    const std::string body =
        json{{"service", "web"},
             {"samples", {{{"host", first}, {"error_rate", 0.6}, {"at_ms", at + 10 * i}}}}}
            .dump();
    EXPECT_EQ(call("POST", "/webhooks/health", body, "",
                   webhook_headers(body, "rollback-" + std::to_string(i)))
                  .status,
              200);
  }
  ASSERT_TRUE(drover::testing::eventually([&] { return state()["state"] == "rolling_back"; }))
      << state().dump();
  report(first, v1, true);  // the host is back on v1
  ASSERT_TRUE(drover::testing::eventually([&] { return state()["state"] == "rolled_back"; }));
  const json done = state();
  EXPECT_NE(done["reason"].get<std::string>().find("error_rate"), std::string::npos) << done.dump();
  EXPECT_TRUE(done["rollback"]["duration_ms"].is_number());
}

TEST_F(Api, AuditQueriesAndVerification) {
  ASSERT_EQ(call("POST", "/pipelines", pipeline_body(), deployer_).status, 201);
  Answer all = call("GET", "/audit", std::string(), viewer_);
  ASSERT_EQ(all.status, 200);
  ASSERT_FALSE(all.body["records"].empty());
  EXPECT_EQ(call("GET", "/audit?since=2999-01-01T00:00:00Z", std::string(), viewer_)
                .body["records"]
                .size(),
            0u);
  Answer bad = call("GET", "/audit?since=yesterday", std::string(), viewer_);
  EXPECT_EQ(bad.status, 400);
  // order (issue 18): the newest first, or refused naming the parameter.
  Answer newest = call("GET", "/audit?order=newest&limit=1", std::string(), viewer_);
  ASSERT_EQ(newest.status, 200);
  ASSERT_EQ(newest.body["records"].size(), 1u);
  EXPECT_EQ(newest.body["records"][0], all.body["records"].back());
  for (const char* order : {"sideways", "", "NEWEST", "newest%00"}) {
    Answer refused = call("GET", std::string("/audit?order=") + order, std::string(), viewer_);
    EXPECT_EQ(refused.status, 400) << order;
    EXPECT_NE(refused.body.value("error", "").find("order"), std::string::npos) << order;
  }
  EXPECT_NE(bad.body["error"].get<std::string>().find("since"), std::string::npos);
  Answer verify = call("GET", "/audit/verify", std::string(), viewer_);
  EXPECT_EQ(verify.body["ok"], true);
  EXPECT_GT(verify.body["records"].get<int>(), 0);
  EXPECT_EQ(call("GET", "/audit/running?service=web", std::string(), viewer_).status, 404);
  EXPECT_EQ(call("GET", "/audit/running", std::string(), viewer_).status, 400);
}

TEST_F(Api, AuditQueriesAndWhatRanTakeAnEnv) {
  auto release = [&](std::int64_t at, const std::string& env, const std::string& artifact) {
    AuditRecord r;
    r.at_ms = at;
    r.who = "system";
    r.what = "service.release";
    r.service = "web";
    r.env = env;
    r.artifact = artifact;
    ASSERT_TRUE(coordinator_->store().append_audit(r).ok());
  };
  release(1000, "", "sha256:a");  // before environments
  release(2000, "staging", "sha256:b");
  Answer staging = call("GET", "/audit?service=web&env=staging", std::string(), viewer_);
  ASSERT_EQ(staging.status, 200) << staging.body.dump();
  ASSERT_EQ(staging.body["records"].size(), 1u) << staging.body.dump();
  EXPECT_EQ(staging.body["records"][0]["env"], "staging");
  EXPECT_EQ(call("GET", "/audit?service=web", std::string(), viewer_).body["records"].size(), 2u);
  auto ran = [&](const std::string& query) {
    Answer a = call("GET", "/audit/running?service=web&" + query, std::string(), viewer_);
    return a.status == 200 ? a.body["artifact_id"].get<std::string>() : std::to_string(a.status);
  };
  EXPECT_EQ(ran("env=staging&at=1500"), "sha256:a");  // none in staging yet
  EXPECT_EQ(ran("env=staging&at=2000"), "sha256:b");
  EXPECT_EQ(ran("at=2000"), "sha256:b");  // without env: the newest in any environment
  EXPECT_EQ(ran("at=1500"), "sha256:a");
  EXPECT_EQ(ran("env=staging&at=999"), "404");
  for (const char* path : {"/audit?env=.hidden", "/audit/running?service=web&env=.hidden"}) {
    Answer bad = call("GET", path, std::string(), viewer_);
    EXPECT_EQ(bad.status, 400) << path;
    EXPECT_NE(bad.body["error"].get<std::string>().find("env '.hidden'"), std::string::npos)
        << bad.body.dump();
  }
}

// What one host ran (GET /audit/running?host=, GET /hosts/:host/releases),
// from what the host reported; bad names and mixed questions refused.
TEST_F(Api, WhatAHostRanAtATimeAndItsSwitches) {
  HostRecord h;
  h.host = "h1";
  h.region = "eu";
  h.services = {"web"};
  SeededRandom rnd(7);
  h.key = sign::KeyPair::generate(rnd).public_key();
  h.report_key = std::string(32, 'k');
  ASSERT_TRUE(coordinator_->store().enroll(h).ok());
  proto::ReportBody body;
  body.seq = 1;
  for (auto [release, at] : {std::pair{"sha256:a", 1000}, std::pair{"sha256:b", 2000}}) {
    proto::HealthItem item;
    item.service = "web";
    item.release = release;
    item.at_ms = at;
    body.items.push_back({item, std::nullopt});
  }
  ASSERT_TRUE(coordinator_->store().ingest_report("h1", body, 3000).ok());
  auto ran = [&](const std::string& query) {
    Answer a = call("GET", "/audit/running?service=web&" + query, std::string(), viewer_);
    return a.status == 200 ? a.body["artifact_id"].get<std::string>() : std::to_string(a.status);
  };
  EXPECT_EQ(ran("host=h1&at=1500"), "sha256:a");
  EXPECT_EQ(ran("host=h1&at=2000"), "sha256:b");
  EXPECT_EQ(ran("host=h1&at=999"), "404");
  EXPECT_EQ(ran("host=h2"), "404");
  EXPECT_EQ(ran("host=h1&env=staging"), "400");
  Answer list = call("GET", "/hosts/h1/releases?service=web", std::string(), viewer_);
  ASSERT_EQ(list.status, 200) << list.body.dump();
  ASSERT_EQ(list.body["releases"].size(), 2u);
  EXPECT_EQ(list.body["releases"][1]["since_ms"], 2000);
  for (const char* path : {"/audit/running?service=web&host=..", "/hosts/.x/releases?service=web",
                           "/hosts/h1/releases", "/hosts/h1/releases?service=a%2Fb",
                           "/hosts/h1/releases?service=web&since=soon"}) {
    Answer bad = call("GET", path, std::string(), viewer_);
    EXPECT_EQ(bad.status, 400) << path << " " << bad.body.dump();
  }
}

TEST_F(Api, TokensAreShownOnceListedByNameAndRevoked) {
  Answer created = call("POST", "/tokens", json{{"name", "ci"}, {"role", "deployer"}}, admin_);
  ASSERT_EQ(created.status, 201) << created.body.dump();
  const std::string ci = created.body["token"];
  EXPECT_EQ(call("GET", "/deploys", std::string(), ci).status, 200);
  Answer listed = call("GET", "/tokens", std::string(), admin_);
  EXPECT_EQ(listed.body.dump().find(ci), std::string::npos);  // never the token itself
  EXPECT_NE(listed.body.dump().find("\"ci\""), std::string::npos);
  EXPECT_EQ(call("POST", "/tokens", json{{"name", "ci"}, {"role", "viewer"}}, admin_).status, 409);

  // Each token names its person: given by the admin, else the token's name;
  // one person may hold several tokens.
  EXPECT_EQ(created.body["person"], "ci");
  Answer ann = call("POST", "/tokens",
                    json{{"name", "ann-laptop"}, {"role", "approver"}, {"person", "ann"}}, admin_);
  ASSERT_EQ(ann.status, 201) << ann.body.dump();
  EXPECT_EQ(ann.body["person"], "ann");
  EXPECT_EQ(call("POST", "/tokens", json{{"name", "ann-ci"}, {"role", "viewer"}, {"person", "ann"}},
                 admin_)
                .status,
            201);
  const Answer persons = call("GET", "/tokens", std::string(), admin_);
  std::map<std::string, std::string> person_of;
  for (const auto& t : persons.body["tokens"]) {
    person_of[t["name"].get<std::string>()] = t["person"].get<std::string>();
  }
  EXPECT_EQ(person_of, (std::map<std::string, std::string>{{"ann-ci", "ann"},
                                                           {"ann-laptop", "ann"},
                                                           {"ci", "ci"},
                                                           {"dee", "dee"},
                                                           {"root", "root"},
                                                           {"vee", "vee"}}));
  // The audit record of each creation names the person.
  const Answer audit = call("GET", "/audit", std::string(), viewer_);
  std::map<std::string, std::string> audited;
  for (const auto& r : audit.body["records"]) {
    if (r["what"] != "token.created") continue;
    EXPECT_EQ(r["who"], "root");
    audited[r["detail"]["name"].get<std::string>()] = r["detail"]["person"].get<std::string>();
  }
  EXPECT_EQ(audited, (std::map<std::string, std::string>{
                         {"ann-ci", "ann"}, {"ann-laptop", "ann"}, {"ci", "ci"}}));
  EXPECT_EQ(call("DELETE", "/tokens/ci", std::string(), admin_).status, 200);
  EXPECT_EQ(call("GET", "/deploys", std::string(), ci).status, 401);
  EXPECT_EQ(call("DELETE", "/tokens/ci", std::string(), admin_).status, 404);

  Answer join = call("POST", "/join-tokens", std::string(), admin_);
  ASSERT_EQ(join.status, 201);
  const std::string jt = join.body["token"];
  EXPECT_TRUE(coordinator_->store().join_token_valid(jt, unix_seconds(clock_.now())).value());
  EXPECT_EQ(call("POST", "/join-tokens/revoke", json{{"token", jt}}, admin_).status, 200);
  EXPECT_FALSE(coordinator_->store().join_token_valid(jt, unix_seconds(clock_.now())).value());
  EXPECT_EQ(call("POST", "/join-tokens/revoke", json{{"token", jt}}, admin_).status, 404);

  // Scoped, counted tokens, listed and revoked by id (never shown again).
  Answer image = call("POST", "/join-tokens",
                      json{{"uses", 50}, {"ttl_s", 7200}, {"regions", {"eu-west-1"}}}, admin_);
  ASSERT_EQ(image.status, 201) << image.body.dump();
  const std::string id = image.body["id"];
  EXPECT_EQ(image.body["uses_left"], 50);
  Answer tokens = call("GET", "/join-tokens", std::string(), admin_);
  ASSERT_EQ(tokens.status, 200);
  EXPECT_EQ(tokens.body.dump().find(image.body["token"].get<std::string>()), std::string::npos);
  EXPECT_NE(tokens.body.dump().find(id), std::string::npos);
  EXPECT_EQ(call("GET", "/join-tokens", std::string(), viewer_).status, 403);
  EXPECT_EQ(call("POST", "/join-tokens", json{{"regions", {"a/b"}}}, admin_).status, 400);
  EXPECT_EQ(call("POST", "/join-tokens", json{{"uses", 0}}, admin_).status, 400);
  EXPECT_EQ(call("DELETE", "/join-tokens/" + id, std::string(), admin_).status, 200);
  EXPECT_EQ(call("DELETE", "/join-tokens/" + id, std::string(), admin_).status, 404);
}

TEST_F(Api, HostsInventoryAndReset) {
  enroll("h1");
  Answer hosts = call("GET", "/hosts", std::string(), viewer_);
  ASSERT_EQ(hosts.status, 200);
  ASSERT_EQ(hosts.body["hosts"].size(), 1u);
  EXPECT_EQ(hosts.body["hosts"][0]["region"], "r1");
  EXPECT_TRUE(hosts.body["hosts"][0]["running"].contains("web"));
  EXPECT_EQ(call("POST", "/hosts/h1/reset", std::string(), admin_).status, 200);
  EXPECT_EQ(call("POST", "/hosts/ghost/reset", std::string(), admin_).status, 404);
}

TEST(ApiTls, ServesHttpsWithACertificateAndPlainOnlyOnLoopback) {
  TempDir dir;
  SystemClock clock;
  SystemRandom random;
  SeededRandom keys(3);
  auto root = sign::KeyPair::generate(keys);
  auto online = sign::KeyPair::generate(keys);
  const auto now = unix_seconds(clock.now());
  CoordinatorOptions o;
  o.data_dir = dir.path() / "state";
  o.online = OnlineKey{
      online, sign::certify(root, {"online", online.public_key(), 1, now - 60, now + 86400})};
  auto c = Coordinator::start(o, clock, random, Logger::discard()).value();
  const std::string admin = c->tokens().create("root", Role::admin, now, random).value();

  ApiOptions open_plain;
  open_plain.listen = "0.0.0.0:0";
  auto refused = HttpApi::start(*c, open_plain, Logger::discard());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("loopback"), std::string::npos);

  const auto files = drover::testing::make_self_signed_cert(dir.path());
  ApiOptions tls;
  tls.tls_cert_file = files.cert;
  tls.tls_key_file = files.key;
  auto api = HttpApi::start(*c, tls, Logger::discard());
  ASSERT_TRUE(api.ok()) << api.error().message;
  const std::string url = "https://localhost:" + std::to_string((*api)->port());
  http::ClientOptions co;
  co.ca_file = files.cert;
  co.headers = {{"Authorization", "Bearer " + admin}};
  auto r = http::request("GET", url + "/hosts", "", co);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  // A client that does not trust the certificate (the system's CAs only) refuses the server.
  co.ca_file = "";
  auto unverified = http::request("GET", url + "/hosts", "", co);
  EXPECT_FALSE(unverified.ok());
  // Plain HTTP to the HTTPS port gets no answer.
  auto plain = http::request("GET", "http://127.0.0.1:" + std::to_string((*api)->port()) + "/hosts",
                             "", std::chrono::milliseconds(3000));
  EXPECT_TRUE(!plain.ok() || plain->status >= 400);
}

}  // namespace
}  // namespace drover::coordinator
