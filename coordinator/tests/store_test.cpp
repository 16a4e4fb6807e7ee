// The coordinator's durable state: host binding, join tokens, plan seqs that
// only go up (also above what agents report), plan lookup per host, reports
// ingested once.
#include <gtest/gtest.h>

#include "coordinator/tests/store_backends.hpp"
#include "core/world/random.hpp"
#include "tests/support/test_support.hpp"

namespace drover::coordinator {
namespace {

using drover::testing::TempDir;
using CoordinatorStores = OnEachBackend;

HostRecord host_with_key(const std::string& name, std::uint64_t seed) {
  SeededRandom rnd(seed);
  HostRecord h;
  h.host = name;
  h.region = "eu";
  h.cluster = "c1";
  h.services = {"web"};
  h.key = sign::KeyPair::generate(rnd).public_key();
  h.report_key = std::string(32, static_cast<char>('a' + seed));
  h.enrolled_at = 100;
  return h;
}

TEST_P(CoordinatorStores, AHostStaysBoundToItsFirstKeyUntilReset) {
  auto s = backend_.open();
  ASSERT_TRUE(s.ok()) << s.error().message;
  ASSERT_TRUE((*s)->enroll(host_with_key("web-1", 1)).ok());
  auto again = host_with_key("web-1", 1);
  again.report_key = std::string(32, 'z');  // same key, new report key: a re-enrollment
  ASSERT_TRUE((*s)->enroll(again).ok());
  EXPECT_EQ((*(*s)->host("web-1"))->report_key, std::string(32, 'z'));
  auto other = (*s)->enroll(host_with_key("web-1", 2));
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code, Errc::refused);
  EXPECT_NE(other.error().message.find("reset"), std::string::npos);
  ASSERT_TRUE((*s)->reset_host("web-1").ok());
  EXPECT_TRUE((*s)->enroll(host_with_key("web-1", 2)).ok());
  EXPECT_EQ((*s)->reset_host("web-9").error().code, Errc::not_found);
  EXPECT_EQ((*s)->hosts()->size(), 1u);
}

TEST(LmdbCoordinatorStore, JoinTokensAreKeptAsHashesAndCanBeRevoked) {
  TempDir dir;
  {
    auto s = LmdbCoordinatorStore::open(dir.path());
    ASSERT_TRUE((*s)->add_join_token("secret-token", "admin", 1).ok());
    EXPECT_TRUE(*(*s)->join_token_valid("secret-token", 2));
    EXPECT_FALSE(*(*s)->join_token_valid("guess", 2));
  }
  // The token itself is nowhere on disk.
  std::string all;
  for (const auto& e : fs::directory_iterator(dir.path()))
    all += drover::testing::read_file(e.path());
  EXPECT_EQ(all.find("secret-token"), std::string::npos);
  auto s = LmdbCoordinatorStore::open(dir.path());
  ASSERT_TRUE((*s)->revoke_join_token("secret-token").ok());
  EXPECT_FALSE(*(*s)->join_token_valid("secret-token", 2));
}

TEST_P(CoordinatorStores, PlanSeqsOnlyGoUpAndStayAboveWhatAgentsReport) {
  auto s = backend_.open();
  EXPECT_EQ(*(*s)->next_plan_seq("web"), 1u);
  EXPECT_EQ(*(*s)->next_plan_seq("web"), 2u);
  EXPECT_EQ(*(*s)->next_plan_seq("db"), 1u);
  // Restored from an old backup, it hears from an agent that ran seq 40.
  ASSERT_TRUE((*s)->note_reported_seq("web", 40).ok());
  ASSERT_TRUE((*s)->note_reported_seq("web", 7).ok());  // never lowers
  EXPECT_EQ(*(*s)->next_plan_seq("web"), 41u);
}

TEST_P(CoordinatorStores, EachHostGetsTheNewestRevisionThatNamesIt) {
  auto s = backend_.open();
  ASSERT_TRUE((*s)->put_plan("web", 1, "bundle-1", {"h1", "h2"}).ok());
  ASSERT_TRUE((*s)->put_plan("web", 2, "bundle-2", {"h1"}).ok());
  EXPECT_EQ(**(*s)->plan_for("web", "h1"), "bundle-2");
  EXPECT_EQ(**(*s)->plan_for("web", "h2"), "bundle-1");
  EXPECT_FALSE(*(*s)->plan_for("web", "h3"));
  EXPECT_FALSE(*(*s)->plan_for("db", "h1"));
}

proto::ReportBody report(std::uint64_t seq, std::vector<proto::ReportItem> items = {}) {
  proto::ReportBody b;
  b.seq = seq;
  b.items = std::move(items);
  return b;
}

proto::ReportItem health(const std::string& release, std::int64_t at, double err) {
  proto::HealthItem h;
  h.service = "web";
  h.release = release;
  h.at_ms = at;
  h.ok = true;
  h.error_rate = err;
  h.p99_ms = 20;
  return {h, std::nullopt};
}

proto::ReportItem event(const std::string& what, std::uint64_t seq, const std::string& detail) {
  return {std::nullopt, proto::EventItem{"web", 1, what, seq, detail}};
}

TEST_P(CoordinatorStores, AReportIsIngestedOnce) {
  auto s = backend_.open();
  ASSERT_TRUE((*s)->enroll(host_with_key("web-1", 1)).ok());
  EXPECT_TRUE((*s)->ingest_report("web-1", report(5, {health("v1", 100, 0.01)}), 1000)->fresh);
  EXPECT_FALSE((*s)->ingest_report("web-1", report(5, {health("v1", 200, 0.5)}), 1001)->fresh);
  EXPECT_FALSE((*s)->ingest_report("web-1", report(3), 1002)->fresh);
  EXPECT_TRUE((*s)->ingest_report("web-1", report(6), 1003)->fresh);
  EXPECT_EQ((*(*s)->host("web-1"))->last_seen, 1003);
  EXPECT_EQ((*s)->ingest_report("web-9", report(1), 1).error().code, Errc::not_found);
  EXPECT_EQ((*s)->fleet("web", 0)->samples.size(), 1u);  // the resend's sample is not there
  // Re-enrolling (same key) keeps the high-water mark.
  ASSERT_TRUE((*s)->enroll(host_with_key("web-1", 1)).ok());
  EXPECT_FALSE((*s)->ingest_report("web-1", report(6), 1004)->fresh);
}

TEST_P(CoordinatorStores, TheFleetViewFollowsWhatHostsReport) {
  auto s = backend_.open();
  ASSERT_TRUE((*s)->enroll(host_with_key("web-1", 1)).ok());
  ASSERT_TRUE((*s)->enroll(host_with_key("web-2", 2)).ok());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE((*s)->next_plan_seq("web").ok());  // seq 4 issued
  ASSERT_TRUE((*s)->ingest_report("web-1",
                                  report(1, {health("v1", 100, 0.01), event("applied", 4, "v2"),
                                             health("v2", 300, 0.02)}),
                                  1)
                  .ok());
  ASSERT_TRUE((*s)->ingest_report(
                      "web-2",
                      report(1, {health("v1", 200, 0.03), event("apply_failed", 4, "no start")}), 1)
                  .ok());
  auto f = (*s)->fleet("web", 150);
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f->running.at("web-1"), "v2");
  EXPECT_EQ(f->running.at("web-2"), "v1");
  EXPECT_EQ(f->failed_seq.at("web-2"), 4u);
  EXPECT_FALSE(f->failed_seq.count("web-1"));
  ASSERT_EQ(f->samples.size(), 2u);  // at 200 and 300, in time order
  EXPECT_EQ(f->samples[0].host, "web-2");
  EXPECT_EQ(f->samples[1].release, "v2");
  EXPECT_TRUE((*s)->fleet("db", 0)->running.empty());
  // What the fleet ran raises the next plan seq.
  EXPECT_EQ(*(*s)->next_plan_seq("web"), 5u);
  EXPECT_EQ(*(*s)->prune_samples(250), 2u);
  EXPECT_EQ((*s)->fleet("web", 0)->samples.size(), 1u);
}

// Ingest writes a sample's text without a JSON tree and finds the release a
// host already runs in its state's text without a parse: a release that
// needs escaping takes the slow path and reads back exactly, and one that
// merely contains the stored state's text is not taken for it.
TEST_P(CoordinatorStores, AReleaseOfAnyTextReadsBackExactlyAsReported) {
  auto s = backend_.open();
  ASSERT_TRUE((*s)->enroll(host_with_key("web-1", 1)).ok());
  const std::vector<std::string> releases = {"b", "b\",\"releases_kept", "b\\\"", "v\xe2\x9c\x93",
                                             "b", "b\",\"releases_kept"};
  for (std::size_t i = 0; i < releases.size(); ++i) {
    SCOPED_TRACE(releases[i]);
    const auto at = static_cast<std::int64_t>(100 * (i + 1));
    auto in = (*s)->ingest_report("web-1", report(i + 1, {health(releases[i], at, 0.25)}), 1);
    ASSERT_TRUE(in.ok()) << in.error().message;
    auto f = (*s)->fleet("web", at);
    ASSERT_TRUE(f.ok()) << f.error().message;
    EXPECT_EQ(f->running.at("web-1"), releases[i]);
    ASSERT_EQ(f->samples.size(), 1u);
    EXPECT_EQ(f->samples[0].release, releases[i]);
    EXPECT_EQ(f->samples[0].host, "web-1");
    EXPECT_EQ(f->samples[0].at_ms, at);
    EXPECT_DOUBLE_EQ(f->samples[0].error_rate, 0.25);
  }
}

// The orchestrator's read every tick (reuse_decoded) answers exactly as a
// fresh read: new samples appear, pruned ones go.
TEST_P(CoordinatorStores, TheTicksRepeatedFleetReadAnswersAsAFreshOne) {
  auto s = backend_.open();
  ASSERT_TRUE((*s)->enroll(host_with_key("web-1", 1)).ok());
  auto samples = [&](bool reuse) {
    std::vector<std::tuple<std::string, std::string, std::int64_t, double>> out;
    const auto f = (*s)->fleet("web", 0, reuse);  // held: a range over a temporary dangles
    for (const auto& x : f->samples) {
      out.emplace_back(x.host, x.release, x.at_ms, x.error_rate);
    }
    return out;
  };
  ASSERT_TRUE((*s)->ingest_report("web-1", report(1, {health("v1", 100, 0.01)}), 1).ok());
  ASSERT_EQ(samples(true).size(), 1u);
  EXPECT_EQ(samples(true), samples(false));
  // The same host and time again (the first sample stands), and a new one.
  ASSERT_TRUE((*s)->ingest_report("web-1", report(2, {health("v1", 100, 0.5)}), 2).ok());
  ASSERT_TRUE((*s)->ingest_report("web-1", report(3, {health("v2", 300, 0.02)}), 3).ok());
  EXPECT_EQ(samples(false).size(), 2u);
  EXPECT_EQ(samples(true), samples(false));
  EXPECT_EQ(*(*s)->prune_samples(200), 1u);
  EXPECT_EQ(samples(true), samples(false));
  EXPECT_EQ(samples(true).size(), 1u);
}

// A host splitting its traffic reports both slots in one report at one
// time: its release with the share it serves, and the other slot's sample
// as the control. The other slot never becomes what the host runs.
TEST_P(CoordinatorStores, BothSlotsOfASplitAreKeptAndOnlyTheHostsReleaseRuns) {
  auto s = backend_.open();
  ASSERT_TRUE((*s)->enroll(host_with_key("web-1", 1)).ok());
  proto::ReportItem mine = health("v2", 100, 0.02);
  mine.health->traffic = 50;
  mine.health->preview = true;
  mine.health->custom["requests"] = 40;
  proto::ReportItem other = health("v1", 100, 0.01);
  other.health->traffic = 950;
  other.health->other = true;
  ASSERT_TRUE((*s)->ingest_report("web-1", report(1, {mine, other}), 1).ok());
  auto f = (*s)->fleet("web", 0);
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f->running.at("web-1"), "v2");
  EXPECT_EQ(f->traffic.at("web-1"), 50);
  EXPECT_TRUE(f->previewed.count("web-1"));
  ASSERT_EQ(f->samples.size(), 2u);  // the same millisecond, both kept
  const auto& control = f->samples[0].other ? f->samples[0] : f->samples[1];
  const auto& canary = f->samples[0].other ? f->samples[1] : f->samples[0];
  EXPECT_TRUE(control.other);
  EXPECT_EQ(control.release, "v1");
  EXPECT_FALSE(canary.other);
  EXPECT_EQ(canary.requests, 40);
  // The other slot's samples count in the host's budget and are pruned with it.
  EXPECT_EQ(*(*s)->prune_samples(200), 2u);
  // The share moves on: the host's state follows.
  mine.health->traffic = 1000;
  mine.health->preview = false;
  mine.health->at_ms = 300;
  ASSERT_TRUE((*s)->ingest_report("web-1", report(2, {mine}), 2).ok());
  f = (*s)->fleet("web", 0);
  EXPECT_EQ(f->traffic.at("web-1"), 1000);
  EXPECT_FALSE(f->previewed.count("web-1"));
}

// "What ran at T" per host: each change of what a host reports running is
// kept at the host's own time, the newest kMaxHostReleases of each host.
TEST_P(CoordinatorStores, EachHostsSwitchesAreKeptAndAnswerWhatItRanAtATime) {
  auto s = backend_.open().value();
  ASSERT_TRUE(s->enroll(host_with_key("web-1", 1)).ok());
  ASSERT_TRUE(s->enroll(host_with_key("web-2", 2)).ok());
  ASSERT_TRUE(s->next_plan_seq("web").ok());
  // v1 at 100 (samples at 150 and 180 change nothing), v2 at 200, back to v1 at 400.
  ASSERT_TRUE(s->ingest_report("web-1",
                               report(1, {health("v1", 100, 0), health("v1", 150, 0),
                                          health("v1", 180, 0), health("v2", 200, 0)}),
                               1)
                  .ok());
  ASSERT_TRUE(s->ingest_report("web-1", report(2, {health("v1", 400, 0)}), 2).ok());
  ASSERT_TRUE(s->ingest_report("web-2", report(1, {health("v9", 300, 0)}), 2).ok());
  auto all = s->host_releases("web", "web-1", 0).value();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].release, "v1");
  EXPECT_EQ(all[0].since_ms, 100);
  EXPECT_EQ(all[1].release, "v2");
  EXPECT_EQ(all[1].since_ms, 200);
  EXPECT_EQ(all[2].since_ms, 400);
  EXPECT_EQ(s->host_releases("web", "web-1", 201).value().size(), 1u);
  EXPECT_FALSE(s->host_release_at("web", "web-1", 99).value());
  EXPECT_EQ(s->host_release_at("web", "web-1", 100).value()->release, "v1");
  EXPECT_EQ(s->host_release_at("web", "web-1", 399).value()->release, "v2");
  EXPECT_EQ(s->host_release_at("web", "web-1", 1'000'000).value()->release, "v1");
  // Hosts and services do not mix (web-1 is a prefix of web-10's key space).
  EXPECT_EQ(s->host_release_at("web", "web-2", 1'000).value()->release, "v9");
  EXPECT_TRUE(s->host_releases("web", "web-10", 0).value().empty());
  EXPECT_TRUE(s->host_releases("db", "web-1", 0).value().empty());
  // A host that flips often keeps its newest kMaxHostReleases switches.
  std::uint64_t seq = 3;
  for (std::size_t i = 0; i < CoordinatorStore::kMaxHostReleases + 10; ++i) {
    const std::int64_t at = 1000 + static_cast<std::int64_t>(i);
    ASSERT_TRUE(
        s->ingest_report("web-1", report(seq++, {health(i % 2 ? "v1" : "v2", at, 0)}), 3).ok());
  }
  all = s->host_releases("web", "web-1", 0).value();
  ASSERT_EQ(all.size(), CoordinatorStore::kMaxHostReleases);
  EXPECT_EQ(all.back().since_ms,
            1000 + static_cast<std::int64_t>(CoordinatorStore::kMaxHostReleases + 9));
}

TEST_P(CoordinatorStores, ManyReportsCommitTogetherAndAnUnknownHostFailsAlone) {
  auto s = backend_.open().value();
  ASSERT_TRUE(s->enroll(host_with_key("web-1", 1)).ok());
  ASSERT_TRUE(s->enroll(host_with_key("web-2", 2)).ok());
  proto::ReportBody a, b, again, ghost;
  a.seq = 1;
  proto::HealthItem h;
  h.service = "web";
  h.release = "sha256:v1";
  h.at_ms = 1000;
  h.ok = true;
  h.error_rate = 0.01;
  a.items.push_back({h, std::nullopt});
  b.seq = 1;
  h.at_ms = 1001;
  b.items.push_back({h, std::nullopt});
  again = a;  // the same report twice in one batch: ingested once
  ghost.seq = 1;
  auto r =
      s->ingest_reports({{"web-1", &a}, {"web-2", &b}, {"web-1", &again}, {"nobody", &ghost}}, 5);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 4u);
  EXPECT_TRUE((*r)[0]->fresh);
  EXPECT_TRUE((*r)[1]->fresh);
  EXPECT_FALSE((*r)[2]->fresh);
  ASSERT_FALSE((*r)[3].ok());
  EXPECT_EQ((*r)[3].error().code, Errc::not_found);
  auto f = s->fleet("web", 0).value();
  EXPECT_EQ(f.samples.size(), 2u);
  EXPECT_EQ(f.running.at("web-2"), "sha256:v1");
}

INSTANTIATE_TEST_SUITE_P(Backends, CoordinatorStores,
                         ::testing::Values(Backend::lmdb, Backend::memory), backend_name);

}  // namespace
}  // namespace drover::coordinator
