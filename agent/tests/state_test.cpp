// The agent's durable state, the outbox and the config: what survives a
// restart, what is dropped first, what a bad config says.
#include <gtest/gtest.h>

#include "agent/config.hpp"
#include "agent/health.hpp"
#include "agent/state.hpp"
#include "agent/step/outbox.hpp"
#include "core/hash/sha256.hpp"
#include "tests/support/test_support.hpp"

namespace drover::agent {
namespace {

using drover::testing::TempDir;

TEST(AgentState, RecordsAndIntentsSurviveAReopen) {
  TempDir dir;
  ServiceRecord rec;
  rec.current = ContentId::of("v2").str();
  rec.previous = {ContentId::of("v1").str()};
  rec.seq = 7;
  rec.flags = R"({"a":true})";
  rec.active_slot = "green";
  rec.slots = {{"blue", rec.previous[0]}, {"green", rec.current}};
  rec.tracker = "http://t";
  {
    auto s = AgentState::open(dir.path());
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_EQ(*(*s)->service("web"), ServiceRecord{});
    ASSERT_TRUE(
        (*s)->put_intent("web", {"unpack", 8, ContentId::of("v3").str(), rec.current}).ok());
    ASSERT_TRUE((*s)->put_service("web", rec).ok());
    ASSERT_TRUE((*s)->raise_min_cert_version(3).ok());
    ASSERT_TRUE((*s)->raise_min_cert_version(2).ok());  // never lowered
  }
  auto s = AgentState::open(dir.path());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*(*s)->service("web"), rec);
  auto intent = (*s)->intent("web");
  ASSERT_TRUE(intent.ok() && *intent);
  EXPECT_EQ((*intent)->step, "unpack");
  EXPECT_EQ((*intent)->seq, 8u);
  EXPECT_EQ(*(*s)->min_cert_version(), 3u);
  // finish writes the record and drops the intent in one transaction.
  rec.seq = 8;
  ASSERT_TRUE((*s)->finish("web", rec).ok());
  EXPECT_FALSE(*(*s)->intent("web"));
  EXPECT_EQ((*s)->service("web")->seq, 8u);
}

TEST(AgentState, ReportSeqsNeverRepeatAcrossRestarts) {
  TempDir dir;
  std::uint64_t last = 0;
  for (int run = 0; run < 3; ++run) {
    auto s = AgentState::open(dir.path());
    ASSERT_TRUE(s.ok());
    auto block = (*s)->reserve_report_seqs(10);
    ASSERT_TRUE(block.ok());
    EXPECT_GT(block->first, last);
    EXPECT_EQ(block->second, block->first + 10);
    last = block->first;  // the run used only the first number, then died
  }
}

TEST(AgentState, RefusesAStateOfAnotherFormat) {
  TempDir dir;
  {
    auto env = lmdb::Env::open(dir.path(), {1 << 20, 4, false});
    ASSERT_TRUE(env.ok());
    auto meta = (*env)->table("meta");
    auto txn = (*env)->begin_write();
    ASSERT_TRUE(txn->put(*meta, "agent_format", "9").ok());
    ASSERT_TRUE(txn->commit().ok());
  }
  auto s = AgentState::open(dir.path());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Errc::unsupported);
}

proto::ReportItem health_item(int n) {
  proto::HealthItem h;
  h.service = "web";
  h.at_ms = n;
  return {h, std::nullopt};
}

proto::ReportItem event_item(int n) {
  return {std::nullopt, proto::EventItem{"web", n, "applied", 1, ""}};
}

TEST(Outbox, DropsOldHealthBeforeEventsAndRetriesTheSameReport) {
  Outbox box(4);
  box.push(event_item(1));
  for (int i = 0; i < 5; ++i) box.push(health_item(i));
  EXPECT_EQ(box.size(), 4u);
  EXPECT_EQ(box.dropped(), 2u);
  std::uint64_t next = 100;
  auto seq = [&] { return next++; };
  auto first = box.take(2, seq);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->seq, 100u);
  ASSERT_TRUE(first->items[0].event);  // the event survived the squeeze
  EXPECT_EQ(first->items[1].health->at_ms, 2);
  // Not acknowledged: the retry is the very same report.
  auto retry = box.take(2, seq);
  EXPECT_EQ(retry->seq, 100u);
  EXPECT_EQ(retry->items.size(), 2u);
  box.acknowledged(100);
  auto second = box.take(10, seq);
  EXPECT_EQ(second->seq, 101u);
  EXPECT_EQ(second->items.size(), 2u);
  box.acknowledged(101);
  EXPECT_FALSE(box.take(10, seq));
}

TEST(AgentConfig, NamesTheBadField) {
  const std::string base = R"({"format":"drover.agent-config.v1","host":"h1","state_dir":"/s",
    "root_key":"/k","coordinator":{"requests":"tcp://127.0.0.1:1"},
    "services":[{"name":"web","start":["x"],"port":80}]})";
  auto ok = parse_config(base);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->keep_releases, 3u);
  EXPECT_EQ(ok->services[0].port, 80);
  auto expect_error = [](const std::string& text, const std::string& needle) {
    auto r = parse_config(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
  };
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = base;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  expect_error(with("\"host\":\"h1\"", "\"host\":\"../h\""), "host");
  expect_error(with("\"port\":80", "\"port\":80,\"colour\":1"), "colour");
  expect_error(with("\"port\":80", "\"port\":70000"), "port");
  expect_error(with("\"port\":80", "\"blue_green\":{\"ports\":[1,1]}"), "blue_green");
  expect_error(with("v1", "v9"), "format");
  // Issue 12: plain TCP beyond loopback only when allowed; TLS needs a CA to pin.
  expect_error(with("tcp://127.0.0.1:1", "tcp://coordinator:1"), "allow_plaintext");
  EXPECT_TRUE(parse_config(with("\"requests\":\"tcp://127.0.0.1:1\"",
                                "\"requests\":\"tcp://coordinator:1\",\"allow_plaintext\":true"))
                  .ok());
  expect_error(with("tcp://127.0.0.1:1", "tls+tcp://coordinator:1"), "tls.ca_file");
  expect_error(with("\"requests\":\"tcp://127.0.0.1:1\"",
                    "\"requests\":\"tcp://127.0.0.1:1\",\"protocol\":3"),
               "protocol");
  expect_error(with("\"name\":\"web\"", "\"name\":\"\""), "service name");
  expect_error(R"({"format":"drover.agent-config.v1"})", "host");
  // Issue 15: the nginx router, each field rendered into nginx's
  // configuration checked, and only for a blue/green service.
  const std::string bg = "\"blue_green\":{\"ports\":[8081,8082]}";
  auto nginx = [&](const std::string& router) {
    return with("\"port\":80", bg + ",\"router\":" + router);
  };
  auto good = parse_config(
      nginx(R"({"kind":"nginx","conf_file":"/etc/nginx/conf.d/web.conf","listen":"127.0.0.1:8080",)"
            R"("preview_listen":"127.0.0.1:8089","access_log":"/var/log/nginx/web.log"})"));
  ASSERT_TRUE(good.ok()) << good.error().message;
  ASSERT_TRUE(good->services[0].nginx.has_value());
  EXPECT_EQ(good->services[0].nginx->listen, "127.0.0.1:8080");
  EXPECT_EQ(good->services[0].nginx->command, std::vector<std::string>{"nginx"});
  expect_error(with("\"port\":80", "\"port\":80,\"router\":{\"kind\":\"file\"}"),
               "needs blue_green");
  expect_error(nginx(R"({"kind":"haproxy"})"), "kind");
  expect_error(nginx(R"({"kind":"nginx","conf_file":"web.conf","listen":"127.0.0.1:8080"})"),
               "conf_file");
  expect_error(nginx(R"({"kind":"nginx","conf_file":"/etc/nginx/web.txt","listen":"127.0.0.1:1"})"),
               "conf_file");
  // No injection through listen (a ';', a newline and nginx's own words),
  // no host names, no missing or zero port.
  for (const char* listen : {"127.0.0.1:8080; include /etc/passwd", "127.0.0.1", "x:0", "a b:1",
                             "127.0.0.1:18480\\ndefault_server\\nso_keepalive=1:1:8080",
                             "web.example:80", "127.0.0.1:80 default_server"}) {
    expect_error(nginx(std::string(R"({"kind":"nginx","conf_file":"/n/w.conf","listen":")") +
                       listen + R"("})"),
                 "listen");
  }
  // A valid router on 127.0.0.1:1 with one more field.
  auto nginx_with = [&](const std::string& field) {
    return nginx(R"({"kind":"nginx","conf_file":"/n/w.conf","listen":"127.0.0.1:1",)" + field +
                 "}");
  };
  expect_error(nginx_with(R"("preview_listen":"127.0.0.1:1")"), "preview_listen");
  expect_error(nginx_with(R"("access_log":"/var/log/x.log; include /etc/shadow")"), "access_log");
  expect_error(nginx_with(R"("extra":"x")"), "extra");
  // No two services on one nginx port or drop-in.
  expect_error(nginx(R"({"kind":"nginx","conf_file":"/n/w.conf","listen":"0.0.0.0:80",)"
                     R"("preview_listen":"127.0.0.1:80"})"),
               "another port");
  expect_error(nginx_with(R"("access_log":"/var/log/x\u0001.log")"), "access_log");
  // The preview's traffic: the agent's probe (a path, a count) or the
  // service's verify hook, each needing the preview route.
  expect_error(nginx_with(R"("preview_probe":{"path":"/"})"), "needs preview_listen");
  expect_error(nginx_with(R"("preview_listen":"127.0.0.1:2","preview_probe":{"path":"x y"})"),
               "path");
  expect_error(nginx_with(R"("preview_listen":"127.0.0.1:2","preview_probe":{"requests":0})"),
               "requests");
  auto probe = parse_config(
      nginx_with(R"("preview_listen":"127.0.0.1:2","preview_probe":{"path":"/work?u=1"})"));
  ASSERT_TRUE(probe.ok()) << probe.error().message;
  EXPECT_EQ(probe->services[0].nginx->preview_requests, 20);
  expect_error(with("\"port\":80", "\"port\":80,\"verify\":[\"curl\"]"), "needs the nginx router");
  expect_error(
      with(
          "\"port\":80",
          bg +
              R"(,"verify":[],"router":{"kind":"nginx","conf_file":"/n/w.conf","listen":"127.0.0.1:1","preview_listen":"127.0.0.1:2"})"),
      "verify");
  const std::string two =
      with("\"name\":\"web\",\"start\":[\"x\"],\"port\":80}",
           "\"name\":\"web\",\"start\":[\"x\"]," + bg +
               R"(,"router":{"kind":"nginx","conf_file":"/n/w.conf","listen":"127.0.0.1:8080"}},)"
               R"({"name":"api","start":["x"],"blue_green":{"ports":[9001,9002]},)"
               R"("router":{"kind":"nginx","conf_file":"/n/a.conf","listen":"0.0.0.0:8080"}})");
  expect_error(two, "both listen on port 8080");
  std::string same_file = two;
  same_file.replace(same_file.find("0.0.0.0:8080"), 12, "0.0.0.0:8081");
  same_file.replace(same_file.find("/n/a.conf"), 9, "/n/w.conf");
  expect_error(same_file, "the same conf_file");
  expect_error("[", "not a JSON object");
}

TEST(Health, GarbageIsAnUnhealthySampleThatSaysWhy) {
  auto ok = parse_health(200, R"({"error_rate":0.5,"p99_ms":20,"saturation":0.1,"queue":4})");
  EXPECT_TRUE(ok.ok);
  EXPECT_EQ(ok.custom.at("queue"), 4);
  auto bad = [](int status, const std::string& body, const std::string& needle) {
    auto h = parse_health(status, body);
    EXPECT_FALSE(h.ok) << body;
    EXPECT_NE(h.error.find(needle), std::string::npos) << h.error;
  };
  bad(500, "{}", "HTTP 500");
  bad(200, "all good", "not a JSON object");
  bad(200, R"({"error_rate":"low","p99_ms":1,"saturation":0})", "error_rate");
  bad(200, R"({"error_rate":2,"p99_ms":1,"saturation":0})", "0-1");
  bad(200, R"({"error_rate":0,"p99_ms":-1,"saturation":0})", "p99_ms");
  bad(200, std::string(70 << 10, ' '), "64 KiB");
}

}  // namespace
}  // namespace drover::agent
