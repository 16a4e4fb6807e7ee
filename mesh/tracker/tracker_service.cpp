#include "mesh/tracker/tracker_service.hpp"

#include <arpa/inet.h>

#include <mutex>
#include <nlohmann/json.hpp>

#include "core/base/hex.hpp"
#include "core/bencode/bencode.hpp"
#include "core/canon/json_text.hpp"
#include "core/mesh_token/mesh_token.hpp"

namespace drover::mesh {
namespace {

http::Response bencoded(std::string body) {
  http::Response r;
  r.content_type = "text/plain";
  r.body = std::move(body);
  return r;
}

// BEP 3: a failure is still HTTP 200, with a "failure reason". The interval
// goes with it because libtorrent retries a failed announce after the
// answer's interval (30 minutes when it has none) or its own backoff,
// whichever is longer: a node refused until its artifact is registered must
// come back soon.
http::Response refusal(const std::string& why, std::chrono::seconds interval) {
  const auto s = static_cast<std::uint64_t>(interval.count());
  return bencoded(bencode::Dict()
                      .bytes("failure reason", why)
                      .integer("interval", s)
                      .integer("min interval", s)
                      .encode());
}

bool parse_u64(const std::string& text, std::uint64_t& out) {
  if (text.empty() || text.size() > 20) return false;
  std::uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  out = v;
  return true;
}

}  // namespace

http::Response handle_announce(SwarmTracker& tracker, const http::Request& req) {
  const auto failure = [&tracker](const std::string& why) {
    return refusal(why, tracker.options().interval);
  };
  Announce a;
  const std::string* info_hash = req.param("info_hash");
  const std::string* peer_id = req.param("peer_id");
  const std::string* port = req.param("port");
  const std::string* left = req.param("left");
  if (info_hash == nullptr || info_hash->size() != 20) return failure("info_hash must be 20 bytes");
  if (peer_id == nullptr || peer_id->size() != 20) return failure("peer_id must be 20 bytes");
  std::uint64_t port_value = 0, left_value = 0;
  if (port == nullptr || !parse_u64(*port, port_value) || port_value == 0 || port_value > 65535) {
    return failure("port must be 1-65535");
  }
  if (left == nullptr || !parse_u64(*left, left_value)) return failure("left must be a byte count");
  a.info_hash = *info_hash;
  a.peer_id = *peer_id;
  a.port = static_cast<std::uint16_t>(port_value);
  a.left = left_value;
  a.ip = req.remote_address;  // never a client-supplied "ip": no one announces for another
  if (const std::string* event = req.param("event")) {
    if (*event == "started")
      a.event = Announce::Event::started;
    else if (*event == "completed")
      a.event = Announce::Event::completed;
    else if (*event == "stopped")
      a.event = Announce::Event::stopped;
    else if (!event->empty())
      return failure("unknown event '" + event->substr(0, 32) + "'");
  }
  if (const std::string* numwant = req.param("numwant")) {
    std::uint64_t n = 0;
    if (!parse_u64(*numwant, n)) return failure("numwant must be a count");
    a.numwant = static_cast<std::size_t>(std::min<std::uint64_t>(n, 10'000));
  }
  if (const std::string* role = req.param("role")) {
    if (!parse_role(*role, a.role)) return failure("role must be peer, seed or origin");
  }
  if (const std::string* region = req.param("region")) a.region = region->substr(0, 128);
  if (const std::string* cluster = req.param("cluster")) a.cluster = cluster->substr(0, 128);
  if (const std::string* host = req.param("host")) a.host = host->substr(0, 128);
  if (const std::string* token = req.param("token")) a.token = *token;  // check() bounds it
  if (const std::string* avoid = req.param("avoid")) {
    if (*avoid != "seed") return failure("avoid must be seed");
    a.avoid_seed = true;
  }
  if (const std::string* want = req.param("want")) {
    if (*want != "sources") return failure("want must be sources");
    a.sources_only = true;
  }

  AnnounceReply reply = tracker.announce(a);
  if (!reply.failure.empty()) return failure(reply.failure);
  std::string peers4, peers6;
  for (const auto& p : reply.peers) {
    unsigned char addr[16];
    const char port_bytes[2] = {static_cast<char>(p.port >> 8), static_cast<char>(p.port & 0xff)};
    if (::inet_pton(AF_INET, p.ip.c_str(), addr) == 1) {
      peers4.append(reinterpret_cast<const char*>(addr), 4).append(port_bytes, 2);
    } else if (::inet_pton(AF_INET6, p.ip.c_str(), addr) == 1) {
      peers6.append(reinterpret_cast<const char*>(addr), 16).append(port_bytes, 2);
    }
  }
  const auto interval = static_cast<std::uint64_t>(tracker.options().interval.count());
  bencode::Dict out;
  out.integer("complete", reply.complete)
      .integer("incomplete", reply.incomplete)
      .integer("interval", interval)
      .integer("min interval", interval)
      .bytes("peers", peers4);
  if (!peers6.empty()) out.bytes("peers6", peers6);
  return bencoded(out.encode());
}

http::Response handle_swarm(const SwarmTracker& tracker, const http::Request& req) {
  http::Response r;
  const std::string* hex = req.param("info_hash");
  std::string raw;
  if (hex != nullptr && hex->size() == 40) {
    if (auto bytes = from_hex(*hex)) raw = *bytes;
  }
  if (raw.size() != 20) {
    r.status = 400;
    r.body = R"({"error":"info_hash must be 40 hex digits: the truncated v2 info-hash"})";
    return r;
  }
  nlohmann::json holders = nlohmann::json::array();
  for (const auto& h : tracker.holders(raw)) {
    holders.push_back({{"role", role_name(h.role)}, {"region", h.region}, {"host", h.host}});
  }
  r.body = json_text(nlohmann::json{{"complete", holders}});
  return r;
}

http::Response handle_vouched(SwarmTracker& tracker, const http::Request& req) {
  http::Response r;
  const std::string* token = req.param("token");
  if (token == nullptr || token->empty()) {
    r.status = 400;
    r.body = R"({"error":"token is missing: /vouched answers the holder of a mesh token"})";
    return r;
  }
  auto vouched = tracker.vouched(*token);
  if (!vouched.ok()) {
    r.status = vouched.error().code == Errc::unsupported ? 404 : 403;
    r.body = json_text(nlohmann::json{{"error", vouched.error().message}});
    return r;
  }
  r.body =
      json_text(nlohmann::json{{"addresses", vouched->addresses},
                               {"interval", static_cast<std::int64_t>(vouched->interval.count())}});
  return r;
}

std::string announce_url(const std::string& base, const std::string& host, NodeRole role,
                         const std::string& region, const std::string& cluster,
                         const std::string& token) {
  std::string url =
      base + "/announce?role=" + role_name(role) + "&region=" + http::percent_encode(region) +
      "&cluster=" + http::percent_encode(cluster) + "&host=" + http::percent_encode(host);
  if (!token.empty()) url += "&token=" + http::percent_encode(token);
  return url;
}

struct TrackerService::Impl {
  // The tracker is used on the server's thread, and read by a metrics
  // scrape from another: every use holds this.
  mutable std::mutex mu;
  SwarmTracker tracker;
  std::unique_ptr<http::Server> server;
  Logger& log;
  Impl(const TrackerOptions& o, const Clock& c, Random& r, Logger& l) : tracker(o, c, r), log(l) {}

  // Every announce already drops the expired nodes of its swarm; this sweep
  // catches swarms nobody announces to any more.
  void schedule_sweep() {
    server->post_after(
        std::chrono::duration_cast<std::chrono::milliseconds>(tracker.options().expiry), [this] {
          {
            std::lock_guard lock(mu);
            tracker.sweep();
          }
          schedule_sweep();
        });
  }
};

TrackerService::TrackerService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TrackerService::~TrackerService() {
  if (impl_->server) impl_->server->stop();
}

Result<std::unique_ptr<TrackerService>> TrackerService::start(const http::ServerOptions& server,
                                                              const TrackerOptions& options,
                                                              const Clock& clock, Random& random,
                                                              Logger& log) {
  if (options.token_key && options.token_key->size() != mesh_token::kKeySize) {
    return make_error(Errc::invalid_argument, "the tracker's mesh token key must be " +
                                                  std::to_string(mesh_token::kKeySize) + " bytes");
  }
  if (options.sources) {
    for (const auto& g : *options.sources) {
      if (g.role == NodeRole::peer || canonical_address(g.address).empty() ||
          (g.role == NodeRole::seed && g.region.empty())) {
        return make_error(Errc::invalid_argument,
                          std::string("tracker source grant (") + role_name(g.role) + ", region '" +
                              g.region + "', address '" + g.address +
                              "'): a grant names a seed with its region, or the origin, and an "
                              "IP address");
      }
    }
  }
  auto impl = std::make_unique<Impl>(options, clock, random, log);
  Impl* raw = impl.get();
  auto handler = [raw](const http::Request& req, http::Responder respond) {
    std::unique_lock lock(raw->mu);
    if (req.path == "/announce") return respond(handle_announce(raw->tracker, req));
    if (req.path == "/stats") {
      TrackerStats s = raw->tracker.stats();
      http::Response r;
      r.body = json_text(nlohmann::json{{"swarms", s.swarms},
                                        {"nodes", s.nodes},
                                        {"announces", s.announces},
                                        {"refused",
                                         {{"unregistered", s.refused_unregistered},
                                          {"role", s.refused_role},
                                          {"full", s.refused_full},
                                          {"token", s.refused_token}}},
                                        {"vouched", s.vouched_addresses}});
      return respond(std::move(r));
    }
    if (req.path == "/swarm") return respond(handle_swarm(raw->tracker, req));
    if (req.path == "/vouched") return respond(handle_vouched(raw->tracker, req));
    http::Response r;
    r.status = 404;
    r.body =
        R"({"error":"no such path; the tracker serves /announce, /swarm, /vouched and /stats"})";
    respond(std::move(r));
  };
  DROVER_ASSIGN(impl->server, http::Server::start(server, handler, log));
  impl->schedule_sweep();
  log.info("tracker.started",
           {{"port", impl->server->port()},
            {"interval_s", static_cast<std::int64_t>(options.interval.count())},
            {"max_swarms", options.max_swarms},
            {"max_nodes_per_swarm", options.max_nodes_per_swarm},
            {"max_nodes", options.max_nodes},
            {"registered_only", static_cast<bool>(options.tracks)},
            {"tokens", options.token_key ? "required" : "not checked"},
            {"sources", options.sources ? std::to_string(options.sources->size()) + " granted"
                                        : std::string("anyone")}});
  return std::unique_ptr<TrackerService>(new TrackerService(std::move(impl)));
}

std::uint16_t TrackerService::port() const {
  return impl_->server->port();
}

TrackerStats TrackerService::stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->tracker.stats();
}

void TrackerService::export_metrics(metrics::Registry& registry) const {
  registry.on_collect([this](metrics::Registry& r) {
    const TrackerStats s = stats();
    r.counter("drover_tracker_announces_total",
              "Announces that reached the tracker, refused ones included.")
        .catch_up(static_cast<double>(s.announces));
    const std::vector<std::string> names{"reason"};
    const char* help =
        "Announces refused, by reason: unregistered (a layer of no registered artifact), role "
        "(a source role not granted), full (a cap reached), token (no valid mesh token).";
    r.counter("drover_tracker_announces_refused_total", help, names, {"unregistered"})
        .catch_up(static_cast<double>(s.refused_unregistered));
    r.counter("drover_tracker_announces_refused_total", help, names, {"role"})
        .catch_up(static_cast<double>(s.refused_role));
    r.counter("drover_tracker_announces_refused_total", help, names, {"full"})
        .catch_up(static_cast<double>(s.refused_full));
    r.counter("drover_tracker_announces_refused_total", help, names, {"token"})
        .catch_up(static_cast<double>(s.refused_token));
    r.gauge("drover_tracker_swarms", "Swarms (layers) the tracker knows nodes of.")
        .set(static_cast<double>(s.swarms));
    r.gauge("drover_tracker_nodes", "Nodes over every swarm (one node in two swarms counts twice).")
        .set(static_cast<double>(s.nodes));
    r.gauge("drover_tracker_vouched_addresses", "Addresses the tracker vouches for now.")
        .set(static_cast<double>(s.vouched_addresses));
  });
}

std::string TrackerService::announce_url(const std::string& host, NodeRole role,
                                         const std::string& region, const std::string& cluster,
                                         const std::string& bind) const {
  return mesh::announce_url("http://" + bind + ":" + std::to_string(port()), host, role, region,
                            cluster);
}

}  // namespace drover::mesh
