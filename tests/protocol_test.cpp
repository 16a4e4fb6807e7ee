// The agent protocol between the real parts: the agent's own client
// (CoordinatorLink) against the coordinator's gateway over NNG on loopback,
// with the coordinator's LMDB store underneath.
#include <gtest/gtest.h>

#include <atomic>

#include "agent/coordinator_link.hpp"
#include "coordinator/gateway/agent_gateway.hpp"
#include "coordinator/plans/plan_issuer.hpp"
#include "core/sign/secret_box.hpp"
#include "tests/support/test_support.hpp"

namespace drover {
namespace {

using drover::testing::TempDir;
using namespace std::chrono_literals;

struct Fleet {
  TempDir dir;
  SeededRandom rnd{5};
  sign::KeyPair root = sign::KeyPair::generate(rnd);
  sign::KeyPair online = sign::KeyPair::generate(rnd);
  SystemClock clock;
  std::unique_ptr<coordinator::CoordinatorStore> store;
  std::unique_ptr<coordinator::AgentGateway> gateway;
  std::atomic<int> reports_ingested{0};
  std::string manifest = "manifest bytes";

  Fleet() {
    store = coordinator::CoordinatorStore::open(dir / "coordinator").value();
    EXPECT_TRUE(store->add_join_token("join-1", "admin", 1).ok());
    const auto now = unix_seconds(clock.now());
    coordinator::OnlineKey key{
        online, sign::certify(root, {"online", online.public_key(), 1, now - 60, now + 86400})};
    gateway = coordinator::AgentGateway::start(
                  {}, *store, key,
                  [this](const ContentId& id) -> Result<std::string> {
                    if (id == ContentId::of(manifest)) return manifest;
                    return make_error(Errc::not_found, "no manifest " + id.str());
                  },
                  [this](const coordinator::HostRecord&, const proto::ReportBody&) {
                    ++reports_ingested;
                  },
                  clock, Logger::discard())
                  .value();
  }

  struct Agent {
    sign::KeyPair key;
    std::string report_key;
    std::unique_ptr<agent::CoordinatorLink> link;
  };
  Agent agent(const std::string& host, std::uint64_t seed) {
    SeededRandom r(seed);
    Agent a{sign::KeyPair::generate(r), r.bytes(32), nullptr};
    a.link = agent::CoordinatorLink::connect(gateway->requests_url(), host, 5s).value();
    a.link->set_report_key(a.report_key);
    return a;
  }
  Status enroll(Agent& a, const std::string& host, const std::string& token = "join-1") {
    auto cert = a.link->pull_cert();
    if (!cert.ok()) return cert.error();
    auto verified = sign::verify_cert(*cert, {root.public_key(), 1}, unix_seconds(clock.now()));
    if (!verified.ok()) return verified.error();
    proto::EnrollBody b;
    b.host = host;
    b.region = "eu";
    b.cluster = "c1";
    b.services = {"web"};
    b.public_key = a.key.public_key();
    b.mesh_peer = "127.0.0.1:7000";
    b.join_token = token;
    b.at = unix_seconds(clock.now());
    return a.link->enroll(b, a.key, verified->subject, a.report_key);
  }
  proto::Plan plan(const std::vector<std::string>& hosts) {
    proto::Plan p;
    p.service = "web";
    p.deploy_id = "d-1";
    p.artifact = ContentId::of(manifest);
    p.manifest_size = manifest.size();
    p.hosts = hosts;
    p.tracker = "http://127.0.0.1:1";
    p.issued_at = unix_seconds(clock.now()) - 1;
    p.expires_at = p.issued_at + 3600;
    return p;
  }
};

TEST(AgentProtocol, EnrollmentBindsAHostToItsKey) {
  Fleet f;
  auto a = f.agent("web-1", 1);
  ASSERT_TRUE(f.enroll(a, "web-1").ok());
  auto stored = f.store->host("web-1");
  ASSERT_TRUE(stored.ok() && *stored);
  EXPECT_EQ((*stored)->key, a.key.public_key());
  EXPECT_EQ((*stored)->report_key, a.report_key);  // unsealed by the coordinator alone
  auto impostor = f.agent("web-1", 2);
  auto refused = f.enroll(impostor, "web-1");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::refused);
  EXPECT_NE(refused.error().message.find("reset"), std::string::npos);
  auto stranger = f.agent("web-2", 3);
  auto bad_token = f.enroll(stranger, "web-2", "guessed");
  ASSERT_FALSE(bad_token.ok());
  EXPECT_NE(bad_token.error().message.find("join token"), std::string::npos);
  // An admin's reset lets the new machine in.
  ASSERT_TRUE(f.store->reset_host("web-1").ok());
  EXPECT_TRUE(f.enroll(impostor, "web-1").ok());
}

TEST(AgentProtocol, EachHostPullsTheNewestPlanThatNamesIt) {
  Fleet f;
  auto a = f.agent("web-1", 1);
  auto b = f.agent("web-2", 2);
  ASSERT_TRUE(f.enroll(a, "web-1").ok());
  ASSERT_TRUE(f.enroll(b, "web-2").ok());
  EXPECT_FALSE(a.link->pull_plan("web", 0)->has_value());
  coordinator::PlanIssuer issuer(*f.store, *f.gateway);
  auto first = issuer.issue(f.plan({"web-1"}));
  ASSERT_TRUE(first.ok()) << first.error().message;
  auto second = issuer.issue(f.plan({"web-1", "web-2"}));
  ASSERT_TRUE(second.ok());
  auto got = a.link->pull_plan("web", 0);
  ASSERT_TRUE(got.ok() && *got) << (got.ok() ? "" : got.error().message);
  auto opened = proto::open_plan(**got, {f.root.public_key(), 1}, unix_seconds(f.clock.now()));
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  EXPECT_EQ(opened->plan.seq, 2u);
  auto manifest = a.link->pull_manifest(opened->plan.artifact, opened->plan.manifest_size);
  ASSERT_TRUE(manifest.ok()) << manifest.error().message;
  EXPECT_EQ(*manifest, f.manifest);
}

TEST(AgentProtocol, ReportsAreAuthenticatedAndIngestedOnce) {
  Fleet f;
  auto a = f.agent("web-1", 1);
  ASSERT_TRUE(f.enroll(a, "web-1").ok());
  proto::ReportBody r;
  r.seq = 10;
  r.items.push_back({std::nullopt, proto::EventItem{"web", 1, "applied", 57, "sha256:x"}});
  ASSERT_TRUE(a.link->send_report(r).ok());
  ASSERT_TRUE(a.link->send_report(r).ok());  // a resend is acknowledged, not ingested
  EXPECT_EQ(f.reports_ingested.load(), 1);
  // The fleet ran seq 57: the next plan is above it.
  coordinator::PlanIssuer issuer(*f.store, *f.gateway);
  auto next = issuer.issue(f.plan({"web-1"}));
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(proto::decode_plan(next->plan.payload)->seq, 58u);
  // Another host's key cannot speak for web-1.
  auto liar = f.agent("web-1", 9);
  r.seq = 11;
  auto refused = liar.link->send_report(r);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::crypto);
  EXPECT_EQ(f.reports_ingested.load(), 1);
}

}  // namespace
}  // namespace drover
