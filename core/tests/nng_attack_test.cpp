// Attacks on the agent protocol's transport and decoding (issue 11; found in
// review): many connections, large messages, and small messages of many
// tiny values, each bounded before anything is parsed.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "core/nng/nng.hpp"
#include "core/proto/messages.hpp"

namespace drover {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<nng::Server> echo(const nng::ServerLimits& limits) {
  return nng::Server::listen_async(
             "tcp://127.0.0.1:0",
             [](std::string_view req, nng::Server::Reply reply) { reply(std::string(req)); }, 4,
             limits)
      .value();
}

// Before: the coordinator's request socket took 16 MiB messages on any
// number of connections, each held in memory as it arrived.
TEST(NngAttack, ConnectionsBeyondTheCapAreClosed) {
  auto server = echo({1024, 2, 0});
  std::vector<std::unique_ptr<nng::Client>> clients;
  for (int i = 0; i < 2; ++i) {
    clients.push_back(nng::Client::dial(server->url()).value());
    auto r = clients.back()->request("hello", 10s);
    ASSERT_TRUE(r.ok()) << r.error().message;
  }
  auto third = nng::Client::dial(server->url()).value();
  auto refused = third->request("hello", 2s);
  EXPECT_FALSE(refused.ok());
  EXPECT_GE(server->refused_connections(), 1u);
  // One given back makes room.
  clients.pop_back();
  bool served = false;
  for (int attempt = 0; attempt < 20 && !served; ++attempt) {
    served = third->request("again", 1s).ok();
  }
  EXPECT_TRUE(served);
}

TEST(NngAttack, AMessageOverTheBoundIsDroppedAndTheServerGoesOn) {
  auto server = echo({1024, 0, 0});
  auto client = nng::Client::dial(server->url()).value();
  EXPECT_FALSE(client->request(std::string(4096, 'x'), 2s).ok());
  auto other = nng::Client::dial(server->url()).value();
  auto small = other->request("small", 10s);
  ASSERT_TRUE(small.ok()) << small.error().message;
  EXPECT_EQ(*small, "small");
}

// Before: a 16 MiB request of empty objects grew the parser's memory about
// 27-fold before the request was authenticated.
TEST(NngAttack, ManyTinyValuesAreRefusedBeforeTheParse) {
  std::string junk = R"({"v":1,"type":"report","host":"h","body":"{}","junk":[)";
  for (std::size_t i = 0; i < proto::kMaxMessageValues; ++i) junk += "{},";
  junk += "{}]}";
  ASSERT_LT(junk.size(), proto::kMaxRequestBytes);
  auto r = proto::decode_request(junk);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("JSON values"), std::string::npos) << r.error().message;
  // Commas inside strings are not values: a long text passes.
  proto::Request ok{"report", "h", R"({"detail":")" + std::string(100'000, ',') + "\"}", "", ""};
  EXPECT_TRUE(proto::decode_request(proto::encode_request(ok)).ok());
  EXPECT_FALSE(proto::decode_request(std::string(proto::kMaxRequestBytes + 1, ' ')).ok());
}

}  // namespace
}  // namespace drover
