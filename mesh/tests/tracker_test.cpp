#include <gtest/gtest.h>

#include <algorithm>

#include <nlohmann/json.hpp>
#include <set>

#include "core/base/hex.hpp"
#include "core/http/http.hpp"
#include "mesh/tracker/tracker_service.hpp"

namespace drover::mesh {
namespace {

using namespace std::chrono_literals;

class TrackerTest : public ::testing::Test {
 protected:
  Announce node(std::uint16_t port, NodeRole role, std::string region, std::string cluster,
                std::uint64_t left = 100) {
    Announce a;
    a.info_hash = std::string(20, 'h');
    a.peer_id = std::string(19, 'p') + static_cast<char>(port & 0x7f);
    a.ip = "127.0.0.1";
    a.port = port;
    a.role = role;
    a.region = std::move(region);
    a.cluster = std::move(cluster);
    a.left = left;
    a.host = "host-" + std::to_string(port);
    return a;
  }
  std::vector<std::uint16_t> ports(const AnnounceReply& r) {
    std::vector<std::uint16_t> out;
    for (const auto& p : r.peers) out.push_back(p.port);
    return out;
  }

  ManualClock clock_;
  SeededRandom random_{1};
  TrackerOptions options_;
};

TEST_F(TrackerTest, HandsOutClusterThenRegionThenSeedThenNeverOtherRegions) {
  SwarmTracker t(options_, clock_, random_);
  t.announce(node(100, NodeRole::origin, "", "", 0));
  t.announce(node(200, NodeRole::seed, "eu", "", 0));
  t.announce(node(201, NodeRole::seed, "us", "", 0));
  t.announce(node(301, NodeRole::peer, "eu", "b"));
  t.announce(node(302, NodeRole::peer, "eu", "a"));
  t.announce(node(303, NodeRole::peer, "us", "a"));
  t.announce(node(304, NodeRole::peer, "eu", "a"));
  AnnounceReply r = t.announce(node(305, NodeRole::peer, "eu", "a"));
  auto got = ports(r);
  ASSERT_EQ(got.size(), 4u);
  // Same cluster (in random order), then the same region, then the region's seed.
  EXPECT_EQ(std::set<std::uint16_t>(got.begin(), got.begin() + 2),
            (std::set<std::uint16_t>{302, 304}));
  EXPECT_EQ(got[2], 301);
  EXPECT_EQ(got[3], 200);
  EXPECT_EQ(r.peers[3].role, NodeRole::seed);
  // No origin while the region has a live seed; no peer or seed of "us".
  for (auto p : got) EXPECT_TRUE(p != 100 && p != 201 && p != 303);
  EXPECT_EQ(r.complete, 3u);
  EXPECT_EQ(r.incomplete, 5u);
}

TEST_F(TrackerTest, TheOriginComesOnlyWhenNoSeedOfTheRegionAnswers) {
  options_.expiry = 10s;
  SwarmTracker t(options_, clock_, random_);
  t.announce(node(100, NodeRole::origin, "", "", 0));
  t.announce(node(200, NodeRole::seed, "eu", "", 0));
  EXPECT_EQ(ports(t.announce(node(300, NodeRole::peer, "eu", "a"))),
            (std::vector<std::uint16_t>{200}));
  // The seed goes silent; the origin keeps announcing.
  clock_.advance(6s);
  t.announce(node(100, NodeRole::origin, "", "", 0));
  clock_.advance(6s);
  EXPECT_EQ(ports(t.announce(node(300, NodeRole::peer, "eu", "a"))),
            (std::vector<std::uint16_t>{100}));
  // A region with no seed at all gets the origin, after its peers.
  t.announce(node(400, NodeRole::peer, "ap", "x"));
  EXPECT_EQ(ports(t.announce(node(401, NodeRole::peer, "ap", "y"))),
            (std::vector<std::uint16_t>{400, 100}));
}

TEST_F(TrackerTest, ACapNeverCrowdsOutTheSources) {
  options_.max_peers_per_answer = 5;
  SwarmTracker t(options_, clock_, random_);
  t.announce(node(200, NodeRole::seed, "eu", "", 0));
  for (std::uint16_t p = 300; p < 320; ++p) t.announce(node(p, NodeRole::peer, "eu", "a"));
  auto got = ports(t.announce(node(999, NodeRole::peer, "eu", "a")));
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got.back(), 200);
  // numwant lowers the cap further.
  Announce few = node(998, NodeRole::peer, "eu", "a");
  few.numwant = 2;
  got = ports(t.announce(few));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got.back(), 200);
}

TEST_F(TrackerTest, StoppedNodesLeaveAndSilentOnesExpire) {
  options_.expiry = 10s;
  SwarmTracker t(options_, clock_, random_);
  t.announce(node(300, NodeRole::peer, "eu", "a"));
  t.announce(node(301, NodeRole::peer, "eu", "a"));
  Announce bye = node(301, NodeRole::peer, "eu", "a");
  bye.event = Announce::Event::stopped;
  t.announce(bye);
  EXPECT_TRUE(ports(t.announce(node(302, NodeRole::peer, "eu", "a"))) ==
              std::vector<std::uint16_t>{300});
  clock_.advance(11s);
  t.announce(node(303, NodeRole::peer, "eu", "b"));  // 300 and 302 fell silent
  EXPECT_TRUE(ports(t.announce(node(304, NodeRole::peer, "eu", "b"))) ==
              std::vector<std::uint16_t>{303});
  EXPECT_EQ(t.stats().nodes, 2u);
  clock_.advance(11s);
  t.sweep();
  EXPECT_EQ(t.stats().swarms, 0u);
}

// A node whose region's seed sent it corrupt data announces avoid=seed: its
// own answer names the origin instead; everyone else's is unchanged.
TEST_F(TrackerTest, ANodeThatAvoidsItsSeedGetsTheOriginAndOthersStillGetTheSeed) {
  SwarmTracker t(options_, clock_, random_);
  t.announce(node(100, NodeRole::origin, "", "", 0));
  t.announce(node(200, NodeRole::seed, "eu", "", 0));
  Announce avoiding = node(300, NodeRole::peer, "eu", "a");
  avoiding.avoid_seed = true;
  EXPECT_EQ(ports(t.announce(avoiding)), (std::vector<std::uint16_t>{100}));
  EXPECT_EQ(ports(t.announce(node(301, NodeRole::peer, "eu", "a"))),
            (std::vector<std::uint16_t>{300, 200}));
}

// A fetch that stalled among peers as stuck as it is announces
// want=sources: its answer names only nodes that can send it pieces (the
// region's seed, peers holding the whole layer), never a peer still
// fetching; other nodes' answers are as before.
TEST_F(TrackerTest, ANodeThatWantsSourcesIsHandedOnlyNodesHoldingTheLayer) {
  SwarmTracker t(options_, clock_, random_);
  t.announce(node(100, NodeRole::origin, "", "", 0));
  t.announce(node(200, NodeRole::seed, "eu", "", 40));  // a seed still replicating: it has pieces
  t.announce(node(300, NodeRole::peer, "eu", "a", 0));  // holds the layer
  t.announce(node(301, NodeRole::peer, "eu", "a"));     // fetching
  t.announce(node(302, NodeRole::peer, "eu", "b"));     // fetching
  Announce stuck = node(303, NodeRole::peer, "eu", "a");
  stuck.sources_only = true;
  EXPECT_EQ(ports(t.announce(stuck)), (std::vector<std::uint16_t>{300, 200}));
  stuck.sources_only = false;
  auto all = ports(t.announce(stuck));
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, (std::vector<std::uint16_t>{200, 300, 301, 302}));
}

TEST_F(TrackerTest, HttpAnswersBencodedCompactPeersAndNamesBadFields) {
  SwarmTracker t(options_, clock_, random_);
  auto get = [&](const std::string& query, std::uint16_t remote_port = 1) {
    http::Request r;
    r.path = "/announce";
    r.query = http::parse_query(query);
    r.remote_address = "127.0.0.1";
    r.remote_port = remote_port;
    return handle_announce(t, r).body;
  };
  const std::string ih = http::percent_encode(std::string(20, '\x01'));
  const std::string base = "info_hash=" + ih + "&left=0&region=eu&role=seed&peer_id=";
  get(base + std::string(20, 'a') + "&port=6881");
  std::string body =
      get("info_hash=" + ih + "&left=10&region=eu&peer_id=" + std::string(20, 'b') + "&port=6882");
  // One peer, 127.0.0.1:6881 (0x1ae1), in the compact form.
  EXPECT_EQ(body, std::string(
                      "d8:completei1e10:incompletei1e8:intervali30e12:min intervali30e5:peers6:") +
                      std::string("\x7f\x00\x00\x01\x1a\xe1", 6) + "e");
  EXPECT_NE(
      get("peer_id=" + std::string(20, 'c') + "&port=1&left=0").find("info_hash must be 20 bytes"),
      std::string::npos);
  EXPECT_NE(
      get("info_hash=" + ih + "&peer_id=" + std::string(20, 'c') + "&port=0&left=0").find("port"),
      std::string::npos);
  EXPECT_NE(get("info_hash=" + ih + "&peer_id=" + std::string(20, 'c') + "&port=1&left=0&role=king")
                .find("role must be peer, seed or origin"),
            std::string::npos);
  EXPECT_NE(get("info_hash=" + ih + "&peer_id=" + std::string(20, 'c') + "&port=1&left=0&avoid=x")
                .find("avoid must be seed"),
            std::string::npos);
  EXPECT_NE(get("info_hash=" + ih + "&peer_id=" + std::string(20, 'c') + "&port=1&left=0&want=all")
                .find("want must be sources"),
            std::string::npos);
}

TEST(SourceGrant, ReadsItsTextFormAndNamesWhatIsWrong) {
  auto seed = parse_source_grant("seed:eu-west@10.0.1.5:6881");
  ASSERT_TRUE(seed.ok()) << seed.error().message;
  EXPECT_EQ(seed->role, NodeRole::seed);
  EXPECT_EQ(seed->region, "eu-west");
  EXPECT_EQ(seed->address, "10.0.1.5");
  EXPECT_EQ(seed->port, 6881);
  auto origin = parse_source_grant("origin@[FD00:0::5]");
  ASSERT_TRUE(origin.ok()) << origin.error().message;
  EXPECT_EQ(origin->role, NodeRole::origin);
  EXPECT_EQ(origin->address, "fd00::5");
  EXPECT_EQ(origin->port, 0);
  EXPECT_EQ(parse_source_grant("seed:us@::ffff:10.0.0.7")->address, "10.0.0.7");
  EXPECT_EQ(parse_source_grant("origin@[::1]:7000")->port, 7000);
  for (const char* bad : {"seed@10.0.0.1", "seed:@10.0.0.1", "peer@10.0.0.1", "origin@host.example",
                          "origin@10.0.0.1:0", "origin@10.0.0.1:70000", "origin@10.0.0.1:",
                          "origin@[::1", "origin@[::1]x", "origin:eu@10.0.0.1", "10.0.0.1"}) {
    auto g = parse_source_grant(bad);
    ASSERT_FALSE(g.ok()) << bad;
    EXPECT_NE(g.error().message.find(bad), std::string::npos) << g.error().message;
  }
  EXPECT_EQ(canonical_address("::ffff:127.0.0.1"), "127.0.0.1");
  EXPECT_EQ(canonical_address("nonsense"), "");
}

TEST(SourceGrant, ATrackerWithAGrantThatNamesNoOneDoesNotStart) {
  ManualClock clock;
  SeededRandom random(1);
  TrackerOptions o;
  o.sources = std::vector<SourceGrant>{{NodeRole::seed, "", "10.0.0.1", 0}};
  auto svc = TrackerService::start({}, o, clock, random, Logger::discard());
  ASSERT_FALSE(svc.ok());
  EXPECT_NE(svc.error().message.find("source grant"), std::string::npos) << svc.error().message;
  o.sources = std::vector<SourceGrant>{{NodeRole::origin, "", "not an address", 0}};
  EXPECT_FALSE(TrackerService::start({}, o, clock, random, Logger::discard()).ok());
}

TEST_F(TrackerTest, AStoppedNodeOfAnUnknownSwarmMakesNoSwarm) {
  SwarmTracker t(options_, clock_, random_);
  Announce bye = node(300, NodeRole::peer, "eu", "a");
  bye.event = Announce::Event::stopped;
  EXPECT_TRUE(t.announce(bye).failure.empty());
  EXPECT_EQ(t.stats().swarms, 0u);
  EXPECT_EQ(t.stats().nodes, 0u);
}

// The attack that killed the coordinator (which embeds the tracker): a region
// that is not UTF-8 announced, then echoed by /swarm.
TEST_F(TrackerTest, ANameThatIsNotUtf8IsEchoedWithoutKillingTheService) {
  auto svc = TrackerService::start({}, options_, clock_, random_, Logger::discard());
  ASSERT_TRUE(svc.ok()) << svc.error().message;
  const std::string base = "http://127.0.0.1:" + std::to_string((*svc)->port());
  const std::string ih(20, 'x');
  auto a = http::request("GET",
                         base + "/announce?role=seed&region=%FF&cluster=%C3&host=%FE&info_hash=" +
                             http::percent_encode(ih) + "&peer_id=" + std::string(20, 'y') +
                             "&port=7000&left=0",
                         "", std::chrono::seconds(5));
  ASSERT_TRUE(a.ok()) << a.error().message;
  auto swarm = http::request("GET", base + "/swarm?info_hash=" + to_hex(ih.data(), 20), "",
                             std::chrono::seconds(5));
  ASSERT_TRUE(swarm.ok()) << swarm.error().message;
  EXPECT_EQ(swarm->status, 200);
  auto j = nlohmann::json::parse(swarm->body, nullptr, false);
  ASSERT_TRUE(j.is_object()) << swarm->body;
  EXPECT_EQ(j["complete"][0]["region"], "\xEF\xBF\xBD");  // U+FFFD for the bad byte
  auto stats = http::request("GET", base + "/stats", "", std::chrono::seconds(5));
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  EXPECT_NE(stats->body.find("\"nodes\":1"), std::string::npos);
}

TEST_F(TrackerTest, ServiceServesAnnouncesOverHttp) {
  auto svc = TrackerService::start({}, options_, clock_, random_, Logger::discard());
  ASSERT_TRUE(svc.ok()) << svc.error().message;
  std::string url = (*svc)->announce_url("h1", NodeRole::peer, "eu", "a");
  auto r = http::request("GET",
                         url + "&info_hash=" + http::percent_encode(std::string(20, 'x')) +
                             "&peer_id=" + std::string(20, 'y') + "&port=7000&left=5",
                         "", std::chrono::seconds(5));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->body.substr(0, 11), "d8:complete");
  auto stats = http::request("GET", "http://127.0.0.1:" + std::to_string((*svc)->port()) + "/stats",
                             "", std::chrono::seconds(5));
  EXPECT_NE(stats->body.find("\"nodes\":1"), std::string::npos);
}

}  // namespace
}  // namespace drover::mesh
