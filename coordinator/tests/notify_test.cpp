// Notifications (issue 14): the allow-list a destination must match (no
// user part, no '..' step, no look-alike host), a destination's checks, the
// signature against an independently computed vector, the body; and the
// notifier in virtual time over the in-memory store: history is not sent,
// each event reaches each destination that wants it once it answers 2xx, in
// order, retried with back-off, dropped (and audited) past the give-up time
// or when the allow-list no longer holds it, and sent again with the same
// event id after a crash between the send and its erasure.
#include <gtest/gtest.h>

#include <functional>
#include <mutex>

#include <nlohmann/json.hpp>

#include "coordinator/notify/notifier.hpp"
#include "coordinator/store/memory_coordinator_store.hpp"
#include "core/canon/canonical_json.hpp"
#include "core/hash/sha256.hpp"

namespace drover::coordinator::notify {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::vector<AllowEntry> allow_list(std::initializer_list<const char*> entries) {
  std::vector<AllowEntry> out;
  for (const char* e : entries) out.push_back(*parse_allow_entry(e));
  return out;
}

TEST(NotifyAllow, MatchesSchemeHostPortAndPathExactly) {
  const auto allow = allow_list({"https://hooks.example.com/services/", "http://127.0.0.1:9000"});
  EXPECT_TRUE(allowed("https://hooks.example.com/services/T1/B2/x", allow));
  EXPECT_TRUE(allowed("https://HOOKS.example.com:443/services/a?b=c", allow));
  EXPECT_TRUE(allowed("http://127.0.0.1:9000/anything", allow));
  // Another scheme, port, host or path: no.
  EXPECT_FALSE(allowed("http://hooks.example.com/services/x", allow));
  EXPECT_FALSE(allowed("https://hooks.example.com:8443/services/x", allow));
  EXPECT_FALSE(allowed("https://hooks.example.com/servicesX", allow));
  EXPECT_FALSE(allowed("https://hooks.example.com/", allow));
  EXPECT_FALSE(allowed("http://127.0.0.1:9001/", allow));
  EXPECT_FALSE(allowed("http://127.0.0.1/", allow));
  // Look-alikes that a prefix match on the text would let through.
  EXPECT_FALSE(allowed("https://hooks.example.com.evil.net/services/x", allow));
  EXPECT_FALSE(allowed("https://hooks.example.com@127.0.0.1/services/x", allow));
  EXPECT_FALSE(allowed("https://hooks.example.com/services/../admin", allow));
  EXPECT_FALSE(allowed("https://hooks.example.com/services/%2e%2e/admin", allow));
  EXPECT_FALSE(allowed("https://hooks.example.com/services/..;/admin", allow));
  EXPECT_FALSE(allowed("http://127.0.0.1:9000#frag", allow));
  // Nothing is allowed until an admin says so.
  EXPECT_FALSE(allowed("http://127.0.0.1:9000/", {}));
}

TEST(NotifyAllow, AnEntryThatIsNotAPlainOriginAndPathIsRefusedNamingWhy) {
  for (const char* bad : {"ftp://x", "https://", "https://a b", "https://x:0", "https://x:99999",
                          "https://u@x", "https://x/?q=1", "https://x/a/../b", "https://x/%41"}) {
    auto e = parse_allow_entry(bad);
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_NE(e.error().message.find(bad), std::string::npos) << e.error().message;
  }
  auto ok = parse_allow_entry("https://[::1]:8443/hooks/");
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->host, "[::1]");
  EXPECT_EQ(ok->port, 8443);
  EXPECT_EQ(origin_of("https://hooks.example.com/services/T/B/secret"),
            "https://hooks.example.com");
  EXPECT_EQ(origin_of("http://127.0.0.1:9000/x"), "http://127.0.0.1:9000");
}

Destination destination() {
  Destination d;
  d.pipeline = "web";
  d.name = "ops";
  d.url = "http://127.0.0.1:9000/hook";
  d.secret = "0123456789abcdef";
  d.events = kinds();
  return d;
}

TEST(NotifyDestination, EachFieldIsCheckedAndNamed) {
  EXPECT_TRUE(check_destination(destination()).ok());
  auto refused = [](Destination d, const std::string& named) {
    auto st = check_destination(d);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message.find(named), std::string::npos) << st.error().message;
  };
  Destination d = destination();
  d.name = "a/b";
  refused(d, "name");
  d = destination();
  d.url = "file:///etc/passwd";
  refused(d, "url");
  d = destination();
  d.secret = "";
  refused(d, "secret is required");
  d.format = "slack";  // Slack's own URL is the credential: a secret is optional
  EXPECT_TRUE(check_destination(d).ok());
  d.secret = "short";
  refused(d, "16-256");
  d = destination();
  d.format = "xml";
  refused(d, "format");
  d = destination();
  d.events = {"deploy.created"};
  refused(d, "'deploy.created' is not a notification kind");
  d.events = {};
  refused(d, "events");
  // The stored record reads back whole.
  d = destination();
  d.created_ms = 5;
  d.created_by = "admin";
  auto back = decode_destination(encode_destination(d), "web", "ops");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->url, d.url);
  EXPECT_EQ(back->secret, d.secret);
  EXPECT_EQ(back->events, d.events);
  EXPECT_EQ(back->created_by, "admin");
}

TEST(NotifyBody, TheSignatureMatchesAnIndependentComputation) {
  // Python: hmac.new(b"0123456789abcdef",
  //   b"drover-notification-v1\n1700000000\nsha256:abc\n{\"x\":1}", sha256)
  EXPECT_EQ(signature("0123456789abcdef", "1700000000", "sha256:abc", R"({"x":1})"),
            "sha256=421469639ffb853e06520d57b9179251e7bcaf69a1ebdfc12408777c5b38012a");
  EXPECT_NE(signature("0123456789abcdeF", "1700000000", "sha256:abc", R"({"x":1})"),
            signature("0123456789abcdef", "1700000000", "sha256:abc", R"({"x":1})"));
  EXPECT_NE(signature("0123456789abcdef", "1700000001", "sha256:abc", R"({"x":1})"),
            signature("0123456789abcdef", "1700000000", "sha256:abc", R"({"x":1})"));
}

AuditRecord gate_record() {
  AuditRecord r;
  r.seq = 7;
  r.at_ms = 1'700'000'000'000;
  r.who = "drover";
  r.what = "gate.waiting";
  r.service = "web";
  r.env = "production";
  r.deploy_id = "web-3";
  r.artifact = "sha256:aa";
  r.git_sha = "0123456789abcdef0123";
  r.detail = R"({"approvals":2,"deadline_ms":1700003600000})";
  r.prev = "sha256:bb";
  return r;
}

TEST(NotifyBody, CarriesTheRecordItsIdAndWhoMayApprove) {
  const AuditRecord r = gate_record();
  EventContext c{"web-pipeline", std::vector<std::string>{"bob", "carol"}};
  const json body = json::parse(render(r, c, "drover"));
  EXPECT_EQ(body["format"], "drover.notification.v1");
  EXPECT_EQ(body["event_id"], event_id(r));
  EXPECT_EQ(body["event_id"], ContentId::of(encode_audit_record(r)).str());
  EXPECT_EQ(body["kind"], "gate.waiting");
  EXPECT_EQ(body["audit_seq"], 7);
  EXPECT_EQ(body["pipeline_id"], "web-pipeline");
  EXPECT_EQ(body["env"], "production");
  EXPECT_EQ(body["deploy_id"], "web-3");
  EXPECT_EQ(body["detail"]["approvals"], 2);
  EXPECT_EQ(body["may_approve"], json({"bob", "carol"}));
  const std::string text = body["text"];
  EXPECT_NE(text.find("web-3"), std::string::npos) << text;
  EXPECT_NE(text.find("bob, carol"), std::string::npos) << text;
  EXPECT_NE(text.find("2023-11-14T23:13:20Z"), std::string::npos) << text;
  // Slack's form: the text alone.
  const json slack = json::parse(render(r, c, "slack"));
  EXPECT_EQ(slack, json({{"text", text}}));
  // Another record, another id.
  AuditRecord other = r;
  other.seq = 8;
  EXPECT_NE(event_id(other), event_id(r));
}

TEST(NotifyBody, RetriesBackOffToTenMinutes) {
  EXPECT_EQ(retry_after_ms(1), 1000);
  EXPECT_EQ(retry_after_ms(2), 2000);
  EXPECT_EQ(retry_after_ms(5), 16000);
  EXPECT_EQ(retry_after_ms(30), 600000);
  EXPECT_EQ(retry_after_ms(4'000'000'000u), 600000);
}

// ---- the notifier, in virtual time ----

struct Sent {
  std::string url, body;
  Headers headers;
  std::string header(const std::string& name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return "";
  }
};

class NotifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = MemoryCoordinatorStore::create();
    put_allow({"http://127.0.0.1:9000"});
    put_destination(destination());
  }

  void put_allow(const std::vector<std::string>& entries) {
    ASSERT_TRUE(store_
                    ->put_setting(std::string(kAllowKey),
                                  *canon::encode(json{{"allow", entries}, {"set_by", "admin"}}))
                    .ok());
  }
  void put_destination(const Destination& d) {
    ASSERT_TRUE(store_->put_setting(dest_key(d.pipeline, d.name), encode_destination(d)).ok());
  }

  std::unique_ptr<Notifier> notifier(CoordinatorStore& store) {
    NotifierOptions o;
    o.give_up_ms = 3600 * 1000;
    return std::make_unique<Notifier>(
        store,
        [](const AuditRecord& r) -> Result<std::optional<EventContext>> {
          if (r.deploy_id.empty()) return std::optional<EventContext>{};
          return std::optional<EventContext>{EventContext{"web", std::nullopt}};
        },
        [this](const std::string& url, const std::string& body, const Headers& h) -> Result<int> {
          std::lock_guard lock(sent_mu_);  // destinations are sent to at once
          if (during_send_) during_send_();
          sent_.push_back({url, body, h});
          if (!answers_.empty()) {
            Result<int> a = answers_.front();
            answers_.erase(answers_.begin());
            return a;
          }
          return 200;
        },
        clock_, log_, o);
  }

  void append(const std::string& what, const std::string& deploy = "web-1") {
    AuditRecord r;
    r.at_ms = 1;
    r.who = "drover";
    r.what = what;
    r.service = "web";
    r.deploy_id = deploy;
    ASSERT_TRUE(store_->append_audit(r).ok());
  }

  std::vector<std::string> kinds_sent() const {
    std::vector<std::string> out;
    for (const auto& s : sent_) out.push_back(s.header("X-Drover-Event"));
    return out;
  }

  std::vector<AuditRecord> audits(const std::string& what) {
    std::vector<AuditRecord> out;
    auto all = store_->audit_after(0, 100000);  // kept: a range-for over *temporary dangles
    for (auto& r : *all) {
      if (r.what == what) out.push_back(r);
    }
    return out;
  }

  std::unique_ptr<MemoryCoordinatorStore> store_;
  ManualClock clock_;
  MemorySink sink_;
  Logger log_{sink_, clock_};
  std::mutex sent_mu_;
  std::function<void()> during_send_;
  std::vector<Sent> sent_;
  std::vector<Result<int>> answers_;
};

TEST_F(NotifierTest, HistoryBeforeTheFirstPassIsNotSentAndEachLaterEventIsSentOnce) {
  append("deploy.succeeded");  // before the notifier ever ran
  auto n = notifier(*store_);
  ASSERT_EQ(*n->collect(), 0u);
  ASSERT_EQ(*n->deliver(), 0u);
  EXPECT_TRUE(sent_.empty());

  append("gate.waiting");
  append("deploy.created");    // not a notification kind
  append("wave.started", "");  // of no pipeline
  append("deploy.failed");
  EXPECT_EQ(*n->collect(), 2u);
  EXPECT_EQ(*n->collect(), 0u);  // the cursor moved with them
  // One per pass per destination, oldest first.
  EXPECT_EQ(*n->deliver(), 1u);
  EXPECT_EQ(*n->deliver(), 1u);
  EXPECT_EQ(*n->deliver(), 0u);
  EXPECT_EQ(kinds_sent(), (std::vector<std::string>{"gate.waiting", "deploy.failed"}));
  const Sent& s = sent_[0];
  EXPECT_EQ(s.url, "http://127.0.0.1:9000/hook");
  const json body = json::parse(s.body);
  EXPECT_EQ(s.header("X-Drover-Delivery"), body["event_id"]);
  EXPECT_EQ(s.header("X-Drover-Signature"),
            signature("0123456789abcdef", s.header("X-Drover-Timestamp"),
                      body["event_id"].get<std::string>(), s.body));
  EXPECT_EQ(s.header("X-Drover-Timestamp"), "1700000000");
  EXPECT_TRUE(read_outbox(*store_, 100)->empty());
}

TEST_F(NotifierTest, AFailingDestinationIsRetriedWithBackOffInOrderThenDroppedAndAudited) {
  auto n = notifier(*store_);
  ASSERT_TRUE(n->collect().ok());
  append("gate.waiting");
  append("gate.approved");
  ASSERT_EQ(*n->collect(), 2u);
  answers_ = {503, make_error(Errc::io, "connection refused")};
  EXPECT_EQ(*n->deliver(), 0u);
  EXPECT_EQ(n->next_due_ms(), 1'700'000'001'000);
  EXPECT_EQ(*n->deliver(), 0u);  // not due yet: nothing sent
  EXPECT_EQ(sent_.size(), 1u);
  clock_.advance(1s);
  EXPECT_EQ(*n->deliver(), 0u);  // refused again: the next wait doubles
  EXPECT_EQ(n->next_due_ms(), 1'700'000'003'000);
  auto pending = *read_outbox(*store_, 100);
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_EQ(pending[0].kind, "gate.waiting");  // the later one waits behind it
  EXPECT_EQ(pending[0].attempts, 2u);
  EXPECT_EQ(pending[0].last_error, "connection refused");
  clock_.advance(2s);
  EXPECT_EQ(*n->deliver(), 1u);
  EXPECT_EQ(*n->deliver(), 1u);
  EXPECT_EQ(kinds_sent(), (std::vector<std::string>{"gate.waiting", "gate.waiting", "gate.waiting",
                                                    "gate.approved"}));
  // Every attempt of an event carries its one id.
  EXPECT_EQ(sent_[0].header("X-Drover-Delivery"), sent_[2].header("X-Drover-Delivery"));

  // A destination that never answers: dropped past the give-up time, audited.
  append("deploy.failed");
  ASSERT_EQ(*n->collect(), 1u);
  for (int i = 0; i < 40; ++i) {
    answers_.push_back(500);
    ASSERT_TRUE(n->deliver().ok());
    clock_.advance(10min);
  }
  EXPECT_TRUE(read_outbox(*store_, 100)->empty());
  auto dropped = audits("notify.dropped");
  ASSERT_EQ(dropped.size(), 1u);
  const json detail = json::parse(dropped[0].detail);
  EXPECT_EQ(detail["kind"], "deploy.failed");
  EXPECT_EQ(detail["why"], "not delivered in time");
  EXPECT_EQ(detail["last_error"], "answered 500");
  EXPECT_GT(detail["attempts"].get<int>(), 5);
}

TEST_F(NotifierTest, ADestinationTheAllowListNoLongerHoldsGetsNothing) {
  auto n = notifier(*store_);
  ASSERT_TRUE(n->collect().ok());
  append("gate.waiting");
  ASSERT_EQ(*n->collect(), 1u);
  put_allow({"http://127.0.0.1:9001"});
  EXPECT_EQ(*n->deliver(), 0u);
  EXPECT_TRUE(sent_.empty());
  EXPECT_TRUE(read_outbox(*store_, 100)->empty());
  auto dropped = audits("notify.dropped");
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(json::parse(dropped[0].detail)["why"], "the destination is not on the allow-list");
}

TEST_F(NotifierTest, EachDestinationGetsOnlyTheKindsItAskedFor) {
  Destination gates = destination();
  gates.name = "gates";
  gates.format = "slack";
  gates.secret = "";
  gates.events = {"gate.waiting"};
  put_destination(gates);
  auto n = notifier(*store_);
  ASSERT_TRUE(n->collect().ok());
  append("gate.waiting");
  append("deploy.succeeded");
  EXPECT_EQ(*n->collect(), 3u);
  while (*n->deliver() > 0) {
  }
  ASSERT_EQ(sent_.size(), 3u);
  int slack = 0;
  for (const auto& s : sent_) {
    if (json::parse(s.body).size() == 1) {
      ++slack;
      EXPECT_EQ(s.header("X-Drover-Event"), "gate.waiting");
      EXPECT_EQ(s.header("X-Drover-Signature"), "");  // no secret, no signature
    }
  }
  EXPECT_EQ(slack, 1);
}

TEST_F(NotifierTest, AnOutboxPastItsBoundDropsNewEventsAndSaysSo) {
  auto n = notifier(*store_);
  ASSERT_TRUE(n->collect().ok());
  for (std::size_t i = 0; i < kMaxPendingPerDestination + 3; ++i) append("wave.started");
  std::size_t added = 0;
  for (int i = 0; i < 10; ++i) added += *n->collect();
  EXPECT_EQ(added, kMaxPendingPerDestination);
  EXPECT_EQ(audits("notify.dropped").size(), 3u);
}

TEST_F(NotifierTest, ACrashAfterTheTransitionOrAfterTheSendStillDeliversWithTheSameId) {
  auto n = notifier(*store_);
  ASSERT_TRUE(n->collect().ok());
  // Killed right after the transition committed: nothing collected yet.
  append("rollback.started");
  store_->crash();
  auto restarted = store_->reopen();
  auto n2 = notifier(*restarted);
  EXPECT_EQ(*n2->collect(), 1u);
  // Killed after the destination answered, before the delivery was erased:
  // sent again, under the same id, for the receiver to deduplicate.
  restarted->crash_after_commits(0);
  EXPECT_FALSE(n2->deliver().ok());
  ASSERT_EQ(sent_.size(), 1u);
  auto again = restarted->reopen();
  auto n3 = notifier(*again);
  EXPECT_EQ(*n3->collect(), 0u);
  EXPECT_EQ(*n3->deliver(), 1u);
  ASSERT_EQ(sent_.size(), 2u);
  EXPECT_EQ(sent_[0].header("X-Drover-Delivery"), sent_[1].header("X-Drover-Delivery"));
  EXPECT_EQ(sent_[0].body, sent_[1].body);
  EXPECT_EQ(*n3->deliver(), 0u);
}

TEST_F(NotifierTest, ADestinationRemovedWhileItsDeliveryIsSentGetsNothingBack) {
  auto n = notifier(*store_);
  ASSERT_TRUE(n->collect().ok());
  append("gate.waiting");
  ASSERT_EQ(*n->collect(), 1u);
  during_send_ = [&] {  // DELETE .../notifications/ops, mid-send
    auto pending = store_->settings_under(out_prefix("web", "ops")).value();
    std::vector<std::string> erases{dest_key("web", "ops")};
    for (const auto& entry : pending) erases.push_back(entry.first);
    ASSERT_TRUE(store_->write_settings({}, erases).ok());
  };
  answers_ = {500};
  EXPECT_EQ(*n->deliver(), 0u);
  during_send_ = nullptr;
  EXPECT_TRUE(read_outbox(*store_, 100)->empty());
  // Re-added under the same name: it hears nothing from before.
  put_destination(destination());
  clock_.advance(1h);
  EXPECT_EQ(*n->deliver(), 0u);
  EXPECT_EQ(sent_.size(), 1u);
}

TEST_F(NotifierTest, AFailedSendNeverPutsTheUrlsPathInTheOutboxTheLogOrTheAuditLog) {
  // A Slack-style URL: its path is the credential. Port 1 refuses.
  Destination slack = destination();
  slack.name = "slack";
  slack.format = "slack";
  slack.url = "http://127.0.0.1:1/services/T000/B000/SECRETTOKENxyz";
  put_allow({"http://127.0.0.1:9000", "http://127.0.0.1:1/services/"});
  put_destination(slack);
  NotifierOptions o;
  o.give_up_ms = 1000;
  Notifier n(
      *store_,
      [](const AuditRecord&) -> Result<std::optional<EventContext>> {
        return std::optional<EventContext>{EventContext{"web", std::nullopt}};
      },
      http_send(std::chrono::milliseconds(2000), ""), clock_, log_, o);
  ASSERT_TRUE(n.collect().ok());
  append("rollback.started");
  ASSERT_GE(*n.collect(), 1u);
  ASSERT_TRUE(n.deliver().ok());
  bool refused = false;
  const auto outbox = read_outbox(*store_, 100);  // kept: a range-for over *temporary dangles
  for (const auto& p : *outbox) {
    if (p.name != "slack") continue;
    refused = true;
    EXPECT_NE(p.last_error.find("http://127.0.0.1:1"), std::string::npos) << p.last_error;
    EXPECT_EQ(p.last_error.find("SECRETTOKEN"), std::string::npos) << p.last_error;
  }
  EXPECT_TRUE(refused);
  clock_.advance(2s);  // past the give-up time: dropped, and audited
  ASSERT_TRUE(n.deliver().ok());
  auto dropped = audits("notify.dropped");
  ASSERT_FALSE(dropped.empty());
  for (const auto& r : dropped)
    EXPECT_EQ(r.detail.find("SECRETTOKEN"), std::string::npos) << r.detail;
  for (const auto& line : sink_.lines()) {
    EXPECT_EQ(line.find("SECRETTOKEN"), std::string::npos) << line;
  }
}

}  // namespace
}  // namespace drover::coordinator::notify
