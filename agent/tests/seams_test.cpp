// Enrollment and reporting against fakes of the agent's seams: a scripted
// coordinator link, in-memory layers, virtual time and a memory filesystem.
#include <gtest/gtest.h>

#include "agent/control.hpp"
#include "agent/enrollment.hpp"
#include "agent/releases.hpp"
#include "agent/reporting.hpp"
#include "agent/tests/fakes.hpp"
#include "agent/tests/test_time.hpp"
#include "core/canon/canonical_json.hpp"
#include "core/world/memory_filesystem.hpp"
#include "tests/support/test_support.hpp"

namespace drover::agent {
namespace {

using std::chrono::milliseconds;
using test_time::kNow;

struct Seams : testing::AgentFixture {
  std::vector<std::string> lines;
  std::uint64_t seq = 100;

  void SetUp() override {
    config.host = "web-1";
    config.region = "eu";
    config.services.push_back({});
    config.services.back().name = "web";
    config.mesh_listen = "0.0.0.0:0";
    config.report_buffer_items = 8;
    make_context([this](const std::string& l) { lines.push_back(l); });
    ctx->key = sign::KeyPair::generate(rnd);
    ctx->report_key = std::string(32, 'k');
    ctx->next_report_seq = [this] { return seq++; };
  }
  sign::Envelope cert_by(const sign::KeyPair& signer, std::uint64_t version = 2) {
    return sign::certify(signer, {"online", online.public_key(), version, kNow - 10, kNow + 3600});
  }
  void event(const std::string& what) {
    ctx->outbox.push({std::nullopt, proto::EventItem{"web", kNow * 1000, what, 1, ""}});
  }
};

TEST_F(Seams, EnrollsOnlyWithACertificateFromThePinnedRoot) {
  EXPECT_FALSE(try_enroll(*ctx, kNow));  // the coordinator does not answer
  EXPECT_TRUE(link->enrolled.empty());

  SeededRandom other(7);
  link->cert = cert_by(sign::KeyPair::generate(other));
  EXPECT_FALSE(try_enroll(*ctx, kNow));  // signed by another root
  EXPECT_TRUE(link->enrolled.empty());

  ASSERT_TRUE(ctx->state->raise_min_cert_version(3).ok());
  link->cert = cert_by(root, 2);
  EXPECT_FALSE(try_enroll(*ctx, kNow));  // below the trust floor
  EXPECT_TRUE(link->enrolled.empty());

  link->cert = cert_by(root, 3);
  link->enroll_answer = make_error(Errc::refused, "join token unknown");
  EXPECT_FALSE(try_enroll(*ctx, kNow));
  ASSERT_EQ(link->enrolled.size(), 1u);
  EXPECT_NE(lines.back().find("enroll_failed"), std::string::npos);

  link->enroll_answer = Ok{};
  ASSERT_TRUE(ctx->layers->join("http://127.0.0.1:1").ok());
  EXPECT_TRUE(try_enroll(*ctx, kNow));
  ASSERT_EQ(link->enrolled.size(), 2u);
  const proto::EnrollBody& b = link->enrolled.back();
  EXPECT_EQ(b.host, "web-1");
  EXPECT_EQ(b.services, std::vector<std::string>{"web"});
  EXPECT_EQ(b.public_key, ctx->key->public_key());
  EXPECT_EQ(b.mesh_peer, "web-1:6881");  // listening on every address: the host's name
  EXPECT_EQ(b.at, kNow);
  // Once enrolled, no more round trips.
  EXPECT_TRUE(try_enroll(*ctx, kNow));
  EXPECT_EQ(link->enrolled.size(), 2u);
}

// Issue 12, item 8. An agent that was offline through two root rotations
// walks the chain one version at a time and keeps where it got to.
TEST_F(Seams, AnAgentOfflineThroughTwoRootRotationsCatchesUpOneVersionAtATime) {
  const sign::KeyPair root2 = sign::KeyPair::generate(rnd), root3 = sign::KeyPair::generate(rnd);
  auto doc = [&](const sign::KeyPair& from, const sign::KeyPair& to, std::uint64_t version) {
    return sign::sign_root(from, to, {to.public_key(), version, kNow - 10, kNow + 86400}).value();
  };
  link->roots = {doc(root, root2, 2), doc(root2, root3, 3)};
  link->cert = cert_by(root3, 5);  // the online key, certified by the newest root
  ASSERT_TRUE(ctx->layers->join("http://127.0.0.1:1").ok());
  EXPECT_TRUE(try_enroll(*ctx, kNow));
  EXPECT_EQ(ctx->current_root().version, 3u);
  EXPECT_EQ(ctx->current_root().key, root3.public_key());
  auto kept = ctx->state->root();
  ASSERT_TRUE(kept.ok() && kept->has_value());
  EXPECT_EQ((*kept)->version, 3u);
  EXPECT_EQ(ctx->trust().min_cert_version, 5u);
  // A certificate of the old root is no longer enough.
  EXPECT_FALSE(sign::verify_cert(cert_by(root, 9), ctx->trust(), kNow).ok());
  EXPECT_NE(std::find(lines.begin(), lines.end(), R"({"event":"root_rotated","version":3})"),
            lines.end());
}

TEST_F(Seams, AChainThatSkipsALinkOrHasOneSignatureMovesTheRootNoFurther) {
  const sign::KeyPair root2 = sign::KeyPair::generate(rnd), root3 = sign::KeyPair::generate(rnd);
  // Version 3 signed by the pinned root: a skipped link.
  link->roots = {sign::sign_root(root, root3, {root3.public_key(), 3, kNow, kNow + 60}).value()};
  link->cert = cert_by(root3);
  EXPECT_FALSE(try_enroll(*ctx, kNow));
  EXPECT_EQ(ctx->current_root().version, 1u);
  // Version 2 signed by the new root alone: refused too.
  sign::Envelope two =
      sign::sign_root(root, root2, {root2.public_key(), 2, kNow, kNow + 60}).value();
  two.signatures.erase(two.signatures.begin());  // the old root's
  link->roots = {two};
  link->cert = cert_by(root2);
  EXPECT_FALSE(try_enroll(*ctx, kNow));
  EXPECT_EQ(ctx->current_root().version, 1u);
  EXPECT_FALSE(ctx->state->root().value().has_value());
  EXPECT_TRUE(link->enrolled.empty());
}

// Issue 12, item 7. Before: the floor rose only when a plan signed under a
// newer certificate was applied, so an old online key stayed good on a
// host without plans for as long as its certificate lived (up to a year).
TEST_F(Seams, AnOldOnlineKeyStopsOnceTheAgentSeesANewerCertificate) {
  link->cert = cert_by(root, 1);
  ASSERT_TRUE(ctx->layers->join("http://127.0.0.1:1").ok());
  ASSERT_TRUE(try_enroll(*ctx, kNow));
  EXPECT_EQ(ctx->trust().min_cert_version, 1u);
  // The coordinator rotates: its next certificate pull shows version 2.
  const sign::KeyPair new_online = sign::KeyPair::generate(rnd);
  link->cert = sign::certify(root, {"online", new_online.public_key(), 2, kNow - 10, kNow + 3600});
  ASSERT_TRUE(refresh_trust(*ctx, kNow));
  EXPECT_EQ(ctx->trust().min_cert_version, 2u);
  // A plan signed by the old key, under its still-unexpired certificate of
  // version 1, is refused: handed over locally, it is not queued.
  auto old = proto::sign_plan(web_plan(), online, cert_by(root, 1)).value();
  auto opened = proto::open_plan(old, ctx->trust(), kNow);
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.error().message.find("superseded"), std::string::npos) << opened.error().message;
}

TEST_F(Seams, AReportIsRepeatedUnchangedUntilAcknowledgedAndBacksOff) {
  event("applied");
  // Not enrolled: nothing leaves.
  EXPECT_EQ(push_reports(*ctx, milliseconds(200)), milliseconds(200));
  EXPECT_TRUE(link->reports.empty());
  ctx->enrolled = true;

  link->report_answers = {make_error(Errc::timeout, "no answer"), make_error(Errc::io, "refused")};
  milliseconds wait = push_reports(*ctx, milliseconds(200));
  EXPECT_EQ(wait, milliseconds(500));
  event("switched");  // arrives while the first report waits
  wait = push_reports(*ctx, wait);
  EXPECT_EQ(wait, milliseconds(1000));
  wait = push_reports(*ctx, wait);
  EXPECT_EQ(wait, milliseconds(20));  // acknowledged: more may wait
  ASSERT_EQ(link->reports.size(), 3u);
  for (const auto& r : link->reports) {
    EXPECT_EQ(r.seq, 100u);
    ASSERT_EQ(r.items.size(), 1u);
    EXPECT_EQ(r.items[0].event->event, "applied");
  }
  // The next report carries what came later, under the next seq.
  push_reports(*ctx, wait);
  ASSERT_EQ(link->reports.size(), 4u);
  EXPECT_EQ(link->reports[3].seq, 101u);
  EXPECT_EQ(link->reports[3].items[0].event->event, "switched");
  EXPECT_EQ(push_reports(*ctx, milliseconds(20)), kNothingToReport);  // nothing left
  // Nothing to send, the report thread sleeps until an item is pushed: a
  // push ends its wait at once, however far its deadline.
  (void)ctx->wait_for_reports(SteadyTime{});  // what earlier pushes left
  event("restarted");
  const auto far = std::chrono::steady_clock::now() + std::chrono::hours(1);
  EXPECT_FALSE(ctx->wait_for_reports(SteadyTime(far.time_since_epoch())));
  EXPECT_EQ(push_reports(*ctx, milliseconds(200)), milliseconds(20));

  // A long outage: the wait stops growing at 30 s.
  event("applied");
  link->report_answers = std::deque<Status>(20, make_error(Errc::timeout, "no answer"));
  wait = milliseconds(200);
  for (int i = 0; i < 20; ++i) wait = push_reports(*ctx, wait);
  EXPECT_EQ(wait, milliseconds(30'000));
}

}  // namespace
}  // namespace drover::agent

namespace drover::agent {
namespace {

// A switch of `current` from one release to another, crashed after each of
// its filesystem operations in turn: afterwards `current` names one of the two
// releases (never nothing, never a half-made link), and cleaning leftovers
// removes the temporary link a crash may leave.
TEST(ReleaseLinks, ASwitchCrashedAtAnyStepLeavesCurrentOnOneWholeRelease) {
  const auto a = ContentId::of("release a"), b = ContentId::of("release b");
  for (std::uint64_t fail_from = 0;; ++fail_from) {
    MemoryFilesystem disk;
    SeededRandom random(fail_from);
    ReleaseDir healthy("/state/releases/web", disk, random);
    ASSERT_TRUE(disk.make_dirs(healthy.path_of(a)).ok());
    ASSERT_TRUE(disk.make_dirs(healthy.path_of(b)).ok());
    ASSERT_TRUE(healthy.set_link("current", a).ok());
    disk.sync_all();

    FaultyFilesystem faulty(disk, fail_from);
    ReleaseDir dying("/state/releases/web", faulty, random);
    const bool finished = dying.set_link("current", b).ok();
    disk.crash();

    ReleaseDir after("/state/releases/web", disk, random);
    const auto current = after.link("current");
    ASSERT_TRUE(current.has_value()) << "crash after " << fail_from << " operations";
    if (finished) {
      EXPECT_EQ(*current, b) << "a switch that returned is durable";
    }
    EXPECT_TRUE(*current == a || *current == b);
    after.clean_leftovers();
    auto names = disk.list_dir("/state/releases/web");
    ASSERT_TRUE(names.ok());
    EXPECT_EQ(names->size(), 3u) << ::testing::PrintToString(*names);
    if (finished) break;
  }
}

}  // namespace
}  // namespace drover::agent
