// drover-peer: the peer role on its own, for tests, benchmarks and operators
// (the agent embeds the same LayerCache). Fetches one artifact's layers into a
// cache through the mesh, reports progress as JSON lines on stdout, then keeps
// seeding until stopped.
//
//   drover-peer --cache DIR --tracker URL --region R --cluster C --host H
//               (--origin URL --artifact ID | --manifest FILE)
//               [--token-file FILE] [--connect ADDR:PORT] [options]
#include <algorithm>
#include <atomic>
#include <cxxopts.hpp>
#include <filesystem>
#include <iostream>
#include <map>
#include <thread>

#include "core/http/http.hpp"
#include "core/log/log.hpp"
#include "core/world/clock.hpp"
#include "mesh/daemon/daemon.hpp"
#include "mesh/peer/layer_cache.hpp"
#include "mesh/seed/seed_service.hpp"

namespace {

using namespace drover;
using namespace drover::mesh;
using namespace drover::daemon;

int usage(const std::string& what) {
  std::cerr << "drover-peer: " << what << "\nrun 'drover-peer --help' for usage\n";
  return 2;
}

Result<format::Manifest> load_manifest(const cxxopts::ParseResult& r) {
  if (r.count("manifest")) {
    PosixFilesystem fsys;
    DROVER_ASSIGN(std::string bytes, fsys.read_file(r["manifest"].as<std::string>(), 256ull << 20));
    return format::decode_manifest(bytes);
  }
  DROVER_ASSIGN(ContentId id, ContentId::parse(r["artifact"].as<std::string>()));
  return fetch_manifest(r["origin"].as<std::string>(), id, std::chrono::seconds(30));
}

}  // namespace

int main(int argc, char** argv) {
  install_stop_signals();
  cxxopts::Options o("drover-peer", "Fetch an artifact's layers through the mesh and seed them.");
  o.add_options()("cache", "layer cache directory", cxxopts::value<std::string>())(
      "tracker", "tracker base URL", cxxopts::value<std::string>())(
      "region", "this host's region", cxxopts::value<std::string>()->default_value(""))(
      "cluster", "this host's cluster", cxxopts::value<std::string>()->default_value(""))(
      "host", "this host's name", cxxopts::value<std::string>()->default_value("peer"))(
      "origin", "origin feed URL (with --artifact)", cxxopts::value<std::string>())(
      "artifact", "artifact id to fetch", cxxopts::value<std::string>())(
      "manifest", "a manifest file instead of --origin/--artifact", cxxopts::value<std::string>())(
      "listen", "BitTorrent listen address",
      cxxopts::value<std::string>()->default_value("127.0.0.1:0"))(
      "upload-rate", "upload limit, e.g. 4MiB", cxxopts::value<std::string>())(
      "download-rate", "download limit", cxxopts::value<std::string>())(
      "unchoke-slots", "peers served at once", cxxopts::value<int>()->default_value("32"))(
      "peers-per-layer", "connections per layer's swarm",
      cxxopts::value<int>()->default_value("4"))("announce-interval",
                                                 "client floor for announces, seconds",
                                                 cxxopts::value<int>()->default_value("5"))(
      "stall-timeout", "seconds without progress before failing",
      cxxopts::value<int>()->default_value("60"))("progress", "report progress lines")(
      "parallel-layers", "layers fetched at once (0: all)",
      cxxopts::value<int>()->default_value("0"))(
      "report-every", "print the node's counters every this many milliseconds (0: never)",
      cxxopts::value<int>()->default_value("0"))(
      "go-file", "wait until this file exists before fetching (to start many peers at once)",
      cxxopts::value<std::string>())("exit-when-done",
                                     "exit once every layer is held instead of seeding on")(
      "log-level", "debug, info, warn or error",
      cxxopts::value<std::string>()->default_value("warn"))(
      "token-file", "this node's mesh token (then only peers the tracker vouched for get in)",
      cxxopts::value<std::string>())(
      "accept-unvouched",
      "with a token, still accept connections from any address (only to show what the filter "
      "stops)")("connect",
                "also connect to the node at ADDR:PORT for every layer, every second until held "
                "(an outsider that knows a seed's address)",
                cxxopts::value<std::string>())("h,help", "help");
  cxxopts::ParseResult r;
  try {
    r = o.parse(argc, argv);
  } catch (const cxxopts::exceptions::exception& e) {
    return usage(e.what());
  }
  if (r.count("help")) return std::cout << o.help(), 0;
  if (!r.unmatched().empty()) return usage("unexpected argument '" + r.unmatched().front() + "'");
  if (!r.count("cache")) return usage("missing --cache DIR");
  if (!r.count("tracker")) return usage("missing --tracker URL");
  if (!r.count("manifest") && !(r.count("origin") && r.count("artifact"))) {
    return usage("give --manifest FILE, or --origin URL and --artifact ID");
  }
  NodeOptions node_options;
  node_options.role = NodeRole::peer;
  node_options.tracker = r["tracker"].as<std::string>();
  node_options.region = r["region"].as<std::string>();
  node_options.cluster = r["cluster"].as<std::string>();
  node_options.host = r["host"].as<std::string>();
  node_options.listen = r["listen"].as<std::string>();
  node_options.min_announce_interval_s = r["announce-interval"].as<int>();
  node_options.unchoke_slots = r["unchoke-slots"].as<int>();
  if (node_options.unchoke_slots < 1 || node_options.unchoke_slots > 1000)
    return usage("--unchoke-slots must be 1 to 1000");
  node_options.peers_per_layer = r["peers-per-layer"].as<int>();
  if (node_options.peers_per_layer < 2 || node_options.peers_per_layer > 1000)
    return usage("--peers-per-layer must be 2 to 1000");
  for (const char* flag : {"upload-rate", "download-rate"}) {
    if (!r.count(flag)) continue;
    auto rate = parse_rate(r[flag].as<std::string>());
    if (!rate.ok()) return usage(rate.error().message);
    (std::string(flag) == "upload-rate" ? node_options.upload_rate : node_options.download_rate) =
        *rate;
  }
  if (auto url = http::parse_url(node_options.tracker); !url.ok())
    return usage(url.error().message);
  std::string token_file;
  if (r.count("token-file")) {
    token_file = r["token-file"].as<std::string>();
    auto token = read_token_file(token_file);
    if (!token.ok()) return usage(token.error().message);
    node_options.token = *token;
  }
  node_options.vouched_only = r.count("accept-unvouched") == 0;
  std::optional<std::pair<std::string, std::uint16_t>> direct;
  if (r.count("connect")) {
    auto hp = parse_listen(r["connect"].as<std::string>());
    if (!hp.ok()) return usage("--connect: " + hp.error().message);
    if (hp->second == 0) return usage("--connect needs a port");
    direct = *hp;
  }
  const int stall = r["stall-timeout"].as<int>();
  if (stall < 1) return usage("--stall-timeout must be at least 1 second");
  // The stall watchdog acts before the fetch would fail (docs/MESH.md, "Fallback").
  node_options.stall_kick_s = std::min(30, stall / 2);
  LogLevel level = LogLevel::warn;
  if (!parse_log_level(r["log-level"].as<std::string>(), level)) return usage("bad --log-level");

  StderrSink sink;
  SystemClock clock;
  Logger log(sink, clock, level);
  auto manifest = load_manifest(r);
  if (!manifest.ok()) {
    emit_line({{"event", "failed"}, {"error", manifest.error().message}});
    return 1;
  }
  auto node = MeshNode::start(node_options, log);
  if (!node.ok()) {
    emit_line({{"event", "failed"}, {"error", node.error().message}});
    return 1;
  }
  CacheOptions cache_options;
  cache_options.dir = r["cache"].as<std::string>();
  cache_options.stall_timeout = std::chrono::seconds(stall);
  cache_options.max_active = static_cast<std::size_t>(std::max(0, r["parallel-layers"].as<int>()));
  cache_options.stagger = std::hash<std::string>{}(node_options.host);
  // What the cache's event handler reads lives longer than the cache: the
  // mesh may still report while the cache shuts down at exit.
  const bool progress = r.count("progress") > 0;
  std::atomic<std::int64_t> first_byte_ms{-1};  // since start, when the first bytes arrived
  const auto started = std::chrono::steady_clock::now();
  auto ms_since = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 started)
        .count();
  };
  auto cache = LayerCache::open(**node, cache_options, clock, log);
  if (!cache.ok()) {
    emit_line({{"event", "failed"}, {"error", cache.error().message}});
    return 1;
  }
  std::vector<LayerRef> layers;
  std::uint64_t total = 0;
  for (const auto& l : manifest->layers) {
    layers.push_back(layer_ref(l));
    total += l.size;
  }
  (*cache)->on_event([&](const MeshEvent& e) {
    switch (e.kind) {
      case MeshEvent::Kind::progress:
        if (e.done > 0 && first_byte_ms < 0) first_byte_ms = ms_since();
        if (progress)
          emit_line({{"event", "progress"},
                     {"layer", e.layer.str()},
                     {"done", e.done},
                     {"total", e.total}});
        break;
      case MeshEvent::Kind::complete:
        emit_line(
            {{"event", "layer"}, {"layer", e.layer.str()}, {"bytes", e.total}, {"ms", ms_since()}});
        break;
      case MeshEvent::Kind::peer_banned:
        emit_line({{"event", "peer_banned"}, {"layer", e.layer.str()}, {"peer", e.detail}});
        break;
      case MeshEvent::Kind::hash_failed:
        emit_line({{"event", "hash_failed"}, {"layer", e.layer.str()}, {"detail", e.detail}});
        break;
      case MeshEvent::Kind::failed: break;  // reported below, from wait()
    }
  });
  std::size_t held_before = 0;
  for (const auto& l : layers) held_before += (*cache)->holds(l.id) ? 1 : 0;
  emit_line({{"event", "ready"},
             {"port", (*node)->port()},
             {"layers", layers.size()},
             {"bytes", total},
             {"held", held_before}});
  if (r.count("go-file")) {
    const std::string go = r["go-file"].as<std::string>();
    std::error_code ec;
    while (!std::filesystem::exists(go, ec) && !stop_requested()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  const auto fetch_started = std::chrono::steady_clock::now();
  Status st = (*cache)->fetch(layers);
  const std::chrono::milliseconds every(r["report-every"].as<int>());
  auto next_report = std::chrono::steady_clock::now() + every;
  auto next_connect = std::chrono::steady_clock::now();
  while (st.ok()) {
    if (direct && std::chrono::steady_clock::now() >= next_connect) {
      for (const auto& l : layers) {
        if ((*cache)->holds(l.id)) continue;
        if (Status c = (*node)->connect(l.id, direct->first, direct->second); !c.ok())
          log.debug("peer.connect.failed", {{"error", c.error().message}});
      }
      next_connect += std::chrono::seconds(1);
    }
    if (every.count() > 0 && std::chrono::steady_clock::now() >= next_report) {
      emit_line({{"event", "counters"},
                 {"unix_ms", unix_ms(std::chrono::system_clock::now())},
                 {"counters", counters_json((*node)->counters())}});
      next_report += every;
    }
    Status waited = (*cache)->wait(layers, clock.steady() + std::chrono::milliseconds(100));
    if (waited.ok()) break;
    if (waited.error().code != Errc::timeout) {
      st = waited;
    } else if (stop_requested()) {
      st = make_error(Errc::timeout, "stopped before every layer was held");
    }
  }
  if (!st.ok()) {
    emit_line({{"event", "failed"},
               {"error", st.error().message},
               {"counters", counters_json((*node)->counters())}});
    return 1;
  }
  const auto fetch_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - fetch_started);
  emit_line({{"event", "done"},
             {"ms", ms_since()},
             {"fetch_ms", fetch_ms.count()},
             {"first_byte_ms", first_byte_ms.load()},
             {"unix_ms", unix_ms(std::chrono::system_clock::now())},
             {"bytes", total},
             {"counters", counters_json((*node)->counters())}});
  if (!r.count("exit-when-done")) {
    run_until_stopped(**node, std::chrono::milliseconds(r["report-every"].as<int>()), token_file);
  }
  emit_line({{"event", "stopped"}, {"counters", counters_json((*node)->counters())}});
  return 0;
}
