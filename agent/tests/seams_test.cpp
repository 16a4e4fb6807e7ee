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
  EXPECT_EQ(push_reports(*ctx, milliseconds(20)), milliseconds(200));  // nothing left

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
