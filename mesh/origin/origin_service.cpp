#include "mesh/origin/origin_service.hpp"

#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

namespace drover::mesh {
namespace {
using nlohmann::json;

http::Response json_response(int status, const json& body) {
  http::Response r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

bool parse_count(const std::string* text, std::uint64_t& out) {
  if (text == nullptr) return true;
  if (text->empty() || text->size() > 19) return false;
  std::uint64_t v = 0;
  for (char c : *text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  out = v;
  return true;
}
}  // namespace

struct OriginService::Impl {
  MeshNode& node;
  store::ArtifactStore& store;
  OriginOptions options;
  Logger& log;
  std::unique_ptr<http::Server> server;

  struct Parked {
    std::uint64_t after;
    SteadyTime deadline;
    http::Responder respond;
  };
  mutable std::mutex mu;  // guards feed, seeded, parked, stopping
  std::condition_variable wake;
  std::vector<store::ArtifactRecord> feed;  // by push_seq, ascending
  std::set<ContentId> seeded;
  std::vector<Parked> parked;
  bool stopping = false;
  std::thread watcher;

  Impl(MeshNode& n, store::ArtifactStore& s, const OriginOptions& o, Logger& l)
      : node(n), store(s), options(o), log(l) {}

  json feed_after(std::uint64_t after) const {
    json list = json::array();
    std::uint64_t last = 0;
    for (const auto& r : feed) {
      last = std::max(last, r.push_seq);
      if (r.push_seq <= after) continue;
      list.push_back({{"artifact_id", r.id.str()},
                      {"service", r.service},
                      {"git_sha", r.git_sha},
                      {"push_seq", r.push_seq},
                      {"pushed_at", r.pushed_at},
                      {"size_bytes", r.size_bytes}});
    }
    return {{"artifacts", list}, {"last_seq", last}};
  }

  bool has_after(std::uint64_t after) const {
    return !feed.empty() && feed.back().push_seq > after;
  }

  void handle(const http::Request& req, http::Responder respond) {
    if (req.method != "GET") return respond(json_response(405, {{"error", "only GET is served"}}));
    if (req.path == "/v1/artifacts") {
      std::uint64_t after = 0, wait = 0;
      if (!parse_count(req.param("after"), after)) {
        return respond(json_response(400, {{"error", "after must be a push sequence number"}}));
      }
      if (!parse_count(req.param("wait"), wait)) {
        return respond(json_response(400, {{"error", "wait must be whole seconds"}}));
      }
      std::lock_guard lock(mu);
      if (has_after(after) || wait == 0) return respond(json_response(200, feed_after(after)));
      const auto secs =
          std::min<std::uint64_t>(wait, static_cast<std::uint64_t>(options.max_wait.count()));
      parked.push_back({after, std::chrono::steady_clock::now() + std::chrono::seconds(secs),
                        std::move(respond)});
      return;
    }
    const std::string prefix = "/v1/manifests/";
    if (req.path.rfind(prefix, 0) == 0) {
      auto id = ContentId::parse("sha256:" + req.path.substr(prefix.size()));
      if (!id.ok()) return respond(json_response(400, {{"error", id.error().message}}));
      auto bytes = store.blob_path(*id);
      PosixFilesystem fsys;
      auto content = fsys.read_file(bytes, 256ull << 20);
      if (!content.ok() || ContentId::of(*content) != *id) {
        return respond(json_response(404, {{"error", "no manifest " + id->str()}}));
      }
      http::Response r;
      r.body = std::move(*content);
      return respond(std::move(r));
    }
    respond(
        json_response(404, {{"error", "the origin serves /v1/artifacts and /v1/manifests/<id>"}}));
  }

  // Reads the store's index; seeds what is new, drops what gc removed, and
  // answers the long polls waiting for news.
  void refresh() {
    auto records = store.list("");
    if (!records.ok()) {
      log.warn("origin.index_read_failed", {{"error", records.error().message}});
      return;
    }
    std::sort(records->begin(), records->end(),
              [](const auto& a, const auto& b) { return a.push_seq < b.push_seq; });
    std::set<ContentId> wanted;
    std::uint64_t known = 0;
    {
      std::lock_guard lock(mu);
      known = feed.empty() ? 0 : feed.back().push_seq;
    }
    for (const auto& r : *records) {
      for (const auto& l : r.layers) wanted.insert(l);
      if (r.push_seq <= known) continue;
      auto manifest = store.load_manifest(r.id);
      if (!manifest.ok()) {
        log.error("origin.manifest_unreadable",
                  {{"artifact", r.id.str()}, {"error", manifest.error().message}});
        continue;
      }
      for (const auto& layer : manifest->layers) {
        {
          std::lock_guard lock(mu);
          if (seeded.contains(layer.id)) continue;
        }
        Status st = node.seed(layer_ref(layer), store.blob_path(layer.id));
        if (!st.ok()) {
          log.error("origin.seed_failed",
                    {{"layer", layer.id.str()}, {"error", st.error().message}});
          continue;
        }
        std::lock_guard lock(mu);
        seeded.insert(layer.id);
      }
      log.info("origin.artifact.seeding", {{"artifact", r.id.str()},
                                           {"service", r.service},
                                           {"push_seq", r.push_seq},
                                           {"layers", r.layers.size()}});
    }
    std::vector<ContentId> gone;
    std::vector<Parked> ready;
    const auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard lock(mu);
      for (const auto& id : seeded) {
        if (!wanted.contains(id)) gone.push_back(id);
      }
      for (const auto& id : gone) seeded.erase(id);
      feed = std::move(*records);
      for (auto it = parked.begin(); it != parked.end();) {
        if (has_after(it->after) || now >= it->deadline) {
          ready.push_back(std::move(*it));
          it = parked.erase(it);
        } else {
          ++it;
        }
      }
      for (auto& p : ready) p.respond(json_response(200, feed_after(p.after)));
    }
    for (const auto& id : gone) {
      node.remove(id);
      log.info("origin.layer.dropped",
               {{"layer", id.str()}, {"reason", "no artifact in the store uses it"}});
    }
  }

  void watch() {
    std::unique_lock lock(mu);
    while (!stopping) {
      lock.unlock();
      refresh();
      lock.lock();
      wake.wait_for(lock, options.poll);
    }
  }
};

OriginService::OriginService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

OriginService::~OriginService() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  if (impl_->watcher.joinable()) impl_->watcher.join();
  if (impl_->server) impl_->server->stop();
}

Result<std::unique_ptr<OriginService>> OriginService::start(MeshNode& node,
                                                            store::ArtifactStore& store,
                                                            const OriginOptions& options,
                                                            Logger& log) {
  auto impl = std::make_unique<Impl>(node, store, options, log);
  impl->refresh();  // everything already in the store is seeded before we say we are up
  Impl* raw = impl.get();
  DROVER_ASSIGN(impl->server, http::Server::start(
                                  options.feed,
                                  [raw](const http::Request& r, http::Responder respond) {
                                    raw->handle(r, std::move(respond));
                                  },
                                  log));
  impl->watcher = std::thread([raw] {
    keep_running(
        raw->log, "origin.watch.threw",
        [raw] {
          std::lock_guard lock(raw->mu);
          return raw->stopping;
        },
        [raw] { raw->watch(); });
  });
  return std::unique_ptr<OriginService>(new OriginService(std::move(impl)));
}

std::uint16_t OriginService::feed_port() const {
  return impl_->server->port();
}

std::size_t OriginService::layers_seeded() const {
  std::lock_guard lock(impl_->mu);
  return impl_->seeded.size();
}

}  // namespace drover::mesh
