// The agent protocol's transport (issue 12, item 1): TLS with a pinned
// certificate, plain TCP only on loopback unless allowed, and a message
// bound per listener.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "core/nng/nng.hpp"
#include "tests/support/test_support.hpp"
#include "tests/support/tls_cert.hpp"

namespace drover {
namespace {

using namespace std::chrono_literals;
using drover::testing::read_file;

struct NngTls : ::testing::Test {
  drover::testing::TempDir dir;
  drover::testing::TlsFiles coordinator =
      drover::testing::make_self_signed_cert(dir.path(), "coordinator");
  drover::testing::TlsFiles other = drover::testing::make_self_signed_cert(dir.path(), "impostor");

  nng::TlsServer server_tls(const drover::testing::TlsFiles& f) {
    return {read_file(f.cert), read_file(f.key)};
  }
  std::unique_ptr<nng::Server> echo(const nng::TlsServer& tls) {
    return nng::Server::listen_endpoints(
               {{"tls+tcp://127.0.0.1:0"}},
               [](std::string_view req, std::size_t, nng::Server::Reply reply) {
                 reply("echo:" + std::string(req));
               },
               4, {}, tls)
        .value();
  }
};

TEST_F(NngTls, AClientPinningTheServersCertificateIsAnswered) {
  auto server = echo(server_tls(coordinator));
  ASSERT_EQ(server->url().rfind("tls+tcp://127.0.0.1:", 0), 0u) << server->url();
  auto client =
      nng::Client::dial(server->url(), nng::TlsClient{read_file(coordinator.cert), "coordinator"});
  ASSERT_TRUE(client.ok()) << client.error().message;
  auto answer = (*client)->request("hello", 10s);
  ASSERT_TRUE(answer.ok()) << answer.error().message;
  EXPECT_EQ(*answer, "echo:hello");

  // Announcements over TLS too.
  auto pub = nng::Publisher::listen({"tls+tcp://127.0.0.1:0"}, server_tls(coordinator)).value();
  auto sub = nng::Subscriber::dial(pub->url(), "a ",
                                   nng::TlsClient{read_file(coordinator.cert), "coordinator"})
                 .value();
  bool heard = drover::testing::eventually([&] {
    (void)pub->publish("a hint");
    auto got = sub->receive(50ms);
    return got.ok() && *got && **got == "a hint";
  });
  EXPECT_TRUE(heard);
}

// A client whose sends keep finding no connection dials afresh (NNG 1.5.2's
// dialer can stop reconnecting), and talks as soon as the server is there.
TEST_F(NngTls, AClientThatCannotSendDialsAgainAndReachesTheServerOnceItListens) {
  const std::string url = "tls+tcp://127.0.0.1:" + std::to_string(drover::testing::free_port());
  auto client =
      nng::Client::dial(url, nng::TlsClient{read_file(coordinator.cert), "coordinator"}).value();
  for (int i = 0; i < 3; ++i) {
    auto lost = client->request("hello", 50ms);
    ASSERT_FALSE(lost.ok());
    EXPECT_EQ(lost.error().code, Errc::timeout) << lost.error().message;
  }
  EXPECT_EQ(client->redials(), 0u);
  auto server = nng::Server::listen_endpoints(
                    {{url}},
                    [](std::string_view req, std::size_t, nng::Server::Reply reply) {
                      reply("echo:" + std::string(req));
                    },
                    4, {}, server_tls(coordinator))
                    .value();
  auto answer = client->request("hello", 10s);
  ASSERT_TRUE(answer.ok()) << answer.error().message;
  EXPECT_EQ(*answer, "echo:hello");
  EXPECT_EQ(client->redials(), 1u);
  // A healthy link is never dialed again.
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(client->request("again", 10s).ok());
  EXPECT_EQ(client->redials(), 1u);
}

TEST_F(NngTls, AServerWithAnotherCertificateOrNameIsNeverTalkedTo) {
  // An impostor on the path presents its own certificate: the handshake
  // fails, no request leaves the client, and the call times out.
  auto impostor = echo(server_tls(other));
  auto pinned =
      nng::Client::dial(impostor->url(), nng::TlsClient{read_file(coordinator.cert), "coordinator"})
          .value();
  EXPECT_EQ(pinned->request("secret", 1500ms).error().code, Errc::timeout);
  // The right certificate under a name the client does not expect.
  auto real = echo(server_tls(coordinator));
  auto misnamed =
      nng::Client::dial(real->url(), nng::TlsClient{read_file(coordinator.cert), "elsewhere"})
          .value();
  EXPECT_EQ(misnamed->request("secret", 1500ms).error().code, Errc::timeout);
  // A plain TCP client gets nothing from a TLS listener.
  const std::string plain = "tcp://" + real->url().substr(std::string("tls+tcp://").size());
  auto cleartext = nng::Client::dial(plain).value();
  EXPECT_FALSE(cleartext->request("secret", 1500ms).ok());
}

TEST_F(NngTls, MissingOrBadSettingsAreRefusedAndNamed) {
  auto no_cert = nng::Server::listen_endpoints(
      {{"tls+tcp://127.0.0.1:0"}}, [](std::string_view, std::size_t, nng::Server::Reply) {}, 1, {});
  ASSERT_FALSE(no_cert.ok());
  EXPECT_NE(no_cert.error().message.find("needs a certificate"), std::string::npos);
  auto bad_key = nng::Server::listen_endpoints(
      {{"tls+tcp://127.0.0.1:0"}}, [](std::string_view, std::size_t, nng::Server::Reply) {}, 1, {},
      nng::TlsServer{read_file(coordinator.cert), "not a key"});
  ASSERT_FALSE(bad_key.ok());
  EXPECT_NE(bad_key.error().message.find("not usable"), std::string::npos)
      << bad_key.error().message;
  auto no_ca = nng::Client::dial("tls+tcp://127.0.0.1:1");
  ASSERT_FALSE(no_ca.ok());
  EXPECT_NE(no_ca.error().message.find("CA to pin"), std::string::npos);
}

TEST(NngTransport, PlainTcpOnlyOnLoopbackUnlessAllowed) {
  for (const char* ok : {"tcp://127.0.0.1:7400", "tcp://127.9.9.9:1", "tcp://[::1]:7400",
                         "tcp://localhost:7400", "tls+tcp://10.0.0.1:7400",
                         "tls+tcp://coordinator.example:7400", "ipc:///run/drover.sock"}) {
    EXPECT_TRUE(nng::check_transport(ok, false).ok()) << ok;
  }
  for (const char* refused : {"tcp://10.0.0.1:7400", "tcp://0.0.0.0:7400", "tcp://[::]:7400",
                              "tcp://coordinator:7400", "tcp://128.0.0.1:1"}) {
    auto st = nng::check_transport(refused, false);
    ASSERT_FALSE(st.ok()) << refused;
    EXPECT_NE(st.error().message.find("allow_plaintext"), std::string::npos);
    EXPECT_TRUE(nng::check_transport(refused, true).ok()) << refused;
  }
  EXPECT_FALSE(nng::check_transport("ws://127.0.0.1:1", true).ok());
  EXPECT_EQ(nng::url_host("tls+tcp://coordinator.example:7400"), "coordinator.example");
  EXPECT_EQ(nng::url_host("tcp://[::1]:7400"), "::1");
}

TEST(NngTransport, EachListenerHasItsOwnBoundAndRequestsNameTheirListener) {
  auto server = nng::Server::listen_endpoints(
                    {{"tcp://127.0.0.1:0", 1024}, {"tcp://127.0.0.1:0", 64 << 10}},
                    [](std::string_view req, std::size_t endpoint, nng::Server::Reply reply) {
                      reply(std::to_string(endpoint) + ":" + std::to_string(req.size()));
                    },
                    4, {1 << 20, 0, 0})
                    .value();
  ASSERT_EQ(server->urls().size(), 2u);
  auto small = nng::Client::dial(server->urls()[0]).value();
  auto large = nng::Client::dial(server->urls()[1]).value();
  EXPECT_EQ(small->request("hi", 10s).value(), "0:2");
  EXPECT_EQ(large->request(std::string(4096, 'x'), 10s).value(), "1:4096");
  // Over the first listener's bound: dropped there, while the second takes it.
  EXPECT_FALSE(small->request(std::string(4096, 'x'), 1500ms).ok());
  EXPECT_EQ(large->request(std::string(8192, 'y'), 10s).value(), "1:8192");
  // The first listener still serves the client it dropped (whose dialer has
  // reconnected: closing a socket while its dialer reconnects leaks a pipe in
  // NNG 1.5.2, which the sanitizer build reports).
  EXPECT_EQ(small->request("again", 10s).value(), "0:5");
}

}  // namespace
}  // namespace drover
