// Attacks on the agent protocol from the network path (issue 12, item 2;
// docs/FORMATS.md, "Agent protocol (version 2)"): a relay between an agent
// and the real coordinator forges, replays and redirects answers, and the
// agent acts on none of them. Also the small bound before authentication,
// "unchanged", and a fleet of version-1 and version-2 agents.
#include <functional>
#include <mutex>
#include <optional>

#include "core/sign/root.hpp"
#include "tests/protocol_sides.hpp"

namespace drover {
namespace {

using namespace protocol_testing;
using namespace std::chrono_literals;

// A relay on the path. Each request goes to the coordinator unless
// intercept answers it first; every answer given is kept.
class Relay {
 public:
  using Intercept = std::function<std::optional<std::string>(const proto::Request& r)>;
  explicit Relay(const std::string& upstream) : client_(nng::Client::dial(upstream).value()) {
    server_ = nng::Server::listen(
                  "tcp://127.0.0.1:0",
                  [this](std::string_view bytes) {
                    Intercept intercept;
                    {
                      std::lock_guard lock(mu_);
                      intercept = intercept_;
                    }
                    auto r = proto::decode_request(bytes);
                    {
                      std::lock_guard lock(mu_);
                      hash_ = proto::request_hash(bytes);
                    }
                    if (intercept && r.ok()) {
                      if (auto forged = intercept(*r)) return *forged;
                    }
                    auto real = client_->request(bytes, 5s);
                    std::lock_guard lock(mu_);
                    last_answer_ = real.ok() ? *real : std::string();
                    return last_answer_;
                  },
                  4)
                  .value();
  }
  std::string url() const { return server_->url(); }
  void intercept(Intercept i) {
    std::lock_guard lock(mu_);
    intercept_ = std::move(i);
  }
  std::string last_answer() {
    std::lock_guard lock(mu_);
    return last_answer_;
  }
  // The hash of the request being intercepted (what a forger on the path sees).
  std::string request_hash() {
    std::lock_guard lock(mu_);
    return hash_;
  }

 private:
  std::unique_ptr<nng::Client> client_;
  std::mutex mu_;  // guards intercept_, last_answer_ and hash_
  Intercept intercept_;
  std::string last_answer_;
  std::string hash_;
  std::unique_ptr<nng::Server> server_;
};

using ProtocolV2 = AgentProtocol<RealSide>;

void expect_refused_as_unauthenticated(const Status& st) {
  ASSERT_FALSE(st.ok());
  // Like no answer: never crypto or not_found, which would make an agent enroll again.
  EXPECT_EQ(st.error().code, Errc::io) << st.error().message;
  EXPECT_NE(st.error().message.find("not authenticated"), std::string::npos) << st.error().message;
}

template <class T>
Status status_of(const Result<T>& r) {
  if (r.ok()) return Ok{};
  return r.error();
}

// Before: replies carried no authentication; anyone on the path could lose
// reports with an ack, freeze a host with no_plan, fail a plan with a
// manifest, or send it to enroll again with an error.
TEST_F(ProtocolV2, ForgedReplayedAndRedirectedAnswersAreNeverActedOn) {
  Relay relay(side_.requests_url());
  auto a = agent("web-1", 1, relay.url());
  auto b = agent("web-2", 2, relay.url());
  ASSERT_TRUE(enroll(a, "web-1").ok());
  ASSERT_TRUE(enroll(b, "web-2").ok());
  ASSERT_TRUE(a.link->pull_plan("web", 0).ok());
  const std::string genuine_no_plan = relay.last_answer();  // a's, before any plan
  side_.publish(plan({"web-1", "web-2"}));
  ASSERT_TRUE(b.link->pull_plan("web", 0).ok());
  const std::string answer_to_b = relay.last_answer();

  proto::ReportBody report;
  report.seq = 10;
  report.items.push_back({std::nullopt, proto::EventItem{"web", 1, "applied", 1, "x"}});
  auto forged_ack = [&](const proto::Request& r) -> std::optional<std::string> {
    if (r.type != proto::kReport) return std::nullopt;
    return proto::encode_reply("ack", {{"seq", 10}});  // version-1 shape, no MAC
  };
  relay.intercept(forged_ack);
  expect_refused_as_unauthenticated(a.link->send_report(report));
  // The same in version 2's shape under a key the forger made up.
  relay.intercept([&](const proto::Request& r) -> std::optional<std::string> {
    if (r.type != proto::kReport) return std::nullopt;
    return proto::mac_reply("ack", {{"seq", 10}}, r.host, relay.request_hash(),
                            std::string(32, 'f'));
  });
  expect_refused_as_unauthenticated(a.link->send_report(report));
  EXPECT_EQ(side_.reports_ingested(), 0);  // so the agent keeps the report and sends it again
  relay.intercept(nullptr);
  ASSERT_TRUE(a.link->send_report(report).ok());
  EXPECT_EQ(side_.reports_ingested(), 1);

  // A genuine ack, replayed for the next report.
  const std::string old_ack = relay.last_answer();
  relay.intercept([&](const proto::Request& r) -> std::optional<std::string> {
    if (r.type != proto::kReport) return std::nullopt;
    return old_ack;
  });
  report.seq = 11;
  expect_refused_as_unauthenticated(a.link->send_report(report));
  EXPECT_EQ(side_.reports_ingested(), 1);

  // An old genuine no_plan, and another host's genuine answer, for a's pull.
  for (const std::string& replayed : {genuine_no_plan, answer_to_b}) {
    relay.intercept([&](const proto::Request& r) -> std::optional<std::string> {
      if (r.type != proto::kPlanPull) return std::nullopt;
      return replayed;
    });
    expect_refused_as_unauthenticated(status_of(a.link->pull_plan("web", 0)));
  }
  // An ack signed by the online key itself (say one rotated out and stolen):
  // once a host key exists only refusals are signed, so it does not count.
  const sign::KeyPair online = side_.online_key();
  relay.intercept([&](const proto::Request& r) -> std::optional<std::string> {
    if (r.type != proto::kReport) return std::nullopt;
    return proto::sign_reply("ack", {{"seq", 11}}, r.host, relay.request_hash(), online);
  });
  expect_refused_as_unauthenticated(a.link->send_report(report));
  EXPECT_EQ(side_.reports_ingested(), 1);
  // An error telling the host to enroll again, signed by a key of the forger's.
  SeededRandom rnd(99);
  const sign::KeyPair forger = sign::KeyPair::generate(rnd);
  relay.intercept([&](const proto::Request& r) -> std::optional<std::string> {
    return proto::sign_error_reply(make_error(Errc::crypto, "enroll again"), r.host,
                                   relay.request_hash(), forger);
  });
  expect_refused_as_unauthenticated(status_of(a.link->pull_plan("web", 0)));
  expect_refused_as_unauthenticated(
      status_of(a.link->pull_manifest(ContentId::of(kManifest), kManifest.size())));
  // A manifest that would fail the plan, in version 1's shape.
  relay.intercept([&](const proto::Request& r) -> std::optional<std::string> {
    if (r.type != proto::kManifestPull) return std::nullopt;
    return proto::encode_reply("manifest", {{"bytes", "Zm9yZ2Vk"}});
  });
  expect_refused_as_unauthenticated(
      status_of(a.link->pull_manifest(ContentId::of(kManifest), kManifest.size())));

  // The path left alone: everything answers again.
  relay.intercept(nullptr);
  auto opened = pull(a);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  auto manifest = a.link->pull_manifest(ContentId::of(kManifest), kManifest.size());
  ASSERT_TRUE(manifest.ok()) << manifest.error().message;
  EXPECT_EQ(*manifest, kManifest);
}

// Before: every pull answered the newest bundle again, announcement or poll.
TEST_F(ProtocolV2, AHostHoldingTheNewestPlanIsAnsweredUnchangedWithoutTheBundle) {
  Relay relay(side_.requests_url());
  auto a = agent("web-1", 1, relay.url());
  ASSERT_TRUE(enroll(a, "web-1").ok());
  const std::uint64_t seq = side_.publish(plan({"web-1"}));
  auto first = a.link->pull_plan("web", 0);
  ASSERT_TRUE(first.ok() && first->has_value());
  const std::size_t plan_bytes = relay.last_answer().size();

  auto again = a.link->pull_plan("web", seq);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_FALSE(again->has_value());
  auto sealed = proto::decode_sealed_reply(relay.last_answer());
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(sealed->type, "unchanged");
  EXPECT_LT(relay.last_answer().size() * 4, plan_bytes);

  // A newer revision, or a host holding an older seq, gets the plan.
  const std::uint64_t next = side_.publish(plan({"web-1"}));
  auto newer = a.link->pull_plan("web", seq);
  ASSERT_TRUE(newer.ok() && newer->has_value());
  EXPECT_EQ(proto::decode_plan(newer->value().plan.payload)->seq, next);
}

// flags_pull (issue 15): a host asks only for its own services' flags, and
// a gateway without flag sets answers no_flags (an unchanged flags file).
TEST_F(ProtocolV2, AHostPullsOnlyItsOwnServicesFlags) {
  auto a = agent("web-1", 1);
  ASSERT_TRUE(enroll(a, "web-1").ok());
  auto mine = a.link->pull_flags("web", 0);
  ASSERT_TRUE(mine.ok()) << mine.error().message;
  EXPECT_FALSE(mine->has_value());
  auto foreign = a.link->pull_flags("billing", 0);
  ASSERT_FALSE(foreign.ok());
  EXPECT_EQ(foreign.error().code, Errc::refused) << foreign.error().message;
  EXPECT_NE(foreign.error().message.find("does not run service 'billing'"), std::string::npos);
  auto bad = a.link->pull_flags("../web", 0);
  EXPECT_FALSE(bad.ok());
}

// Before: any sender could make the coordinator take 1 MiB before it looked
// at who was asking.
TEST_F(ProtocolV2, AVersion2ListenerTakesNoMoreThan64KiBFromAnyone) {
  auto v2 = nng::Client::dial(side_.requests_url()).value();
  auto legacy = nng::Client::dial(side_.legacy_url()).value();
  const std::string big(100 << 10, 'x');
  EXPECT_FALSE(v2->request(big, 1500ms).ok());  // dropped unread, the connection closed
  auto answered = legacy->request(big, 10s);    // within version 1's bound
  ASSERT_TRUE(answered.ok()) << answered.error().message;
  // Under the bound, garbage is answered with a signed refusal.
  auto small = v2->request(std::string(1000, 'x'), 10s);
  ASSERT_TRUE(small.ok()) << small.error().message;
  auto sealed = proto::decode_sealed_reply(*small);
  ASSERT_TRUE(sealed.ok()) << sealed.error().message;
  EXPECT_EQ(sealed->type, "error");
  EXPECT_FALSE(sealed->sig.empty());
}

// A fleet upgrades host by host: version-1 agents keep working on the
// legacy listener while version-2 agents use theirs.
TEST_F(ProtocolV2, AFleetOfVersion1AndVersion2AgentsIsServedEachOnItsListener) {
  auto old_agent = agent("web-1", 1, side_.legacy_url(), proto::kProtocolVersion);
  auto new_agent = agent("web-2", 2);
  ASSERT_TRUE(enroll(old_agent, "web-1").ok());
  ASSERT_TRUE(enroll(new_agent, "web-2").ok());
  const std::uint64_t seq = side_.publish(plan({"web-1", "web-2"}));
  for (Agent* x : {&old_agent, &new_agent}) {
    auto opened = pull(*x);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    EXPECT_EQ(opened->plan.seq, seq);
    proto::ReportBody r;
    r.seq = 1;
    r.items.push_back({std::nullopt, proto::EventItem{"web", 1, "applied", seq, "x"}});
    ASSERT_TRUE(x->link->send_report(r).ok());
  }
  EXPECT_EQ(side_.reports_ingested(), 2);
  // A version-1 agent on the version-2 listener is told so.
  auto lost = agent("web-3", 3, side_.requests_url(), proto::kProtocolVersion);
  auto refused = enroll(lost, "web-3");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::unsupported);
  EXPECT_NE(refused.error().message.find("legacy"), std::string::npos);
}

// Issue 12, item 8: the coordinator serves its root chain above what an
// agent holds; the agent takes nothing from the answer but documents that
// verify one by one.
TEST_F(ProtocolV2, TheRootChainIsServedAboveTheVersionTheAgentHolds) {
  SeededRandom rnd(31);
  const sign::KeyPair root2 = sign::KeyPair::generate(rnd), root3 = sign::KeyPair::generate(rnd);
  const std::int64_t now = unix_seconds(clock_.now());
  const std::string two = sign::encode_envelope(
      sign::sign_root(side_.root_key(), root2, {root2.public_key(), 2, now, now + 3600}).value());
  const std::string three = sign::encode_envelope(
      sign::sign_root(root2, root3, {root3.public_key(), 3, now, now + 3600}).value());
  side_.start_gateway({two, three});
  auto a = agent("web-1", 1);
  auto all = a.link->pull_roots(1);
  ASSERT_TRUE(all.ok()) << all.error().message;
  ASSERT_EQ(all->size(), 2u);
  auto walked = sign::next_root((*all)[0], {side_.root(), 1}, now);
  ASSERT_TRUE(walked.ok()) << walked.error().message;
  walked = sign::next_root((*all)[1], *walked, now);
  ASSERT_TRUE(walked.ok()) << walked.error().message;
  EXPECT_EQ(walked->key, root3.public_key());
  auto rest = a.link->pull_roots(2);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->size(), 1u);
  EXPECT_EQ(sign::encode_envelope((*rest)[0]), three);
  EXPECT_TRUE(a.link->pull_roots(3)->empty());
  // A malformed pull is refused (signed: no host key covers it), not fatal.
  for (const char* body : {R"({"have_version":"one"})", R"({"have_version":-1})", "[", ""}) {
    proto::Request bad;
    bad.type = std::string(proto::kRootPull);
    bad.host = "web-9";
    bad.body = body;
    bad.v = proto::kProtocolV2;
    auto sealed = proto::decode_sealed_reply(side_.gateway().handle(proto::encode_request(bad),
                                                                    /*legacy=*/false));
    ASSERT_TRUE(sealed.ok()) << body;
    EXPECT_EQ(sealed->type, "error") << body;
    EXPECT_FALSE(sealed->sig.empty());
  }
  // Over protocol 1 there is no chain to pull: nothing, not an error.
  auto old_agent = agent("web-2", 2, side_.legacy_url(), proto::kProtocolVersion);
  EXPECT_TRUE(old_agent.link->pull_roots(1)->empty());
}

}  // namespace
}  // namespace drover
