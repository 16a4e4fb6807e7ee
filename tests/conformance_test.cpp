// One conformance suite for the agent protocol (docs/FORMATS.md, "Agent
// protocol"), run with the agent's own client (CoordinatorLink) against both
// coordinators it meets: the fake the agent's tests use, and the real one
// (the coordinator's store, gateway and plan issuer). A behaviour the agent
// relies on holds for both, or the fake would be lying to the agent's tests.
#include "tests/protocol_sides.hpp"

namespace drover {
namespace {

using namespace protocol_testing;
using namespace std::chrono_literals;

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
