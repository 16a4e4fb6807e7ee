#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

#include "core/hash/bt_merkle.hpp"
#include "mesh/node/mesh_node.hpp"
#include "mesh/tracker/tracker_service.hpp"
#include "tests/support/test_support.hpp"
#include "tests/support/tree_gen.hpp"

namespace drover::mesh {
namespace {

using namespace std::chrono_literals;
using drover::testing::TempDir;

// Collects events and lets a test wait for one, with a deadline.
class Events {
 public:
  void push(const MeshEvent& e) {
    std::lock_guard lock(mu_);
    events_.push_back(e);
    cv_.notify_all();
  }
  bool wait_for(MeshEvent::Kind kind, const ContentId& id, std::chrono::seconds deadline) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, deadline, [&] {
      for (const auto& e : events_) {
        if (e.kind == kind && e.layer == id) return true;
      }
      return false;
    });
  }
  std::vector<MeshEvent> all() {
    std::lock_guard lock(mu_);
    return events_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<MeshEvent> events_;
};

LayerRef write_layer(const std::filesystem::path& dir, const std::string& bytes) {
  LayerRef ref{ContentId::of(bytes), bytes.size(), BtMerkle::of(bytes)};
  drover::testing::write_file(dir / ref.id.hex(), bytes);
  return ref;
}

TEST(MeshNode, PeerFetchesALayerFromTheOriginByItsManifestIdentityAlone) {
  TempDir dir;
  Events events;  // outlives the nodes, which call it
  SystemClock clock;
  SystemRandom random;
  TrackerOptions topts;
  topts.interval = 1s;
  auto tracker = TrackerService::start({}, topts, clock, random, Logger::discard());
  ASSERT_TRUE(tracker.ok()) << tracker.error().message;
  const std::string base = "http://127.0.0.1:" + std::to_string((*tracker)->port());

  std::filesystem::create_directories(dir / "origin");
  std::filesystem::create_directories(dir / "peer");
  LayerRef layer = write_layer(dir / "origin", drover::testing::binary_bytes(3, 3 << 20));

  NodeOptions o;
  o.role = NodeRole::origin;
  o.host = "origin";
  o.tracker = base;
  o.min_announce_interval_s = 1;
  auto origin = MeshNode::start(o, Logger::discard());
  ASSERT_TRUE(origin.ok()) << origin.error().message;
  ASSERT_TRUE((*origin)->seed(layer, dir / "origin" / layer.id.hex()).ok());

  NodeOptions p = o;
  p.role = NodeRole::peer;
  p.host = "peer-1";
  auto peer = MeshNode::start(p, Logger::discard());
  ASSERT_TRUE(peer.ok());
  (*peer)->on_event([&](const MeshEvent& e) { events.push(e); });
  ASSERT_TRUE((*peer)->fetch(layer, dir / "peer" / layer.id.hex()).ok());
  ASSERT_TRUE(events.wait_for(MeshEvent::Kind::complete, layer.id, 60s));
  EXPECT_EQ(drover::testing::read_file(dir / "peer" / layer.id.hex()),
            drover::testing::read_file(dir / "origin" / layer.id.hex()));
  NodeCounters c = (*peer)->counters();
  EXPECT_EQ(c.down.origin, layer.size);
  EXPECT_EQ(c.layers_completed, 1u);
}

// A manifest whose pieces root matches the bytes but whose layer id does not:
// every piece passes libtorrent's checks, the final hash does not. The node
// rechecks the file (its cure for a torrent called finished too early), then
// fails with an error naming the layer, and never reports it complete.
TEST(MeshNode, ALayerThatPassesItsPiecesButNotItsIdFailsAfterRechecks) {
  TempDir dir;
  Events events;  // outlives the nodes, which call it
  SystemClock clock;
  SystemRandom random;
  TrackerOptions topts;
  topts.interval = 1s;
  auto tracker = TrackerService::start({}, topts, clock, random, Logger::discard());
  ASSERT_TRUE(tracker.ok()) << tracker.error().message;
  std::filesystem::create_directories(dir / "origin");
  std::filesystem::create_directories(dir / "peer");
  const std::string bytes = drover::testing::binary_bytes(5, 1 << 20);
  LayerRef forged{ContentId::of("some other layer"), bytes.size(), BtMerkle::of(bytes)};
  drover::testing::write_file(dir / "origin" / forged.id.hex(), bytes);

  NodeOptions o;
  o.role = NodeRole::origin;
  o.host = "origin";
  o.tracker = "http://127.0.0.1:" + std::to_string((*tracker)->port());
  o.min_announce_interval_s = 1;
  auto origin = MeshNode::start(o, Logger::discard());
  ASSERT_TRUE(origin.ok()) << origin.error().message;
  ASSERT_TRUE((*origin)->seed(forged, dir / "origin" / forged.id.hex()).ok());
  NodeOptions p = o;
  p.role = NodeRole::peer;
  p.host = "peer-1";
  auto peer = MeshNode::start(p, Logger::discard());
  ASSERT_TRUE(peer.ok());
  (*peer)->on_event([&](const MeshEvent& e) { events.push(e); });
  ASSERT_TRUE((*peer)->fetch(forged, dir / "peer" / forged.id.hex()).ok());
  ASSERT_TRUE(events.wait_for(MeshEvent::Kind::failed, forged.id, 60s));
  bool named = false;
  for (const auto& e : events.all()) {
    EXPECT_NE(e.kind, MeshEvent::Kind::complete);
    if (e.kind == MeshEvent::Kind::failed) {
      named = e.detail.find(forged.id.str()) != std::string::npos &&
              e.detail.find("do not match the signed layer id") != std::string::npos;
    }
  }
  EXPECT_TRUE(named);
  EXPECT_EQ((*peer)->counters().rechecks, 3u);
  EXPECT_EQ((*peer)->counters().layers_completed, 0u);
}

TEST(MeshNode, RefusesToSeedAFileThatIsNotTheLayer) {
  TempDir dir;
  auto node = MeshNode::start({}, Logger::discard());
  ASSERT_TRUE(node.ok());
  LayerRef layer = write_layer(dir.path(), "the real bytes");
  drover::testing::write_file(dir / layer.id.hex(), "other bytes!!!");
  auto st = (*node)->seed(layer, dir / layer.id.hex());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("does not hold layer"), std::string::npos);
}

TEST(MeshNode, RateLimitsApplyToLoopbackPeers) {
  NodeOptions o;
  o.upload_rate = 2 << 20;
  o.download_rate = 3 << 20;
  auto node = MeshNode::start(o, Logger::discard());
  ASSERT_TRUE(node.ok());
  auto limits = (*node)->limits_in_force();
  EXPECT_EQ(limits.upload, 2 << 20);
  EXPECT_EQ(limits.download, 3 << 20);
  EXPECT_TRUE(limits.loopback_in_global_class);
  EXPECT_TRUE(limits.private_ranges_in_global_class);
}

}  // namespace
}  // namespace drover::mesh
