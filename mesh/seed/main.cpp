// drover-seed: the origin (beside the artifact store), a regional seed, or a
// standalone tracker. See docs/MESH.md.
//
//   drover-seed origin  --store PATH [--tracker URL | --tracker-listen ADDR] ...
//   drover-seed seed    --region R --cache DIR --origin URL --tracker URL ...
//   drover-seed tracker [--listen ADDR] [--interval S] [--token-key FILE]
#include <cxxopts.hpp>
#include <iostream>

#include "core/log/log.hpp"
#include "core/mesh_token/mesh_token.hpp"
#include "core/metrics/endpoint.hpp"
#include "mesh/daemon/daemon.hpp"
#include "mesh/node/node_metrics.hpp"
#include "mesh/origin/origin_service.hpp"
#include "mesh/seed/seed_service.hpp"
#include "mesh/tracker/tracker_service.hpp"

namespace {

using namespace drover;
using namespace drover::mesh;
using namespace drover::daemon;

constexpr const char* kUsage =
    "usage: drover-seed origin --store PATH [--tracker URL | --tracker-listen ADDR] [options]\n"
    "       drover-seed seed --region R --cache DIR --origin URL --tracker URL [options]\n"
    "       drover-seed tracker [--listen ADDR] [--interval S] [--expiry S] [--max-peers N]\n"
    "                           [--token-key FILE]\n"
    "options: --listen ADDR (BitTorrent, default 127.0.0.1:0), --feed-listen ADDR (origin),\n"
    "         --upload-rate R, --download-rate R (e.g. 4MiB; default unlimited),\n"
    "         --announce-interval S (tracker answers and client floor), --host NAME,\n"
    "         --unchoke-slots N (peers served at once, default 16),\n"
    "         --peers-per-layer N (connections per layer's swarm, default 200),\n"
    "         --super-seed (seed), --stall-timeout S (seed), --report-every MS, --log-level L,\n"
    "         --repeat-freely (send pieces again while others were sent to nobody),\n"
    "         --token-file FILE (this node's mesh token; then only vouched peers get in),\n"
    "         --token-key FILE (the --tracker-listen tracker requires tokens under this key),\n"
    "         --metrics-listen ADDR (Prometheus metrics, GET /metrics; off by default)\n";

int fail(const std::string& what) {
  std::cerr << "drover-seed: " << what << "\n";
  return 1;
}

int usage(const std::string& what) {
  std::cerr << "drover-seed: " << what << "\n" << kUsage;
  return 2;
}

struct Common {
  NodeOptions node;
  int announce_interval = 30;
  std::string tracker_listen;
  std::string token_file;                // re-read while the node runs
  std::optional<std::string> token_key;  // for the --tracker-listen tracker
  std::string metrics_listen;            // "" when off
  LogLevel level = LogLevel::info;
};

// --metrics-listen ADDR: checked as a listen address.
Result<std::string> read_metrics_listen(const cxxopts::ParseResult& r) {
  if (!r.count("metrics-listen")) return std::string();
  std::string listen = r["metrics-listen"].as<std::string>();
  DROVER_TRY(parse_listen(listen));
  return listen;
}

// The daemon's metrics listener, when asked for; its URL goes in the ready line.
Result<std::unique_ptr<http::Server>> start_metrics(const std::string& listen,
                                                    metrics::Registry& registry, Logger& log,
                                                    nlohmann::json& ready) {
  if (listen.empty()) return std::unique_ptr<http::Server>();
  DROVER_ASSIGN(auto server, metrics::serve(listen, registry, log));
  std::string host = parse_listen(listen)->first;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";  // IPv6
  ready["metrics"] = "http://" + host + ":" + std::to_string(server->port()) + "/metrics";
  return server;
}

// --token-key FILE: 64 hex digits, mode 0600 (docs/FORMATS.md, "Mesh tokens").
Result<std::optional<std::string>> read_token_key(const cxxopts::ParseResult& r) {
  if (!r.count("token-key")) return std::optional<std::string>();
  PosixFilesystem fsys;
  DROVER_ASSIGN(std::string key, mesh_token::load_key(fsys, r["token-key"].as<std::string>()));
  return std::optional<std::string>(std::move(key));
}

void add_common(cxxopts::Options& o) {
  o.add_options()("listen", "BitTorrent listen address",
                  cxxopts::value<std::string>()->default_value("127.0.0.1:0"))(
      "tracker", "tracker base URL", cxxopts::value<std::string>())(
      "tracker-listen", "run a tracker here too", cxxopts::value<std::string>())(
      "announce-interval", "seconds between announces", cxxopts::value<int>()->default_value("30"))(
      "upload-rate", "upload limit", cxxopts::value<std::string>())(
      "download-rate", "download limit", cxxopts::value<std::string>())(
      "unchoke-slots", "peers served at once", cxxopts::value<int>()->default_value("16"))(
      "peers-per-layer", "connections per layer's swarm",
      cxxopts::value<int>()->default_value("200"))("host", "this node's name",
                                                   cxxopts::value<std::string>())(
      "log-level", "debug, info, warn or error",
      cxxopts::value<std::string>()->default_value("info"))(
      "report-every", "print the node's counters every this many milliseconds (0: never)",
      cxxopts::value<int>()->default_value("0"))(
      "repeat-freely",
      "serve a piece already sent to another peer even while others were sent to nobody "
      "(off: first copies first, docs/MESH.md)")(
      "token-file", "this node's mesh token (re-read every 10 s)", cxxopts::value<std::string>())(
      "accept-unvouched",
      "with a token, still accept connections from any address (only to show what the filter "
      "stops)")("token-key", "the --tracker-listen tracker requires mesh tokens under this key",
                cxxopts::value<std::string>())("metrics-listen",
                                               "serve Prometheus metrics here (GET /metrics)",
                                               cxxopts::value<std::string>())("h,help", "help");
}

Result<Common> read_common(const cxxopts::ParseResult& r, NodeRole role) {
  Common c;
  c.node.role = role;
  c.node.first_copies_first = r.count("repeat-freely") == 0;
  c.node.listen = r["listen"].as<std::string>();
  DROVER_TRY(parse_listen(c.node.listen));
  c.announce_interval = r["announce-interval"].as<int>();
  if (c.announce_interval < 1 || c.announce_interval > 3600) {
    return make_error(Errc::invalid_argument, "--announce-interval must be 1 to 3600 seconds");
  }
  c.node.min_announce_interval_s = c.announce_interval;
  if (r.count("tracker")) {
    c.node.tracker = r["tracker"].as<std::string>();
    DROVER_TRY(http::parse_url(c.node.tracker));
  }
  if (r.count("tracker-listen")) {
    c.tracker_listen = r["tracker-listen"].as<std::string>();
    DROVER_TRY(parse_listen(c.tracker_listen));
  }
  if (r.count("upload-rate")) {
    DROVER_ASSIGN(c.node.upload_rate, parse_rate(r["upload-rate"].as<std::string>()));
  }
  if (r.count("download-rate")) {
    DROVER_ASSIGN(c.node.download_rate, parse_rate(r["download-rate"].as<std::string>()));
  }
  c.node.unchoke_slots = r["unchoke-slots"].as<int>();
  if (c.node.unchoke_slots < 1 || c.node.unchoke_slots > 1000) {
    return make_error(Errc::invalid_argument, "--unchoke-slots must be 1 to 1000");
  }
  c.node.peers_per_layer = r["peers-per-layer"].as<int>();
  if (c.node.peers_per_layer < 2 || c.node.peers_per_layer > 1000) {
    return make_error(Errc::invalid_argument, "--peers-per-layer must be 2 to 1000");
  }
  c.node.host = r.count("host") ? r["host"].as<std::string>() : std::string(role_name(role));
  if (r.count("token-file")) {
    c.token_file = r["token-file"].as<std::string>();
    DROVER_ASSIGN(c.node.token, read_token_file(c.token_file));
  }
  c.node.vouched_only = r.count("accept-unvouched") == 0;
  DROVER_ASSIGN(c.token_key, read_token_key(r));
  DROVER_ASSIGN(c.metrics_listen, read_metrics_listen(r));
  if (!parse_log_level(r["log-level"].as<std::string>(), c.level)) {
    return make_error(Errc::invalid_argument, "--log-level must be debug, info, warn or error");
  }
  return c;
}

Result<cxxopts::ParseResult> parse(cxxopts::Options& o, int argc, char** argv) {
  try {
    auto r = o.parse(argc, argv);
    if (!r.unmatched().empty()) {
      return make_error(Errc::invalid_argument,
                        "unexpected argument '" + r.unmatched().front() + "'");
    }
    return r;
  } catch (const cxxopts::exceptions::exception& e) {
    return make_error(Errc::invalid_argument, e.what());
  }
}

// Starts the in-process tracker when asked, and points the node at it.
Result<std::unique_ptr<TrackerService>> maybe_tracker(Common& c, const Clock& clock, Random& random,
                                                      Logger& log) {
  if (c.tracker_listen.empty()) return std::unique_ptr<TrackerService>();
  auto [host, port] = *parse_listen(c.tracker_listen);
  http::ServerOptions server;
  server.bind = host;
  server.port = port;
  TrackerOptions t;
  t.interval = std::chrono::seconds(c.announce_interval);
  t.expiry = 3 * t.interval;
  t.token_key = c.token_key;
  DROVER_ASSIGN(auto tracker, TrackerService::start(server, t, clock, random, log));
  c.node.tracker = "http://" + host + ":" + std::to_string(tracker->port());
  return tracker;
}

int run_origin(int argc, char** argv) {
  cxxopts::Options o("drover-seed origin", "Seed every layer of the artifact store.");
  add_common(o);
  o.add_options()("store", "the artifact store", cxxopts::value<std::string>())(
      "feed-listen", "address of the artifact feed",
      cxxopts::value<std::string>()->default_value("127.0.0.1:0"));
  auto r = parse(o, argc, argv);
  if (!r.ok()) return usage(r.error().message);
  if (r->count("help")) return std::cout << o.help(), 0;
  if (!r->count("store")) return usage("origin needs --store PATH");
  auto c = read_common(*r, NodeRole::origin);
  if (!c.ok()) return usage(c.error().message);
  auto feed = parse_listen((*r)["feed-listen"].as<std::string>());
  if (!feed.ok()) return usage(feed.error().message);

  StderrSink sink;
  SystemClock clock;
  SystemRandom random;
  PosixFilesystem fsys;
  Logger log(sink, clock, c->level);
  auto tracker = maybe_tracker(*c, clock, random, log);
  if (!tracker.ok()) return fail(tracker.error().message);
  auto store =
      store::ArtifactStore::open((*r)["store"].as<std::string>(), fsys, clock, random, log);
  if (!store.ok()) return fail(store.error().message);
  auto node = MeshNode::start(c->node, log);
  if (!node.ok()) return fail(node.error().message);
  OriginOptions options;
  options.feed.bind = feed->first;
  options.feed.port = feed->second;
  auto origin = OriginService::start(**node, **store, options, log);
  if (!origin.ok()) return fail(origin.error().message);
  metrics::Registry registry;
  metrics::build_info(registry, "origin");
  export_node_metrics(registry, **node);
  if (*tracker) (*tracker)->export_metrics(registry);
  OriginService* served = origin->get();
  registry.on_collect([served](metrics::Registry& reg) {
    reg.gauge("drover_origin_layers_seeded", "Layers of the store the origin seeds.")
        .set(static_cast<double>(served->layers_seeded()));
  });
  nlohmann::json ready{
      {"event", "ready"},
      {"role", "origin"},
      {"port", (*node)->port()},
      {"feed", "http://" + feed->first + ":" + std::to_string((*origin)->feed_port())},
      {"tracker", c->node.tracker},
      {"layers", (*origin)->layers_seeded()}};
  auto metrics_server = start_metrics(c->metrics_listen, registry, log, ready);
  if (!metrics_server.ok()) return fail(metrics_server.error().message);
  emit_line(ready);
  run_until_stopped(**node, std::chrono::milliseconds((*r)["report-every"].as<int>()),
                    c->token_file);
  emit_line(
      {{"event", "stopped"}, {"role", "origin"}, {"counters", counters_json((*node)->counters())}});
  return 0;
}

int run_seed(int argc, char** argv) {
  cxxopts::Options o("drover-seed seed",
                     "Replicate new artifacts from the origin and seed a region.");
  add_common(o);
  o.add_options()("region", "the region this seed serves", cxxopts::value<std::string>())(
      "cache", "the layer cache directory", cxxopts::value<std::string>())(
      "origin", "the origin's feed URL", cxxopts::value<std::string>())(
      "super-seed",
      "offer each piece to one peer at a time (fewer copies, slower: see BENCHMARKS.md)")(
      "stall-timeout", "seconds without progress before a fetch fails",
      cxxopts::value<int>()->default_value("60"));
  auto r = parse(o, argc, argv);
  if (!r.ok()) return usage(r.error().message);
  if (r->count("help")) return std::cout << o.help(), 0;
  for (const char* need : {"region", "cache", "origin"}) {
    if (!r->count(need)) return usage(std::string("seed needs --") + need);
  }
  auto c = read_common(*r, NodeRole::seed);
  if (!c.ok()) return usage(c.error().message);
  c->node.region = (*r)["region"].as<std::string>();
  c->node.super_seed = r->count("super-seed") > 0;
  if (c->node.tracker.empty() && c->tracker_listen.empty())
    return usage("seed needs --tracker URL or --tracker-listen");
  const int stall = (*r)["stall-timeout"].as<int>();
  if (stall < 1) return usage("--stall-timeout must be at least 1 second");

  StderrSink sink;
  SystemClock clock;
  SystemRandom random;
  Logger log(sink, clock, c->level);
  auto tracker = maybe_tracker(*c, clock, random, log);
  if (!tracker.ok()) return fail(tracker.error().message);
  auto node = MeshNode::start(c->node, log);
  if (!node.ok()) return fail(node.error().message);
  CacheOptions cache_options;
  cache_options.dir = (*r)["cache"].as<std::string>();
  cache_options.stall_timeout = std::chrono::seconds(stall);
  auto cache = LayerCache::open(**node, cache_options, clock, log);
  if (!cache.ok()) return fail(cache.error().message);
  SeedOptions options;
  options.origin = (*r)["origin"].as<std::string>();
  metrics::Registry registry;
  metrics::build_info(registry, "seed");
  export_node_metrics(registry, **node);
  if (*tracker) (*tracker)->export_metrics(registry);
  auto& replicated = registry.counter("drover_seed_artifacts_replicated_total",
                                      "Artifacts replicated from the origin into the cache.");
  auto& replicate_s = registry.histogram(
      "drover_seed_replicate_duration_seconds",
      "Time to replicate one artifact's layers from its announcement on the feed.",
      metrics::duration_buckets());
  auto seed = SeedService::start(**cache, options, clock, log, [&](const Replicated& rep) {
    replicated.inc();
    replicate_s.observe(static_cast<double>(rep.took.count()) / 1000.0);
    emit_line({{"event", "replicated"},
               {"artifact", rep.artifact.str()},
               {"push_seq", rep.push_seq},
               {"bytes", rep.bytes},
               {"ms", rep.took.count()}});
  });
  if (!seed.ok()) return usage(seed.error().message);
  nlohmann::json ready{{"event", "ready"},           {"role", "seed"},
                       {"region", c->node.region},   {"port", (*node)->port()},
                       {"tracker", c->node.tracker}, {"layers_held", (*cache)->held().size()}};
  auto metrics_server = start_metrics(c->metrics_listen, registry, log, ready);
  if (!metrics_server.ok()) return fail(metrics_server.error().message);
  emit_line(ready);
  run_until_stopped(**node, std::chrono::milliseconds((*r)["report-every"].as<int>()),
                    c->token_file);
  emit_line(
      {{"event", "stopped"}, {"role", "seed"}, {"counters", counters_json((*node)->counters())}});
  seed->reset();
  return 0;
}

int run_tracker(int argc, char** argv) {
  cxxopts::Options o("drover-seed tracker", "Run the locality-aware tracker alone.");
  o.add_options()("listen", "address", cxxopts::value<std::string>()->default_value("127.0.0.1:0"))(
      "interval", "announce interval told to nodes, seconds",
      cxxopts::value<int>()->default_value("30"))(
      "expiry", "seconds of silence before a node is forgotten (default 3 intervals)",
      cxxopts::value<int>())("max-peers", "peers per answer",
                             cxxopts::value<int>()->default_value("50"))(
      "log-level", "debug, info, warn or error",
      cxxopts::value<std::string>()->default_value("info"))(
      "token-key", "require mesh tokens issued under this key (64 hex digits, mode 0600)",
      cxxopts::value<std::string>())("metrics-listen",
                                     "serve Prometheus metrics here (GET /metrics)",
                                     cxxopts::value<std::string>())("h,help", "help");
  auto r = parse(o, argc, argv);
  if (!r.ok()) return usage(r.error().message);
  if (r->count("help")) return std::cout << o.help(), 0;
  auto token_key = read_token_key(*r);
  if (!token_key.ok()) return fail(token_key.error().message);
  auto metrics_listen = read_metrics_listen(*r);
  if (!metrics_listen.ok()) return usage(metrics_listen.error().message);
  auto listen = parse_listen((*r)["listen"].as<std::string>());
  if (!listen.ok()) return usage(listen.error().message);
  TrackerOptions t;
  const int interval = (*r)["interval"].as<int>();
  if (interval < 1 || interval > 3600) return usage("--interval must be 1 to 3600 seconds");
  t.interval = std::chrono::seconds(interval);
  t.expiry = r->count("expiry") ? std::chrono::seconds((*r)["expiry"].as<int>()) : 3 * t.interval;
  const int max_peers = (*r)["max-peers"].as<int>();
  if (max_peers < 1) return usage("--max-peers must be at least 1");
  t.max_peers_per_answer = static_cast<std::size_t>(max_peers);
  t.token_key = std::move(*token_key);
  LogLevel level = LogLevel::info;
  if (!parse_log_level((*r)["log-level"].as<std::string>(), level)) return usage("bad --log-level");
  StderrSink sink;
  SystemClock clock;
  SystemRandom random;
  Logger log(sink, clock, level);
  http::ServerOptions server;
  server.bind = listen->first;
  server.port = listen->second;
  auto tracker = TrackerService::start(server, t, clock, random, log);
  if (!tracker.ok()) return fail(tracker.error().message);
  metrics::Registry registry;
  metrics::build_info(registry, "tracker");
  (*tracker)->export_metrics(registry);
  nlohmann::json ready{
      {"event", "ready"},
      {"role", "tracker"},
      {"tracker", "http://" + listen->first + ":" + std::to_string((*tracker)->port())}};
  auto metrics_server = start_metrics(*metrics_listen, registry, log, ready);
  if (!metrics_server.ok()) return fail(metrics_server.error().message);
  emit_line(ready);
  wait_for_stop(std::chrono::steady_clock::time_point::max());
  emit_line({{"event", "stopped"}, {"role", "tracker"}});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  drover::daemon::install_stop_signals();
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string mode = argv[1];
  if (mode == "origin") return run_origin(argc - 1, argv + 1);
  if (mode == "seed") return run_seed(argc - 1, argv + 1);
  if (mode == "tracker") return run_tracker(argc - 1, argv + 1);
  if (mode == "-h" || mode == "--help") {
    std::cout << kUsage;
    return 0;
  }
  std::cerr << "drover-seed: unknown mode '" << mode << "'\n" << kUsage;
  return 2;
}
