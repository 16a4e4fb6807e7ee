// Attacks by enrolled hosts and by whoever can reach the agent protocol
// (issue 11, items 1-7; docs/SECURITY.md): each performs the attack through
// the coordinator's real gateway on a real LMDB state, and shows it refused
// with nothing lost: other hosts' reports still ingested, the plan seqs and
// health of other services untouched.
#include <gtest/gtest.h>

#include "coordinator/gateway/agent_gateway.hpp"
#include "coordinator/store/kv_codec.hpp"
#include "coordinator/store/lmdb_coordinator_store.hpp"
#include "core/sign/secret_box.hpp"
#include "tests/support/test_support.hpp"

namespace drover::coordinator {
namespace {

using drover::testing::TempDir;
using namespace std::chrono_literals;

struct Host {
  std::string name;
  sign::KeyPair key;
  std::string report_key;
  std::uint64_t seq = 0;  // the last report seq sent
};

class HostileHosts : public ::testing::Test {
 protected:
  HostileHosts() { open(LmdbCoordinatorStore::kDefaultMapBytes); }

  void open(std::uint64_t map_bytes, AgentGateway::ManifestLookup manifests = nullptr,
            AgentGateway::ReportHandler reports = nullptr) {
    gateway_.reset();
    store_.reset();
    store_ = LmdbCoordinatorStore::open(dir_.path() / "state", map_bytes).value();
    const std::int64_t now = unix_seconds(clock_.now());
    keys_ = std::make_unique<OnlineKeySigner>(OnlineKey{
        online_, sign::certify(root_, {"online", online_.public_key(), 1, now - 60, now + 86400})});
    gateway_ = AgentGateway::start({}, *store_, *keys_, std::move(manifests), std::move(reports),
                                   clock_, log_)
                   .value();
    CoordinatorStore::JoinTokenSpec spec;
    spec.uses = 100;
    ASSERT_TRUE(store_->add_join_token("join-1", "admin", now, spec).ok());
  }

  std::int64_t now_s() const { return unix_seconds(clock_.now()); }
  std::int64_t now_ms() const { return unix_ms(clock_.now()); }

  proto::EnrollBody enroll_body(const Host& h, std::vector<std::string> services) {
    proto::EnrollBody b;
    b.host = h.name;
    b.region = "eu";
    b.cluster = "c1";
    b.services = std::move(services);
    b.public_key = h.key.public_key();
    b.mesh_peer = "127.0.0.1:7000";
    b.join_token = "join-1";
    b.at = now_s();
    b.sealed_mac_key = sign::seal_to(online_.public_key(), h.report_key).value();
    return b;
  }
  std::string enroll_bytes(const Host& h, const proto::EnrollBody& b) {
    proto::Request r{std::string(proto::kEnroll), h.name, proto::to_json(b).dump(), "", ""};
    proto::sign_enroll(r, h.key);
    return proto::encode_request(r);
  }
  Result<proto::Reply> answer(const std::string& bytes) {
    return proto::decode_reply(gateway_->handle(bytes));
  }
  Host host(const std::string& name, std::vector<std::string> services = {"web"}) {
    Host h{name, sign::KeyPair::generate(rnd_), rnd_.bytes(32)};
    auto r = answer(enroll_bytes(h, enroll_body(h, std::move(services))));
    EXPECT_TRUE(r.ok()) << r.error().message;
    return h;
  }
  // A report as the host's agent sends it (MAC under its report key); the
  // body may be any JSON, to send what no agent would.
  Result<proto::Reply> send_body(Host& h, const nlohmann::json& body) {
    proto::Request r{std::string(proto::kReport), h.name, body.dump(), "", ""};
    proto::mac_request(r, h.report_key);
    return answer(proto::encode_request(r));
  }
  Result<proto::Reply> send(Host& h, std::vector<proto::ReportItem> items) {
    proto::ReportBody b;
    b.seq = ++h.seq;
    b.sent_at_ms = now_ms();
    b.items = std::move(items);
    return send_body(h, proto::to_json(b));
  }
  static std::string release_id(const std::string& name) { return ContentId::of(name).str(); }
  proto::ReportItem sample(const std::string& service, std::int64_t at_ms, double error_rate) {
    proto::HealthItem s;
    s.service = service;
    s.release = release_id("v1");
    s.at_ms = at_ms;
    s.ok = true;
    s.error_rate = error_rate;
    return {s, std::nullopt};
  }
  proto::ReportItem event(const std::string& service, const std::string& what, std::uint64_t seq,
                          const std::string& detail = "") {
    return {std::nullopt, proto::EventItem{service, now_ms(), what, seq, detail}};
  }
  bool logged(const std::string& event) const {
    for (const auto& l : sink_.lines()) {
      if (l.find("event=" + event) != std::string::npos) return true;
    }
    return false;
  }

  TempDir dir_;
  SeededRandom rnd_{11};
  ManualClock clock_{SystemTime(std::chrono::seconds(1'800'000'000))};
  MemorySink sink_;
  Logger log_{sink_, clock_, LogLevel::debug};
  sign::KeyPair root_ = sign::KeyPair::generate(rnd_);
  sign::KeyPair online_ = sign::KeyPair::generate(rnd_);
  std::unique_ptr<LmdbCoordinatorStore> store_;
  std::unique_ptr<OnlineKeySigner> keys_;
  std::unique_ptr<AgentGateway> gateway_;
};

// Item 1. Before: the sample and the seq of another service were stored, the
// seq poisoning every later plan of "payments".
TEST_F(HostileHosts, AHostReportsOnlyForItsOwnServices) {
  Host mallory = host("web-1", {"web"});
  Host honest = host("pay-1", {"payments"});
  auto r = send(mallory, {sample("payments", now_ms(), 0.9),
                          event("payments", "applied", proto::kMaxSeq, release_id("evil")),
                          sample("web", now_ms(), 0.01)});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->type, "ack");  // the rest of the report is kept
  EXPECT_EQ(gateway_->refused_items(), 2u);
  EXPECT_TRUE(logged("coordinator.report.refused_items"));
  auto payments = store_->fleet("payments", 0).value();
  EXPECT_TRUE(payments.samples.empty());
  EXPECT_TRUE(payments.running.empty());
  EXPECT_EQ(store_->plan_seq("payments").value(), 0u);
  EXPECT_EQ(store_->next_plan_seq("payments").value(), 1u);
  EXPECT_EQ(store_->fleet("web", 0).value().samples.size(), 1u);
  // The service's own host still reports, and the audit chain verifies.
  ASSERT_TRUE(send(honest, {sample("payments", now_ms(), 0.01)}).ok());
  EXPECT_EQ(store_->fleet("payments", 0).value().samples.size(), 1u);
  EXPECT_TRUE(store_->verify_audit().value().ok);
}

// Item 2. Before: any seq an agent reported became the service's floor, up
// to 2^64-1 (after which seqs wrapped).
TEST_F(HostileHosts, ASeqAboveWhatWasIssuedIsIgnoredAndSeqsStayBelow2To53) {
  Host h = host("web-1");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(store_->next_plan_seq("web").ok());
  ASSERT_TRUE(send(h, {event("web", "applied", 1000, release_id("x")),
                       event("web", "apply_failed", 999, "no")})
                  .ok());
  EXPECT_EQ(store_->plan_seq("web").value(), 3u);
  EXPECT_TRUE(store_->fleet("web", 0).value().failed_seq.empty());
  EXPECT_EQ(gateway_->refused_items(), 2u);
  // Past 2^53-1 a report is refused whole, naming the field.
  proto::ReportBody big;
  big.seq = ++h.seq;
  big.items.push_back(event("web", "applied", 1, release_id("x")));
  nlohmann::json j = proto::to_json(big);
  j["items"][0]["seq"] = std::numeric_limits<std::uint64_t>::max();
  auto refused = send_body(h, j);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("items[0].seq"), std::string::npos)
      << refused.error().message;
  // The store never issues past 2^53-1.
  ASSERT_TRUE(store_->note_reported_seq("db", proto::kMaxSeq).ok());
  EXPECT_EQ(store_->next_plan_seq("db").error().code, Errc::exhausted);
  EXPECT_FALSE(store_->note_reported_seq("db", proto::kMaxSeq + 1).ok());
}

// Item 3. Before: a sample dated tomorrow counted in every bake until then.
TEST_F(HostileHosts, SamplesDatedBeyondTheSkewBoundAreRefused) {
  Host h = host("web-1");
  ASSERT_TRUE(
      send(h, {sample("web", now_ms() + 3'600'000, 0.0), sample("web", now_ms() + 60'000, 0.01),
               sample("web", now_ms() - 7'200'000, 0.02)})
          .ok());
  auto f = store_->fleet("web", 0).value();
  ASSERT_EQ(f.samples.size(), 2u);  // a minute ahead is within the bound; hours old keep their time
  EXPECT_EQ(f.samples[0].at_ms, now_ms() - 7'200'000);
  EXPECT_EQ(f.samples[1].at_ms, now_ms() + 60'000);
  EXPECT_EQ(gateway_->refused_items(), 1u);
}

// What a host says it runs is kept (its switch history) and shown: only an
// artifact id counts, and an event dated past the skew bound is refused like
// a sample.
TEST_F(HostileHosts, AReleaseThatIsNoArtifactIdOrAFutureEventIsRefused) {
  Host h = host("web-1");
  ASSERT_TRUE(store_->next_plan_seq("web").ok());
  proto::ReportItem odd = sample("web", now_ms(), 0.0);
  odd.health->release = "\x1b[2Jrm -rf";
  ASSERT_TRUE(send(h, {odd, event("web", "applied", 1, "not-an-id"),
                       event("web", "applied", 1, release_id("v2"))})
                  .ok());
  EXPECT_EQ(gateway_->refused_items(), 2u);
  EXPECT_EQ(store_->fleet("web", 0).value().running.at("web-1"), release_id("v2"));
  proto::ReportItem late = event("web", "applied", 1, release_id("v3"));
  late.event->at_ms = proto::kMaxSeq;
  ASSERT_TRUE(send(h, {late}).ok());
  EXPECT_EQ(gateway_->refused_items(), 3u);
  auto history = store_->host_releases("web", "web-1", 0).value();
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].release, release_id("v2"));
  EXPECT_LE(history[0].since_ms, now_ms());
}

// Item 4. Before: a 300-byte service name passed the decoder and its key was
// too long for LMDB, failing the group commit of every host's report.
TEST_F(HostileHosts, ABadNameIsRefusedAloneAndNeverStallsOtherHosts) {
  Host mallory = host("web-1");
  Host honest = host("web-2");
  for (const std::string& bad : {std::string(300, 'a'), std::string(".."), std::string("a/b"),
                                 std::string("-x"), std::string("")}) {
    auto r = send(mallory, {sample(bad, now_ms(), 0.0)});
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().message.find("items[0].service"), std::string::npos) << r.error().message;
  }
  proto::ReportBody over;
  over.seq = ++mallory.seq;
  over.items.push_back(event("web", "applied", 0, std::string(5000, 'x')));
  auto long_detail = send_body(mallory, proto::to_json(over));
  ASSERT_FALSE(long_detail.ok());
  EXPECT_NE(long_detail.error().message.find("detail"), std::string::npos);
  ASSERT_TRUE(send(honest, {sample("web", now_ms(), 0.01)}).ok());
  EXPECT_EQ(store_->fleet("web", 0).value().samples.size(), 1u);

  // Below the decoder, one report the store cannot write fails alone.
  proto::ReportBody bad, good;
  bad.seq = good.seq = 100;
  bad.items.push_back(sample(std::string(600, 'z'), now_ms(), 0.0));
  good.items.push_back(sample("web", now_ms() + 1, 0.0));
  auto both = store_->ingest_reports({{"web-1", &bad}, {"web-2", &good}}, now_s());
  ASSERT_TRUE(both.ok()) << both.error().message;
  EXPECT_FALSE((*both)[0].ok());
  ASSERT_TRUE((*both)[1].ok());
  EXPECT_TRUE((*both)[1]->fresh);
  EXPECT_EQ(store_->fleet("web", 0).value().samples.size(), 2u);
}

// Item 5. Before: a host could store samples without bound.
TEST_F(HostileHosts, AHostOverItsStorageBudgetIsThrottledAndNamed) {
  store_->set_limits({.samples_per_host = 5, .samples_stop_fill = 0.9});
  Host noisy = host("web-1");
  Host quiet = host("web-2");
  std::vector<proto::ReportItem> many;
  for (int i = 0; i < 20; ++i) many.push_back(sample("web", now_ms() - 1000 + i, 0.0));
  ASSERT_TRUE(send(noisy, many).ok());
  ASSERT_TRUE(send(quiet, {sample("web", now_ms(), 0.0)}).ok());
  auto f = store_->fleet("web", 0).value();
  EXPECT_EQ(f.samples.size(), 6u);
  auto noisy_record = store_->host("web-1").value();
  EXPECT_TRUE(noisy_record->throttled);
  EXPECT_EQ(noisy_record->stored_samples, 5u);
  EXPECT_FALSE(store_->host("web-2").value()->throttled);
  EXPECT_TRUE(logged("coordinator.host.throttled"));
  // Pruning makes room again.
  ASSERT_EQ(store_->prune_samples(now_ms() + 1).value(), 6u);
  EXPECT_FALSE(store_->host("web-1").value()->throttled);
  EXPECT_EQ(store_->host("web-1").value()->stored_samples, 0u);
}

// Item 5. Before: a full map failed every ingest, and every deploy
// transition with it.
TEST_F(HostileHosts, AFullMapDropsSamplesButKeepsEventsAndTransitions) {
  open(2ull << 20);  // a 2 MiB map
  store_->set_limits({.samples_per_host = 1'000'000, .samples_stop_fill = 0.90});
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(store_->next_plan_seq("web").ok());
  Host flood = host("web-1");
  Host other = host("web-2");
  std::size_t sent = 0;
  bool full = false;
  for (int round = 0; round < 200 && !full; ++round) {
    std::vector<proto::ReportItem> items;
    for (int i = 0; i < 256; ++i) {
      items.push_back(sample("web", now_ms() - 100'000 + static_cast<std::int64_t>(sent++), 0.0));
    }
    ASSERT_TRUE(send(flood, items).ok()) << "round " << round;
    full = logged("coordinator.storage.full");
  }
  ASSERT_TRUE(full) << "the map never filled";
  // Another host's event is still ingested, and deploy state still written.
  auto r = send(other, {event("web", "applied", 3, release_id("v3"))});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(store_->fleet("web", 0).value().running.at("web-2"), release_id("v3"));
  EXPECT_TRUE(store_->put_setting("still", "writable").ok());
  EXPECT_EQ(store_->hosts().value().size(), 2u);
  AuditRecord a;
  a.at_ms = now_ms();
  a.who = "admin";
  a.what = "host.reset";
  a.detail = "{}";
  EXPECT_TRUE(store_->append_audit(a).ok());  // transitions' records still written
  EXPECT_TRUE(store_->verify_audit().value().ok);
}

// Item 6. Before: one record that did not decode failed GET /hosts, every
// new deploy, and the admin's reset (which decoded it first).
TEST_F(HostileHosts, AnUnreadableHostRecordIsListedAndResetWithoutDecoding) {
  host("web-1");
  {
    auto txn = store_->kv().begin_write().value();
    auto table = store_->kv().table("hosts").value();
    ASSERT_TRUE(txn->put(table, "broken", "{not a record").ok());
    ASSERT_TRUE(txn->commit().ok());
  }
  auto all = store_->hosts();
  ASSERT_TRUE(all.ok()) << all.error().message;
  ASSERT_EQ(all->size(), 2u);
  EXPECT_TRUE((*all)[0].unreadable);
  EXPECT_EQ((*all)[0].host, "broken");
  EXPECT_FALSE((*all)[1].unreadable);
  ASSERT_TRUE(store_->reset_host("broken").ok());
  EXPECT_EQ(store_->hosts().value().size(), 1u);
}

// Item 6. Before: any field of any length was accepted and stored.
TEST_F(HostileHosts, EnrollmentFieldsAreBoundedAndNamed) {
  Host h{"web-1", sign::KeyPair::generate(rnd_), rnd_.bytes(32)};
  struct Case {
    const char* field;
    nlohmann::json value;
  };
  for (const Case& c :
       {Case{"region", std::string(200, 'r')}, Case{"cluster", "a b"},
        Case{"services", std::vector<std::string>{"web", "../etc"}},
        Case{"mesh_peer", std::string(1000, 'p')}, Case{"join_token", std::string(1000, 't')}}) {
    nlohmann::json body = proto::to_json(enroll_body(h, {"web"}));
    body[c.field] = c.value;
    proto::Request r{std::string(proto::kEnroll), h.name, body.dump(), "", ""};
    proto::sign_enroll(r, h.key);
    auto a = answer(proto::encode_request(r));
    ASSERT_FALSE(a.ok()) << c.field;
    EXPECT_NE(a.error().message.find(c.field), std::string::npos) << a.error().message;
  }
  EXPECT_TRUE(store_->hosts().value().empty());
}

// Item 7. Before: tokens never expired, admitted any number of hosts of any
// region, and a captured enrollment could be played again.
TEST_F(HostileHosts, JoinTokensExpireAreCountedScopedAndRevokedById) {
  CoordinatorStore::JoinTokenSpec once;
  once.ttl_s = 3600;
  auto single = store_->create_join_token("admin", now_s(), rnd_, once).value();
  auto try_enroll = [&](const std::string& name, const std::string& token,
                        const std::string& region = "eu") {
    Host h{name, sign::KeyPair::generate(rnd_), rnd_.bytes(32)};
    proto::EnrollBody b = enroll_body(h, {"web"});
    b.join_token = token;
    b.region = region;
    return answer(enroll_bytes(h, b));
  };
  ASSERT_TRUE(try_enroll("a-1", single.token).ok());
  auto used = try_enroll("a-2", single.token);
  ASSERT_FALSE(used.ok());
  EXPECT_NE(used.error().message.find("used up"), std::string::npos) << used.error().message;

  CoordinatorStore::JoinTokenSpec scoped;
  scoped.uses = 10;
  scoped.regions = {"us-east-2"};
  auto regional = store_->create_join_token("admin", now_s(), rnd_, scoped).value();
  auto wrong_region = try_enroll("b-1", regional.token, "eu");
  ASSERT_FALSE(wrong_region.ok());
  EXPECT_NE(wrong_region.error().message.find("region 'eu'"), std::string::npos);
  ASSERT_TRUE(try_enroll("b-2", regional.token, "us-east-2").ok());

  clock_.advance(std::chrono::hours(25));
  auto expired = try_enroll("c-1", regional.token, "us-east-2");
  ASSERT_FALSE(expired.ok());
  EXPECT_NE(expired.error().message.find("expired"), std::string::npos);

  auto listed = store_->join_tokens().value();
  const auto it = std::find_if(listed.begin(), listed.end(),
                               [&](const auto& t) { return t.id == regional.id; });
  ASSERT_NE(it, listed.end());
  EXPECT_EQ(it->uses_left, 9u);
  EXPECT_TRUE(it->token.empty());  // never stored, never listed
  ASSERT_TRUE(store_->revoke_join_token_id(regional.id).ok());
  EXPECT_EQ(store_->revoke_join_token_id(regional.id).error().code, Errc::not_found);
}

TEST_F(HostileHosts, ABoundHostReEnrollsByKeyAloneAndAReplayIsRefused) {
  Host h{"web-1", sign::KeyPair::generate(rnd_), rnd_.bytes(32)};
  const std::string first = enroll_bytes(h, enroll_body(h, {"web"}));
  ASSERT_TRUE(answer(first).ok());
  // The captured enrollment, played again: refused, the binding unchanged.
  auto replay = answer(first);
  ASSERT_FALSE(replay.ok());
  EXPECT_NE(replay.error().message.find("replay"), std::string::npos) << replay.error().message;
  // Revoking every token never cuts off a running host: its key suffices.
  ASSERT_TRUE(store_->revoke_join_token("join-1").ok());
  clock_.advance(2s);
  proto::EnrollBody again = enroll_body(h, {"web"});
  again.join_token = "";
  auto r = answer(enroll_bytes(h, again));
  ASSERT_TRUE(r.ok()) << r.error().message;
  // A new host needs a token, and a fresh enrollment must be recent.
  Host late{"web-2", sign::KeyPair::generate(rnd_), rnd_.bytes(32)};
  CoordinatorStore::JoinTokenSpec spec;
  auto t = store_->create_join_token("admin", now_s(), rnd_, spec).value();
  proto::EnrollBody stale = enroll_body(late, {"web"});
  stale.join_token = t.token;
  stale.at = now_s() - 3600;
  auto old = answer(enroll_bytes(late, stale));
  ASSERT_FALSE(old.ok());
  EXPECT_NE(old.error().message.find("recent"), std::string::npos);
  proto::EnrollBody future = stale;
  future.at = now_s() + 3600;
  EXPECT_FALSE(answer(enroll_bytes(late, future)).ok());
}

// Found in review: with its key alone a host could re-enroll into any
// region and any services, out of its token's scope, and then report for
// them.
TEST_F(HostileHosts, AHostCannotLeaveItsTokensScopeByEnrollingAgain) {
  CoordinatorStore::JoinTokenSpec scoped;
  scoped.regions = {"eu"};
  scoped.services = {"web"};
  auto t = store_->create_join_token("admin", now_s(), rnd_, scoped).value();
  Host h{"web-1", sign::KeyPair::generate(rnd_), rnd_.bytes(32)};
  proto::EnrollBody first = enroll_body(h, {"web"});
  first.join_token = t.token;
  ASSERT_TRUE(answer(enroll_bytes(h, first)).ok());
  clock_.advance(2s);
  proto::EnrollBody wider = enroll_body(h, {"web", "payments"});
  wider.join_token = "";
  auto refused = answer(enroll_bytes(h, wider));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("needs a join token"), std::string::npos)
      << refused.error().message;
  proto::EnrollBody elsewhere = enroll_body(h, {"web"});
  elsewhere.region = "us";
  elsewhere.join_token = t.token;  // used up, and out of its scope anyway
  EXPECT_FALSE(answer(enroll_bytes(h, elsewhere)).ok());
  auto record = store_->host("web-1").value();
  EXPECT_EQ(record->region, "eu");
  EXPECT_EQ(record->services, std::vector<std::string>{"web"});
  // Its report for the service it asked for is refused.
  ASSERT_TRUE(send(h, {sample("payments", now_ms(), 0.5)}).ok());
  EXPECT_TRUE(store_->fleet("payments", 0).value().samples.empty());
  // A token that admits the new place moves it.
  CoordinatorStore::JoinTokenSpec wide;
  auto t2 = store_->create_join_token("admin", now_s(), rnd_, wide).value();
  clock_.advance(2s);
  proto::EnrollBody moved = enroll_body(h, {"web", "payments"});
  moved.join_token = t2.token;
  ASSERT_TRUE(answer(enroll_bytes(h, moved)).ok());
  EXPECT_EQ(store_->host("web-1").value()->services.size(), 2u);
}

// Found in review: a copied report was screened and committed again each
// time it was sent, and each bad proof in it logged a line: 5 copies of one
// report of 256 bad proofs made 1,285 lines and 5 commits.
TEST_F(HostileHosts, ACopiedReportCostsNothingAndBadProofsOneLine) {
  Host h = host("web-1");
  proto::ReportBody r;
  r.seq = ++h.seq;
  r.sent_at_ms = now_ms();
  for (int i = 0; i < 256; ++i) {
    r.items.push_back({std::nullopt, proto::EventItem{"web", now_ms(), "replay_refused", 0, "",
                                                      "not a bundle " + std::to_string(i)}});
  }
  const nlohmann::json body = proto::to_json(r);
  ASSERT_TRUE(send_body(h, body).ok());
  const std::uint64_t commits = gateway_->report_commits();
  auto lines_now = [&] { return sink_.lines().size(); };
  const std::size_t lines = lines_now();
  for (int i = 0; i < 5; ++i) {
    auto again = send_body(h, body);
    ASSERT_TRUE(again.ok()) << again.error().message;
    EXPECT_EQ(again->type, "ack");
  }
  EXPECT_EQ(gateway_->report_commits(), commits);  // acknowledged, not committed again
  EXPECT_EQ(lines_now(), lines);                   // and not logged again
  std::size_t proof_lines = 0;
  for (const auto& l : sink_.lines()) {
    proof_lines += l.find("bad_proof") != std::string::npos ? 1 : 0;
  }
  EXPECT_EQ(proof_lines, 1u);  // the summary line, counting 256
}

// Found in review: 256 samples of one millisecond stored one sample and
// counted 256, so a host throttled itself for good; and a host could take
// the key of the webhook's sample about it.
TEST_F(HostileHosts, SamplesOfOneMillisecondCountOnceAndNeverTakeTheWebhooksKey) {
  Host h = host("web-1");
  const std::int64_t at = now_ms();
  ASSERT_TRUE(
      store_->add_webhook_samples("web", {{"web-1", "", at, 0.9, 10, 0.1, false}}, "d-1", at, 0)
          .value());
  std::vector<proto::ReportItem> same;
  for (int i = 0; i < 256; ++i) same.push_back(sample("web", at, 0.0));
  ASSERT_TRUE(send(h, same).ok());
  EXPECT_EQ(store_->host("web-1").value()->stored_samples, 1u);
  auto f = store_->fleet("web", 0).value();
  ASSERT_EQ(f.samples.size(), 2u);  // the checker's and the host's
  int checker = 0;
  for (const auto& s : f.samples) checker += s.error_rate == 0.9 ? 1 : 0;
  EXPECT_EQ(checker, 1);
  ASSERT_EQ(store_->prune_samples(at + 1).value(), 2u);
  EXPECT_EQ(store_->host("web-1").value()->stored_samples, 0u);
}

// Found in review: a report of an old machine, authenticated before an
// admin's reset and committed after the new machine enrolled, landed on the
// new machine's record (its seq could silence the new machine for good).
TEST_F(HostileHosts, AnOldMachinesReportNeverLandsOnTheNewOnesRecord) {
  Host old_machine = host("web-1");
  ASSERT_TRUE(store_->reset_host("web-1").ok());
  Host new_machine = host("web-1");
  proto::ReportBody stale;
  stale.seq = proto::kMaxSeq;
  stale.items.push_back(sample("web", now_ms(), 0.0));
  auto r = store_->ingest_reports({{"web-1", &stale, old_machine.key.public_key().hex()}}, now_s());
  ASSERT_TRUE(r.ok());
  ASSERT_FALSE((*r)[0].ok());
  EXPECT_EQ((*r)[0].error().code, Errc::refused);
  ASSERT_TRUE(send(new_machine, {sample("web", now_ms() + 1, 0.0)}).ok());
  EXPECT_EQ(store_->host("web-1").value()->report_seq, 1u);
}

// Item 8. Before: an exception in a request's handler, or in the report
// handler on the committer thread, ended the coordinator.
TEST_F(HostileHosts, AHandlerThatThrowsIsAnsweredAndTheGatewayGoesOn) {
  int handled = 0;
  open(
      LmdbCoordinatorStore::kDefaultMapBytes,
      [](const ContentId&) -> Result<std::string> { throw std::runtime_error("lookup broke"); },
      [&handled](const HostRecord&, const proto::ReportBody&) {
        if (++handled == 1) throw std::runtime_error("handler broke");
      });
  Host h = host("web-1");
  proto::Request pull{std::string(proto::kManifestPull), h.name,
                      nlohmann::json{{"artifact", ContentId::of("m").str()}}.dump(), "", ""};
  proto::mac_request(pull, h.report_key);
  auto answered = answer(proto::encode_request(pull));
  ASSERT_FALSE(answered.ok());
  EXPECT_NE(answered.error().message.find("internal error"), std::string::npos);
  EXPECT_TRUE(logged("coordinator.request.threw"));
  // The report whose handler threw is durable and acknowledged; the next one too.
  auto first = send(h, {sample("web", now_ms(), 0.01)});
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->type, "ack");
  EXPECT_TRUE(logged("coordinator.report_handler.threw"));
  auto second = send(h, {sample("web", now_ms() + 1, 0.01)});
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(handled, 2);
  EXPECT_EQ(store_->fleet("web", 0).value().samples.size(), 2u);
}

}  // namespace
}  // namespace drover::coordinator
