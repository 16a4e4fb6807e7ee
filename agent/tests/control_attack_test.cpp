// Attacks on the agent's control port by a local caller (issue 11, items 8
// and 9; docs/SECURITY.md): whatever arrives is answered, never fatal; only
// a plan signed under the pinned root is queued, and only a few at a time;
// the port is never bound beyond loopback.
#include <gtest/gtest.h>

#include "agent/config.hpp"
#include "agent/control.hpp"
#include "agent/tests/fakes.hpp"
#include "agent/tests/test_time.hpp"
#include "core/canon/canonical_json.hpp"
#include "core/world/memory_filesystem.hpp"
#include "tests/support/test_support.hpp"

namespace drover::agent {
namespace {

using test_time::kNow;

struct ControlAttack : testing::AgentFixture {
  std::vector<proto::PlanBundle> queued;

  void SetUp() override {
    config.host = "web-1";
    config.services.push_back({});
    config.services.back().name = "web";
    make_context();
  }
  http::Response post(const std::string& body) {
    http::Request r;
    r.method = "POST";
    r.path = "/v1/plans";
    r.body = body;
    return serve_control(*ctx, {}, r, [&](proto::PlanBundle b) {
      if (queued.size() >= kMaxHandedOver) return false;
      queued.push_back(std::move(b));
      return true;
    });
  }
  std::string bundle_signed_by(const sign::KeyPair& certifier) {
    const proto::Plan p = web_plan();
    auto cert =
        sign::certify(certifier, {"online", online.public_key(), 1, kNow - 10, kNow + 3600});
    return proto::encode_bundle(proto::sign_plan(p, online, cert).value());
  }
};

// Item 9. Before: any bundle that decoded was queued for the cycle thread,
// whoever signed it, and without bound.
TEST_F(ControlAttack, OnlyAPlanSignedUnderThePinnedRootIsQueued) {
  SeededRandom other(99);
  const sign::KeyPair stranger = sign::KeyPair::generate(other);
  http::Response forged = post(bundle_signed_by(stranger));
  EXPECT_EQ(forged.status, 403);
  EXPECT_NE(forged.body.find("plan refused"), std::string::npos) << forged.body;
  EXPECT_TRUE(queued.empty());
  EXPECT_EQ(post(bundle_signed_by(root)).status, 202);
  EXPECT_EQ(queued.size(), 1u);
}

TEST_F(ControlAttack, TheHandOverQueueIsBounded) {
  const std::string good = bundle_signed_by(root);
  for (std::size_t i = 1; i < kMaxHandedOver; ++i) ASSERT_EQ(post(good).status, 202);
  ASSERT_EQ(post(good).status, 202);
  http::Response full = post(good);
  EXPECT_EQ(full.status, 503);
  EXPECT_EQ(queued.size(), kMaxHandedOver);
}

// Found in review: 70 connections each announcing a 60 MiB body, from
// 127.0.x.y addresses counted as separate clients, took the agent to 4.3 GB.
TEST(ControlServer, BoundsConnectionsAndRefusesOtherRequestsBeforeTheirBody) {
  AgentConfig config;
  auto server = http::Server::start(
                    control_server_options(config),
                    [](const http::Request&, http::Responder respond) {
                      http::Response r;
                      r.status = 202;
                      respond(std::move(r));
                    },
                    Logger::discard())
                    .value();
  const std::string base = "http://127.0.0.1:" + std::to_string(server->port());
  // Not one of its two requests: refused from the headers, body never read.
  http::ClientOptions co;
  co.timeout = std::chrono::seconds(10);
  auto other = http::request("PUT", base + "/v1/plans", std::string(1 << 20, 'x'), co);
  if (other.ok()) {
    EXPECT_EQ(other->status, 404);
  } else {
    // The answer came before the body was sent, and the server closed the
    // connection: the client's upload is cut off (seen once in CI).
    const std::string& why = other.error().message;
    EXPECT_TRUE(why.find("Broken pipe") != std::string::npos ||
                why.find("reset") != std::string::npos)
        << why;
  }
  // A body over a bundle's bound is refused (413, and the connection closed:
  // the client may see its upload cut off first), whatever it is.
  auto huge =
      http::request("POST", base + "/v1/plans", std::string(proto::kMaxMessageBytes + 1, 'x'), co);
  EXPECT_TRUE(!huge.ok() || huge->status == 413);
  EXPECT_EQ(control_server_options(config).max_connections_per_client, 16u);
}

TEST(ControlConfig, TheControlPortListensOnLoopbackOnly) {
  auto config_with = [](const std::string& listen) {
    nlohmann::json j = {{"format", "drover.agent-config.v1"},
                        {"host", "web-1"},
                        {"state_dir", "/tmp/x"},
                        {"root_key", "/tmp/root.pub"},
                        {"coordinator", {{"requests", "tcp://127.0.0.1:1"}}},
                        {"control_listen", listen},
                        {"services", {{{"name", "web"}, {"start", {"/bin/true"}}}}}};
    return parse_config(j.dump());
  };
  for (const std::string bad : {"0.0.0.0", "10.0.0.5", "::", "example.org", "128.0.0.1"}) {
    auto c = config_with(bad);
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.error().message.find("loopback"), std::string::npos) << c.error().message;
  }
  for (const std::string ok : {"127.0.0.1", "127.1.2.3", "::1", "localhost"}) {
    auto c = config_with(ok);
    EXPECT_TRUE(c.ok()) << ok << ": " << c.error().message;
  }
}

// The metrics listener (issue 18) is a listener of its own: a malformed
// address is refused naming the field, and any address may be asked for.
TEST(ControlConfig, TheMetricsListenerIsAListenAddressOfItsOwn) {
  auto config_with = [](const nlohmann::json& listen) {
    nlohmann::json j = {{"format", "drover.agent-config.v1"},
                        {"host", "web-1"},
                        {"state_dir", "/tmp/x"},
                        {"root_key", "/tmp/root.pub"},
                        {"coordinator", {{"requests", "tcp://127.0.0.1:1"}}},
                        {"metrics_listen", listen},
                        {"services", {{{"name", "web"}, {"start", {"/bin/true"}}}}}};
    return parse_config(j.dump());
  };
  for (const nlohmann::json& bad : {nlohmann::json("9465"), nlohmann::json("127.0.0.1:99999"),
                                    nlohmann::json("[::1"), nlohmann::json(9465)}) {
    auto c = config_with(bad);
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.error().message.find("metrics_listen"), std::string::npos) << c.error().message;
  }
  for (const std::string ok : {"127.0.0.1:0", "0.0.0.0:9465", "[::]:9465"}) {
    auto c = config_with(ok);
    ASSERT_TRUE(c.ok()) << ok << ": " << c.error().message;
    EXPECT_EQ(c->metrics_listen, ok);
  }
}

// A hand-over whose body has an unknown key of more than 64 bytes, cut by
// the error message in the middle of a UTF-8 character, is refused with a
// 400 whose body is JSON: rendering the message used to throw on the
// control server's thread and kill the agent.
TEST_F(ControlAttack, AHandOverWithALongUnknownKeyIsRefusedNotFatal) {
  http::Request r;
  r.method = "POST";
  r.path = "/v1/plans";
  r.body = "{\"" + std::string(63, 'a') + "\u00e9\": 1}";  // byte 64 starts a 2-byte character
  std::vector<proto::PlanBundle> got;
  http::Response resp;
  ASSERT_NO_THROW(resp = serve_control(*ctx, {}, r, [&](proto::PlanBundle b) {
                    got.push_back(std::move(b));
                    return true;
                  }));
  EXPECT_EQ(resp.status, 400);
  EXPECT_TRUE(canon::valid_utf8(resp.body)) << resp.body;
  EXPECT_NE(resp.body.find("unknown field"), std::string::npos) << resp.body;
  EXPECT_TRUE(got.empty());
}

// `GET /%FF` killed the agent: the 404 echoed the undecodable path.
TEST_F(ControlAttack, AnUndecodablePathIsAnswered404NotFatal) {
  for (const std::string path : {"/\xff", "/v1/\xc3", "/\xed\xa0\x80"}) {
    http::Request r;
    r.method = "GET";
    r.path = path;
    http::Response resp;
    ASSERT_NO_THROW(resp = serve_control(*ctx, {}, r, [](proto::PlanBundle) { return true; }));
    EXPECT_EQ(resp.status, 404);
    EXPECT_TRUE(canon::valid_utf8(resp.body)) << resp.body;
    EXPECT_NE(resp.body.find("no such resource"), std::string::npos) << resp.body;
  }
}

}  // namespace
}  // namespace drover::agent
