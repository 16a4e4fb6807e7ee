// The mesh as it runs: real drover-seed and drover-peer processes on loopback,
// a real store, real libtorrent swarms. Each test waits on what the daemons
// report (JSON lines), with deadlines.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <optional>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/hash/sha256.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/test_support.hpp"
#include "tests/support/tree_gen.hpp"

namespace drover::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class Swarm : public ::testing::Test {
 protected:
  // Pushes a tree of `files` files of `size` random bytes; returns the artifact id.
  std::string push(int files, std::size_t size, std::uint64_t seed = 1) {
    fs::path tree = dir_ / ("tree-" + std::to_string(seed));
    for (int i = 0; i < files; ++i) {
      write_file(tree / ("f" + std::to_string(i)),
                 binary_bytes(seed * 100 + static_cast<unsigned>(i), size));
    }
    ProcessResult r =
        run({binary("drover").string(), "artifact", "push", tree.string(), "--service", "svc",
             "--git-sha", "0123abcd", "--store", (dir_ / "store").string(), "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    json j = json::parse(r.out);
    for (const auto& l : j["layers"]) layers_.push_back(l["id"].get<std::string>());
    return j["artifact_id"];
  }

  std::unique_ptr<DaemonProcess> start(const std::string& name, std::vector<std::string> args) {
    args.insert(args.begin(),
                name == "peer" ? binary("drover-peer").string() : binary("drover-seed").string());
    return std::make_unique<DaemonProcess>(
        args, (dir_ / (name + "-" + std::to_string(++serial_) + ".err")).string());
  }

  void start_origin(const std::string& upload_rate = "") {
    std::vector<std::string> args = {"origin",
                                     "--store",
                                     (dir_ / "store").string(),
                                     "--tracker-listen",
                                     "127.0.0.1:0",
                                     "--announce-interval",
                                     "1"};
    if (!upload_rate.empty()) args.insert(args.end(), {"--upload-rate", upload_rate});
    origin_ = start("origin", args);
    auto ready = origin_->wait_for_event("ready", 30s);
    ASSERT_TRUE(ready) << origin_->stderr_tail();
    feed_ = (*ready)["feed"];
    tracker_ = (*ready)["tracker"];
  }

  std::unique_ptr<DaemonProcess> start_seed(const std::string& region, const std::string& cache,
                                            const std::string& upload_rate = "") {
    std::vector<std::string> args = {
        "seed",     "--region", region,      "--cache", (dir_ / cache).string(),
        "--origin", feed_,      "--tracker", tracker_,  "--announce-interval",
        "1"};
    if (!upload_rate.empty()) args.insert(args.end(), {"--upload-rate", upload_rate});
    return start("seed", args);
  }

  std::unique_ptr<DaemonProcess> start_peer(const std::string& host, const std::string& region,
                                            const std::string& cluster, const std::string& artifact,
                                            std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--cache",
                                     (dir_ / ("cache-" + host)).string(),
                                     "--tracker",
                                     tracker_,
                                     "--region",
                                     region,
                                     "--cluster",
                                     cluster,
                                     "--host",
                                     host,
                                     "--origin",
                                     feed_,
                                     "--artifact",
                                     artifact,
                                     "--announce-interval",
                                     "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return start("peer", args);
  }

  // Every layer in the peer's cache is held and hashes to its id.
  void expect_holds_everything(const std::string& host) {
    for (const auto& id : layers_) {
      const std::string hex = id.substr(7);
      EXPECT_TRUE(fs::exists(dir_ / ("cache-" + host) / "complete" / hex)) << host << " " << id;
      EXPECT_EQ(ContentId::of(read_file(dir_ / ("cache-" + host) / "layers" / hex)).str(), id)
          << host;
    }
  }

  // Overwrites a file's bytes in place, same size: only the bytes rot.
  static void rot(const fs::path& file) {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    const std::string junk(fs::file_size(file), '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    f.close();
    ASSERT_FALSE(f.fail()) << "cannot rot " << file;
  }

  // A new peer "fresh" in r1 fetches artifact; its "done" line (with the
  // fetch checked), or nothing when it did not finish. fresh_ holds it.
  std::optional<json> fetch_fresh(const std::string& artifact) {
    fresh_ = start_peer("fresh", "r1", "a", artifact, {"--exit-when-done"});
    auto done = fresh_->wait_for_event("done", 120s);
    EXPECT_TRUE(done) << fresh_->stderr_tail();
    if (done) expect_holds_everything("fresh");
    return done;
  }

  static std::uint64_t down(const json& line, const char* role) {
    return line["counters"]["down"][role].get<std::uint64_t>();
  }

  TempDir dir_;
  std::unique_ptr<DaemonProcess> fresh_;
  int serial_ = 0;
  std::vector<std::string> layers_;
  std::unique_ptr<DaemonProcess> origin_;
  std::string feed_, tracker_;
};

TEST_F(Swarm, EveryHostEndsWithEveryLayerVerified) {
  const std::string artifact = push(6, 1 << 20);
  start_origin();
  auto seed = start_seed("r1", "seed-cache");
  ASSERT_TRUE(seed->wait_for_event("replicated", 60s)) << seed->stderr_tail();
  std::vector<std::unique_ptr<DaemonProcess>> peers;
  for (int i = 0; i < 4; ++i) {
    peers.push_back(start_peer("p" + std::to_string(i), "r1", i < 2 ? "a" : "b", artifact));
  }
  std::uint64_t from_origin = 0;
  for (int i = 0; i < 4; ++i) {
    auto done = peers[static_cast<std::size_t>(i)]->wait_for_event("done", 60s);
    ASSERT_TRUE(done) << peers[static_cast<std::size_t>(i)]->stderr_tail();
    from_origin += down(*done, "origin");
  }
  for (int i = 0; i < 4; ++i) expect_holds_everything("p" + std::to_string(i));
  EXPECT_EQ(from_origin, 0u) << "peers fetched from the origin while their region's seed was up";
}

TEST_F(Swarm, ASeedReplicatesEachPushAsItComesAndARestartFetchesNothingAgain) {
  const std::string first = push(2, 600 << 10, 5);
  start_origin();
  auto seed = start_seed("r1", "seed-cache");
  auto replicated = [&](DaemonProcess& d, const std::string& artifact) {
    return d.wait_for(
        [&](const json& j) {
          return j.value("event", "") == "replicated" && j.value("artifact", "") == artifact;
        },
        60s);
  };
  ASSERT_TRUE(replicated(*seed, first)) << seed->stderr_tail();

  // A push while the seed runs: it learns of it from the origin's feed.
  const std::string second = push(2, 600 << 10, 6);
  ASSERT_TRUE(replicated(*seed, second)) << seed->stderr_tail();
  EXPECT_EQ(seed->stop(), 0);
  auto stopped = seed->wait_for_event("stopped", 5s);
  ASSERT_TRUE(stopped);
  const std::uint64_t fetched = (*stopped)["counters"]["down"]["origin"];
  EXPECT_GT(fetched, 0u);

  // Restarted on the same cache: it holds both and downloads nothing.
  auto again = start_seed("r1", "seed-cache");
  auto ready = again->wait_for_event("ready", 30s);
  ASSERT_TRUE(ready) << again->stderr_tail();
  EXPECT_EQ((*ready)["layers_held"].get<std::size_t>(), layers_.size());
  ASSERT_TRUE(replicated(*again, first)) << again->stderr_tail();
  ASSERT_TRUE(replicated(*again, second)) << again->stderr_tail();
  EXPECT_EQ(again->stop(), 0);
  stopped = again->wait_for_event("stopped", 5s);
  ASSERT_TRUE(stopped);
  const json& down = (*stopped)["counters"]["down"];
  EXPECT_EQ(down["origin"].get<std::uint64_t>() + down["seed"].get<std::uint64_t>() +
                down["peer"].get<std::uint64_t>() + down["other"].get<std::uint64_t>(),
            0u)
      << "a restarted seed fetched layers it already held";
}

TEST_F(Swarm, FallsBackToTheSeedThenToTheOrigin) {
  const std::string artifact = push(3, 700 << 10, 2);
  start_origin();
  auto seed = start_seed("r1", "seed-cache");
  ASSERT_TRUE(seed->wait_for_event("replicated", 60s)) << seed->stderr_tail();

  auto first = start_peer("first", "r1", "a", artifact, {"--exit-when-done"});
  auto done = first->wait_for_event("done", 60s);
  ASSERT_TRUE(done) << first->stderr_tail();
  const std::uint64_t total = (*done)["bytes"];
  EXPECT_EQ(down(*done, "seed"), total)
      << "no peer had the layers: the seed should have sent them all: " << done->dump();
  EXPECT_EQ(down(*done, "origin"), 0u);
  EXPECT_EQ(first->wait_exit(30s), 0);

  // The seed goes away: the next host gets the origin.
  EXPECT_EQ(seed->stop(), 0);
  auto second = start_peer("second", "r1", "a", artifact, {"--exit-when-done"});
  done = second->wait_for_event("done", 60s);
  ASSERT_TRUE(done) << second->stderr_tail();
  EXPECT_EQ(down(*done, "origin"), total);
  EXPECT_EQ(down(*done, "seed"), 0u);
  expect_holds_everything("second");
}

TEST_F(Swarm, APeerServingCorruptDataIsBannedAndTheFetchCompletesFromOthers) {
  // One 4 MiB layer; the seed is slow, so the newcomer asks the (fast,
  // same-cluster) corrupt peer for most blocks.
  const std::string artifact = push(1, 4 << 20, 3);
  start_origin();
  auto seed = start_seed("r1", "seed-cache", "512KiB");
  ASSERT_TRUE(seed->wait_for_event("replicated", 60s)) << seed->stderr_tail();
  auto bad = start_peer("bad", "r1", "a", artifact);
  ASSERT_TRUE(bad->wait_for_event("done", 60s)) << bad->stderr_tail();
  // Rot its copy in place, after libtorrent verified it: it keeps serving it.
  rot(dir_ / "cache-bad" / "layers" / layers_.at(0).substr(7));
  auto done = fetch_fresh(artifact);
  ASSERT_TRUE(done);
  const json& c = (*done)["counters"];
  EXPECT_GE(c["hash_failures"].get<int>(), 1)
      << "the corrupt peer was never asked: test proves nothing";
  EXPECT_GE(c["peers_banned"].get<int>(), 1);
  EXPECT_TRUE(fresh_->wait_for_event("peer_banned", 1s));
  EXPECT_NE(fresh_->stderr_tail(20000).find("mesh.peer.banned"), std::string::npos);
}

// Found by drover-chaos (disk-full-mid-fetch): with libtorrent's default
// memory-mapped disk I/O a write on a full disk was a SIGBUS that killed the
// process. Now the fetch fails, naming the full disk, and the process lives.
TEST_F(Swarm, AFetchOntoAFullDiskFailsNamingItAndTheProcessLives) {
  if (::geteuid() != 0) DROVER_SKIP_UNPRIVILEGED("needs root to mount a small tmpfs");
  const std::string artifact = push(1, 4 << 20, 9);
  start_origin();
  const fs::path cache = dir_ / "cache-full";
  fs::create_directories(cache);
  ProcessResult mounted =
      run({"/usr/bin/mount", "-t", "tmpfs", "-o", "size=1m", "drover-test", cache.string()});
  ASSERT_EQ(mounted.exit_code, 0) << mounted.err;
  struct Unmount {
    fs::path at;
    ~Unmount() { run({"/usr/bin/umount", "-l", at.string()}); }
  } unmount{cache};
  auto peer =
      start_peer("full", "r1", "a", artifact, {"--exit-when-done", "--stall-timeout", "20"});
  const auto exited = peer->wait_exit(60s);
  ASSERT_TRUE(exited) << peer->stderr_tail();
  EXPECT_EQ(*exited, 1) << "a signal kills it when negative: " << *exited;
  auto failed = peer->wait_for_event("failed", 1s);
  ASSERT_TRUE(failed) << peer->stderr_tail();
  EXPECT_NE((*failed)["error"].get<std::string>().find("No space left on device"),
            std::string::npos)
      << (*failed)["error"];
}

// Found by drover-chaos (corrupt-seed): a region whose seed serves corrupt
// data had no other source (the tracker names the origin only when no seed
// answers, and the ban did not survive the filter's rebuild). Now the host
// bans the seed for good and announces avoid=seed, and the origin serves it.
TEST_F(Swarm, AHostWhoseSeedServesCorruptDataFetchesFromTheOrigin) {
  const std::string artifact = push(1, 4 << 20, 11);
  start_origin();
  auto seed = start_seed("r1", "seed-cache");
  ASSERT_TRUE(seed->wait_for_event("replicated", 60s)) << seed->stderr_tail();
  // Rot the seed's copy in place, after it verified it: it keeps serving it.
  rot(dir_ / "seed-cache" / "layers" / layers_.at(0).substr(7));
  auto done = fetch_fresh(artifact);
  ASSERT_TRUE(done);
  const json& c = (*done)["counters"];
  EXPECT_GE(c["hash_failures"].get<int>(), 1) << "the seed was never asked: test proves nothing";
  EXPECT_GE(down(*done, "origin"), 1u);
  EXPECT_NE(fresh_->stderr_tail(40000).find("mesh.seed.avoided"), std::string::npos);
}

TEST_F(Swarm, AKilledFetchResumesAfterARestartAndAHeldLayerIsNeverFetchedAgain) {
  const std::string artifact = push(1, 8 << 20, 4);
  start_origin("1MiB");  // slow enough to kill the fetch halfway
  auto peer = start_peer("p", "r1", "a", artifact,
                         {"--progress", "--stall-timeout", "20", "--log-level", "info"});
  // Progress comes per layer (two here): add up the latest of each, a
  // finished layer whole. A fetch that fails or ends ends the wait at once.
  std::map<std::string, std::uint64_t> done_by_layer;
  auto halfway = peer->wait_for(
      [&](const json& j) {
        const std::string event = j.value("event", "");
        if (event == "failed" || event == "done") return true;
        if (event == "layer") {
          done_by_layer[j["layer"]] = j["bytes"];
        } else if (event == "progress") {
          done_by_layer[j["layer"]] = j["done"];
        } else {
          return false;
        }
        std::uint64_t sum = 0;
        for (const auto& [layer, done] : done_by_layer) sum += done;
        return sum >= (4u << 20);
      },
      60s);
  // What both sides said, when the peer did not get halfway.
  auto context = [&] {
    std::string said = "origin running: ";
    said += origin_->wait_exit(0ms) ? "no" : "yes";
    for (const auto& l : peer->lines()) said += "\n" + l.dump();
    return said + "\npeer:\n" + peer->stderr_tail() + "\norigin:\n" + origin_->stderr_tail();
  };
  ASSERT_TRUE(halfway) << context();
  ASSERT_NE((*halfway)["event"], "failed") << context();
  ASSERT_NE((*halfway)["event"], "done") << context();
  peer->kill();

  auto again = start_peer("p", "r1", "a", artifact, {"--exit-when-done"});
  auto done = again->wait_for_event("done", 60s);
  ASSERT_TRUE(done) << again->stderr_tail();
  const std::uint64_t fetched = (*done)["counters"]["down"]["origin"];
  EXPECT_LT(fetched, 6u << 20) << "the restart fetched " << fetched << " bytes: it did not resume";
  EXPECT_GT(fetched, 0u);
  expect_holds_everything("p");

  auto third = start_peer("p", "r1", "a", artifact, {"--exit-when-done"});
  auto ready = third->wait_for_event("ready", 30s);
  ASSERT_TRUE(ready);
  EXPECT_EQ((*ready)["held"], layers_.size());
  done = third->wait_for_event("done", 30s);
  ASSERT_TRUE(done);
  EXPECT_EQ((*done)["counters"]["down"]["origin"], 0);
}

TEST_F(Swarm, AFetchWithNoSourceFailsNamingTheLayerAndWhatWasTried) {
  const std::string artifact = push(1, 100 << 10, 5);
  start_origin();
  // The tracker hands peers of region r9 nothing but the origin; stop the
  // origin's seeding by pointing the peer at an empty tracker instead.
  auto lonely = start("tracker", {"tracker", "--interval", "1"});
  auto ready = lonely->wait_for_event("ready", 10s);
  ASSERT_TRUE(ready);
  std::vector<std::string> args = {"--cache",
                                   (dir_ / "cache-x").string(),
                                   "--tracker",
                                   (*ready)["tracker"],
                                   "--region",
                                   "r9",
                                   "--host",
                                   "x",
                                   "--origin",
                                   feed_,
                                   "--artifact",
                                   artifact,
                                   "--announce-interval",
                                   "1",
                                   "--stall-timeout",
                                   "2"};
  auto peer = start("peer", args);
  auto failed = peer->wait_for_event("failed", 30s);
  ASSERT_TRUE(failed) << peer->stderr_tail();
  const std::string why = (*failed)["error"];
  EXPECT_NE(why.find(layers_.at(0)), std::string::npos) << why;
  EXPECT_NE(why.find("no progress for 2 s"), std::string::npos) << why;
  EXPECT_NE(why.find("answered with 0 peers"), std::string::npos) << why;
  EXPECT_NE(why.find("connected to: no one"), std::string::npos) << why;
  EXPECT_EQ(peer->wait_exit(10s), 1) << peer->stderr_tail();  // an abort here: ASan's report
}

}  // namespace
}  // namespace drover::testing

namespace drover::testing {
namespace {

TEST(MeshDaemons, RefuseBadCommandLinesClearly) {
  const std::string seed = binary("drover-seed").string(), peer = binary("drover-peer").string();
  struct Case {
    std::vector<std::string> argv;
    std::string says;
  };
  std::vector<Case> cases = {
      {{seed}, "usage"},
      {{seed, "bogus"}, "unknown mode 'bogus'"},
      {{seed, "origin"}, "origin needs --store"},
      {{seed, "origin", "--store", "/tmp/x", "--upload-rate", "fast"}, "rate 'fast'"},
      {{seed, "origin", "--store", "/tmp/x", "--listen", "nowhere"}, "must be HOST:PORT"},
      {{seed, "seed", "--region", "r", "--cache", "/tmp/c", "--tracker", "http://127.0.0.1:1"},
       "seed needs --origin"},
      {{seed, "seed", "--region", "r", "--cache", "/tmp/c", "--origin", "http://127.0.0.1:1"},
       "--tracker URL"},
      {{seed, "tracker", "--interval", "0"}, "--interval must be 1 to 3600"},
      {{peer, "--cache", "/tmp/c"}, "missing --tracker"},
      {{peer, "--cache", "/tmp/c", "--tracker", "ftp://x", "--manifest", "/tmp/m"},
       "must start with http://"},
      {{peer, "--cache", "/tmp/c", "--tracker", "http://127.0.0.1:1"}, "give --manifest FILE"},
  };
  for (const auto& c : cases) {
    ProcessResult r = run(c.argv, std::chrono::seconds(20));
    EXPECT_EQ(r.exit_code, 2) << c.says << "\n" << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace drover::testing
