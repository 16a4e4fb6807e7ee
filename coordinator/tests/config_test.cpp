// The coordinator's config file: the files it names that hold secrets (the
// webhook's HMAC key, the API's TLS private key) are refused at start when
// group or others may read them, naming the file and its mode.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "coordinator/config/config.hpp"
#include "core/mesh_token/mesh_token.hpp"
#include "core/sign/envelope.hpp"
#include "core/sign/keys.hpp"
#include "tests/support/test_support.hpp"
#include "tests/support/tls_cert.hpp"

namespace drover::coordinator {
namespace {

using drover::testing::TempDir;
using drover::testing::write_file;
using nlohmann::json;

class ConfigFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    SeededRandom random(7);
    const sign::KeyPair root = sign::KeyPair::generate(random);
    const sign::KeyPair online = sign::KeyPair::generate(random);
    ASSERT_TRUE(sign::save_key_pair(fs_, online, dir_ / "online.key").ok());
    sign::KeyCert cert;
    cert.subject = online.public_key();
    cert.issued_at = 1'800'000'000;
    cert.expires_at = cert.issued_at + 86400;
    write_file(dir_ / "online.cert", sign::encode_envelope(sign::certify(root, cert)) + "\n");
    write_file(dir_ / "webhook.secret", "a-webhook-secret-of-the-test\n", 0600);
    tls_ = drover::testing::make_self_signed_cert(dir_.path(), "localhost");
  }

  Result<CoordinatorConfig> load(const json& extra) {
    json c = {{"format", "drover.coordinator-config.v1"},
              {"data_dir", (dir_ / "data").string()},
              {"online_key", (dir_ / "online.key").string()},
              {"online_cert", (dir_ / "online.cert").string()}};
    c.merge_patch(extra);
    write_file(dir_ / "coordinator.json", c.dump());
    return load_coordinator_config(fs_, dir_ / "coordinator.json");
  }

  TempDir dir_;
  PosixFilesystem fs_;
  drover::testing::TlsFiles tls_;
};

// How long a push waits for its artifact (issue 14): read, bounded, named.
TEST_F(ConfigFiles, TheScmWaitIsReadAndBounded) {
  auto c = load({{"scm_wait_s", 120}});
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->coordinator.scm_wait_s, 120);
  EXPECT_EQ(load(json::object()).value().coordinator.scm_wait_s, 3600);
  for (const json& bad : {json(-1), json(31 * 86400), json("an hour")}) {
    auto refused = load({{"scm_wait_s", bad}});
    ASSERT_FALSE(refused.ok()) << bad.dump();
    EXPECT_NE(refused.error().message.find("scm_wait_s"), std::string::npos)
        << refused.error().message;
  }
}

TEST_F(ConfigFiles, TheNotificationSettingsAreReadAndBounded) {
  auto c = load({{"notify_give_up_s", 600}, {"notify_ca_file", "/etc/ssl/certs/ca.pem"}});
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->coordinator.notify_give_up_s, 600);
  EXPECT_EQ(c->coordinator.notify_ca_file, "/etc/ssl/certs/ca.pem");
  EXPECT_EQ(load(json::object()).value().coordinator.notify_give_up_s, 86400);
  for (const json& bad : {json(59), json(8 * 86400), json("a day")}) {
    auto refused = load({{"notify_give_up_s", bad}});
    ASSERT_FALSE(refused.ok()) << bad.dump();
    EXPECT_NE(refused.error().message.find("notify_give_up_s"), std::string::npos)
        << refused.error().message;
  }
  EXPECT_FALSE(load({{"notify_ca_file", 5}}).ok());
}

// Metrics (issue 18): on the API for a viewer by default, a listener of
// their own when asked; a malformed address or field is refused, named.
TEST_F(ConfigFiles, TheMetricsListenerAndTheApiRouteAreConfigured) {
  auto none = load(json::object());
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_TRUE(none->api.metrics);
  EXPECT_EQ(none->metrics_listen, "");
  auto c = load({{"metrics", {{"listen", "0.0.0.0:9466"}, {"api", false}}}});
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->metrics_listen, "0.0.0.0:9466");
  EXPECT_FALSE(c->api.metrics);
  for (const json& bad : {json{{"listen", "9466"}}, json{{"listen", "127.0.0.1:70000"}},
                          json{{"api", "yes"}}, json{{"port", 9466}}, json("0.0.0.0:9466")}) {
    auto refused = load({{"metrics", bad}});
    ASSERT_FALSE(refused.ok()) << bad.dump();
    EXPECT_NE(refused.error().message.find("metrics"), std::string::npos)
        << refused.error().message;
  }
}

// Prometheus as a health source (issue 18): the servers pipelines may name.
TEST_F(ConfigFiles, ThePrometheusServersPipelinesMayNameAreConfigured) {
  auto c = load({{"prometheus", {{"allow", {"http://127.0.0.1:9090"}}, {"timeout_s", 3}}}});
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->coordinator.prometheus.allow, std::vector<std::string>{"http://127.0.0.1:9090"});
  EXPECT_EQ(c->coordinator.prometheus.timeout, std::chrono::seconds(3));
  EXPECT_TRUE(load(json::object())->coordinator.prometheus.allow.empty());
  for (const json& bad : {json{{"allow", {"127.0.0.1:9090"}}}, json{{"allow", "http://p"}},
                          json{{"timeout_s", 0}}, json{{"url", "http://p"}}}) {
    auto refused = load({{"prometheus", bad}});
    ASSERT_FALSE(refused.ok()) << bad.dump();
    EXPECT_NE(refused.error().message.find("prometheus"), std::string::npos)
        << refused.error().message;
  }
}

TEST_F(ConfigFiles, AWebhookSecretReadableByGroupOrOthersIsRefused) {
  const json secret = {{"webhook_secret_file", (dir_ / "webhook.secret").string()}};
  auto ok = load(secret);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->coordinator.webhook_secret, "a-webhook-secret-of-the-test");
  for (const char* mode : {"0640", "0644", "0604"}) {
    ::chmod((dir_ / "webhook.secret").c_str(), std::stoi(mode, nullptr, 8));
    auto r = load(secret);
    ASSERT_FALSE(r.ok()) << mode;
    EXPECT_EQ(r.error().code, Errc::refused);
    EXPECT_EQ(r.error().message, "config " + (dir_ / "coordinator.json").string() +
                                     ": webhook_secret_file " + (dir_ / "webhook.secret").string() +
                                     " may be read by group or others (mode " + mode +
                                     "); chmod 600 it");
  }
}

TEST_F(ConfigFiles, ATlsKeyReadableByGroupOrOthersIsRefused) {
  const json api = {{"api",
                     {{"listen", "127.0.0.1:0"},
                      {"tls_cert", tls_.cert.string()},
                      {"tls_key", tls_.key.string()}}}};
  auto ok = load(api);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->api.tls_key_file, tls_.key.string());
  ::chmod(tls_.key.c_str(), 0640);
  auto r = load(api);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::refused);
  EXPECT_NE(r.error().message.find("api.tls_key " + tls_.key.string() +
                                   " may be read by group or others (mode 0640)"),
            std::string::npos)
      << r.error().message;
}

// The agent protocol's TLS key (issue 12): the same rule as the API's.
TEST_F(ConfigFiles, TheAgentProtocolsTlsKeyReadableByGroupOrOthersIsRefused) {
  const json agents = {
      {"agents",
       {{"requests", {"tls+tcp://127.0.0.1:0"}},
        {"tls", {{"cert_file", tls_.cert.string()}, {"key_file", tls_.key.string()}}}}}};
  auto ok = load(agents);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  ASSERT_TRUE(ok->coordinator.agents.tls.has_value());
  for (unsigned mode : {0640u, 0604u, 0644u}) {
    ::chmod(tls_.key.c_str(), mode);
    auto r = load(agents);
    ASSERT_FALSE(r.ok()) << std::oct << mode;
    EXPECT_EQ(r.error().code, Errc::refused);
    EXPECT_NE(r.error().message.find("agents.tls.key_file"), std::string::npos)
        << r.error().message;
    EXPECT_NE(r.error().message.find("may be read by group or others"), std::string::npos)
        << r.error().message;
  }
  ::chmod(tls_.key.c_str(), 0600);
  EXPECT_TRUE(load(agents).ok());
}

TEST_F(ConfigFiles, TheMeshTokenKeyIsSixtyFourHexDigitsReadableByItsOwnerOnly) {
  const std::string key(32, '\x5c');
  write_file(dir_ / "mesh.key", mesh_token::key_file_text(key), 0600);
  const json tracker = {
      {"tracker", {{"listen", "127.0.0.1:0"}, {"token_key_file", (dir_ / "mesh.key").string()}}}};
  auto ok = load(tracker);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  ASSERT_TRUE(ok->coordinator.mesh_token_key.has_value());
  EXPECT_EQ(*ok->coordinator.mesh_token_key, key);
  // Without the field: no key, no tokens.
  auto none = load({{"tracker", {{"listen", "127.0.0.1:0"}}}});
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_FALSE(none->coordinator.mesh_token_key.has_value());

  ::chmod((dir_ / "mesh.key").c_str(), 0640);
  auto open = load(tracker);
  ASSERT_FALSE(open.ok());
  EXPECT_EQ(open.error().code, Errc::refused);
  EXPECT_NE(open.error().message.find("tracker.token_key_file: mesh token key file " +
                                      (dir_ / "mesh.key").string() +
                                      " may be read by group or others (mode 0640)"),
            std::string::npos)
      << open.error().message;
  write_file(dir_ / "mesh.key", "not a key\n", 0600);
  auto bad = load(tracker);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("64 hex digits"), std::string::npos) << bad.error().message;
}

}  // namespace
}  // namespace drover::coordinator
