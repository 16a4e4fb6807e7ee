// Attacks on the tracker through its HTTP endpoint (docs/MESH.md, "What the
// tracker refuses"): announces that would grow it without bound, announces of
// info-hashes no registered artifact has, and nodes claiming to be a region's
// seed or the origin; announces without a valid mesh token when the tracker
// has a token key, and questions to /vouched. Each is refused with a BEP 3 "failure reason", leaves
// no state behind, and the nodes already tracked are served as before.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "core/base/hex.hpp"
#include "core/http/http.hpp"
#include "core/mesh_token/mesh_token.hpp"
#include "mesh/tracker/tracker_service.hpp"

namespace drover::mesh {
namespace {

using namespace std::chrono_literals;

// The top level of a bencoded answer: byte strings and integers by key.
struct Answer {
  std::map<std::string, std::string> bytes;
  std::map<std::string, std::int64_t> ints;
  bool refused() const { return bytes.count("failure reason") > 0; }
  std::string failure() const { return refused() ? bytes.at("failure reason") : ""; }
  std::set<std::uint16_t> ports() const {  // of the compact IPv4 peers
    std::set<std::uint16_t> out;
    auto it = bytes.find("peers");
    if (it == bytes.end()) return out;
    for (std::size_t i = 0; i + 6 <= it->second.size(); i += 6) {
      out.insert(static_cast<std::uint16_t>(static_cast<unsigned char>(it->second[i + 4]) << 8 |
                                            static_cast<unsigned char>(it->second[i + 5])));
    }
    return out;
  }
};

bool decode(const std::string& body, Answer& out) {
  std::size_t i = 0;
  auto string = [&](std::string& s) {
    const std::size_t colon = body.find(':', i);
    if (colon == std::string::npos || colon == i) return false;
    const std::size_t n = std::stoul(body.substr(i, colon - i));
    if (colon + 1 + n > body.size()) return false;
    s = body.substr(colon + 1, n);
    i = colon + 1 + n;
    return true;
  };
  if (body.empty() || body[i++] != 'd') return false;
  while (i < body.size() && body[i] != 'e') {
    std::string key;
    if (!string(key) || i >= body.size()) return false;
    if (body[i] == 'i') {
      const std::size_t end = body.find('e', i);
      if (end == std::string::npos) return false;
      out.ints[key] = std::stoll(body.substr(i + 1, end - i - 1));
      i = end + 1;
    } else if (!string(out.bytes[key])) {
      return false;
    }
  }
  return i + 1 == body.size();
}

class TrackerAttack : public ::testing::Test {
 protected:
  void start() {
    auto svc = TrackerService::start({}, options_, clock_, random_, Logger::discard());
    ASSERT_TRUE(svc.ok()) << svc.error().message;
    svc_ = std::move(*svc);
    base_ = "http://127.0.0.1:" + std::to_string(svc_->port());
  }

  // One announce over HTTP; the peer id follows from the port.
  Answer announce(const std::string& info_hash, std::uint16_t port, NodeRole role,
                  const std::string& region, std::uint64_t left = 100,
                  const std::string& event = "", const std::string& token = "") {
    std::string peer_id = std::string(15, 'p') + std::to_string(10'000 + port);
    peer_id.resize(20, 'p');
    std::string url =
        mesh::announce_url(base_, "host-" + std::to_string(port), role, region, "c", token);
    url += "&info_hash=" + http::percent_encode(info_hash) +
           "&peer_id=" + http::percent_encode(peer_id) + "&port=" + std::to_string(port) +
           "&left=" + std::to_string(left);
    if (!event.empty()) url += "&event=" + event;
    Answer a;
    auto r = http::request("GET", url, "", 5s);
    EXPECT_TRUE(r.ok()) << r.error().message;
    if (!r.ok()) return a;
    EXPECT_EQ(r->status, 200);
    EXPECT_TRUE(decode(r->body, a)) << r->body;
    return a;
  }
  nlohmann::json get(const std::string& path) {
    auto r = http::request("GET", base_ + path, "", 5s);
    EXPECT_TRUE(r.ok()) << r.error().message;
    if (!r.ok()) return {};
    return nlohmann::json::parse(r->body, nullptr, false);
  }
  nlohmann::json stats() { return get("/stats"); }
  // A token for the node announce() makes for this port.
  std::string token_for(std::uint16_t port, NodeRole role, const std::string& region,
                        std::chrono::seconds ttl = 3600s, const std::string& key = kTokenKey) {
    auto t = mesh_token::issue(key, {role_name(role), region, "host-" + std::to_string(port),
                                     unix_seconds(clock_.now()) + ttl.count()});
    EXPECT_TRUE(t.ok()) << t.error().message;
    return t.ok() ? *t : "";
  }
  inline static const std::string kTokenKey = std::string(32, '\x42');
  nlohmann::json holders(const std::string& info_hash) {
    return get("/swarm?info_hash=" + to_hex(info_hash))["complete"];
  }
  // 1 when a was refused for a reason naming every one of words, 0 when it
  // was answered.
  static int refused_for(const Answer& a, const std::vector<std::string_view>& words) {
    if (!a.refused()) return 0;
    for (std::string_view w : words) {
      EXPECT_NE(a.failure().find(w), std::string::npos) << a.failure();
    }
    return 1;
  }
  static std::string hash(int n) {
    std::string h(20, '\0');
    for (int b = 0; b < 4; ++b) h[static_cast<std::size_t>(b)] = static_cast<char>(n >> (8 * b));
    h[19] = '\x5a';
    return h;
  }

  ManualClock clock_;
  SeededRandom random_{7};
  TrackerOptions options_;
  std::unique_ptr<TrackerService> svc_;
  std::string base_;
};

TEST_F(TrackerAttack, AFloodOfNewSwarmsStopsAtTheCapAndTheSwarmsThereKeepWorking) {
  options_.max_swarms = 3;
  start();
  const std::string layer = hash(1);
  ASSERT_FALSE(announce(layer, 7001, NodeRole::seed, "eu", 0).refused());
  ASSERT_FALSE(announce(layer, 8001, NodeRole::peer, "eu").refused());

  // The attack: one announce for each of 200 made-up layers.
  int refused = 0;
  for (int n = 100; n < 300; ++n) {
    refused += refused_for(announce(hash(n), 9000, NodeRole::peer, "eu", 5, "started"),
                           {"tracker full", "max_swarms"});
  }
  EXPECT_EQ(refused, 198);  // two swarms were free
  nlohmann::json s = stats();
  EXPECT_EQ(s["swarms"], 3);
  EXPECT_EQ(s["nodes"], 4);
  EXPECT_EQ(s["refused"]["full"], 198);

  // The layer's swarm is served as before, and takes new nodes.
  Answer again = announce(layer, 8001, NodeRole::peer, "eu");
  ASSERT_FALSE(again.refused()) << again.failure();
  EXPECT_EQ(again.ports(), (std::set<std::uint16_t>{7001}));
  Answer newcomer = announce(layer, 8002, NodeRole::peer, "eu");
  ASSERT_FALSE(newcomer.refused()) << newcomer.failure();
  EXPECT_EQ(newcomer.ports(), (std::set<std::uint16_t>{7001, 8001}));

  // Once the attacker's nodes expire and are swept, new swarms fit again.
  clock_.advance(options_.expiry + 1s);
  announce(layer, 8001, NodeRole::peer, "eu");  // the layer's nodes stay alive
  announce(layer, 7001, NodeRole::seed, "eu", 0);
  ASSERT_FALSE(announce(hash(400), 8003, NodeRole::peer, "eu").refused());
}

TEST_F(TrackerAttack, AFloodOfNodesInOneSwarmStopsAtTheCapAndNeverLocksOutItsSeed) {
  options_.max_nodes_per_swarm = 4;
  options_.sources = std::vector<SourceGrant>{{NodeRole::seed, "eu", "127.0.0.1", 7001}};
  start();
  const std::string layer = hash(1);
  ASSERT_FALSE(announce(layer, 8001, NodeRole::peer, "eu").refused());

  // The attack: 100 made-up peers fill the layer's swarm before its seed comes.
  int refused = 0;
  for (std::uint16_t port = 20'000; port < 20'100; ++port) {
    refused += refused_for(announce(layer, port, NodeRole::peer, "eu"), {"swarm full"});
  }
  EXPECT_EQ(refused, 97);
  EXPECT_EQ(stats()["nodes"], 4);

  // The region's seed still joins (granted sources are exempt from the caps),
  // and every peer already in the swarm is handed it.
  Answer seed = announce(layer, 7001, NodeRole::seed, "eu", 0);
  ASSERT_FALSE(seed.refused()) << seed.failure();
  Answer peer = announce(layer, 8001, NodeRole::peer, "eu");
  ASSERT_FALSE(peer.refused()) << peer.failure();
  EXPECT_TRUE(peer.ports().count(7001));
  // A node already in the swarm keeps announcing; a new one is still refused.
  EXPECT_FALSE(announce(layer, 20'000, NodeRole::peer, "eu").refused());
  EXPECT_TRUE(announce(layer, 20'500, NodeRole::peer, "eu").refused());
  EXPECT_EQ(stats()["nodes"], 5);
}

TEST_F(TrackerAttack, AFloodOfNodesOverManySwarmsStopsAtTheTrackersCap) {
  options_.max_nodes = 10;
  start();
  const std::string layer = hash(1);
  ASSERT_FALSE(announce(layer, 7001, NodeRole::seed, "eu", 0).refused());
  ASSERT_FALSE(announce(layer, 8001, NodeRole::peer, "eu").refused());

  // The attack: few nodes per swarm, over many swarms.
  int refused = 0;
  for (int n = 100; n < 150; ++n) {
    for (std::uint16_t port : {30'001, 30'002}) {
      refused += refused_for(announce(hash(n), port, NodeRole::peer, "eu"), {"max_nodes"});
    }
  }
  EXPECT_EQ(refused, 92);
  EXPECT_EQ(stats()["nodes"], 10);
  EXPECT_EQ(stats()["swarms"], 5);
  Answer peer = announce(layer, 8001, NodeRole::peer, "eu");
  ASSERT_FALSE(peer.refused()) << peer.failure();
  EXPECT_EQ(peer.ports(), (std::set<std::uint16_t>{7001}));
}

TEST_F(TrackerAttack, AnUnregisteredInfoHashIsRefusedAndLeavesNothingBehind) {
  // What the coordinator does: a set it fills as artifacts are registered,
  // read on the tracker's thread.
  std::mutex mu;  // guards registered
  std::set<std::string> registered{hash(1)};
  options_.tracks = [&](const std::string& ih) {
    std::lock_guard lock(mu);
    return registered.count(ih) > 0;
  };
  start();
  const std::string layer = hash(1);
  ASSERT_FALSE(announce(layer, 7001, NodeRole::seed, "eu", 0).refused());
  ASSERT_FALSE(announce(layer, 8001, NodeRole::peer, "eu").refused());

  // The attack: announces of layers nobody registered, in every form.
  for (int n = 100; n < 160; ++n) {
    for (NodeRole role : {NodeRole::peer, NodeRole::seed, NodeRole::origin}) {
      Answer a = announce(hash(n), 9000, role, "eu", 0, n % 2 ? "started" : "");
      ASSERT_TRUE(a.refused()) << n;
      EXPECT_EQ(a.failure().rfind("unregistered info-hash " + to_hex(hash(n)), 0), 0u)
          << a.failure();
      // The client is told when to come back (libtorrent waits 30 minutes
      // after a failure that names no interval).
      EXPECT_EQ(a.ints["interval"], options_.interval.count());
    }
  }
  EXPECT_TRUE(announce(hash(100), 9000, NodeRole::peer, "eu", 0, "stopped").refused());
  nlohmann::json s = stats();
  EXPECT_EQ(s["swarms"], 1);
  EXPECT_EQ(s["nodes"], 2);
  EXPECT_EQ(s["refused"]["unregistered"], 181);
  EXPECT_TRUE(holders(hash(100)).empty());

  // The registered layer is served as before.
  Answer peer = announce(layer, 8002, NodeRole::peer, "eu");
  ASSERT_FALSE(peer.refused()) << peer.failure();
  EXPECT_EQ(peer.ports(), (std::set<std::uint16_t>{7001, 8001}));
  // A layer registered later is tracked from then on.
  {
    std::lock_guard lock(mu);
    registered.insert(hash(100));
  }
  EXPECT_FALSE(announce(hash(100), 9000, NodeRole::peer, "eu").refused());
  EXPECT_EQ(stats()["swarms"], 2);
}

TEST_F(TrackerAttack, ANodeOffTheSourceListCannotBecomeASeedOrTheOrigin) {
  options_.sources = std::vector<SourceGrant>{{NodeRole::seed, "eu", "127.0.0.1", 7001},
                                              {NodeRole::origin, "", "127.0.0.1", 7000}};
  start();
  const std::string layer = hash(1);
  ASSERT_FALSE(announce(layer, 7000, NodeRole::origin, "", 0).refused());
  ASSERT_FALSE(announce(layer, 7001, NodeRole::seed, "eu", 0).refused());

  // The attack: a node claims to be the seed of region "us" (which would hide
  // the origin from that region's peers and tell the coordinator the layer
  // is at the region's seed), the seed of "eu", and the origin.
  struct Claim {
    std::uint16_t port;
    NodeRole role;
    const char* region;
  };
  for (Claim c : {Claim{7666, NodeRole::seed, "us"}, Claim{7666, NodeRole::seed, "eu"},
                  Claim{7001, NodeRole::seed, "us"},  // the granted port, another region
                  Claim{7666, NodeRole::origin, ""}}) {
    Answer a = announce(layer, c.port, c.role, c.region, 0, "started");
    ASSERT_TRUE(a.refused()) << c.port << " " << role_name(c.role) << " " << c.region;
    EXPECT_NE(a.failure().find(std::string("role ") + role_name(c.role) + " is not granted to " +
                               "127.0.0.1:" + std::to_string(c.port)),
              std::string::npos)
        << a.failure();
  }
  EXPECT_EQ(stats()["nodes"], 2);
  EXPECT_EQ(stats()["refused"]["role"], 4);

  // Nothing changed: /swarm shows the real origin and seed only, a peer of
  // "us" is still handed the origin, one of "eu" its seed.
  nlohmann::json held = holders(layer);
  ASSERT_EQ(held.size(), 2u) << held.dump();
  std::set<std::string> shown;
  for (const auto& h : held)
    shown.insert(h["role"].get<std::string>() + "/" + h["host"].get<std::string>());
  EXPECT_EQ(shown, (std::set<std::string>{"origin/host-7000", "seed/host-7001"}));
  Answer us = announce(layer, 8001, NodeRole::peer, "us");
  ASSERT_FALSE(us.refused()) << us.failure();
  EXPECT_EQ(us.ports(), (std::set<std::uint16_t>{7000}));
  Answer eu = announce(layer, 8002, NodeRole::peer, "eu");
  ASSERT_FALSE(eu.refused()) << eu.failure();
  EXPECT_EQ(eu.ports(), (std::set<std::uint16_t>{7001}));
  // The attacker may still take part as what it is: a peer.
  EXPECT_FALSE(announce(layer, 7666, NodeRole::peer, "us").refused());
}

TEST_F(TrackerAttack, WithATokenKeyAnAnnounceWithoutAValidTokenGetsNoPeers) {
  options_.token_key = kTokenKey;
  start();
  const std::string layer = hash(1);
  const std::string seed_token = token_for(7001, NodeRole::seed, "eu");
  ASSERT_FALSE(announce(layer, 7001, NodeRole::seed, "eu", 0, "", seed_token).refused());
  Answer vouched =
      announce(layer, 8001, NodeRole::peer, "eu", 100, "", token_for(8001, NodeRole::peer, "eu"));
  ASSERT_FALSE(vouched.refused()) << vouched.failure();
  EXPECT_EQ(vouched.ports(), (std::set<std::uint16_t>{7001}));

  // The attacks: no token, one under another key, an expired one, the seed's
  // token used by another node, tokens for another role, region or host, an
  // oversized and a malformed one. Each gets a failure naming why, and no peer.
  struct Attempt {
    std::uint16_t port;
    NodeRole role;
    std::string region, token;
    std::vector<std::string_view> why;  // string literals: they outlive the test
  };
  const std::string expiring = token_for(9003, NodeRole::peer, "eu", 5s);
  clock_.advance(6s);
  const std::vector<Attempt> attempts = {
      {9001, NodeRole::peer, "eu", "", {"no mesh token"}},
      {9002,
       NodeRole::peer,
       "eu",
       token_for(9002, NodeRole::peer, "eu", 3600s, std::string(32, 'x')),
       {"tag does not verify"}},
      {9003, NodeRole::peer, "eu", expiring, {"expired at"}},
      {9004, NodeRole::seed, "eu", seed_token, {"host 'host-7001'", "host 'host-9004'"}},
      {9005,
       NodeRole::seed,
       "eu",
       token_for(9005, NodeRole::peer, "eu"),
       {"role peer", "announce says role seed"}},
      {9006,
       NodeRole::peer,
       "us",
       token_for(9006, NodeRole::peer, "eu"),
       {"region 'eu'", "region 'us'"}},
      {9007, NodeRole::peer, "eu", std::string(600, 'A'), {"too long"}},
      {9008, NodeRole::peer, "eu", "dmt1.e30.AAAA", {"malformed"}},
  };
  for (const auto& at : attempts) {
    for (const char* event : {"started", "", "completed", "stopped"}) {
      Answer a = announce(layer, at.port, at.role, at.region, 100, event, at.token);
      ASSERT_TRUE(a.refused()) << at.port << " " << event;
      EXPECT_EQ(refused_for(a, at.why), 1);
      EXPECT_TRUE(a.ports().empty());
      EXPECT_EQ(a.ints["interval"], options_.interval.count());
    }
  }
  nlohmann::json s = stats();
  EXPECT_EQ(s["refused"]["token"], 4 * attempts.size());
  EXPECT_EQ(s["nodes"], 2);
  EXPECT_EQ(s["swarms"], 1);

  // The swarm is served as before.
  Answer again =
      announce(layer, 8001, NodeRole::peer, "eu", 100, "", token_for(8001, NodeRole::peer, "eu"));
  ASSERT_FALSE(again.refused()) << again.failure();
  EXPECT_EQ(again.ports(), (std::set<std::uint16_t>{7001}));
}

TEST_F(TrackerAttack, WithoutATokenKeyTokensAreIgnored) {
  start();  // as before version 3: no key, no check
  const std::string layer = hash(1);
  ASSERT_FALSE(announce(layer, 7001, NodeRole::seed, "eu", 0).refused());
  Answer a = announce(layer, 8001, NodeRole::peer, "eu", 100, "", "dmt1.forged.AAAA");
  ASSERT_FALSE(a.refused()) << a.failure();
  EXPECT_EQ(a.ports(), (std::set<std::uint16_t>{7001}));
  // And it vouches for no one.
  auto r = http::request("GET", base_ + "/vouched?token=" + token_for(8001, NodeRole::peer, "eu"),
                         "", 5s);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 404);
  EXPECT_NE(r->body.find("checks no mesh tokens"), std::string::npos) << r->body;
}

TEST_F(TrackerAttack, VouchedAnswersOnlyTheHolderOfAValidToken) {
  options_.token_key = kTokenKey;
  start();
  ASSERT_FALSE(
      announce(hash(1), 7001, NodeRole::seed, "eu", 0, "", token_for(7001, NodeRole::seed, "eu"))
          .refused());
  auto vouched = [&](const std::string& query) {
    auto r = http::request("GET", base_ + "/vouched" + query, "", 5s);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : http::Response{};
  };
  http::Response ok = vouched("?token=" + token_for(8001, NodeRole::peer, "eu"));
  EXPECT_EQ(ok.status, 200);
  nlohmann::json j = nlohmann::json::parse(ok.body);
  EXPECT_EQ(j["addresses"], nlohmann::json::array({"127.0.0.1"}));
  EXPECT_EQ(j["interval"], options_.interval.count());

  EXPECT_EQ(vouched("").status, 400);
  http::Response forged =
      vouched("?token=" + token_for(8001, NodeRole::peer, "eu", 3600s, std::string(32, 'x')));
  EXPECT_EQ(forged.status, 403);
  EXPECT_NE(forged.body.find("tag does not verify"), std::string::npos) << forged.body;
  const std::string short_lived = token_for(8001, NodeRole::peer, "eu", 5s);
  clock_.advance(5s);
  EXPECT_EQ(vouched("?token=" + short_lived).status, 403);
  EXPECT_EQ(stats()["vouched"], 1);
}

// The tracker's logic alone, where each node can have an address of its own.
TEST(Vouching, AnswersTheAddressesOfTheAskersRegionAndTheOrigin) {
  ManualClock clock;
  SeededRandom random(3);
  TrackerOptions options;
  options.token_key = std::string(32, '\x42');
  SwarmTracker tracker(options, clock, random);
  const std::int64_t now = unix_seconds(clock.now());
  auto token = [&](NodeRole role, const std::string& region, const std::string& host,
                   std::int64_t ttl = 3600) {
    return *mesh_token::issue(*options.token_key, {role_name(role), region, host, now + ttl});
  };
  struct Node {
    const char* ip;
    NodeRole role;
    const char* region;
    const char* host;
    std::int64_t ttl;
  };
  const std::vector<Node> nodes = {
      {"10.0.0.1", NodeRole::peer, "eu", "p1", 3600},
      {"10.0.0.2", NodeRole::seed, "eu", "s1", 3600},
      {"10.0.0.3", NodeRole::peer, "us", "p3", 3600},
      {"10.0.0.4", NodeRole::origin, "", "o", 3600},
      {"10.0.0.5", NodeRole::peer, "eu", "p5", 60},
      {"fd00::6", NodeRole::peer, "eu", "p6", 3600},
  };
  std::string layer(20, 'L');
  for (const auto& n : nodes) {
    Announce a;
    a.info_hash = layer;
    a.peer_id = std::string(20, n.host[1]);
    a.ip = n.ip;
    a.port = 6881;
    a.role = n.role;
    a.region = n.region;
    a.host = n.host;
    a.token = token(n.role, n.region, n.host, n.ttl);
    ASSERT_TRUE(tracker.announce(a).failure.empty()) << n.host;
  }
  // Not vouched for: refused announces leave no address behind.
  Announce outsider;
  outsider.info_hash = layer;
  outsider.peer_id = std::string(20, 'x');
  outsider.ip = "10.0.0.66";
  outsider.port = 6881;
  outsider.region = "eu";
  outsider.host = "x";
  EXPECT_FALSE(tracker.announce(outsider).failure.empty());

  using Set = std::vector<std::string>;
  auto ask = [&](NodeRole role, const std::string& region) {
    auto v = tracker.vouched(token(role, region, "asker"));
    EXPECT_TRUE(v.ok()) << v.error().message;
    return v.ok() ? v->addresses : Set{};
  };
  EXPECT_EQ(ask(NodeRole::peer, "eu"),
            (Set{"10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.5", "fd00::6"}));
  EXPECT_EQ(ask(NodeRole::seed, "us"), (Set{"10.0.0.3", "10.0.0.4"}));
  EXPECT_EQ(ask(NodeRole::origin, ""),
            (Set{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "fd00::6"}));
  // A node whose token expired is vouched for no more, even before it goes
  // silent; a newly vouched node is seen at once (no stale cache).
  clock.advance(std::chrono::seconds(61));
  Announce late;
  late.info_hash = layer;
  late.peer_id = std::string(20, 'n');
  late.ip = "10.0.0.7";
  late.port = 6881;
  late.region = "eu";
  late.host = "p7";
  late.token = *mesh_token::issue(*options.token_key,
                                  {"peer", "eu", "p7", unix_seconds(clock.now()) + 3600});
  ASSERT_TRUE(tracker.announce(late).failure.empty());
  auto v = tracker.vouched(*mesh_token::issue(
      *options.token_key, {"peer", "eu", "asker", unix_seconds(clock.now()) + 3600}));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->addresses, (Set{"10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.7", "fd00::6"}));
  // Nodes silent beyond the expiry are dropped.
  clock.advance(options.expiry + std::chrono::seconds(1));
  tracker.sweep();
  EXPECT_EQ(tracker.stats().vouched_addresses, 0u);
  // A forged token learns nothing.
  auto forged =
      tracker.vouched(*mesh_token::issue(std::string(32, 'x'), {"peer", "eu", "a", now + 999999}));
  ASSERT_FALSE(forged.ok());
  EXPECT_EQ(forged.error().code, Errc::refused);
}

}  // namespace
}  // namespace drover::mesh
