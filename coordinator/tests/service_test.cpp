// The assembled coordinator with its world passed in: the state in memory,
// a fake tracker, a manual clock and no driver thread (the test drives). A
// deploy waits for its artifact to reach the region's seeds (asked of the
// tracker off the orchestrator's lock, once found kept), then goes out; a
// coordinator restarted on the committed state carries on.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "coordinator/plans/deploy_plans.hpp"
#include "coordinator/service/analysis.hpp"
#include "coordinator/service/coordinator.hpp"
#include "coordinator/store/memory_coordinator_store.hpp"
#include "core/base/hex.hpp"
#include "core/format/layer_torrent.hpp"
#include "core/format/manifest.hpp"
#include "core/http/http.hpp"
#include "tests/support/small_manifest.hpp"

namespace drover::coordinator {
namespace {

using namespace std::chrono_literals;

struct World {
  ManualClock clock{SystemTime(std::chrono::seconds(1'800'000'000))};
  SeededRandom random{9};
  sign::KeyPair root = sign::KeyPair::generate(random);
  sign::KeyPair online = sign::KeyPair::generate(random);
  format::Manifest manifest = drover::testing::small_manifest("web", {"the only layer"});
  std::string artifact;
  std::shared_ptr<kv::MemoryDisk> disk;
  mesh::FakeTrackerClient* tracker = nullptr;  // owned by the coordinator
  bool embed_tracker = false;                  // host the tracker on 127.0.0.1, any port

  std::unique_ptr<Coordinator> start() {
    const auto now = unix_seconds(clock.now());
    CoordinatorOptions o;
    o.online = OnlineKey{
        online, sign::certify(root, {"online", online.public_key(), 1, now - 60, now + 86400})};
    if (embed_tracker) {
      o.tracker_listen = "127.0.0.1:0";
    } else {
      o.tracker_url = "http://127.0.0.1:9";  // written into plans; the fake answers
    }
    o.run_driver = false;
    CoordinatorParts parts;
    auto store = disk ? MemoryCoordinatorStore::open(disk) : MemoryCoordinatorStore::create();
    disk = store->disk();
    parts.store = std::move(store);
    auto fake = std::make_unique<mesh::FakeTrackerClient>();
    tracker = fake.get();
    parts.tracker = std::move(fake);
    return Coordinator::start(o, std::move(parts), clock, random, Logger::discard()).value();
  }
  void seed_everywhere() {
    const auto t = format::derive_layer_torrent(manifest.layers[0]);
    tracker->set(to_hex(t.info_hash.data(), 20), {{mesh::NodeRole::seed, "r1", "seed-r1"}});
  }
  void prepare(Coordinator& c) {
    for (const char* host : {"h1", "h2"}) {
      HostRecord h;
      h.host = host;
      h.region = "r1";
      h.services = {"web"};
      h.key = sign::KeyPair::generate(random).public_key();
      h.report_key = std::string(32, 'k');
      ASSERT_TRUE(c.store().enroll(h).ok());
    }
    const std::string bytes = format::encode_manifest(manifest).value();
    artifact = ContentId::of(bytes).str();
    ArtifactRecord a;
    a.artifact_id = artifact;
    a.service = "web";
    a.git_sha = "0123abcd";
    ASSERT_TRUE(c.store().put_artifact(a, bytes).value());
    Pipeline p;
    p.id = p.service = "web";
    p.envs = {{"prod", "r1", ""}};
    p.strategy.shape.batch_size = 1;
    ASSERT_TRUE(c.put_pipeline(p, {"alice", Role::deployer}).ok());
  }
};

TEST(CoordinatorService, ADeployWaitsForTheSeedsThenGoesOutAndSurvivesARestart) {
  World w;
  auto c = w.start();
  w.prepare(*c);
  DeployStart start;
  start.pipeline_id = "web";
  start.artifact = ContentId::parse(w.artifact).value();
  auto started = c->start_deploy(start, {"alice", Role::deployer});
  ASSERT_TRUE(started.ok()) << started.error().message;
  const std::string id = started->deploy.id;
  EXPECT_EQ(id, "web-1");

  // The seeds have not got the layer: the deploy waits, asking each tick.
  EXPECT_EQ(c->drive_once().value(), 1);  // its ready deadline is set
  EXPECT_EQ(c->drive_once().value(), 0);
  EXPECT_EQ(c->deploy_view(id)->deploy.state, DeployState::pending);
  EXPECT_GE(w.tracker->asked(), 2);

  // Found: ready, then its first batch, two transitions in one tick.
  w.seed_everywhere();
  EXPECT_EQ(c->drive_once().value(), 2);
  const DeployRecord deploying = c->deploy_view(id)->deploy;
  EXPECT_EQ(deploying.state, DeployState::deploying);
  const int asked = w.tracker->asked();
  EXPECT_EQ(c->drive_once().value(), 0);
  EXPECT_EQ(w.tracker->asked(), asked);  // ready is kept: not asked again
  const std::string first =
      deploying.environments.at(0).waves.at(0).regions.at(0).batches[0].hosts[0];
  ASSERT_TRUE(c->store().plan_for("web", first).value());

  // A restart on what was committed: the deploy carries on where it was, and
  // its batch's plan is issued again.
  c.reset();
  c = w.start();
  EXPECT_EQ(c->deploy_view(id)->deploy.state, DeployState::deploying);
  EXPECT_EQ(c->deploys("web", 10)->size(), 1u);
  EXPECT_EQ(c->store().next_plan_seq("web").value(), 3u);  // 1: the batch, 2: re-issued at start
  w.clock.advance(3600s);  // no host reported: the batch's deadline passes
  EXPECT_EQ(c->drive_once().value(), 1);
  EXPECT_EQ(c->deploy_view(id)->deploy.state, DeployState::failed);  // nothing to go back to
  EXPECT_TRUE(c->audit_verify()->ok);
}

// The attack through a pipeline: a Prometheus check naming a server the
// coordinator's config does not allow (any address a pipeline's author
// chose, an internal service say) is refused, naming the allow-list, and
// nothing is stored; one it allows is stored.
TEST(CoordinatorService, APrometheusCheckMayNameOnlyAServerTheConfigAllows) {
  World w;
  auto c = w.start();
  w.prepare(*c);
  Pipeline p = c->pipeline("web").value();
  const std::uint64_t before = p.version;
  PromCheck check;
  check.url = "http://169.254.169.254";
  check.queries.push_back({"errors", "up", 0.5, std::nullopt});
  p.params.prometheus = check;
  auto refused = c->put_pipeline(p, {"alice", Role::deployer});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().message,
            "health_checks.prometheus.url 'http://169.254.169.254' is not a server this "
            "coordinator may ask (its config's prometheus.allow lists none)");
  EXPECT_EQ(c->pipeline("web")->version, before);
  EXPECT_FALSE(c->pipeline("web")->params.prometheus);
}

// A plan naming more hosts than one revision may is issued as consecutive
// revisions of at most kHostsPerRevision hosts, each signed and valid on its
// own, every host's plan the one naming it, and announced once (the last
// seq: agents holding an earlier one of them are answered "unchanged").
TEST(PlanIssuer, ALargeHostSetIsSplitIntoRevisionsAnnouncedOnce) {
  World w;
  auto store = MemoryCoordinatorStore::create();
  const auto now = unix_seconds(w.clock.now());
  OnlineKeySigner signer(OnlineKey{w.online, sign::certify(w.root, {"online", w.online.public_key(),
                                                                    1, now - 60, now + 86400})});
  std::vector<std::uint64_t> announced;
  PlanIssuer issuer(*store, signer,
                    [&](const std::string&, std::uint64_t seq) { announced.push_back(seq); });
  ASSERT_TRUE(store->next_plan_seq("web").ok());  // an earlier revision: seq 1
  proto::Plan p;
  p.service = "web";
  p.deploy_id = "web-1";
  p.artifact = ContentId::of("a release");
  p.manifest_size = 1000;
  p.tracker = "http://127.0.0.1:1/announce";
  p.layers.push_back({ContentId::of("a layer"), 10, ""});
  p.issued_at = now;
  p.expires_at = now + 3600;
  const std::size_t n = 2 * kHostsPerRevision + 44;
  for (std::size_t i = 0; i < n; ++i) p.hosts.push_back("h" + std::to_string(i));
  const Status issued = issuer.issue_split(p, kHostsPerRevision);
  ASSERT_TRUE(issued.ok()) << issued.error().message;

  ASSERT_EQ(announced, std::vector<std::uint64_t>{4});
  EXPECT_EQ(store->plan_seq("web").value(), 4u);
  std::map<std::uint64_t, std::size_t> hosts_per_seq;
  for (const auto& h : p.hosts) {
    auto bytes = store->plan_for("web", h).value();
    ASSERT_TRUE(bytes) << h;
    auto bundle = proto::decode_bundle(*bytes);
    ASSERT_TRUE(bundle.ok()) << bundle.error().message;
    auto opened = proto::open_plan(*bundle, {w.root.public_key(), 1}, now);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    const auto& named = opened->plan.hosts;
    EXPECT_NE(std::find(named.begin(), named.end(), h), named.end()) << h;
    EXPECT_LE(named.size(), kHostsPerRevision);
    EXPECT_EQ(store->plan_seq_for("web", h).value(), opened->plan.seq);
    hosts_per_seq[opened->plan.seq] = named.size();
  }
  EXPECT_EQ(hosts_per_seq, (std::map<std::uint64_t, std::size_t>{
                               {2, kHostsPerRevision}, {3, kHostsPerRevision}, {4, 44}}));
}

// A run's Prometheus measurements outlive the run in its view (a rolled
// back deploy shows the figure that failed it), bounded to the newest
// finished runs; a finished run is measured no more.
TEST(AnalysisRunner, AFinishedRunKeepsItsMeasurementsInViewForTheNewestRuns) {
  std::int64_t now = 5'000;
  int asked = 0;
  PrometheusOptions o;
  o.allow = {"http://127.0.0.1:9090"};
  AnalysisRunner runner(
      o,
      [&](const std::string&, const std::string&, std::int64_t) -> Result<double> {
        ++asked;
        return 0.9;
      },
      [&] { return now; }, [] { return false; });
  RunPlan plan;
  plan.envs.push_back({});
  PromCheck check;
  check.url = "http://127.0.0.1:9090";
  check.interval_ms = 1'000;
  check.queries.push_back({"errors", "max(err)", 0.5, std::nullopt});
  plan.envs[0].params.prometheus = check;
  auto run_of = [](const std::string& id) {
    DeployRecord d;
    d.id = id;
    d.service = "web";
    d.artifact = "new";
    d.state = DeployState::baking;
    EnvRun e;
    e.name = "prod";
    e.prior_artifact = "old";
    RegionRun r;
    r.status = "baking";
    r.batches = pending_batches({{"h1"}});
    r.bake_until_ms = 10'000;
    e.waves.push_back({"all", "running", 0, 0, {r}});
    d.environments.push_back(e);
    return d;
  };
  const DeployRecord first = run_of("d0");
  runner.run(first, plan);
  ASSERT_EQ(runner.of("d0").size(), 1u);
  EXPECT_EQ(runner.of("d0")[0].queries[0].fail, 1);

  // It ended: no longer active, still in view.
  runner.retain({});
  ASSERT_EQ(runner.of("d0").size(), 1u);
  now += 10'000;
  const int before = asked;
  runner.retain({});
  ASSERT_EQ(runner.of("d0").size(), 1u);
  EXPECT_EQ(runner.of("d0")[0].queries[0].fail, 1);

  // Once kKeptFinished newer runs have finished, the oldest is forgotten.
  for (std::size_t i = 1; i <= AnalysisRunner::kKeptFinished; ++i) {
    now = 5'000;
    runner.run(run_of("d" + std::to_string(i)), plan);
    runner.retain({});
  }
  EXPECT_TRUE(runner.of("d0").empty());
  EXPECT_EQ(runner.of("d1").size(), 1u);
  EXPECT_EQ(runner.of("d" + std::to_string(AnalysisRunner::kKeptFinished)).size(), 1u);
  EXPECT_EQ(asked, before + static_cast<int>(AnalysisRunner::kKeptFinished));
}

// The attack through the embedded tracker's HTTP endpoint: announces of
// made-up info-hashes are refused and leave nothing behind; the registered
// artifact's layer is tracked.
TEST(CoordinatorService, TheEmbeddedTrackerTracksOnlyTheLayersOfRegisteredArtifacts) {
  World w;
  w.embed_tracker = true;
  auto c = w.start();
  w.prepare(*c);        // registers the artifact once the tracker runs
  w.clock.advance(1s);  // the tracker rereads the store at most once a second
  const auto t = format::derive_layer_torrent(w.manifest.layers[0]);
  const std::string layer(reinterpret_cast<const char*>(t.info_hash.data()), 20);
  auto announce = [&](const std::string& info_hash, int port) {
    auto r = http::request(
        "GET",
        c->tracker_url() +
            "/announce?role=seed&region=r1&info_hash=" + http::percent_encode(info_hash) +
            "&peer_id=" + std::string(20, 's') + "&port=" + std::to_string(port) + "&left=0",
        "", 5s);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? r->body : std::string();
  };
  EXPECT_EQ(announce(layer, 7001).find("failure reason"), std::string::npos);
  for (int i = 1; i <= 50; ++i) {
    std::string made_up = layer;
    made_up[0] = static_cast<char>(made_up[0] ^ i);
    EXPECT_NE(announce(made_up, 7002).find("unregistered info-hash " + to_hex(made_up)),
              std::string::npos);
  }
  auto stats = http::request("GET", c->tracker_url() + "/stats", "", 5s);
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  const auto j = nlohmann::json::parse(stats->body, nullptr, false);
  EXPECT_EQ(j["swarms"], 1) << stats->body;
  EXPECT_EQ(j["nodes"], 1) << stats->body;
  EXPECT_EQ(j["refused"]["unregistered"], 50) << stats->body;
}

}  // namespace
}  // namespace drover::coordinator
