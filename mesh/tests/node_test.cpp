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

// A tracker, an origin seeding one layer file, and a peer whose events the
// test watches.
class OriginAndPeer : public ::testing::Test {
 protected:
  // Seeds `bytes` from the origin as layer `ref` and starts the peer.
  void start(const LayerRef& ref, const std::string& bytes) {
    TrackerOptions topts;
    topts.interval = 1s;
    auto tracker = TrackerService::start({}, topts, clock_, random_, Logger::discard());
    ASSERT_TRUE(tracker.ok()) << tracker.error().message;
    tracker_ = std::move(*tracker);
    std::filesystem::create_directories(dir_ / "origin");
    std::filesystem::create_directories(dir_ / "peer");
    drover::testing::write_file(dir_ / "origin" / ref.id.hex(), bytes);

    NodeOptions o;
    o.role = NodeRole::origin;
    o.host = "origin";
    o.tracker = "http://127.0.0.1:" + std::to_string(tracker_->port());
    o.min_announce_interval_s = 1;
    auto origin = MeshNode::start(o, Logger::discard());
    ASSERT_TRUE(origin.ok()) << origin.error().message;
    origin_ = std::move(*origin);
    ASSERT_TRUE(origin_->seed(ref, dir_ / "origin" / ref.id.hex()).ok());

    NodeOptions p = o;
    p.role = NodeRole::peer;
    p.host = "peer-1";
    auto peer = MeshNode::start(p, Logger::discard());
    ASSERT_TRUE(peer.ok()) << peer.error().message;
    peer_ = std::move(*peer);
    peer_->on_event([this](const MeshEvent& e) { events_.push(e); });
  }

  TempDir dir_;
  Events events_;  // declared before the nodes: it outlives them, and they call it
  SystemClock clock_;
  SystemRandom random_;
  std::unique_ptr<TrackerService> tracker_;
  std::unique_ptr<MeshNode> origin_, peer_;
};

TEST_F(OriginAndPeer, PeerFetchesALayerFromTheOriginByItsManifestIdentityAlone) {
  const std::string bytes = drover::testing::binary_bytes(3, 3 << 20);
  LayerRef layer{ContentId::of(bytes), bytes.size(), BtMerkle::of(bytes)};
  ASSERT_NO_FATAL_FAILURE(start(layer, bytes));
  ASSERT_TRUE(peer_->fetch(layer, dir_ / "peer" / layer.id.hex()).ok());
  ASSERT_TRUE(events_.wait_for(MeshEvent::Kind::complete, layer.id, 60s));
  EXPECT_EQ(drover::testing::read_file(dir_ / "peer" / layer.id.hex()), bytes);
  NodeCounters c = peer_->counters();
  EXPECT_EQ(c.down.origin, layer.size);
  EXPECT_EQ(c.layers_completed, 1u);
}

// A manifest whose pieces root matches the bytes but whose layer id does not:
// every piece passes libtorrent's checks, the final hash does not. The node
// rechecks the file (its cure for a torrent called finished too early), then
// fails with an error naming the layer, and never reports it complete.
TEST_F(OriginAndPeer, ALayerThatPassesItsPiecesButNotItsIdFailsAfterRechecks) {
  const std::string bytes = drover::testing::binary_bytes(5, 1 << 20);
  LayerRef forged{ContentId::of("some other layer"), bytes.size(), BtMerkle::of(bytes)};
  ASSERT_NO_FATAL_FAILURE(start(forged, bytes));
  ASSERT_TRUE(peer_->fetch(forged, dir_ / "peer" / forged.id.hex()).ok());
  ASSERT_TRUE(events_.wait_for(MeshEvent::Kind::failed, forged.id, 60s));
  bool named = false;
  for (const auto& e : events_.all()) {
    EXPECT_NE(e.kind, MeshEvent::Kind::complete);
    if (e.kind == MeshEvent::Kind::failed) {
      named = e.detail.find(forged.id.str()) != std::string::npos &&
              e.detail.find("do not match the signed layer id") != std::string::npos;
    }
  }
  EXPECT_TRUE(named);
  EXPECT_EQ(peer_->counters().rechecks, 3u);
  EXPECT_EQ(peer_->counters().layers_completed, 0u);
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
