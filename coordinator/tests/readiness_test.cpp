// Whether a deploy's artifact has reached the mesh: every layer at a seed of
// each region the deploy touches ("seeds") or at any source ("origin"),
// asked of the tracker through its client, kept once found; and the HTTP
// client against the tracker's own /swarm handler.
#include <gtest/gtest.h>

#include "coordinator/artifacts/readiness.hpp"
#include "coordinator/store/memory_coordinator_store.hpp"
#include "core/base/hex.hpp"
#include "core/format/layer_torrent.hpp"
#include "core/format/manifest.hpp"
#include "core/http/http.hpp"
#include "mesh/tracker/tracker_service.hpp"
#include "tests/support/small_manifest.hpp"
#include "tests/support/test_support.hpp"

namespace drover::coordinator {
namespace {

std::string info_hash_hex(const format::Layer& l) {
  const auto t = format::derive_layer_torrent(l);
  return to_hex(t.info_hash.data(), 20);
}

struct ReadinessWorld {
  std::unique_ptr<CoordinatorStore> store = MemoryCoordinatorStore::create();
  format::Manifest manifest = drover::testing::small_manifest("web", {"one", "two"});
  DeployRecord deploy;

  ReadinessWorld() {
    const std::string bytes = format::encode_manifest(manifest).value();
    ArtifactRecord a;
    a.artifact_id = ContentId::of(bytes).str();
    a.service = "web";
    EXPECT_TRUE(store->put_artifact(a, bytes).value());
    int n = 0;
    for (const char* region : {"eu", "us"}) {
      HostRecord h;
      h.host = std::string("h-") + region;
      h.region = region;
      h.services = {"web"};
      SeededRandom rnd(++n);
      h.key = sign::KeyPair::generate(rnd).public_key();
      h.report_key = std::string(32, 'k');
      EXPECT_TRUE(store->enroll(h).ok());
    }
    deploy.id = "web-1";
    deploy.service = "web";
    deploy.artifact = a.artifact_id;
    EnvRun e;
    e.name = "prod";
    e.waves.push_back(WaveRun{});
    deploy.environments.push_back(e);
  }
  // Every layer held by these sources.
  void hold(mesh::FakeTrackerClient& tracker, const std::vector<mesh::Holder>& holders) {
    for (const auto& l : manifest.layers) tracker.set(info_hash_hex(l), holders);
  }
};

TEST(ArtifactReadiness, WaitsForASeedInEveryRegionOfTheDeploy) {
  ReadinessWorld w;
  mesh::FakeTrackerClient tracker;
  ArtifactReadiness readiness(*w.store, &tracker);
  EXPECT_FALSE(readiness.check(w.deploy, "seeds"));  // nothing anywhere
  w.hold(tracker, {{mesh::NodeRole::origin, "", "origin"}, {mesh::NodeRole::seed, "eu", "s1"}});
  EXPECT_FALSE(readiness.check(w.deploy, "seeds"));  // us has no seed yet
  // One layer at both regions' seeds, the other only at eu's: not yet.
  tracker.set(info_hash_hex(w.manifest.layers[0]),
              {{mesh::NodeRole::seed, "eu", "s1"}, {mesh::NodeRole::seed, "us", "s2"}});
  EXPECT_FALSE(readiness.check(w.deploy, "seeds"));
  EXPECT_FALSE(readiness.ready("web-1"));
  w.hold(tracker, {{mesh::NodeRole::seed, "eu", "s1"}, {mesh::NodeRole::seed, "us", "s2"}});
  EXPECT_TRUE(readiness.check(w.deploy, "seeds"));
  EXPECT_TRUE(readiness.ready("web-1"));
  // Found ready, it stays so without asking again (even if the tracker goes away).
  tracker.fail(true);
  const int asked = tracker.asked();
  EXPECT_TRUE(readiness.check(w.deploy, "seeds"));
  EXPECT_EQ(tracker.asked(), asked);
  readiness.retain({});
  EXPECT_FALSE(readiness.ready("web-1"));
  EXPECT_FALSE(readiness.check(w.deploy, "seeds"));  // forgotten, and the tracker fails
}

TEST(ArtifactReadiness, TheOriginRuleTakesAnySourceAndNoMeshMeansRegistered) {
  ReadinessWorld w;
  mesh::FakeTrackerClient tracker;
  ArtifactReadiness readiness(*w.store, &tracker);
  w.hold(tracker, {{mesh::NodeRole::peer, "eu", "p1"}});
  EXPECT_FALSE(readiness.check(w.deploy, "origin"));  // a peer is no source
  w.hold(tracker, {{mesh::NodeRole::origin, "", "origin"}});
  EXPECT_TRUE(readiness.check(w.deploy, "origin"));

  ArtifactReadiness no_mesh(*w.store, nullptr);
  EXPECT_TRUE(no_mesh.check(w.deploy, "seeds"));
  DeployRecord unregistered = w.deploy;
  unregistered.id = "web-2";
  unregistered.artifact = ContentId::of("unknown").str();
  EXPECT_FALSE(no_mesh.check(unregistered, "seeds"));
}

TEST(HttpTrackerClient, ReadsTheTrackersSwarmAnswer) {
  ManualClock clock;
  SeededRandom random(3);
  mesh::SwarmTracker swarms({}, clock, random);
  auto server = http::Server::start(
                    {},
                    [&](const http::Request& req, http::Responder respond) {
                      respond(mesh::handle_swarm(swarms, req));
                    },
                    Logger::discard())
                    .value();
  mesh::Announce a;
  a.info_hash = std::string(20, '\x07');
  a.peer_id = std::string(20, 'p');
  a.ip = "127.0.0.1";
  a.port = 7000;
  a.left = 0;
  a.role = mesh::NodeRole::seed;
  a.region = "eu";
  a.host = "seed-eu";
  swarms.announce(a);
  a.port = 7001;
  a.peer_id = std::string(20, 'q');
  a.left = 10;  // still fetching: not a holder
  a.role = mesh::NodeRole::peer;
  swarms.announce(a);

  mesh::HttpTrackerClient client("http://127.0.0.1:" + std::to_string(server->port()));
  auto holders = client.holders(to_hex(a.info_hash));
  ASSERT_TRUE(holders.ok()) << holders.error().message;
  ASSERT_EQ(holders->size(), 1u);
  EXPECT_EQ((*holders)[0].role, mesh::NodeRole::seed);
  EXPECT_EQ((*holders)[0].region, "eu");
  EXPECT_EQ((*holders)[0].host, "seed-eu");
  EXPECT_TRUE(client.holders(std::string(40, 'a'))->empty());
  EXPECT_FALSE(client.holders("not-hex").ok());  // the tracker answers 400

  mesh::HttpTrackerClient nobody("http://127.0.0.1:9", std::chrono::milliseconds(500));
  EXPECT_FALSE(nobody.holders(std::string(40, 'a')).ok());
}

}  // namespace
}  // namespace drover::coordinator
