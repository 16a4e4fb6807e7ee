// Who may fetch (docs/MESH.md, "Who may fetch and announce"), tested with
// each host in a network namespace of its own, so that every node has an
// address of its own: on loopback every peer is 127.0.0.1 and an address
// filter proves nothing.
//
// The test makes a bridge in the root namespace (10.77.N.1/24, where the
// tracker listens) and one namespace per host joined to it by a veth pair
// (10.77.N.2 and up), and removes them after. Traffic stays on that bridge.
// It needs root and `ip netns`; without them it is skipped.
//
// The hosts: the origin, a regional seed, a vouched peer (each with a mesh
// token), and an outsider with no token that knows the seed's address and
// the layer (its manifest) and connects to the seed directly. With the
// seed's filter the outsider gets no byte; the control case turns the
// seed's filter off and shows that the same outsider then gets the layer,
// so the filter is what stops it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "core/base/hex.hpp"
#include "core/http/http.hpp"
#include "core/mesh_token/mesh_token.hpp"
#include "core/world/clock.hpp"
#include "core/world/random.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/test_support.hpp"
#include "tests/support/tree_gen.hpp"

namespace drover::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

std::string ip_binary() {
  for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "";
}

// A bridge and one namespace per host, removed on destruction.
class Network {
 public:
  ~Network() { tear_down(); }

  // Builds it, or says why it could not (then the test is skipped).
  std::string build(int hosts) {
    ip_ = ip_binary();
    if (ip_.empty()) return "no ip(8) binary (package iproute2)";
    // The bridge's name holds the subnet's number: creating it claims the
    // subnet, so tests running at once never share one.
    const int first = static_cast<int>(::getpid() % 200) + 20;
    for (int i = 0; i < 200 && subnet_ == 0; ++i) {
      const int n = (first + i) % 200 + 20;
      ProcessResult r = ip({"link", "add", "drvbr" + std::to_string(n), "type", "bridge"});
      if (r.exit_code == 0) {
        subnet_ = n;
      } else if (r.err.find("exists") == std::string::npos) {
        return "cannot create a bridge (" + r.err + ")";
      }
    }
    if (subnet_ == 0) return "no free 10.77.N.0/24 subnet";
    const std::string br = bridge();
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"addr", "add", address(1) + "/24", "dev", br}, {"link", "set", br, "up"}}) {
      if (ProcessResult r = ip(args); r.exit_code != 0) return "ip " + args[0] + ": " + r.err;
    }
    for (int h = 0; h < hosts; ++h) {
      const std::string ns = "drover-" + std::to_string(subnet_) + "-" + std::to_string(h);
      const std::string outer = "drv" + std::to_string(subnet_) + "h" + std::to_string(h);
      const std::string inner = "drv" + std::to_string(subnet_) + "n" + std::to_string(h);
      ProcessResult added = ip({"netns", "add", ns});
      if (added.exit_code != 0) return "ip netns add: " + added.err;
      namespaces_.push_back(ns);
      for (const auto& args : std::vector<std::vector<std::string>>{
               {"link", "add", outer, "type", "veth", "peer", "name", inner},
               {"link", "set", inner, "netns", ns},
               {"link", "set", outer, "master", br},
               {"link", "set", outer, "up"},
               {"-n", ns, "addr", "add", address(2 + h) + "/24", "dev", inner},
               {"-n", ns, "link", "set", inner, "up"},
               {"-n", ns, "link", "set", "lo", "up"}}) {
        if (ProcessResult r = ip(args); r.exit_code != 0) return "ip: " + r.err;
      }
    }
    return "";
  }

  std::string address(int host) const {
    return "10.77." + std::to_string(subnet_) + "." + std::to_string(host);
  }
  // Host h's namespace and address (hosts count from 0; address .2 and up).
  const std::string& ns(int h) const { return namespaces_.at(static_cast<std::size_t>(h)); }
  std::string host_address(int h) const { return address(2 + h); }
  // argv that runs argv inside host h's namespace.
  std::vector<std::string> in(int h, std::vector<std::string> argv) const {
    argv.insert(argv.begin(), {ip_, "netns", "exec", ns(h)});
    return argv;
  }

 private:
  std::string bridge() const { return "drvbr" + std::to_string(subnet_); }
  ProcessResult ip(std::vector<std::string> args) const {
    args.insert(args.begin(), ip_);
    return run(args, 20s);
  }
  void tear_down() {
    for (const auto& ns : namespaces_) ip({"netns", "del", ns});  // takes its veth pair along
    if (subnet_ != 0) ip({"link", "del", bridge()});
    namespaces_.clear();
    subnet_ = 0;
  }

  std::string ip_;
  int subnet_ = 0;
  std::vector<std::string> namespaces_;
};

class MeshNamespaces : public ::testing::Test {
 protected:
  enum Host { kOrigin = 0, kSeed = 1, kPeer = 2, kOutsider = 3 };

  void SetUp() override {
    if (::geteuid() != 0) DROVER_SKIP_UNPRIVILEGED("needs root to create network namespaces");
    if (std::string why = net_.build(4); !why.empty()) {
      DROVER_SKIP_UNPRIVILEGED("network namespaces unavailable here: " + why);
    }
    key_ = SystemRandom().bytes(mesh_token::kKeySize);
    write_file(dir_ / "token.key", mesh_token::key_file_text(key_), 0600);
  }

  std::string token_file(const std::string& name, const mesh_token::Claims& claims) {
    auto t = mesh_token::issue(key_, claims);
    EXPECT_TRUE(t.ok()) << t.error().message;
    const fs::path path = dir_ / (name + ".token");
    write_file(path, (t.ok() ? *t : "") + "\n", 0600);
    return path.string();
  }
  mesh_token::Claims claims(const std::string& role, const std::string& region,
                            const std::string& host) {
    return {role, region, host, unix_seconds(SystemClock().now()) + 3600};
  }

  std::unique_ptr<DaemonProcess> start(const std::string& name, std::vector<std::string> argv) {
    return std::make_unique<DaemonProcess>(argv, (dir_ / (name + ".err")).string());
  }
  std::string at(Host h, const std::string& port = "0") const {
    return net_.host_address(h) + ":" + port;
  }

  // The origin (with a pushed artifact), the tracker and the region's seed,
  // until the seed holds the artifact; seed_filter false is the control case.
  void start_sources(bool seed_filter) {
    const fs::path tree = dir_ / "tree";
    for (int i = 0; i < 3; ++i) {
      write_file(tree / ("f" + std::to_string(i)),
                 binary_bytes(static_cast<std::uint64_t>(i) + 5, 256 << 10));
    }
    ProcessResult pushed =
        run({binary("drover").string(), "artifact", "push", tree.string(), "--service", "svc",
             "--git-sha", "0123abcd", "--store", (dir_ / "store").string(), "--json"});
    ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
    const json push = json::parse(pushed.out);
    artifact_ = push["artifact_id"];
    layers_ = push["layers"].size();

    tracker_ = start("tracker",
                     {binary("drover-seed").string(), "tracker", "--listen", net_.address(1) + ":0",
                      "--interval", "1", "--token-key", (dir_ / "token.key").string()});
    auto ready = tracker_->wait_for_event("ready", 20s);
    ASSERT_TRUE(ready) << tracker_->stderr_tail();
    tracker_url_ = (*ready)["tracker"];

    origin_ = start(
        "origin", net_.in(kOrigin, {binary("drover-seed").string(), "origin", "--store",
                                    (dir_ / "store").string(), "--tracker", tracker_url_,
                                    "--listen", at(kOrigin), "--feed-listen", at(kOrigin), "--host",
                                    "origin-1", "--announce-interval", "1", "--token-file",
                                    token_file("origin", claims("origin", "", "origin-1"))}));
    ready = origin_->wait_for_event("ready", 30s);
    ASSERT_TRUE(ready) << origin_->stderr_tail();
    feed_ = (*ready)["feed"];

    std::vector<std::string> seed = {binary("drover-seed").string(),
                                     "seed",
                                     "--region",
                                     "r1",
                                     "--cache",
                                     (dir_ / "seed-cache").string(),
                                     "--origin",
                                     feed_,
                                     "--tracker",
                                     tracker_url_,
                                     "--listen",
                                     at(kSeed),
                                     "--host",
                                     "seed-1",
                                     "--announce-interval",
                                     "1",
                                     "--report-every",
                                     "300",
                                     "--token-file",
                                     token_file("seed", claims("seed", "r1", "seed-1"))};
    if (!seed_filter) seed.push_back("--accept-unvouched");
    seed_ = start("seed", net_.in(kSeed, seed));
    ready = seed_->wait_for_event("ready", 30s);
    ASSERT_TRUE(ready) << seed_->stderr_tail();
    seed_port_ = std::to_string((*ready)["port"].get<int>());
    ASSERT_TRUE(seed_->wait_for_event("replicated", 60s))
        << "the seed never replicated the artifact from the origin\n"
        << seed_->stderr_tail() << origin_->stderr_tail();

    // What the outsider knows: the manifest (so every layer's info-hash).
    auto manifest = http::request("GET", feed_ + "/v1/manifests/" + artifact_.substr(7), "", 10s);
    ASSERT_TRUE(manifest.ok() && manifest->status == 200);
    write_file(dir_ / "manifest", manifest->body);
  }

  std::unique_ptr<DaemonProcess> start_peer() {
    return start("peer", net_.in(kPeer, {binary("drover-peer").string(),
                                         "--cache",
                                         (dir_ / "peer-cache").string(),
                                         "--tracker",
                                         tracker_url_,
                                         "--region",
                                         "r1",
                                         "--cluster",
                                         "c1",
                                         "--host",
                                         "peer-1",
                                         "--manifest",
                                         (dir_ / "manifest").string(),
                                         "--listen",
                                         at(kPeer),
                                         "--announce-interval",
                                         "1",
                                         "--token-file",
                                         token_file("peer", claims("peer", "r1", "peer-1")),
                                         "--exit-when-done"}));
  }

  // No token; announces like any peer of the region and connects to the
  // seed's address directly, every second.
  std::unique_ptr<DaemonProcess> start_outsider() {
    return start("outsider", net_.in(kOutsider, {binary("drover-peer").string(),
                                                 "--cache",
                                                 (dir_ / "outsider-cache").string(),
                                                 "--tracker",
                                                 tracker_url_,
                                                 "--region",
                                                 "r1",
                                                 "--cluster",
                                                 "c1",
                                                 "--host",
                                                 "outsider",
                                                 "--manifest",
                                                 (dir_ / "manifest").string(),
                                                 "--listen",
                                                 at(kOutsider),
                                                 "--announce-interval",
                                                 "1",
                                                 "--connect",
                                                 at(kSeed, seed_port_),
                                                 "--stall-timeout",
                                                 "8",
                                                 "--exit-when-done"}));
  }

  json tracker_stats() {
    auto r = http::request("GET", tracker_url_ + "/stats", "", 5s);
    return r.ok() ? json::parse(r->body, nullptr, false) : json();
  }
  static std::uint64_t down_total(const json& line) {
    std::uint64_t n = 0;
    for (const auto& [k, v] : line["counters"]["down"].items()) n += v.get<std::uint64_t>();
    return n;
  }
  std::size_t complete_layers(const std::string& cache) {
    std::error_code ec;
    std::size_t n = 0;
    for (auto it = fs::directory_iterator(dir_ / cache / "complete", ec);
         !ec && it != fs::directory_iterator(); ++it)
      ++n;
    return n;
  }

  Network net_;  // destroyed last, after every process in it
  TempDir dir_;
  std::string key_, artifact_, tracker_url_, feed_, seed_port_;
  std::size_t layers_ = 0;
  std::unique_ptr<DaemonProcess> tracker_, origin_, seed_;
};

TEST_F(MeshNamespaces, AnOutsiderGetsNoPeersAndNoByteFromASeedThatAcceptsOnlyVouchedPeers) {
  start_sources(/*seed_filter=*/true);
  if (HasFatalFailure()) return;

  // A vouched peer of the region fetches every layer, from the seed.
  auto peer = start_peer();
  auto done = peer->wait_for_event("done", 60s);
  ASSERT_TRUE(done) << peer->stderr_tail() << seed_->stderr_tail();
  EXPECT_GT((*done)["counters"]["down"]["seed"].get<std::uint64_t>(), 0u);

  // The outsider: its announces are refused (no peers), and its direct
  // connections to the seed are blocked: it fails without a byte.
  auto outsider = start_outsider();
  auto failed = outsider->wait_for_event("failed", 60s);
  ASSERT_TRUE(failed) << "the outsider did not fail: " << outsider->stderr_tail();
  const std::string error = (*failed)["error"];
  EXPECT_NE(error.find("no mesh token"), std::string::npos) << error;
  EXPECT_EQ(down_total(*failed), 0u) << failed->dump();
  EXPECT_EQ(complete_layers("outsider-cache"), 0u);
  EXPECT_GE(tracker_stats()["refused"]["token"].get<std::uint64_t>(), 1u);
  // The seed blocked it (rather than never hearing from it).
  auto blocked = seed_->wait_for(
      [](const json& l) {
        return l["event"] == "counters" && l["counters"]["peers_blocked"].get<std::uint64_t>() > 0;
      },
      20s);
  EXPECT_TRUE(blocked) << seed_->stderr_tail();
  // Whom the seed let in: the origin and the vouched peer (its own address
  // too), never the outsider's.
  EXPECT_TRUE(seed_->wait_for(
      [](const json& l) {
        return l["event"] == "counters" && l["counters"]["vouched"].get<std::uint64_t>() >= 2;
      },
      5s));
}

// The control: the same outsider against a seed whose filter is off gets the
// layer, so what stops it above is the filter.
TEST_F(MeshNamespaces, ControlWithoutTheSeedsFilterTheSameOutsiderGetsTheLayer) {
  start_sources(/*seed_filter=*/false);
  if (HasFatalFailure()) return;
  auto outsider = start_outsider();
  auto done = outsider->wait_for_event("done", 60s);
  ASSERT_TRUE(done) << "the outsider did not get the layer with the filter off: "
                    << outsider->stderr_tail() << seed_->stderr_tail();
  EXPECT_GT((*done)["counters"]["down"]["seed"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(complete_layers("outsider-cache"), layers_);
  // Its announces were refused all along: it got the layer by connecting.
  EXPECT_GE(tracker_stats()["refused"]["token"].get<std::uint64_t>(), 1u);
}

}  // namespace
}  // namespace drover::testing
