// The agent's verdict on plans, in isolation: one fixed "now", the stored
// seq, the trust floor.
#include <gtest/gtest.h>

#include "agent/step/plan_check.hpp"
#include "agent/tests/test_time.hpp"
#include "core/world/random.hpp"

namespace drover::agent {
namespace {

using test_time::kNow;

struct Fixture {
  SeededRandom rnd{1};
  sign::KeyPair root = sign::KeyPair::generate(rnd);
  sign::KeyPair online = sign::KeyPair::generate(rnd);
  sign::Envelope cert =
      sign::certify(root, {"online", online.public_key(), 2, kNow - 100, kNow + 86400});
  HostView me{"web-1", {"web"}, {root.public_key(), 1}};

  proto::Plan plan(std::uint64_t seq) {
    proto::Plan p;
    p.service = "web";
    p.seq = seq;
    p.deploy_id = "d-1";
    p.artifact = ContentId::of("m");
    p.manifest_size = 1;
    p.layers = {{ContentId::of("l"), 1, Digest{}}};
    p.hosts = {"web-1", "web-2"};
    p.tracker = "http://127.0.0.1:1";
    p.issued_at = kNow - 10;
    p.expires_at = kNow + 600;
    return p;
  }
  PlanCheck check(const proto::Plan& p, std::uint64_t stored, std::int64_t now = kNow) {
    return check_plan(*proto::sign_plan(p, online, cert), me, stored, now);
  }
};

TEST(PlanCheck, AppliesANewerPlanAndIgnoresTheSameOne) {
  Fixture f;
  EXPECT_EQ(f.check(f.plan(5), 4).verdict, PlanVerdict::apply);
  EXPECT_EQ(f.check(f.plan(5), 5).verdict, PlanVerdict::same);
  auto replay = f.check(f.plan(3), 5);
  EXPECT_EQ(replay.verdict, PlanVerdict::replay);
  EXPECT_NE(replay.reason.find("stored seq 5"), std::string::npos) << replay.reason;
}

TEST(PlanCheck, ExpiryIsCheckedAgainstTheCyclesNow) {
  Fixture f;
  proto::Plan p = f.plan(5);
  EXPECT_EQ(f.check(p, 4, p.expires_at - 1).verdict, PlanVerdict::apply);
  auto expired = f.check(p, 4, p.expires_at);
  EXPECT_EQ(expired.verdict, PlanVerdict::refused);
  EXPECT_NE(expired.reason.find("expired"), std::string::npos);
  // An expired plan already applied is no reason to do anything.
  EXPECT_EQ(f.check(p, 5, p.expires_at + 1000).verdict, PlanVerdict::same);
  // Issued too far in the future (a skewed or forged clock).
  proto::Plan future = f.plan(6);
  future.issued_at = kNow + 3600;
  future.expires_at = kNow + 7200;
  EXPECT_EQ(f.check(future, 4).verdict, PlanVerdict::refused);
}

TEST(PlanCheck, OnlyForThisHostAndItsServices) {
  Fixture f;
  proto::Plan other_host = f.plan(5);
  other_host.hosts = {"web-2"};
  auto r = f.check(other_host, 0);
  EXPECT_EQ(r.verdict, PlanVerdict::refused);
  EXPECT_NE(r.reason.find("web-1"), std::string::npos);
  proto::Plan other_service = f.plan(5);
  other_service.service = "db";
  EXPECT_EQ(f.check(other_service, 0).verdict, PlanVerdict::refused);
}

TEST(PlanCheck, RefusesForgeriesAndRotatedOutKeys) {
  Fixture f;
  SeededRandom other(2);
  const sign::KeyPair mallory = sign::KeyPair::generate(other);
  auto forged = check_plan(*proto::sign_plan(f.plan(5), mallory, f.cert), f.me, 0, kNow);
  EXPECT_EQ(forged.verdict, PlanVerdict::refused);
  EXPECT_FALSE(forged.opened);
  // A certificate signed by another root.
  const sign::Envelope fake_cert =
      sign::certify(mallory, {"online", mallory.public_key(), 9, kNow - 1, kNow + 10});
  EXPECT_EQ(check_plan(*proto::sign_plan(f.plan(5), mallory, fake_cert), f.me, 0, kNow).verdict,
            PlanVerdict::refused);
  // The floor was raised above this certificate's version by a rotation.
  f.me.trust.min_cert_version = 3;
  auto old = f.check(f.plan(5), 0);
  EXPECT_EQ(old.verdict, PlanVerdict::refused);
  EXPECT_NE(old.reason.find("version"), std::string::npos) << old.reason;
}

// Issue 15: a plan asking for a share of the host's traffic, or a preview,
// is refused by an agent that cannot split it yet, and says so; all of it
// (1000, or no traffic key) applies as before.
}  // namespace
}  // namespace drover::agent
