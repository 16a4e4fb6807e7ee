// One conformance suite for the agent protocol (docs/FORMATS.md, "Agent
// protocol"), run with the agent's own client (CoordinatorLink) against both
// coordinators it meets: the fake the agent's tests use, and the real one
// (the coordinator's store, gateway and plan issuer). A behaviour the agent
// relies on holds for both, or the fake would be lying to the agent's tests.
#include <gtest/gtest.h>

#include <atomic>

#include "coordinator/gateway/agent_gateway.hpp"
#include "coordinator/plans/plan_issuer.hpp"
#include "coordinator/store/lmdb_coordinator_store.hpp"
#include "core/agent_link/agent_link.hpp"
#include "core/proto/testing/fake_coordinator.hpp"
#include "core/sign/secret_box.hpp"
#include "tests/support/test_support.hpp"

namespace drover {
namespace {

using drover::testing::TempDir;
using namespace std::chrono_literals;

const std::string kManifest = "manifest bytes";

// What a conformance case needs of a coordinator.
class Side {
 public:
  virtual ~Side() = default;
  virtual std::string requests_url() = 0;
  virtual sign::PublicKey root() = 0;
  virtual void add_join_token(const std::string& token) = 0;
  // Issues a plan revision (the side assigns its seq); returns the seq.
  virtual std::uint64_t publish(proto::Plan plan) = 0;
  virtual int reports_ingested() = 0;
  virtual void reset_host(const std::string& host) = 0;
  virtual void rotate() = 0;
};

class FakeSide : public Side {
 public:
  FakeSide() { fake_.add_manifest(ContentId::of(kManifest), kManifest); }
  std::string requests_url() override { return fake_.requests_url(); }
  sign::PublicKey root() override { return fake_.root().public_key(); }
  void add_join_token(const std::string& token) override { fake_.add_join_token(token); }
  std::uint64_t publish(proto::Plan plan) override {
    plan.seq = ++seq_;
    fake_.publish(plan);
    return plan.seq;
  }
  int reports_ingested() override { return static_cast<int>(fake_.reports().size()); }
  void reset_host(const std::string& host) override { fake_.reset_host(host); }
  void rotate() override { fake_.rotate_online_key(); }

 private:
  testing::FakeCoordinator fake_;
  std::uint64_t seq_ = 0;
};

class RealSide : public Side {
 public:
  RealSide() {
    store_ = coordinator::LmdbCoordinatorStore::open(dir_.path() / "coordinator").value();
    keys_ = std::make_unique<coordinator::OnlineKeySigner>(key(1));
    gateway_ = coordinator::AgentGateway::start(
                   {}, *store_, *keys_,
                   [](const ContentId& id) -> Result<std::string> {
                     if (id == ContentId::of(kManifest)) return kManifest;
                     return make_error(Errc::not_found, "no manifest " + id.str());
                   },
                   [this](const coordinator::HostRecord&, const proto::ReportBody&) { ++reports_; },
                   clock_, Logger::discard())
                   .value();
    issuer_ = std::make_unique<coordinator::PlanIssuer>(
        *store_, *keys_, [g = gateway_.get()](const std::string& service, std::uint64_t seq) {
          g->announce(service, seq);
        });
  }
  std::string requests_url() override { return gateway_->requests_url(); }
  sign::PublicKey root() override { return root_.public_key(); }
  void add_join_token(const std::string& token) override {
    coordinator::CoordinatorStore::JoinTokenSpec spec;
    spec.uses = 100;  // one token for the fleet of a case
    ASSERT_TRUE(store_->add_join_token(token, "admin", unix_seconds(clock_.now()), spec).ok());
  }
  std::uint64_t publish(proto::Plan plan) override {
    auto b = issuer_->issue(plan);
    EXPECT_TRUE(b.ok()) << b.error().message;
    return proto::decode_plan(b->plan.payload)->seq;
  }
  int reports_ingested() override { return reports_.load(); }
  void reset_host(const std::string& host) override { ASSERT_TRUE(store_->reset_host(host).ok()); }
  void rotate() override { keys_->rotate(key(2)); }
  // A plan this coordinator's key signed, as a host holds it (without manifest).
  std::string signed_bundle(const proto::Plan& plan) {
    return proto::encode_bundle(keys_->sign(plan).value());
  }

 private:
  coordinator::OnlineKey key(std::uint64_t version) {
    const auto now = unix_seconds(clock_.now());
    online_.push_back(sign::KeyPair::generate(rnd_));
    return {online_.back(), sign::certify(root_, {"online", online_.back().public_key(), version,
                                                  now - 60, now + 86400})};
  }
  TempDir dir_;
  SeededRandom rnd_{5};
  sign::KeyPair root_ = sign::KeyPair::generate(rnd_);
  std::vector<sign::KeyPair> online_;
  SystemClock clock_;
  std::unique_ptr<coordinator::CoordinatorStore> store_;
  std::unique_ptr<coordinator::OnlineKeySigner> keys_;
  std::unique_ptr<coordinator::AgentGateway> gateway_;
  std::unique_ptr<coordinator::PlanIssuer> issuer_;
  std::atomic<int> reports_{0};
};

template <class S>
class AgentProtocol : public ::testing::Test {
 protected:
  struct Agent {
    sign::KeyPair key;
    std::string report_key;
    std::unique_ptr<proto::CoordinatorLink> link;
  };
  AgentProtocol() { side_.add_join_token("join-1"); }

  Agent agent(const std::string& host, std::uint64_t seed) {
    SeededRandom r(seed);
    Agent a{sign::KeyPair::generate(r), r.bytes(32), nullptr};
    a.link = proto::CoordinatorLink::connect(side_.requests_url(), host, 5s).value();
    a.link->set_report_key(a.report_key);
    return a;
  }
  Result<sign::KeyCert> cert(Agent& a, std::uint64_t floor = 1) {
    DROVER_ASSIGN(auto envelope, a.link->pull_cert());
    return sign::verify_cert(envelope, {side_.root(), floor}, unix_seconds(clock_.now()));
  }
  Status enroll(Agent& a, const std::string& host, const std::string& token = "join-1") {
    DROVER_ASSIGN(auto verified, cert(a));
    proto::EnrollBody b;
    b.host = host;
    b.region = "eu";
    b.cluster = "c1";
    b.services = {"web"};
    b.public_key = a.key.public_key();
    b.mesh_peer = "127.0.0.1:7000";
    b.join_token = token;
    b.at = unix_seconds(clock_.now());
    return a.link->enroll(b, a.key, verified.subject, a.report_key);
  }
  proto::Plan plan(const std::vector<std::string>& hosts) {
    proto::Plan p;
    p.service = "web";
    p.deploy_id = "d-1";
    p.artifact = ContentId::of(kManifest);
    p.manifest_size = kManifest.size();
    p.hosts = hosts;
    p.tracker = "http://127.0.0.1:1";
    p.issued_at = unix_seconds(clock_.now()) - 1;
    p.expires_at = p.issued_at + 3600;
    return p;
  }
  Result<proto::OpenedPlan> pull(Agent& a, std::uint64_t floor = 1) {
    DROVER_ASSIGN(auto got, a.link->pull_plan("web", 0));
    if (!got) return make_error(Errc::not_found, "no plan");
    return proto::open_plan(*got, {side_.root(), floor}, unix_seconds(clock_.now()));
  }

  S side_;
  SystemClock clock_;
};

using Sides = ::testing::Types<FakeSide, RealSide>;
class SideNames {
 public:
  template <class T>
  static std::string GetName(int) {
    return std::is_same_v<T, FakeSide> ? "Fake" : "Real";
  }
};
TYPED_TEST_SUITE(AgentProtocol, Sides, SideNames);

TYPED_TEST(AgentProtocol, EnrollmentBindsAHostToItsKeyUntilReset) {
  auto a = this->agent("web-1", 1);
  ASSERT_TRUE(this->enroll(a, "web-1").ok());
  auto impostor = this->agent("web-1", 2);
  auto refused = this->enroll(impostor, "web-1");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::refused);
  EXPECT_NE(refused.error().message.find("reset"), std::string::npos);
  auto stranger = this->agent("web-2", 3);
  auto bad_token = this->enroll(stranger, "web-2", "guessed");
  ASSERT_FALSE(bad_token.ok());
  EXPECT_EQ(bad_token.error().code, Errc::refused);
  EXPECT_NE(bad_token.error().message.find("join token"), std::string::npos);
  this->side_.reset_host("web-1");
  EXPECT_TRUE(this->enroll(impostor, "web-1").ok());
  // The old key's MAC no longer speaks for the host.
  proto::ReportBody r;
  r.seq = 1;
  auto old = a.link->send_report(r);
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().code, Errc::crypto);
}

TYPED_TEST(AgentProtocol, AnUnenrolledHostGetsNothing) {
  auto a = this->agent("web-9", 1);
  auto got = a.link->pull_plan("web", 0);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code, Errc::not_found);
  EXPECT_FALSE(a.link->pull_manifest(ContentId::of(kManifest), 1 << 20).ok());
}

TYPED_TEST(AgentProtocol, EachHostPullsTheNewestSignedPlanThatNamesIt) {
  auto a = this->agent("web-1", 1);
  auto b = this->agent("web-2", 2);
  ASSERT_TRUE(this->enroll(a, "web-1").ok());
  ASSERT_TRUE(this->enroll(b, "web-2").ok());
  auto none = a.link->pull_plan("web", 0);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  const auto first = this->side_.publish(this->plan({"web-1"}));
  const auto second = this->side_.publish(this->plan({"web-1", "web-2"}));
  EXPECT_GT(second, first);
  for (auto* agent : {&a, &b}) {
    auto opened = this->pull(*agent);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    EXPECT_EQ(opened->plan.seq, second);
  }
  // A third revision for web-1 alone: web-2 keeps the newest that named it.
  const auto third = this->side_.publish(this->plan({"web-1"}));
  EXPECT_EQ(this->pull(a)->plan.seq, third);
  EXPECT_EQ(this->pull(b)->plan.seq, second);
  auto manifest = a.link->pull_manifest(ContentId::of(kManifest), kManifest.size());
  ASSERT_TRUE(manifest.ok()) << manifest.error().message;
  EXPECT_EQ(*manifest, kManifest);
  auto unknown = a.link->pull_manifest(ContentId::of("other"), 1 << 20);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, Errc::not_found);
}

TYPED_TEST(AgentProtocol, ReportsAreAuthenticatedAndIngestedOnce) {
  auto a = this->agent("web-1", 1);
  ASSERT_TRUE(this->enroll(a, "web-1").ok());
  proto::ReportBody r;
  r.seq = 10;
  r.items.push_back({std::nullopt, proto::EventItem{"web", 1, "applied", 57, "sha256:x"}});
  ASSERT_TRUE(a.link->send_report(r).ok());
  ASSERT_TRUE(a.link->send_report(r).ok());  // a resend is acknowledged, not ingested
  EXPECT_EQ(this->side_.reports_ingested(), 1);
  auto liar = this->agent("web-1", 9);  // another key cannot speak for web-1
  r.seq = 11;
  auto refused = liar.link->send_report(r);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::crypto);
  EXPECT_EQ(this->side_.reports_ingested(), 1);
  r.seq = 11;
  ASSERT_TRUE(a.link->send_report(r).ok());
  EXPECT_EQ(this->side_.reports_ingested(), 2);
}

TYPED_TEST(AgentProtocol, ARotationServesTheNewCertificateAndSignsWithTheNewKey) {
  auto a = this->agent("web-1", 1);
  ASSERT_TRUE(this->enroll(a, "web-1").ok());
  this->side_.rotate();
  auto c = this->cert(a, 2);  // the agent's trust floor moves to the new version
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->version, 2u);
  this->side_.publish(this->plan({"web-1"}));
  auto opened = this->pull(a, 2);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
}

// Only the real coordinator keeps plan seqs across a restore from backup:
// they continue above a plan a host proves it holds, never above a seq a
// host merely claims (docs/COORDINATOR.md, "Plan seqs").
using RealProtocol = AgentProtocol<RealSide>;
TEST_F(RealProtocol, PlanSeqsContinueAboveAPlanAHostProvesNotOneItClaims) {
  auto a = agent("web-1", 1);
  ASSERT_TRUE(enroll(a, "web-1").ok());
  proto::ReportBody claim;
  claim.seq = 1;
  claim.items.push_back({std::nullopt, proto::EventItem{"web", 1, "applied", 57, "sha256:x"}});
  ASSERT_TRUE(a.link->send_report(claim).ok());
  EXPECT_EQ(side_.publish(plan({"web-1"})), 1u);  // a claim alone moves nothing

  // Restored from a backup older than plan 57, which the host holds: it
  // refuses plan 1 as a replay and shows plan 57.
  proto::Plan held = plan({"web-1"});
  held.seq = 57;
  proto::ReportBody refusal;
  refusal.seq = 2;
  refusal.items.push_back(
      {std::nullopt, proto::EventItem{"web", 1, "replay_refused", 1, "seq 1 is below 57",
                                      side_.signed_bundle(held)}});
  ASSERT_TRUE(a.link->send_report(refusal).ok());
  EXPECT_EQ(side_.publish(plan({"web-1"})), 58u);

  // A plan naming other hosts proves nothing for this one.
  proto::Plan elsewhere = plan({"web-2"});
  elsewhere.seq = 900;
  proto::ReportBody borrowed;
  borrowed.seq = 3;
  borrowed.items.push_back({std::nullopt, proto::EventItem{"web", 1, "replay_refused", 1, "",
                                                           side_.signed_bundle(elsewhere)}});
  ASSERT_TRUE(a.link->send_report(borrowed).ok());
  EXPECT_EQ(side_.publish(plan({"web-1"})), 59u);
}

}  // namespace
}  // namespace drover
