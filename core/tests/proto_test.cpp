// The plan format and the agent protocol's messages: what both the agent and
// the coordinator rely on.
#include <gtest/gtest.h>

#include <mutex>

#include <thread>

#include <future>

#include <condition_variable>

#include <nlohmann/json.hpp>

#include "core/canon/base64.hpp"
#include "core/canon/canonical_json.hpp"
#include "core/canon/json_text.hpp"
#include "core/nng/nng.hpp"
#include "core/proto/flagset.hpp"
#include "core/proto/messages.hpp"
#include "core/proto/plan.hpp"
#include "core/sign/secret_box.hpp"
#include "core/world/random.hpp"

namespace drover::proto {
namespace {

using nlohmann::json;
constexpr std::int64_t kNow = 1'800'000'000;

sign::KeyPair key(std::uint64_t seed) {
  SeededRandom rnd(seed);
  return sign::KeyPair::generate(rnd);
}

Plan sample_plan() {
  Plan p;
  p.service = "web";
  p.seq = 7;
  p.deploy_id = "d-42";
  p.artifact = ContentId::of("manifest");
  p.manifest_size = 8;
  p.layers = {{ContentId::of("layer"), 5, Digest{1, 2, 3}}};
  p.hosts = {"web-1", "web-2"};
  p.strategy_kind = "rolling";
  p.strategy_extra = R"({"batch":2})";
  p.flags["new-checkout"] = FlagValue{false, true, 0};
  p.flags["ramp"] = FlagValue{true, false, 25};
  p.tracker = "http://127.0.0.1:6969";
  p.issued_at = kNow - 10;
  p.expires_at = kNow + 3600;
  return p;
}

struct Keys {
  sign::KeyPair root = key(1), online = key(2);
  sign::Envelope cert =
      sign::certify(root, {"online", online.public_key(), 1, kNow - 100, kNow + 86400});
  sign::TrustRoot trust{root.public_key(), 1};
};

TEST(Plan, RoundTripsThroughItsCanonicalBytes) {
  Plan p = sample_plan();
  auto bytes = encode_plan(p);
  ASSERT_TRUE(bytes.ok()) << bytes.error().message;
  auto back = decode_plan(*bytes);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->service, "web");
  EXPECT_EQ(back->seq, 7u);
  EXPECT_EQ(back->layers, p.layers);
  EXPECT_EQ(back->flags, p.flags);
  EXPECT_EQ(back->strategy_extra, R"({"batch":2})");
  EXPECT_EQ(*encode_plan(*back), *bytes);
  EXPECT_TRUE(back->applies_to("web-2"));
  EXPECT_FALSE(back->applies_to("web-3"));
}

TEST(Plan, RefusesUnknownFieldsAndBrokenRules) {
  json j = json::parse(*encode_plan(sample_plan()));
  json extra = j;
  extra["run_as_root"] = true;
  auto r = decode_plan(*canon::encode(extra));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("run_as_root"), std::string::npos) << r.error().message;

  json zero = j;
  zero["seq"] = 0;
  EXPECT_FALSE(decode_plan(*canon::encode(zero)).ok());
  json big_layer = j;
  big_layer["artifact"]["layers"][0]["size"] = (64ull << 20) + 1;
  EXPECT_FALSE(decode_plan(*canon::encode(big_layer)).ok());
  json backwards = j;
  backwards["expires_at"] = kNow - 20;
  EXPECT_FALSE(decode_plan(*canon::encode(backwards)).ok());
  json bad_host = j;
  bad_host["hosts"] = {"../etc"};
  EXPECT_FALSE(decode_plan(*canon::encode(bad_host)).ok());
  json v2 = j;
  v2["format"] = "drover.plan.v2";
  auto unsupported = decode_plan(*canon::encode(v2));
  ASSERT_FALSE(unsupported.ok());
  EXPECT_EQ(unsupported.error().code, Errc::unsupported);
  // Not canonical: white space.
  EXPECT_FALSE(decode_plan(" " + *encode_plan(sample_plan())).ok());
}

// Error messages name unknown fields by at most 64 bytes of their key, and
// never cut a UTF-8 character: they are sent as JSON (the agent's control
// endpoint answers a bad hand-over with the message), which must be UTF-8.
// Issue 15: the strategy keys an agent acts on are checked; the others
// still pass through.
TEST(Plan, TrafficPreviewAndScaleDownAreCheckedAndRead) {
  Plan p = sample_plan();
  EXPECT_EQ(p.traffic(), 1000);  // absent: all of it, as before
  EXPECT_FALSE(p.preview());
  p.strategy_kind = "blue_green";
  p.strategy_extra = R"({"batch":2,"preview":true,"scale_down_s":300,"traffic":0})";
  auto bytes = encode_plan(p);
  ASSERT_TRUE(bytes.ok()) << bytes.error().message;
  auto back = decode_plan(*bytes);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->traffic(), 0);
  EXPECT_TRUE(back->preview());
  p.strategy_kind = "canary";
  p.strategy_extra = R"({"traffic":50})";
  ASSERT_TRUE(encode_plan(p).ok());
  EXPECT_EQ(p.traffic(), 50);
  auto refused = [&](const std::string& kind, const std::string& extra, const std::string& named) {
    Plan q = sample_plan();
    q.strategy_kind = kind;
    q.strategy_extra = extra;
    auto st = validate_plan(q);
    ASSERT_FALSE(st.ok()) << extra;
    EXPECT_NE(st.error().message.find(named), std::string::npos) << st.error().message;
  };
  refused("blue_green", R"({"traffic":1001})", "strategy.traffic");
  refused("blue_green", R"({"traffic":-1})", "strategy.traffic");
  refused("rolling", R"({"traffic":50})", "for blue_green and canary");
  refused("blue_green", R"({"preview":"yes"})", "strategy.preview");
  refused("blue_green", R"({"scale_down_s":-1})", "strategy.scale_down_s");
  refused("blue_green", R"({"scale_down_s":700000})", "strategy.scale_down_s");
}

TEST(Plan, AnUnknownFieldIsNamedInValidUtf8) {
  for (std::size_t pad : {62u, 63u, 64u}) {
    const std::string key = std::string(pad, 'a') + "\u00e9\u20ac";
    for (const std::string& bytes :
         {"{\"" + key + "\": 1}", "{\"plan\": \"\", \"cert\": \"\", \"" + key + "\": 1}"}) {
      auto b = decode_bundle(bytes);
      ASSERT_FALSE(b.ok());
      EXPECT_TRUE(canon::valid_utf8(b.error().message)) << pad;
      const json answer = {{"error", b.error().message}};  // as the control endpoint answers
      EXPECT_NO_THROW((void)answer.dump()) << pad;
    }
  }
}

// The two other cuts of issue 11's list: an artifact id in a manifest pull
// and a handed-over plan's payload_type, each quoted in an error that goes
// back as a JSON reply (the gateway's NNG callback, the agent's answer).
TEST(Plan, QuotedIdsAndPayloadTypesNeverEndMidCharacter) {
  for (std::size_t pad : {70u, 71u, 72u, 73u}) {
    const std::string id = "sha256:" + std::string(pad, 'a') + "\u00e9\u20ac\u00e9";
    auto parsed = ContentId::parse(id);
    ASSERT_FALSE(parsed.ok());
    EXPECT_TRUE(canon::valid_utf8(parsed.error().message)) << pad;
    const std::string reply = encode_error_reply(parsed.error());
    EXPECT_TRUE(canon::valid_utf8(reply)) << pad;
  }
  Keys k;
  auto bundle = sign_plan(sample_plan(), k.online, k.cert);
  ASSERT_TRUE(bundle.ok());
  for (std::size_t pad : {62u, 63u, 64u}) {
    sign::Envelope e = bundle->plan;
    e.payload_type = std::string(pad, 'p') + "\u00e9\u20ac";
    auto opened = sign::open(e, "drover.plan.v1", k.online.public_key());
    ASSERT_FALSE(opened.ok());
    EXPECT_TRUE(canon::valid_utf8(opened.error().message)) << pad;
  }
  // A reply carrying bytes that are not UTF-8 at all is still written.
  std::string reply;
  ASSERT_NO_THROW(reply = encode_error_reply(make_error(Errc::invalid_argument, "bad \xff")));
  EXPECT_TRUE(canon::valid_utf8(reply));
}

TEST(Plan, OpensOnlyWithAValidSignatureByACertifiedKey) {
  Keys k;
  auto bundle = sign_plan(sample_plan(), k.online, k.cert);
  ASSERT_TRUE(bundle.ok());
  auto opened = open_plan(*bundle, k.trust, kNow);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  EXPECT_EQ(opened->plan.seq, 7u);

  // Signed by a key the root never certified.
  auto forged = sign_plan(sample_plan(), key(3), k.cert);
  auto r = open_plan(*forged, k.trust, kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::crypto);

  // Payload altered after signing.
  PlanBundle altered = *bundle;
  altered.plan.payload[altered.plan.payload.find("web-2") + 4] = '3';
  EXPECT_EQ(open_plan(altered, k.trust, kNow).error().code, Errc::crypto);

  // A rotated-out key: the trust floor is above its certificate's version.
  sign::TrustRoot raised = k.trust;
  raised.min_cert_version = 2;
  EXPECT_EQ(open_plan(*bundle, raised, kNow).error().code, Errc::crypto);

  // The bundle survives its wire encoding.
  PlanBundle with_manifest = *bundle;
  with_manifest.manifest = std::string("\0bytes", 6);
  auto decoded = decode_bundle(encode_bundle(with_manifest));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(*decoded->manifest, *with_manifest.manifest);
  EXPECT_TRUE(open_plan(*decoded, k.trust, kNow).ok());
}

TEST(Messages, RequestMacBindsTypeHostAndBody) {
  Request r{std::string(kReport), "web-1", R"({"seq":1})", "", ""};
  mac_request(r, "key-of-web-1");
  auto back = decode_request(encode_request(r));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_TRUE(check_mac(*back, "key-of-web-1"));
  EXPECT_FALSE(check_mac(*back, "key-of-web-2"));
  Request other_host = *back;
  other_host.host = "web-2";  // one host cannot speak for another
  EXPECT_FALSE(check_mac(other_host, "key-of-web-1"));
  Request no_mac{std::string(kReport), "web-1", "{}", "", ""};
  EXPECT_FALSE(check_mac(no_mac, "key-of-web-1"));
}

TEST(Messages, EnrollIsSignedAndCarriesASealedKey) {
  sign::KeyPair agent = key(5), coordinator = key(6);
  EnrollBody b;
  b.host = "web-1";
  b.region = "eu";
  b.cluster = "c1";
  b.services = {"web"};
  b.public_key = agent.public_key();
  b.mesh_peer = "127.0.0.1:7000";
  b.join_token = "tok";
  b.sealed_mac_key = *sign::seal_to(coordinator.public_key(), std::string(32, 'k'));
  b.at = kNow;
  Request r{std::string(kEnroll), "web-1", to_json(b).dump(), "", ""};
  sign_enroll(r, agent);
  auto back = decode_request(encode_request(r));
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(check_enroll_sig(*back, agent.public_key()));
  EXPECT_FALSE(check_enroll_sig(*back, coordinator.public_key()));
  auto body = enroll_body(*parse_body(back->body));
  ASSERT_TRUE(body.ok()) << body.error().message;
  EXPECT_EQ(body->public_key, agent.public_key());
  EXPECT_EQ(*sign::unseal(coordinator, body->sealed_mac_key), std::string(32, 'k'));
}

TEST(Messages, ReportsRoundTripAndBadOnesAreNamed) {
  ReportBody b;
  b.seq = 12;
  b.sent_at_ms = kNow * 1000;
  HealthItem h;
  h.service = "web";
  h.ok = true;
  h.error_rate = 0.25;
  h.p99_ms = 12.5;
  h.custom["queue"] = 3;
  h.state = "running";
  b.items.push_back({h, std::nullopt});
  b.items.push_back({std::nullopt, EventItem{"web", 1, "plan_refused", 9, "expired"}});
  auto back = report_body(to_json(b));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->seq, 12u);
  EXPECT_DOUBLE_EQ(back->items[0].health->p99_ms, 12.5);
  EXPECT_EQ(back->items[0].health->custom.at("queue"), 3);
  EXPECT_EQ(back->items[1].event->detail, "expired");

  json bad = to_json(b);
  bad["items"][0]["p99_ms"] = "fast";
  auto r = report_body(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("p99_ms"), std::string::npos);
  json empty = to_json(b);
  empty["items"] = json::array();
  EXPECT_FALSE(report_body(empty).ok());
}

// `count` copies of `text`, each mangled once in turn: a byte changed to one
// that matters to JSON, removed, or doubled, or the text cut short.
void mangle(SeededRandom& rnd, const std::string& text, int count, std::vector<std::string>& out) {
  const std::string_view pick = "\"\\{}[],: 0129-.eEu/anlt\x01\x7f\x80\xe2\xff";
  for (int k = 0; k < count && !text.empty(); ++k) {
    std::string m = text;
    const std::size_t at = rnd.uniform(m.size());
    switch (k % 4) {
      case 0: m[at] = pick[rnd.uniform(pick.size())]; break;
      case 1: m.erase(at, 1); break;
      case 2: m.insert(at, 1, m[at]); break;
      default: m.resize(at); break;
    }
    out.push_back(std::move(m));
  }
}

// Two readings of a report are the same report, field by field.
void expect_same_report(const ReportBody& a, const ReportBody& b) {
  EXPECT_EQ(a.seq, b.seq);
  EXPECT_EQ(a.sent_at_ms, b.sent_at_ms);
  ASSERT_EQ(a.items.size(), b.items.size());
  for (std::size_t i = 0; i < a.items.size(); ++i) {
    const ReportItem &x = a.items[i], &y = b.items[i];
    ASSERT_EQ(x.health.has_value(), y.health.has_value());
    ASSERT_EQ(x.event.has_value(), y.event.has_value());
    if (x.health) {
      const HealthItem &h = *x.health, &g = *y.health;
      EXPECT_EQ(h.service, g.service);
      EXPECT_EQ(h.release, g.release);
      EXPECT_EQ(h.slot, g.slot);
      EXPECT_EQ(h.at_ms, g.at_ms);
      EXPECT_EQ(h.ok, g.ok);
      EXPECT_EQ(h.error, g.error);
      EXPECT_EQ(h.error_rate, g.error_rate);
      EXPECT_EQ(h.p99_ms, g.p99_ms);
      EXPECT_EQ(h.saturation, g.saturation);
      EXPECT_EQ(h.custom, g.custom);
      EXPECT_EQ(h.state, g.state);
      EXPECT_EQ(h.traffic, g.traffic);
      EXPECT_EQ(h.preview, g.preview);
      EXPECT_EQ(h.other, g.other);
    } else {
      const EventItem &e = *x.event, &f = *y.event;
      EXPECT_EQ(e.service, f.service);
      EXPECT_EQ(e.at_ms, f.at_ms);
      EXPECT_EQ(e.event, f.event);
      EXPECT_EQ(e.seq, f.seq);
      EXPECT_EQ(e.detail, f.detail);
      EXPECT_EQ(e.proof, f.proof);
    }
  }
}

// The report body's fast reader (read_report_fast) reads the common shape
// without a JSON tree. It must read every valid report an agent sends, and
// on any input, valid or mangled, whatever it returns is what parse_body and
// report_body return (it gives up on anything else, and they answer).
TEST(Messages, TheReportsFastReaderReadsWhatTheFullReaderReads) {
  SeededRandom rnd(12);
  std::vector<ReportBody> reports;
  {
    ReportBody b;
    b.seq = 7;
    b.sent_at_ms = kNow * 1000;
    HealthItem h;
    h.service = "web";
    h.release = "sha256:" + std::string(64, 'a');
    h.at_ms = kNow * 1000 - 5;
    h.ok = true;
    h.error_rate = 0.01;
    h.p99_ms = 12;
    h.saturation = 0.2;
    h.state = "running";
    b.items.push_back({h, std::nullopt});
    reports.push_back(b);
    h.custom = {{"queue", 3}, {"lag_ms", -2.5e-3}, {std::string(64, 'm'), 1e300}};
    h.error = "a \"quoted\" \\ error\n\xe2\x9c\x93 \x01";
    h.slot = "blue";
    h.traffic = 250;
    h.preview = true;
    b.items.push_back({h, std::nullopt});
    h.other = true;
    h.preview = false;
    h.traffic = 750;
    b.items.push_back({h, std::nullopt});
    b.items.push_back({std::nullopt, EventItem{"web", 1, "applied", 9, h.release, ""}});
    b.items.push_back({std::nullopt, EventItem{"api", 0, "replay_refused", 0, "", "proof text"}});
    reports.push_back(b);
    b.seq = kMaxSeq;
    b.items.resize(kMaxReportItems, b.items.back());
    reports.push_back(b);
  }
  std::vector<std::string> valid;
  for (const ReportBody& r : reports) {
    json j = to_json(r);
    valid.push_back(j.dump());
    j["nonce"] = std::string(32, 'f');  // as a version-2 agent sends it
    valid.push_back(j.dump());
  }
  for (const std::string& v : valid) {
    SCOPED_TRACE(v.substr(0, 200));
    auto fast = read_report_fast(v);
    ASSERT_TRUE(fast.has_value());  // the common shape takes the fast path
    auto full = report_body(*parse_body(v));
    ASSERT_TRUE(full.ok()) << full.error().message;
    expect_same_report(*fast, *full);
  }
  // Mangled: a field made null, a float, negative, huge, repeated, unknown or
  // of the other kind; then bytes changed, removed, doubled, or cut.
  std::vector<std::string> inputs;
  const json base = json::parse(valid[3]);
  for (const char* field : {"seq", "sent_at", "items", "nonce"}) {
    for (const json& v : {json(nullptr), json(1.5), json(-1), json(kMaxSeq + 1), json("x"),
                          json::array(), json::object(), json(0)}) {
      json j = base;
      j[field] = v;
      inputs.push_back(j.dump());
    }
  }
  for (const char* field : {"service", "release", "slot", "at", "error", "error_rate", "p99_ms",
                            "saturation", "custom", "state", "traffic", "preview", "other", "kind",
                            "event", "seq", "detail", "proof", "unknown"}) {
    for (int item : {1, 2, 3, 4}) {
      for (const json& v :
           {json(nullptr), json(true), json(1.5), json(-1), json(1001), json(kMaxSeq + 1),
            json("Web 1"), json(""), json(std::string(5000, 'x')), json::array(), json::object(),
            json({{"a", 1}}), json("health"), json("event")}) {
        json j = base;
        j["items"][item][field] = v;
        inputs.push_back(j.dump());
        j["items"][item].erase(field);
        inputs.push_back(j.dump());
      }
    }
  }
  inputs.push_back(R"({"seq":1,"seq":2,"sent_at":0,"items":[]})");
  // Members in other orders than dump()'s (an agent need not sort them): a
  // value after an object must not be taken for the key read inside it.
  const std::string item =
      R"({"kind":"health","service":"web","release":"","slot":"","at":0,"error":"",)"
      R"("state":"","ok":true,"error_rate":0,"p99_ms":0,"saturation":0,"custom":{"nonce":1}})";
  for (const std::string& tail :
       {std::string(R"(,"anything"])"), std::string(R"(,1])"), std::string(R"(,true])"),
        std::string("]"), std::string(R"(],"nonce":"n")")}) {
    inputs.push_back(R"({"seq":5,"sent_at":0,"items":[)" + item + tail + "}");
    inputs.push_back(R"({"items":[)" + item + tail + R"(,"sent_at":0,"seq":5})");
  }
  inputs.push_back(valid[1].substr(0, valid[1].size() - 1) + R"(,"seq":3})");
  inputs.push_back(" " + valid[0]);
  inputs.push_back(valid[0] + " ");
  for (const std::string& v : valid) mangle(rnd, v, 400, inputs);
  int fast_read = 0;
  for (const std::string& in : inputs) {
    SCOPED_TRACE(in.substr(0, 300));
    auto fast = read_report_fast(in);
    if (!fast) continue;  // given up: the full reader answers
    ++fast_read;
    auto body = parse_body(in);
    ASSERT_TRUE(body.ok()) << body.error().message;
    auto full = report_body(*body);
    ASSERT_TRUE(full.ok()) << full.error().message;
    expect_same_report(*fast, *full);
  }
  EXPECT_GT(fast_read, 100);  // mangled ones that still read, not only the valid
}

TEST(Messages, ASplitHostsSharesRoundTripAndAreChecked) {
  ReportBody b;
  b.seq = 1;
  HealthItem h;
  h.service = "web";
  h.ok = true;
  h.traffic = 950;
  h.other = true;
  b.items.push_back({h, std::nullopt});
  h.traffic = 50;
  h.other = false;
  h.preview = true;
  b.items.push_back({h, std::nullopt});
  auto back = report_body(to_json(b));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->items[0].health->traffic, 950);
  EXPECT_TRUE(back->items[0].health->other);
  EXPECT_TRUE(back->items[1].health->preview);
  // An item without the keys (an older agent) reads as before: no share.
  HealthItem plain;
  plain.service = "web";
  EXPECT_FALSE(to_json(ReportBody{1, 0, {{plain, std::nullopt}}})["items"][0].contains("traffic"));

  json bad = to_json(b);
  bad["items"][0]["traffic"] = 1001;
  auto r = report_body(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("traffic"), std::string::npos);
  bad = to_json(b);
  bad["items"][0].erase("traffic");
  r = report_body(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("other"), std::string::npos) << r.error().message;
  bad = to_json(b);
  bad["items"][1]["preview"] = "yes";
  EXPECT_FALSE(report_body(bad).ok());
}

// decode_request and decode_sealed_reply first try a fast reader of the
// envelopes' common shape; on every input, valid or mangled, they answer
// exactly what the full reader answers (the same fields, or the same error).
TEST(Messages, TheEnvelopesFastReaderAnswersAsTheFullReaderOnEveryInput) {
  SeededRandom rnd(11);
  const auto signer = sign::KeyPair::generate(rnd);
  const std::string key(32, 'k'), hash(64, 'a');
  std::vector<std::string> bases;
  for (const std::string& body :
       {std::string(R"({"seq":1,"items":[{"kind":"health","release":"sha256:ab"}]})"),
        std::string("a \"quoted\" \\ back/slash\n\t\x01 and \xe2\x9c\x93"), std::string(),
        std::string("\x7f\b\f\r")}) {
    for (int v : {kProtocolVersion, kProtocolV2}) {
      Request r;
      r.v = v;
      r.type = "report";
      r.host = "web-1";
      r.body = body;
      bases.push_back(encode_request(r));
      mac_request(r, key);
      bases.push_back(encode_request(r));
      r.mac.clear();
      sign_enroll(r, signer);
      bases.push_back(encode_request(r));
    }
    bases.push_back(mac_reply("ack", {{"note", body}}, "web-1", hash, key));
    bases.push_back(sign_reply("error", {{"message", body}}, "web-1", hash, signer));
  }
  for (const char* odd :
       {R"({"v":2,"type":"report","host":"web-1","body":"{}","v":2})",
        R"({"v":02,"type":"report","host":"web-1","body":"{}"})",
        R"({"v":2.0,"type":"report","host":"web-1","body":"{}"})",
        R"({"v":-2,"type":"report","host":"web-1","body":"{}"})",
        R"({"v":2, "type":"report","host":"web-1","body":"{}"})",
        R"({"v":2,"type":"report","host":"web-1","body":"A\/"})",
        R"({"v":2,"type":"report","host":"Web 1","body":"{}"})",
        R"({"v":2,"type":"report","host":"web-1","body":"{}","extra":1})",
        R"({"v":2,"type":"report","host":"web-1","body":null})",
        R"({"v":2,"type":"ack","body":"{}","sig":"","key_id":""})",
        R"({"v":2,"type":"ack","body":"{}","mac":"00","key_id":7})", R"({})", R"({"v":2})", R"([])",
        "", "{", R"({"v":2,"type":"ack","body":"{}","mac":")"}) {
    bases.emplace_back(odd);
  }
  // A signature with an empty key id, and one with a MAC beside it.
  const std::string sig = canon::base64_encode(std::string(64, 's'));
  bases.push_back(R"({"body":"{}","key_id":"","sig":")" + sig + R"(","type":"ack","v":2})");
  bases.push_back(R"({"body":"{}","key_id":"ab","mac":")" + std::string(64, 'f') + R"(","sig":")" +
                  sig + R"(","type":"ack","v":2})");
  // Each base, then mangled: a byte changed to one that matters to JSON,
  // removed, or doubled, or the text cut short.
  std::vector<std::string> inputs = bases;
  for (const std::string& b : bases) mangle(rnd, b, 300, inputs);
  int accepted = 0;
  for (const std::string& in : inputs) {
    SCOPED_TRACE(in);
    auto fast = decode_request(in);
    auto full = detail::decode_request_full(in);
    ASSERT_EQ(fast.ok(), full.ok());
    if (fast.ok()) {
      ++accepted;
      EXPECT_EQ(fast->v, full->v);
      EXPECT_EQ(fast->type, full->type);
      EXPECT_EQ(fast->host, full->host);
      EXPECT_EQ(fast->body, full->body);
      EXPECT_EQ(fast->mac, full->mac);
      EXPECT_EQ(fast->sig, full->sig);
    } else {
      EXPECT_EQ(fast.error().message, full.error().message);
    }
    auto fast_reply = decode_sealed_reply(in);
    auto full_reply = detail::decode_sealed_reply_full(in);
    ASSERT_EQ(fast_reply.ok(), full_reply.ok());
    if (fast_reply.ok()) {
      ++accepted;
      EXPECT_EQ(fast_reply->type, full_reply->type);
      EXPECT_EQ(fast_reply->body, full_reply->body);
      EXPECT_EQ(fast_reply->mac, full_reply->mac);
      EXPECT_EQ(fast_reply->sig, full_reply->sig);
      EXPECT_EQ(fast_reply->key_id, full_reply->key_id);
    } else {
      EXPECT_EQ(fast_reply.error().message, full_reply.error().message);
    }
  }
  EXPECT_GT(accepted, static_cast<int>(bases.size()));  // mangled ones too
}

// A sealed reply is written without a JSON tree: its text is canonical (what
// a tree would dump), whatever its body holds, and its MAC or signature checks.
TEST(Messages, ASealedReplyIsCanonicalTextAndItsAuthenticationChecks) {
  const std::string key(32, 'k'), hash(64, 'a');
  const json odd = {{"message", "a \"quoted\" \\ line\nand \xe2\x9c\x93"}, {"seq", 7}};
  const std::string mac_text = mac_reply("error", odd, "web-1", hash, key);
  const json parsed = json::parse(mac_text);
  EXPECT_EQ(json_text(parsed), mac_text);
  auto sealed = decode_sealed_reply(mac_text);
  ASSERT_TRUE(sealed.ok()) << sealed.error().message;
  EXPECT_EQ(sealed->type, "error");
  EXPECT_EQ(json::parse(sealed->body), odd);
  EXPECT_TRUE(check_reply_mac(*sealed, "web-1", hash, key));
  EXPECT_FALSE(check_reply_mac(*sealed, "web-2", hash, key));

  SeededRandom rnd(5);
  const auto signer = sign::KeyPair::generate(rnd);
  const std::string sig_text = sign_reply("ack", {{"seq", 3}}, "web-1", hash, signer);
  EXPECT_EQ(json_text(json::parse(sig_text)), sig_text);
  auto signed_reply = decode_sealed_reply(sig_text);
  ASSERT_TRUE(signed_reply.ok()) << signed_reply.error().message;
  EXPECT_EQ(signed_reply->key_id, signer.public_key().key_id());
  EXPECT_TRUE(check_reply_sig(*signed_reply, "web-1", hash, signer.public_key()));
  EXPECT_FALSE(check_reply_sig(*signed_reply, "web-1", std::string(64, 'b'), signer.public_key()));
}

TEST(Messages, RepliesAndAnnouncementsCarryTheirVersion) {
  auto ok = decode_reply(encode_reply("ack", {{"seq", 3}}));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->type, "ack");
  EXPECT_EQ(ok->fields["seq"], 3);
  auto err = decode_reply(encode_error_reply(make_error(Errc::refused, "host key differs")));
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.error().code, Errc::refused);
  EXPECT_NE(err.error().message.find("host key differs"), std::string::npos);
  auto future = decode_reply(R"({"v":2,"type":"ack"})");
  ASSERT_FALSE(future.ok());
  EXPECT_EQ(future.error().code, Errc::unsupported);

  auto a = decode_announcement(encode_announcement({"web", 9}));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->service, "web");
  EXPECT_EQ(a->seq, 9u);
  EXPECT_FALSE(decode_announcement("drover.announce.v1 {").ok());
}

TEST(Nng, RequestReplyAndATimeoutWhenNoServerAnswers) {
  auto server = nng::Server::listen(
      "tcp://127.0.0.1:0", [](std::string_view req) { return "echo:" + std::string(req); });
  ASSERT_TRUE(server.ok()) << server.error().message;
  auto client = nng::Client::dial((*server)->url());
  ASSERT_TRUE(client.ok()) << client.error().message;
  auto answer = (*client)->request("hello", std::chrono::seconds(10));
  ASSERT_TRUE(answer.ok()) << answer.error().message;
  EXPECT_EQ(*answer, "echo:hello");

  // No server: a timeout, named as such.
  auto lonely = nng::Client::dial("tcp://127.0.0.1:1");
  ASSERT_TRUE(lonely.ok());
  auto r = (*lonely)->request("x", std::chrono::milliseconds(200));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::timeout);
}

TEST(Nng, AsyncRepliesComeFromAnyThreadAndManyWaitAtOnce) {
  // Every request is held until 8 have arrived, then all are answered from
  // another thread: 8 requests in flight need no thread each.
  std::mutex mu;
  std::vector<std::pair<std::string, nng::Server::Reply>> held;
  std::condition_variable all_in;
  auto server = nng::Server::listen_async(
      "tcp://127.0.0.1:0",
      [&](std::string_view req, nng::Server::Reply reply) {
        std::lock_guard lock(mu);
        held.emplace_back(std::string(req), std::move(reply));
        all_in.notify_all();
      },
      16);
  ASSERT_TRUE(server.ok()) << server.error().message;
  std::thread answerer([&] {
    std::unique_lock lock(mu);
    all_in.wait(lock, [&] { return held.size() == 8; });
    for (auto& [req, reply] : held) {
      reply("late:" + req);
      reply("twice");  // a second answer is dropped
    }
  });
  std::vector<std::thread> clients;
  std::vector<std::string> answers(8);
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&, i] {
      auto c = nng::Client::dial((*server)->url());
      auto a = (*c)->request(std::to_string(i), std::chrono::seconds(10));
      answers[i] = a.ok() ? *a : a.error().message;
    });
  }
  for (auto& t : clients) t.join();
  answerer.join();
  for (int i = 0; i < 8; ++i) EXPECT_EQ(answers[i], "late:" + std::to_string(i));

  // A reply after the server is gone is dropped, not a crash.
  nng::Server::Reply orphan;
  {
    std::promise<void> got;
    auto s2 = nng::Server::listen_async("tcp://127.0.0.1:0",
                                        [&](std::string_view, nng::Server::Reply reply) {
                                          orphan = std::move(reply);
                                          got.set_value();
                                        });
    auto c = nng::Client::dial((*s2)->url());
    std::thread t([&] { (void)(*c)->request("x", std::chrono::milliseconds(500)); });
    got.get_future().wait();
    s2->reset();
    t.join();
  }
  orphan("too late");
}

TEST(Nng, SubscribersReceiveAnnouncementsWithTheirPrefix) {
  auto pub = nng::Publisher::listen("tcp://127.0.0.1:0");
  ASSERT_TRUE(pub.ok()) << pub.error().message;
  auto sub = nng::Subscriber::dial((*pub)->url(), kAnnouncePrefix);
  ASSERT_TRUE(sub.ok());
  // PUB/SUB delivers nothing sent before the subscriber connected: publish
  // until one arrives (what agents rely on is the pull, not this).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::optional<std::string> got;
  while (!got && std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE((*pub)->publish("other topic").ok());
    ASSERT_TRUE((*pub)->publish(encode_announcement({"web", 4})).ok());
    auto m = (*sub)->receive(std::chrono::milliseconds(50));
    ASSERT_TRUE(m.ok());
    got = *m;
  }
  ASSERT_TRUE(got);
  EXPECT_EQ(decode_announcement(*got)->seq, 4u);
}

TEST(FlagSets, RoundTripSignedAndBadOnesAreNamed) {
  SeededRandom rnd(4);
  const auto root = sign::KeyPair::generate(rnd);
  const auto online = sign::KeyPair::generate(rnd);
  const auto cert = sign::certify(root, {"online", online.public_key(), 1, kNow - 10, kNow + 3600});
  FlagSet f;
  f.service = "web";
  f.env = "production";
  f.seq = 4;
  f.hosts = {"h1", "h2"};
  f.flags["checkout"] = {true, false, 25};
  f.flags["dark"] = {false, true, 0};
  f.issued_at = kNow;
  auto bundle = sign_flagset(f, online, cert);
  ASSERT_TRUE(bundle.ok()) << bundle.error().message;
  auto back = decode_flagset_bundle(encode_flagset_bundle(*bundle));
  ASSERT_TRUE(back.ok());
  auto opened = open_flagset(*back, {root.public_key(), 1}, kNow);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  EXPECT_EQ(opened->flags_json(), R"({"checkout":25,"dark":true})");
  EXPECT_TRUE(opened->applies_to("h2"));
  EXPECT_FALSE(opened->applies_to("h3"));
  // Another root does not vouch for it.
  const auto stranger = sign::KeyPair::generate(rnd);
  EXPECT_EQ(open_flagset(*back, {stranger.public_key(), 1}, kNow).error().code, Errc::crypto);
  // The rules of the format.
  FlagSet bad = f;
  bad.flags["checkout"] = {true, false, 101};
  EXPECT_NE(encode_flagset(bad).error().message.find("outside 0-100"), std::string::npos);
  bad = f;
  bad.hosts = {"h1", "h1"};
  EXPECT_NE(encode_flagset(bad).error().message.find("listed twice"), std::string::npos);
  bad = f;
  bad.seq = 0;
  EXPECT_FALSE(encode_flagset(bad).ok());
  std::string text = *encode_flagset(f);
  EXPECT_TRUE(decode_flagset(text).ok());
  EXPECT_FALSE(
      decode_flagset(text.substr(0, text.size() - 1) + ",\"x\":1}").ok());  // unknown field
  EXPECT_FALSE(decode_flagset(" " + text).ok());                            // not canonical
  // A bundle that is not one, or far too large, is refused before any
  // signature is checked.
  EXPECT_FALSE(decode_flagset_bundle("[]").ok());
  EXPECT_FALSE(decode_flagset_bundle(R"({"flagset":"x","cert":"y","extra":1})").ok());
  EXPECT_FALSE(decode_flagset_bundle(std::string(40 << 20, '{')).ok());
  // An announcement of a kind nobody knows is refused; a flag set's is read.
  auto flags = decode_announcement(encode_announcement({"web", 4, true}));
  ASSERT_TRUE(flags.ok());
  EXPECT_TRUE(flags->flags);
  std::string odd = encode_announcement({"web", 4, true});
  odd.replace(odd.find("flags"), 5, "other");
  EXPECT_FALSE(decode_announcement(odd).ok());
}

}  // namespace
}  // namespace drover::proto
