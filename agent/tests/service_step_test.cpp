// The agent's decisions for one service, event by event in virtual time: every
// transition the process-level agent tests drive through real processes
// (upgrade, rollback from disk, refusals, blue/green, failing and hanging
// starts, flags, fetch and unpack failures, recovery, health), here without
// a clock, a file or a socket.
#include <gtest/gtest.h>

#include "agent/step/service_step.hpp"
#include "agent/tests/test_time.hpp"
#include "core/world/random.hpp"

namespace drover::agent {
namespace {

using test_time::kNow;

template <class A>
std::vector<A> all_of(const std::vector<Action>& actions) {
  std::vector<A> out;
  for (const auto& a : actions) {
    if (const auto* x = std::get_if<A>(&a)) out.push_back(*x);
  }
  return out;
}

template <class A>
bool has(const std::vector<Action>& actions) {
  return !all_of<A>(actions).empty();
}

std::string field(const Fields& fields, const std::string& key) {
  for (const auto& f : fields) {
    if (f.key != key) continue;
    if (const auto* s = std::get_if<std::string>(&f.value)) return *s;
    if (const auto* i = std::get_if<std::int64_t>(&f.value)) return std::to_string(*i);
    return std::to_string(std::get<std::uint64_t>(f.value));
  }
  return "<none>";
}

std::vector<std::string> reported(const std::vector<Action>& actions) {
  std::vector<std::string> out;
  for (const auto& r : all_of<act::Report>(actions)) out.push_back(r.item.event);
  return out;
}

// One service's machine with a virtual clock, signed plans and a scripted world.
struct Machine {
  SeededRandom rnd{1};
  sign::KeyPair root = sign::KeyPair::generate(rnd);
  sign::KeyPair online = sign::KeyPair::generate(rnd);
  sign::Envelope cert =
      sign::certify(root, {"online", online.public_key(), 2, kNow - 100, kNow + 86400});
  ServiceState s;
  Observed now;
  std::vector<Action> last;

  explicit Machine(bool blue_green = false) {
    s.spec = {"web", blue_green, 3};
    now.unix_ms = kNow * 1000;
    now.mono_ms = 5'000;
    now.me = {"web-1", {"web"}, {root.public_key(), 1}};
  }

  static ContentId release(const std::string& name) { return ContentId::of("release " + name); }

  proto::Plan plan(std::uint64_t seq, const std::string& rel) {
    proto::Plan p;
    p.service = "web";
    p.seq = seq;
    p.deploy_id = "d-1";
    p.artifact = release(rel);
    p.manifest_size = 10;
    p.layers = {{ContentId::of("layer " + rel), 1000, Digest{}}};
    p.hosts = {"web-1"};
    p.tracker = "http://127.0.0.1:1";
    p.issued_at = kNow - 10;
    p.expires_at = kNow + 600;
    return p;
  }
  proto::PlanBundle bundle(const proto::Plan& p) { return *proto::sign_plan(p, online, cert); }

  const std::vector<Action>& on(Event e) {
    Step st = step(s, e, now);
    s = std::move(st.next);
    last = std::move(st.actions);
    return last;
  }
  void advance(std::int64_t ms) {
    now.mono_ms += ms;
    now.unix_ms += ms;
  }
  void slot(int i, RunState state, const std::string& rel, int exits = 0) {
    now.slots[i] = {state, rel.empty() ? "" : release(rel).str(), exits};
  }

  // Offer -> manifest -> (fetch, unpack) -> start -> one healthy probe -> commit.
  void apply_healthy(std::uint64_t seq, const std::string& rel, bool present = false) {
    on(ev::Offer{bundle(plan(seq, rel))});
    on(ev::ManifestLoaded{format::Manifest{}, present});
    if (!present) {
      on(ev::Fetched{Ok{}});
      on(ev::Unpacked{Ok{}});
    }
    if (has<act::WriteFlags>(last)) on(ev::FlagsWritten{Ok{}});
    const int i = all_of<act::StartSlot>(last).at(0).slot;
    on(ev::SlotStarted{Ok{}, true});
    slot(i, RunState::running, rel);
    on(ev::Probed{true, true, "", 30});
    if (s.spec.blue_green) on(ev::Flipped{Ok{}});
    on(ev::Committed{Ok{}});
    ASSERT_EQ(s.progress.phase, Phase::idle);
  }
};

TEST(ServiceStep, UpgradeFetchesUnpacksStartsOnceHealthyAndCommits) {
  Machine m;
  auto& a = m.on(ev::Offer{m.bundle(m.plan(1, "v1"))});
  ASSERT_EQ(all_of<act::LoadManifest>(a).size(), 1u);
  EXPECT_EQ(m.s.progress.phase, Phase::manifest);

  m.on(ev::ManifestLoaded{format::Manifest{}, false});
  ASSERT_EQ(all_of<act::Fetch>(m.last).size(), 1u);
  EXPECT_EQ(all_of<act::NoteIntent>(m.last).at(0).intent.step, "fetch");
  EXPECT_EQ(m.s.fetch_layers, 1u);
  EXPECT_EQ(m.s.fetch_bytes, 1000u);
  EXPECT_STREQ(phase_view_name(m.s.progress.phase), "fetching");

  m.advance(300);
  m.on(ev::Fetched{Ok{}});
  ASSERT_EQ(all_of<act::Unpack>(m.last).size(), 1u);
  // Synced before it is renamed into place (not without the planted bug).
  EXPECT_TRUE(all_of<act::Unpack>(m.last).at(0).durable);
  EXPECT_STREQ(phase_view_name(m.s.progress.phase), "unpacking");

  m.on(ev::Unpacked{Ok{}});
  EXPECT_EQ(all_of<act::NoteIntent>(m.last).at(0).intent.step, "switch");
  // The first release starts with its flags file in place (empty flags: {}).
  ASSERT_EQ(all_of<act::WriteFlags>(m.last).at(0).flags, "{}");
  EXPECT_FALSE(has<act::StartSlot>(m.last));
  m.on(ev::FlagsWritten{Ok{}});
  EXPECT_EQ(reported(m.last), std::vector<std::string>{"flags_written"});
  ASSERT_EQ(all_of<act::StartSlot>(m.last).size(), 1u);
  EXPECT_FALSE(has<act::Commit>(m.last));

  m.on(ev::SlotStarted{Ok{}, true});
  ASSERT_EQ(all_of<act::Probe>(m.last).size(), 1u);
  // Not answering yet: asked again 2 ms later, then 4 ms.
  m.slot(0, RunState::running, "v1");
  m.on(ev::Probed{true, false, "connection refused", 30});
  ASSERT_EQ(all_of<act::WakeAt>(m.last).at(0).mono_ms, m.now.mono_ms + 2);
  m.advance(2);
  m.on(ev::Woke{});
  ASSERT_TRUE(has<act::Probe>(m.last));
  m.on(ev::Probed{true, false, "connection refused", 30});
  ASSERT_EQ(all_of<act::WakeAt>(m.last).at(0).mono_ms, m.now.mono_ms + 4);
  EXPECT_FALSE(has<act::Commit>(m.last));
  m.advance(4);
  m.on(ev::Woke{});
  m.on(ev::Probed{true, true, "", 30});
  auto commit = all_of<act::Commit>(m.last);
  ASSERT_EQ(commit.size(), 1u);
  EXPECT_EQ(commit[0].record.current, Machine::release("v1").str());
  EXPECT_EQ(commit[0].record.seq, 1u);
  // Nothing is the record until the commit is durable.
  EXPECT_EQ(m.s.record.seq, 0u);

  m.now.downloaded_bytes = 1000;
  m.on(ev::Committed{Ok{}});
  EXPECT_EQ(m.s.record.current, Machine::release("v1").str());
  EXPECT_EQ(m.s.record.seq, 1u);
  EXPECT_FALSE(m.s.record.seq_failed);
  EXPECT_EQ(reported(m.last), std::vector<std::string>{"applied"});
  auto applied = all_of<act::Notice>(m.last);
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_EQ(applied[0].event, "applied");
  EXPECT_EQ(field(applied[0].fields, "ms"), "306");
  EXPECT_EQ(field(applied[0].fields, "downloaded"), "1000");
  EXPECT_EQ(field(applied[0].fields, "source"), "fetched");
  EXPECT_TRUE(has<act::CollectGarbage>(m.last));
  EXPECT_EQ(m.s.progress.phase, Phase::idle);
}

TEST(ServiceStep, RollbackToAReleaseOnDiskDownloadsNothing) {
  Machine m;
  m.apply_healthy(1, "v1");
  m.apply_healthy(2, "v2");
  EXPECT_EQ(m.s.record.previous, std::vector<std::string>{Machine::release("v1").str()});
  m.on(ev::Offer{m.bundle(m.plan(3, "v1"))});
  m.on(ev::ManifestLoaded{format::Manifest{}, true});
  EXPECT_FALSE(has<act::Fetch>(m.last));
  EXPECT_FALSE(has<act::Unpack>(m.last));
  ASSERT_TRUE(has<act::StartSlot>(m.last));
  m.on(ev::SlotStarted{Ok{}, true});
  m.slot(0, RunState::running, "v1");
  m.on(ev::Probed{true, true, "", 30});
  m.on(ev::Committed{Ok{}});
  EXPECT_EQ(m.s.record.current, Machine::release("v1").str());
  EXPECT_EQ(m.s.record.previous, std::vector<std::string>{Machine::release("v2").str()});
  EXPECT_EQ(m.s.record.seq, 3u);
}

TEST(ServiceStep, RefusesBadPlansAndLeavesTheRecordAlone) {
  Machine m;
  m.apply_healthy(5, "v1");
  const ServiceRecord before = m.s.record;

  SeededRandom other(9);
  const sign::KeyPair mallory = sign::KeyPair::generate(other);
  m.on(ev::Offer{*proto::sign_plan(m.plan(6, "evil"), mallory, m.cert)});
  EXPECT_EQ(reported(m.last), std::vector<std::string>{"plan_refused"});
  EXPECT_FALSE(has<act::LoadManifest>(m.last));

  m.on(ev::Offer{m.bundle(m.plan(4, "v0"))});
  EXPECT_EQ(reported(m.last), std::vector<std::string>{"replay_refused"});
  EXPECT_EQ(all_of<act::Report>(m.last).at(0).item.seq, 4u);
  // It shows the plan it holds, signed, so a coordinator restored from an
  // old backup numbers its next plan above 5 (docs/COORDINATOR.md, "Plan seqs").
  const std::string proof = all_of<act::Report>(m.last).at(0).item.proof;
  ASSERT_FALSE(proof.empty());
  auto held = proto::decode_bundle(proof);
  ASSERT_TRUE(held.ok()) << held.error().message;
  EXPECT_FALSE(held->manifest.has_value());
  auto opened =
      proto::decode_plan(sign::open(held->plan, proto::kPlanType, m.online.public_key()).value());
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(opened->seq, 5u);

  proto::Plan expired = m.plan(7, "v2");
  expired.expires_at = kNow - 1;
  m.on(ev::Offer{m.bundle(expired)});
  EXPECT_EQ(reported(m.last), std::vector<std::string>{"plan_refused"});
  EXPECT_NE(all_of<act::Report>(m.last).at(0).item.detail.find("expired"), std::string::npos);

  proto::Plan other_host = m.plan(8, "v2");
  other_host.hosts = {"web-2"};
  m.on(ev::Offer{m.bundle(other_host)});
  EXPECT_EQ(reported(m.last), std::vector<std::string>{"plan_refused"});

  // The seq already acted on: nothing at all.
  m.on(ev::Offer{m.bundle(m.plan(5, "v1"))});
  EXPECT_TRUE(m.last.empty());
  EXPECT_EQ(m.s.record, before);
  EXPECT_EQ(m.s.progress.phase, Phase::idle);
}

TEST(ServiceStep, ANewerCertificateRaisesTheTrustFloor) {
  Machine m;
  m.on(ev::Offer{m.bundle(m.plan(1, "v1"))});
  auto raised = all_of<act::RaiseTrust>(m.last);
  ASSERT_EQ(raised.size(), 1u);
  EXPECT_EQ(raised[0].min_cert_version, 2u);
  // Once the floor is there, no raise.
  Machine n;
  n.now.me.trust.min_cert_version = 2;
  n.on(ev::Offer{n.bundle(n.plan(1, "v1"))});
  EXPECT_FALSE(has<act::RaiseTrust>(n.last));
}

TEST(ServiceStep, AFailingStartPutsThePreviousReleaseBack) {
  Machine m;
  m.apply_healthy(1, "v1");
  m.on(ev::Offer{m.bundle(m.plan(2, "v2"))});
  m.on(ev::ManifestLoaded{format::Manifest{}, false});
  m.on(ev::Fetched{Ok{}});
  m.on(ev::Unpacked{Ok{}});
  m.on(ev::SlotStarted{Ok{}, true});
  m.slot(0, RunState::backoff, "v2", 2);  // died twice while starting
  m.on(ev::Probed{true, false, "connection refused", 30});
  auto restore = all_of<act::RestoreSingle>(m.last);
  ASSERT_EQ(restore.size(), 1u);
  EXPECT_EQ(restore[0].from, Machine::release("v1").str());
  EXPECT_EQ(reported(m.last), std::vector<std::string>{"apply_failed"});
  EXPECT_NE(all_of<act::Report>(m.last)[0].item.detail.find("exited 2 times"), std::string::npos);
  auto failure = all_of<act::RecordFailure>(m.last);
  ASSERT_EQ(failure.size(), 1u);
  EXPECT_EQ(failure[0].record.current, Machine::release("v1").str());
  EXPECT_TRUE(failure[0].record.seq_failed);
  EXPECT_EQ(m.s.record.seq, 2u);
  EXPECT_TRUE(m.s.record.seq_failed);
  EXPECT_EQ(m.s.progress.phase, Phase::idle);
  EXPECT_NE(m.s.last_error.find("exited"), std::string::npos);
  // The same plan pulled again is not applied again.
  m.on(ev::Offer{m.bundle(m.plan(2, "v2"))});
  EXPECT_TRUE(m.last.empty());
}

TEST(ServiceStep, AReleaseThatCannotSayHowToStartLeavesTheOldProcessAlone) {
  Machine m;
  m.apply_healthy(1, "v1");
  m.on(ev::Offer{m.bundle(m.plan(2, "v2"))});
  m.on(ev::ManifestLoaded{format::Manifest{}, true});
  m.on(ev::SlotStarted{make_error(Errc::invalid_argument, "drover-service.json: no start"), false});
  EXPECT_FALSE(has<act::RestoreSingle>(m.last));
  EXPECT_EQ(reported(m.last), std::vector<std::string>{"apply_failed"});
  EXPECT_EQ(m.s.record.current, Machine::release("v1").str());
}

TEST(ServiceStep, AHangingStartTimesOutAtItsDeadlineInVirtualTime) {
  Machine m;
  m.apply_healthy(1, "v1");
  m.on(ev::Offer{m.bundle(m.plan(2, "v2"))});
  m.on(ev::ManifestLoaded{format::Manifest{}, true});
  m.on(ev::SlotStarted{Ok{}, true});
  m.slot(0, RunState::running, "v2");
  const std::int64_t began = m.now.mono_ms;
  int probes = 0;
  for (;;) {
    m.on(ev::Probed{true, false, "HTTP 503", 2});
    ++probes;
    auto wake = all_of<act::WakeAt>(m.last);
    ASSERT_EQ(wake.size(), 1u);
    ASSERT_LE(wake[0].mono_ms - m.now.mono_ms, 100);  // never waits more than 100 ms
    m.now.mono_ms = wake[0].mono_ms;
    m.on(ev::Woke{});
    if (!has<act::Probe>(m.last)) break;
  }
  EXPECT_GE(m.now.mono_ms - began, 2000);
  EXPECT_LT(m.now.mono_ms - began, 2100);
  EXPECT_GT(probes, 15);
  ASSERT_EQ(reported(m.last), std::vector<std::string>{"apply_failed"});
  const std::string why = all_of<act::Report>(m.last)[0].item.detail;
  EXPECT_NE(why.find("not healthy within 2 s"), std::string::npos) << why;
  EXPECT_NE(why.find("HTTP 503"), std::string::npos) << why;
  EXPECT_TRUE(has<act::RestoreSingle>(m.last));
}

TEST(ServiceStep, WithoutAnEndpointHealthyMeansStillRunningASecondLater) {
  Machine m;
  m.on(ev::Offer{m.bundle(m.plan(1, "v1"))});
  m.on(ev::ManifestLoaded{format::Manifest{}, true});
  m.on(ev::FlagsWritten{Ok{}});
  m.on(ev::SlotStarted{Ok{}, true});
  m.slot(0, RunState::running, "v1");
  m.on(ev::Probed{false, false, "", 30});
  for (int i = 0; i < 100 && !has<act::Commit>(m.last); ++i) {
    auto wake = all_of<act::WakeAt>(m.last);
    ASSERT_EQ(wake.size(), 1u);
    m.now.mono_ms = wake[0].mono_ms;
    m.on(ev::Woke{});
    m.on(ev::Probed{false, false, "", 30});
  }
  ASSERT_TRUE(has<act::Commit>(m.last));

  // One that exits within that second fails.
  Machine n;
  n.on(ev::Offer{n.bundle(n.plan(1, "v1"))});
  n.on(ev::ManifestLoaded{format::Manifest{}, true});
  n.on(ev::FlagsWritten{Ok{}});
  n.on(ev::SlotStarted{Ok{}, true});
  n.slot(0, RunState::backoff, "v1", 1);
  n.on(ev::Probed{false, false, "", 30});
  EXPECT_EQ(reported(n.last), std::vector<std::string>{"apply_failed"});
  EXPECT_NE(all_of<act::Report>(n.last)[0].item.detail.find("exited during start"),
            std::string::npos);
  // The first release has nothing to go back to.
  ASSERT_EQ(all_of<act::RestoreSingle>(n.last).size(), 1u);
  EXPECT_EQ(all_of<act::RestoreSingle>(n.last)[0].from, "");
}

TEST(ServiceStep, BlueGreenFlipsOnlyOnceTheNewSlotIsHealthy) {
  Machine m(true);
  m.apply_healthy(1, "v1");  // blue
  EXPECT_EQ(m.s.record.active_slot, "blue");
  m.on(ev::Offer{m.bundle(m.plan(2, "v2"))});
  m.on(ev::ManifestLoaded{format::Manifest{}, true});
  auto start = all_of<act::StartSlot>(m.last);
  ASSERT_EQ(start.size(), 1u);
  EXPECT_EQ(start[0].slot, 1);  // green, the idle one
  m.on(ev::SlotStarted{Ok{}, true});
  m.slot(1, RunState::running, "v2");
  m.on(ev::Probed{true, false, "starting", 30});
  EXPECT_FALSE(has<act::Flip>(m.last));
  m.advance(2);
  m.on(ev::Woke{});
  m.on(ev::Probed{true, true, "", 30});
  auto flip = all_of<act::Flip>(m.last);
  ASSERT_EQ(flip.size(), 1u);
  EXPECT_EQ(flip[0].slot, 1);
  EXPECT_FALSE(has<act::Commit>(m.last));
  m.on(ev::Flipped{Ok{}});
  EXPECT_EQ(reported(m.last), std::vector<std::string>{"switched"});
  m.on(ev::Committed{Ok{}});
  EXPECT_EQ(m.s.record.active_slot, "green");
  EXPECT_EQ(m.s.record.slots.at("blue"), Machine::release("v1").str());
  EXPECT_EQ(m.s.record.slots.at("green"), Machine::release("v2").str());
  EXPECT_EQ(serving_slot(m.s), 1);

  // Rolling back to the release the blue slot still runs: no restart, a flip.
  m.slot(0, RunState::running, "v1");
  m.on(ev::Offer{m.bundle(m.plan(3, "v1"))});
  m.on(ev::ManifestLoaded{format::Manifest{}, true});
  EXPECT_FALSE(has<act::StartSlot>(m.last));
  ASSERT_EQ(all_of<act::Probe>(m.last).at(0).slot, 0);
  m.on(ev::Probed{true, true, "", 30});
  ASSERT_EQ(all_of<act::Flip>(m.last).at(0).slot, 0);
  m.on(ev::Flipped{Ok{}});
  m.on(ev::Committed{Ok{}});
  EXPECT_EQ(m.s.record.active_slot, "blue");
}

TEST(ServiceStep, BlueGreenAWarmSlotThatDoesNotAnswerIsStartedAfresh) {
  Machine m(true);
  m.apply_healthy(1, "v1");
  m.apply_healthy(2, "v2");  // green active, blue keeps v1
  m.slot(0, RunState::running, "v1");
  m.on(ev::Offer{m.bundle(m.plan(3, "v1"))});
  m.on(ev::ManifestLoaded{format::Manifest{}, true});
  ASSERT_TRUE(has<act::Probe>(m.last));
  // It never answers within its start timeout.
  for (int i = 0; i < 1000 && !has<act::StartSlot>(m.last); ++i) {
    m.on(ev::Probed{true, false, "HTTP 500", 1});
    if (has<act::StartSlot>(m.last)) break;
    m.now.mono_ms = all_of<act::WakeAt>(m.last).at(0).mono_ms;
    m.on(ev::Woke{});
  }
  ASSERT_EQ(all_of<act::StartSlot>(m.last).at(0).slot, 0);
  EXPECT_FALSE(has<act::RecordFailure>(m.last));
  // Started afresh, it fails too: the slot is stopped and forgotten, the
  // active green slot never touched.
  m.on(ev::SlotStarted{make_error(Errc::io, "spawn failed"), true});
  auto restore = all_of<act::RestoreIdle>(m.last);
  ASSERT_EQ(restore.size(), 1u);
  EXPECT_EQ(restore[0].slot, 0);
  EXPECT_EQ(restore[0].release, Machine::release("v1").str());
  EXPECT_FALSE(has<act::RestoreSingle>(m.last));
  EXPECT_EQ(m.s.record.active_slot, "green");
  EXPECT_EQ(m.s.record.slots.count("blue"), 0u);
  EXPECT_TRUE(m.s.record.seq_failed);
}

TEST(ServiceStep, FlagsFollowThePlanWithoutARestart) {
  Machine m;
  m.apply_healthy(1, "v1");
  proto::Plan p = m.plan(2, "v1");
  p.flags["new_checkout"] = proto::FlagValue{};
  p.flags["new_checkout"].is_percent = true;
  p.flags["new_checkout"].percent = 25;
  m.on(ev::Offer{m.bundle(p)});
  m.on(ev::ManifestLoaded{format::Manifest{}, true});
  auto write = all_of<act::WriteFlags>(m.last);
  ASSERT_EQ(write.size(), 1u);
  EXPECT_EQ(write[0].flags, R"({"new_checkout":25})");
  m.on(ev::FlagsWritten{Ok{}});
  EXPECT_EQ(reported(m.last), std::vector<std::string>{"flags_written"});
  EXPECT_FALSE(has<act::StartSlot>(m.last));
  ASSERT_TRUE(has<act::Commit>(m.last));
  m.on(ev::Committed{Ok{}});
  EXPECT_EQ(m.s.record.flags, R"({"new_checkout":25})");
  EXPECT_EQ(m.s.record.current, Machine::release("v1").str());

  // A flags file that cannot be written fails the plan; the record keeps its flags.
  proto::Plan q = m.plan(3, "v1");
  m.on(ev::Offer{m.bundle(q)});
  m.on(ev::ManifestLoaded{format::Manifest{}, true});
  m.on(ev::FlagsWritten{make_error(Errc::io, "disk full")});
  EXPECT_EQ(reported(m.last), std::vector<std::string>{"apply_failed"});
  EXPECT_NE(all_of<act::Report>(m.last)[0].item.detail.find("flags: disk full"), std::string::npos);
  EXPECT_EQ(m.s.record.flags, R"({"new_checkout":25})");
}

TEST(ServiceStep, ANewReleaseThatFailsPutsTheOldFlagsBack) {
  Machine m;
  m.apply_healthy(1, "v1");
  proto::Plan p = m.plan(2, "v2");
  p.flags["dark"] = proto::FlagValue{};
  m.on(ev::Offer{m.bundle(p)});
  m.on(ev::ManifestLoaded{format::Manifest{}, true});
  m.on(ev::FlagsWritten{Ok{}});
  m.on(ev::SlotStarted{make_error(Errc::io, "spawn failed"), true});
  auto put = all_of<act::PutFlags>(m.last);
  ASSERT_EQ(put.size(), 1u);
  EXPECT_EQ(put[0].flags, "{}");
}

TEST(ServiceStep, AFetchThatFailsIsTriedAgainAtTheNextPull) {
  Machine m;
  m.on(ev::Offer{m.bundle(m.plan(1, "v1"))});
  m.on(ev::ManifestLoaded{format::Manifest{}, false});
  m.on(ev::Fetched{make_error(Errc::corrupt, "layer failed its hash from every source")});
  EXPECT_TRUE(has<act::ClearIntent>(m.last));
  EXPECT_EQ(reported(m.last), std::vector<std::string>{"fetch_failed"});
  EXPECT_FALSE(has<act::RecordFailure>(m.last));
  EXPECT_EQ(m.s.record.seq, 0u);
  EXPECT_EQ(m.s.progress.phase, Phase::idle);
  // The same plan again: fetched again.
  m.on(ev::Offer{m.bundle(m.plan(1, "v1"))});
  EXPECT_TRUE(has<act::LoadManifest>(m.last));
}

TEST(ServiceStep, AHostileLayerIsRefusedAtUnpackAndThePlanFails) {
  Machine m;
  m.on(ev::Offer{m.bundle(m.plan(1, "v1"))});
  m.on(ev::ManifestLoaded{format::Manifest{}, false});
  m.on(ev::Fetched{Ok{}});
  m.on(ev::Unpacked{make_error(Errc::refused, "entry '../etc/passwd' leaves the release")});
  EXPECT_EQ(reported(m.last), std::vector<std::string>{"apply_failed"});
  EXPECT_NE(all_of<act::Report>(m.last)[0].item.detail.find("unpack: entry"), std::string::npos);
  EXPECT_FALSE(has<act::StartSlot>(m.last));
  EXPECT_TRUE(m.s.record.seq_failed);
}

TEST(ServiceStep, AManifestThatDidNotArriveIsRetriedOneThatArrivedWrongFailsThePlan) {
  Machine m;
  m.on(ev::Offer{m.bundle(m.plan(1, "v1"))});
  m.on(ev::ManifestLoaded{make_error(Errc::timeout, "no answer"), false});
  EXPECT_EQ(m.s.progress.phase, Phase::idle);
  EXPECT_EQ(m.s.record.seq, 0u);
  EXPECT_TRUE(reported(m.last).empty());
  m.on(ev::Offer{m.bundle(m.plan(1, "v1"))});
  m.on(ev::ManifestLoaded{make_error(Errc::corrupt, "manifest hash differs"), false});
  EXPECT_EQ(reported(m.last), std::vector<std::string>{"plan_refused"});
  EXPECT_EQ(m.s.record.seq, 1u);
  EXPECT_TRUE(m.s.record.seq_failed);
}

TEST(ServiceStep, KeepsTheLastKReleasesAndCollectsTheRest) {
  Machine m;
  for (int i = 1; i <= 5; ++i) m.apply_healthy(i, "v" + std::to_string(i));
  EXPECT_EQ(m.s.record.current, Machine::release("v5").str());
  EXPECT_EQ(m.s.record.previous,
            (std::vector<std::string>{Machine::release("v4").str(), Machine::release("v3").str()}));
  EXPECT_TRUE(has<act::CollectGarbage>(m.last));
}

TEST(ServiceStep, APlanOfferedWhileBusyIsConsideredOnceIdle) {
  Machine m;
  m.on(ev::Offer{m.bundle(m.plan(1, "v1"))});
  m.on(ev::ManifestLoaded{format::Manifest{}, false});
  m.on(ev::Offer{m.bundle(m.plan(2, "v2"))});
  EXPECT_TRUE(m.last.empty());
  ASSERT_TRUE(m.s.pending.has_value());
  m.on(ev::Fetched{make_error(Errc::timeout, "stalled")});
  // Back at idle: the kept plan is checked and its manifest asked for.
  auto load = all_of<act::LoadManifest>(m.last);
  ASSERT_EQ(load.size(), 1u);
  EXPECT_EQ(load[0].plan.seq, 2u);
  EXPECT_FALSE(m.s.pending.has_value());
}

TEST(ServiceStep, RecoveryBringsTheRecordedReleasesBackAndDropsTheIntent) {
  ServiceState single;
  single.spec = {"web", false, 3};
  single.record.current = Machine::release("v2").str();
  single.record.flags = R"({"x":true})";
  single.record.seq = 7;
  Step r = recover(single, Intent{"switch", 8, Machine::release("v3").str(), ""});
  ASSERT_TRUE(has<act::CleanLeftovers>(r.actions));
  EXPECT_TRUE(has<act::ClearIntent>(r.actions));
  ASSERT_EQ(all_of<act::PutFlags>(r.actions).size(), 1u);
  EXPECT_EQ(all_of<act::PutFlags>(r.actions)[0].seq, 7u);
  ASSERT_EQ(all_of<act::RecoverCurrent>(r.actions).size(), 1u);
  EXPECT_EQ(all_of<act::RecoverCurrent>(r.actions)[0].release, Machine::release("v2").str());

  ServiceState bg;
  bg.spec = {"web", true, 3};
  bg.record.active_slot = "green";
  bg.record.slots = {{"blue", Machine::release("v1").str()},
                     {"green", Machine::release("v2").str()}};
  Step b = recover(bg, std::nullopt);
  EXPECT_FALSE(has<act::ClearIntent>(b.actions));
  EXPECT_FALSE(has<act::PutFlags>(b.actions));
  EXPECT_EQ(all_of<act::RecoverSlot>(b.actions).size(), 2u);
  ASSERT_EQ(all_of<act::RecoverActive>(b.actions).size(), 1u);
  EXPECT_EQ(all_of<act::RecoverActive>(b.actions)[0].slot, 1);

  ServiceState fresh;
  fresh.spec = {"web", false, 3};
  EXPECT_FALSE(has<act::RecoverCurrent>(recover(fresh, std::nullopt).actions));
}

TEST(ServiceStep, ACrashLoopingServiceIsReportedUnhealthy) {
  Machine m;
  EXPECT_FALSE(health_item(m.s, m.now.slots[0], std::nullopt, m.now.unix_ms).has_value());
  m.apply_healthy(1, "v1");
  m.slot(0, RunState::crash_loop, "v1", 6);
  auto h = health_item(m.s, m.now.slots[0], std::nullopt, m.now.unix_ms);
  ASSERT_TRUE(h.has_value());
  EXPECT_FALSE(h->ok);
  EXPECT_EQ(h->error, "crash loop: 6 exits since start");
  EXPECT_EQ(h->state, "crash_loop");
  m.slot(0, RunState::running, "v1");
  proto::HealthItem probed;
  probed.ok = true;
  probed.error_rate = 0.5;
  h = health_item(m.s, m.now.slots[0], probed, m.now.unix_ms);
  EXPECT_TRUE(h->ok);
  EXPECT_EQ(h->error_rate, 0.5);
  EXPECT_EQ(h->release, Machine::release("v1").str());
  EXPECT_EQ(h->service, "web");
}

TEST(ServiceStep, PullsBackOffWhileTheCoordinatorIsAway) {
  EXPECT_EQ(next_pull_wait_ms(true, 0, 30'000), 30'000);
  EXPECT_EQ(next_pull_wait_ms(false, 1, 30'000), 500);
  EXPECT_EQ(next_pull_wait_ms(false, 2, 30'000), 1000);
  EXPECT_EQ(next_pull_wait_ms(false, 4, 30'000), 4000);
  EXPECT_EQ(next_pull_wait_ms(false, 40, 30'000), 30'000);
  Machine m;
  m.apply_healthy(3, "v1");
  EXPECT_FALSE(wants_pull(m.s.record, 3));
  EXPECT_TRUE(wants_pull(m.s.record, 4));
}

// ---- traffic shares, previews and scale-down (issue 15) ----

struct SplitMachine : Machine {
  SplitMachine() : Machine(true) {
    s.spec.weighted_router = true;
    apply_healthy(1, "v1");  // blue runs v1 with all traffic
    slot(0, RunState::running, "v1");
  }
  proto::Plan split(std::uint64_t seq, const std::string& rel, const std::string& extra) {
    proto::Plan p = plan(seq, rel);
    p.strategy_kind = "blue_green";
    p.strategy_extra = extra;
    return p;
  }
};

TEST(ServiceStep, TrafficSharesReweightTheRouterWithoutAStartAndAnAbortGoesBackWarm) {
  SplitMachine m;
  m.on(ev::Offer{m.bundle(m.split(2, "v2", R"({"traffic":50})"))});
  m.on(ev::ManifestLoaded{format::Manifest{}, false});
  m.on(ev::Fetched{Ok{}});
  m.on(ev::Unpacked{Ok{}});
  ASSERT_EQ(all_of<act::StartSlot>(m.last).at(0).slot, 1);  // the idle slot
  m.on(ev::SlotStarted{Ok{}, true});
  m.slot(1, RunState::running, "v2");
  m.on(ev::Probed{true, true, "", 30});
  auto flip = all_of<act::Flip>(m.last);
  ASSERT_EQ(flip.size(), 1u);
  EXPECT_EQ(flip[0].slot, 1);
  EXPECT_EQ(flip[0].traffic, 50);
  EXPECT_FALSE(flip[0].preview);
  m.on(ev::Flipped{Ok{}});
  m.on(ev::Committed{Ok{}});
  EXPECT_EQ(m.s.record.active_slot, "green");
  EXPECT_EQ(m.s.record.traffic, 50);
  EXPECT_EQ(m.s.record.current, Machine::release("v2").str());
  EXPECT_EQ(m.s.record.slots.at("blue"), Machine::release("v1").str());

  // The next step of the canary: the router only (no start, no probe).
  m.on(ev::Offer{m.bundle(m.split(3, "v2", R"({"traffic":250})"))});
  m.on(ev::ManifestLoaded{format::Manifest{}, true});
  EXPECT_FALSE(has<act::StartSlot>(m.last));
  EXPECT_FALSE(has<act::Probe>(m.last));
  flip = all_of<act::Flip>(m.last);
  ASSERT_EQ(flip.size(), 1u);
  EXPECT_EQ(flip[0].slot, 1);
  EXPECT_EQ(flip[0].traffic, 250);
  m.on(ev::Flipped{Ok{}});
  m.on(ev::Committed{Ok{}});
  EXPECT_EQ(m.s.record.traffic, 250);
  EXPECT_EQ(m.s.record.seq, 3u);

  // The abort: v1 at 1000 goes back to the warm blue slot, probed, never restarted.
  m.on(ev::Offer{m.bundle(m.plan(4, "v1"))});
  m.on(ev::ManifestLoaded{format::Manifest{}, true});
  EXPECT_FALSE(has<act::StartSlot>(m.last));
  ASSERT_EQ(all_of<act::Probe>(m.last).at(0).slot, 0);
  m.on(ev::Probed{true, true, "", 30});
  flip = all_of<act::Flip>(m.last);
  ASSERT_EQ(flip.size(), 1u);
  EXPECT_EQ(flip[0].slot, 0);
  EXPECT_EQ(flip[0].traffic, 1000);
  m.on(ev::Flipped{Ok{}});
  m.on(ev::Committed{Ok{}});
  EXPECT_EQ(m.s.record.active_slot, "blue");
  EXPECT_EQ(m.s.record.traffic, 1000);
  EXPECT_EQ(m.s.record.current, Machine::release("v1").str());
}

TEST(ServiceStep, APreviewAtNoTrafficThenTheFlipThenTheOldSlotStopsAfterItsDelay) {
  SplitMachine m;
  m.on(ev::Offer{m.bundle(m.split(2, "v2", R"({"preview":true,"traffic":0})"))});
  m.on(ev::ManifestLoaded{format::Manifest{}, true});
  m.on(ev::SlotStarted{Ok{}, true});
  m.slot(1, RunState::running, "v2");
  m.on(ev::Probed{true, true, "", 30});
  auto flip = all_of<act::Flip>(m.last);
  ASSERT_EQ(flip.size(), 1u);
  EXPECT_EQ(flip[0].traffic, 0);
  EXPECT_TRUE(flip[0].preview);
  m.on(ev::Flipped{Ok{}});
  m.on(ev::Committed{Ok{}});
  EXPECT_TRUE(m.s.record.preview);
  EXPECT_EQ(m.s.record.traffic, 0);
  EXPECT_EQ(m.s.record.stop_idle_at_ms, 0);

  m.on(ev::Offer{m.bundle(m.split(3, "v2", R"({"scale_down_s":60,"traffic":1000})"))});
  m.on(ev::ManifestLoaded{format::Manifest{}, true});
  flip = all_of<act::Flip>(m.last);
  ASSERT_EQ(flip.size(), 1u);
  EXPECT_EQ(flip[0].traffic, 1000);
  EXPECT_FALSE(flip[0].preview);
  m.on(ev::Flipped{Ok{}});
  m.on(ev::Committed{Ok{}});
  EXPECT_EQ(m.s.record.stop_idle_at_ms, m.now.unix_ms + 60'000);

  m.advance(59'000);
  m.on(ev::Tick{});
  EXPECT_TRUE(m.last.empty());
  m.advance(1'000);
  m.on(ev::Tick{});
  ASSERT_EQ(all_of<act::StopSlot>(m.last).at(0).slot, 0);
  const auto stored = all_of<act::StoreRecord>(m.last);
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_FALSE(stored[0].record.slots.count("blue"));
  EXPECT_EQ(stored[0].record.stop_idle_at_ms, 0);
  EXPECT_EQ(reported(m.last), std::vector<std::string>{"scaled_down"});
  m.on(ev::Tick{});
  EXPECT_TRUE(m.last.empty());
}

TEST(ServiceStep, ASplitAHostCannotRouteIsRefusedAndRecordedNamingWhy) {
  Machine single;
  single.apply_healthy(1, "v1");
  proto::Plan p = single.plan(2, "v2");
  p.strategy_kind = "canary";
  p.strategy_extra = R"({"traffic":50})";
  single.on(ev::Offer{single.bundle(p)});
  EXPECT_EQ(reported(single.last), std::vector<std::string>{"plan_refused"});
  ASSERT_EQ(all_of<act::RecordFailure>(single.last).size(), 1u);
  EXPECT_TRUE(single.s.record.seq_failed);
  EXPECT_EQ(single.s.record.seq, 2u);
  EXPECT_NE(all_of<act::Report>(single.last).at(0).item.detail.find("runs one slot"),
            std::string::npos);

  // The file router names one slot: no share, no preview; all or nothing is fine.
  Machine file(true);
  file.apply_healthy(1, "v1");
  file.slot(0, RunState::running, "v1");
  p = file.plan(2, "v2");
  p.strategy_kind = "blue_green";
  p.strategy_extra = R"({"preview":true,"traffic":0})";
  file.on(ev::Offer{file.bundle(p)});
  EXPECT_NE(all_of<act::Report>(file.last).at(0).item.detail.find("the file"), std::string::npos);
  p.seq = 3;
  p.strategy_extra = R"({"traffic":0})";
  file.on(ev::Offer{file.bundle(p)});
  EXPECT_TRUE(has<act::LoadManifest>(file.last));
}

TEST(ServiceStep, ANewReleaseNeverStartsInASlotThatStillCarriesTraffic) {
  SplitMachine m;
  m.on(ev::Offer{m.bundle(m.split(2, "v2", R"({"traffic":50})"))});
  m.on(ev::ManifestLoaded{format::Manifest{}, true});
  m.on(ev::SlotStarted{Ok{}, true});
  m.slot(1, RunState::running, "v2");
  m.on(ev::Probed{true, true, "", 30});
  m.on(ev::Flipped{Ok{}});
  m.on(ev::Committed{Ok{}});
  // v3 would start in blue, which serves 950 per mille: refused.
  m.on(ev::Offer{m.bundle(m.plan(3, "v3"))});
  m.on(ev::ManifestLoaded{format::Manifest{}, true});
  EXPECT_FALSE(has<act::StartSlot>(m.last));
  EXPECT_EQ(reported(m.last), std::vector<std::string>{"apply_failed"});
  EXPECT_NE(all_of<act::Report>(m.last).at(0).item.detail.find("still carries 950 per mille"),
            std::string::npos);
  EXPECT_EQ(m.s.record.traffic, 50);
  EXPECT_EQ(m.s.record.active_slot, "green");

  // A share for a slot with nothing running beside it is refused too.
  Machine fresh(true);
  fresh.s.spec.weighted_router = true;
  proto::Plan p = fresh.plan(1, "v1");
  p.strategy_kind = "blue_green";
  p.strategy_extra = R"({"traffic":100})";
  fresh.on(ev::Offer{fresh.bundle(p)});
  fresh.on(ev::ManifestLoaded{format::Manifest{}, true});
  EXPECT_EQ(reported(fresh.last), std::vector<std::string>{"apply_failed"});
  EXPECT_NE(all_of<act::Report>(fresh.last).at(0).item.detail.find("runs no release"),
            std::string::npos);
}

// ---- flag sets (issue 15) ----

proto::FlagSet flagset(std::uint64_t seq, int percent, std::vector<std::string> hosts = {"web-1"}) {
  proto::FlagSet f;
  f.service = "web";
  f.env = "production";
  f.seq = seq;
  f.hosts = std::move(hosts);
  f.flags["checkout"] = {true, false, percent};
  f.issued_at = kNow - 5;
  return f;
}

TEST(ServiceStep, AFlagSetRewritesTheFlagsFileAloneAndPlansNoLongerDo) {
  Machine m;
  m.apply_healthy(1, "v1");
  const auto sign = [&](const proto::FlagSet& f) {
    return *proto::sign_flagset(f, m.online, m.cert);
  };
  m.on(ev::FlagsOffer{sign(flagset(3, 25))});
  auto write = all_of<act::WriteFlags>(m.last);
  ASSERT_EQ(write.size(), 1u);
  EXPECT_EQ(write[0].flags, R"({"checkout":25})");
  EXPECT_EQ(write[0].seq, 3u);
  EXPECT_FALSE(has<act::StartSlot>(m.last));
  m.on(ev::FlagsWritten{Ok{}});
  const auto stored = all_of<act::StoreRecord>(m.last);
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].record.flags_seq, 3u);
  EXPECT_EQ(stored[0].record.seq, 1u);  // the plan held is untouched
  EXPECT_EQ(reported(m.last), std::vector<std::string>{"flags_applied"});
  EXPECT_EQ(all_of<act::Report>(m.last)[0].item.detail, R"({"seq":3})");
  EXPECT_EQ(m.s.progress.phase, Phase::idle);

  // The same seq again: nothing. An older one: a replay, refused.
  m.on(ev::FlagsOffer{sign(flagset(3, 25))});
  EXPECT_TRUE(m.last.empty());
  m.on(ev::FlagsOffer{sign(flagset(2, 100))});
  EXPECT_EQ(reported(m.last), std::vector<std::string>{"flags_refused"});
  EXPECT_FALSE(has<act::WriteFlags>(m.last));

  // A plan with flags of its own no longer writes the file: the flag set rules.
  proto::Plan p = m.plan(2, "v2");
  p.flags["checkout"] = {true, false, 100};
  m.on(ev::Offer{m.bundle(p)});
  m.on(ev::ManifestLoaded{format::Manifest{}, true});
  EXPECT_FALSE(has<act::WriteFlags>(m.last));
  m.on(ev::SlotStarted{Ok{}, true});
  m.slot(0, RunState::running, "v2");
  m.on(ev::Probed{true, true, "", 30});
  ASSERT_EQ(all_of<act::Commit>(m.last).at(0).record.flags, R"({"checkout":25})");
  m.on(ev::Committed{Ok{}});
  EXPECT_EQ(m.s.record.flags_seq, 3u);
}

TEST(ServiceStep, AFlagSetForAnotherHostOrSignedByAnotherKeyIsRefused) {
  Machine m;
  m.apply_healthy(1, "v1");
  m.on(ev::FlagsOffer{*proto::sign_flagset(flagset(3, 25, {"web-2"}), m.online, m.cert)});
  EXPECT_EQ(reported(m.last), std::vector<std::string>{"flags_refused"});
  EXPECT_NE(all_of<act::Report>(m.last)[0].item.detail.find("does not list this host"),
            std::string::npos);
  SeededRandom other_rnd{9};
  const sign::KeyPair forger = sign::KeyPair::generate(other_rnd);
  m.on(ev::FlagsOffer{*proto::sign_flagset(flagset(4, 25), forger, m.cert)});
  EXPECT_EQ(reported(m.last), std::vector<std::string>{"flags_refused"});
  EXPECT_FALSE(has<act::WriteFlags>(m.last));
  EXPECT_EQ(m.s.record.flags_seq, 0u);
  // A write that fails records nothing; the next pull brings it again.
  m.on(ev::FlagsOffer{*proto::sign_flagset(flagset(5, 25), m.online, m.cert)});
  m.on(ev::FlagsWritten{make_error(Errc::io, "disk full")});
  EXPECT_EQ(reported(m.last), std::vector<std::string>{"flags_refused"});
  EXPECT_EQ(m.s.record.flags_seq, 0u);
  EXPECT_EQ(m.s.progress.phase, Phase::idle);
}

}  // namespace
}  // namespace drover::agent
