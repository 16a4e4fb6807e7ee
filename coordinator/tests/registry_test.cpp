// The artifact registry following the origin's feed: every answer from the
// origin is hostile input, type-checked before use (issue 11, item 8).
#include <gtest/gtest.h>

#include <mutex>

#include "coordinator/artifacts/registry.hpp"
#include "coordinator/store/memory_coordinator_store.hpp"
#include "core/http/http.hpp"
#include "tests/support/small_manifest.hpp"

namespace drover::coordinator {
namespace {

// An origin whose feed answers whatever the test sets.
struct FakeOrigin {
  std::mutex mu;
  std::string feed;
  std::string manifest;
  std::unique_ptr<http::Server> server;

  FakeOrigin() {
    server = http::Server::start(
                 {},
                 [this](const http::Request& r, http::Responder respond) {
                   std::lock_guard lock(mu);
                   http::Response res;
                   res.body = r.path == "/v1/artifacts" ? feed : manifest;
                   respond(std::move(res));
                 },
                 Logger::discard())
                 .value();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server->port()); }
  void answer(std::string f) {
    std::lock_guard lock(mu);
    feed = std::move(f);
  }
};

TEST(Registry, AFeedEntryOfTheWrongShapeFailsThePassNotTheCoordinator) {
  FakeOrigin origin;
  auto store = MemoryCoordinatorStore::create();
  ManualClock clock;
  ArtifactRegistry registry(*store, origin.url(), clock, Logger::discard());
  const std::string id = "sha256:" + std::string(64, 'a');
  const std::pair<std::string, std::string> hostile[] = {
      {R"({"artifacts":[1]})", "origin feed entry"},
      {R"({"artifacts":[null]})", "origin feed entry"},
      {R"({"artifacts":[{"artifact_id":5}]})", "artifact_id"},
      {R"({"artifacts":[{}]})", "artifact_id"},
      {R"({"artifacts":[{"artifact_id":")" + id + R"(","push_seq":"x"}]})", "push_seq"},
      {R"({"artifacts":[{"artifact_id":")" + id + R"(","push_seq":-1}]})", "push_seq"},
      {R"({"artifacts":[{"artifact_id":")" + id + R"(","push_seq":1e300}]})", "push_seq"},
  };
  for (const auto& [body, named] : hostile) {
    origin.answer(body);
    Status st = Ok{};
    ASSERT_NO_THROW(st = registry.follow_feed_once(0)) << body;
    ASSERT_FALSE(st.ok()) << body;
    EXPECT_NE(st.error().message.find(named), std::string::npos) << st.error().message;
    EXPECT_FALSE(store->setting("feed_seq")->has_value()) << body;
    EXPECT_TRUE(store->artifacts()->empty()) << body;
  }
  // A well-formed entry after all that is registered as before.
  const std::string bytes = drover::testing::small_manifest_bytes("web", "one");
  const ContentId good = ContentId::of(bytes);
  {
    std::lock_guard lock(origin.mu);
    origin.manifest = bytes;
  }
  origin.answer(R"({"artifacts":[{"artifact_id":")" + good.str() + R"(","push_seq":7}]})");
  ASSERT_TRUE(registry.follow_feed_once(0).ok());
  EXPECT_EQ(store->setting("feed_seq")->value_or(""), "7");
  ASSERT_EQ(store->artifacts()->size(), 1u);
}

}  // namespace
}  // namespace drover::coordinator
