#include "mesh/seed/seed_service.hpp"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/http/http.hpp"

namespace drover::mesh {

Result<format::Manifest> fetch_manifest(const std::string& origin, const ContentId& artifact,
                                        std::chrono::milliseconds timeout) {
  DROVER_ASSIGN(http::Response r,
                http::request("GET", origin + "/v1/manifests/" + artifact.hex(), "", timeout));
  if (r.status != 200) {
    return make_error(Errc::not_found, "origin " + origin + " has no manifest " + artifact.str() +
                                           " (HTTP " + std::to_string(r.status) + ")");
  }
  if (ContentId::of(r.body) != artifact) {
    return make_error(Errc::corrupt, "origin " + origin + " sent a manifest that does not match " +
                                         artifact.str());
  }
  auto m = format::decode_manifest(r.body);
  if (!m.ok()) return m.error().context("artifact " + artifact.str());
  return m;
}

struct SeedService::Impl {
  LayerCache& cache;
  SeedOptions options;
  const Clock& clock;
  Logger& log;
  std::function<void(const Replicated&)> on_replicated;
  std::mutex mu;  // guards stopping
  std::condition_variable wake;
  bool stopping = false;
  std::thread thread;

  Impl(LayerCache& c, const SeedOptions& o, const Clock& cl, Logger& l,
       std::function<void(const Replicated&)> cb)
      : cache(c), options(o), clock(cl), log(l), on_replicated(std::move(cb)) {}

  bool stopped() {
    std::lock_guard lock(mu);
    return stopping;
  }

  // Waits for d unless stopped first; returns false when stopped.
  bool pause(std::chrono::milliseconds d) {
    std::unique_lock lock(mu);
    return !wake.wait_for(lock, d, [this] { return stopping; });
  }

  Status replicate(const ContentId& artifact, std::uint64_t seq) {
    const SteadyTime started = clock.steady();
    DROVER_ASSIGN(format::Manifest m,
                  fetch_manifest(options.origin, artifact, std::chrono::seconds(30)));
    std::vector<LayerRef> layers;
    std::uint64_t bytes = 0;
    for (const auto& l : m.layers) {
      layers.push_back(layer_ref(l));
      bytes += l.size;
    }
    DROVER_TRY(cache.fetch(layers));
    // Wait in short slices, so that stopping the seed is never held up.
    const SteadyTime deadline = clock.steady() + options.replicate_timeout;
    for (;;) {
      Status st = cache.wait(layers, std::min(deadline, clock.steady() + std::chrono::seconds(1)));
      if (st.ok()) break;
      if (st.error().code != Errc::timeout || clock.steady() >= deadline) return st;
      if (stopped())
        return make_error(Errc::timeout, "stopped while replicating " + artifact.str());
    }
    Replicated r{artifact, seq, bytes,
                 std::chrono::duration_cast<std::chrono::milliseconds>(clock.steady() - started)};
    log.info("seed.artifact.replicated", {{"artifact", artifact.str()},
                                          {"push_seq", seq},
                                          {"bytes", bytes},
                                          {"ms", static_cast<std::int64_t>(r.took.count())}});
    if (on_replicated) on_replicated(r);
    return Ok{};
  }

  void run() {
    std::uint64_t after = 0;
    std::chrono::milliseconds backoff(500);
    while (!stopped()) {
      const std::string url = options.origin + "/v1/artifacts?after=" + std::to_string(after) +
                              "&wait=" + std::to_string(options.long_poll.count());
      auto r = http::request("GET", url, "", options.long_poll + std::chrono::seconds(10));
      Status st = Ok{};
      if (!r.ok()) {
        st = r.error();
      } else if (r->status != 200) {
        st = make_error(Errc::io, "origin feed " + url + ": HTTP " + std::to_string(r->status));
      } else {
        try {
          auto j = nlohmann::json::parse(r->body);
          for (const auto& a : j.at("artifacts")) {
            auto id = ContentId::parse(a.at("artifact_id").get<std::string>());
            const std::uint64_t seq = a.at("push_seq").get<std::uint64_t>();
            if (!id.ok()) continue;
            st = replicate(*id, seq);
            if (!st.ok()) break;
            after = std::max(after, seq);
          }
        } catch (const nlohmann::json::exception& e) {
          st = make_error(Errc::corrupt, "origin feed " + url + ": unreadable answer: " + e.what());
        }
      }
      if (st.ok()) {
        backoff = std::chrono::milliseconds(500);
        continue;
      }
      log.warn("seed.replicate_retry",
               {{"error", st.error().message},
                {"retry_in_ms", static_cast<std::int64_t>(backoff.count())}});
      if (!pause(backoff)) break;
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, options.max_backoff);
    }
  }
};

SeedService::SeedService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SeedService::~SeedService() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  // A long poll in flight ends within its own timeout.
  if (impl_->thread.joinable()) impl_->thread.join();
}

Result<std::unique_ptr<SeedService>> SeedService::start(
    LayerCache& cache, const SeedOptions& options, const Clock& clock, Logger& log,
    std::function<void(const Replicated&)> on_replicated) {
  DROVER_TRY(http::parse_url(options.origin));
  auto impl = std::make_unique<Impl>(cache, options, clock, log, std::move(on_replicated));
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] {
    keep_running(
        raw->log, "seed.replicate.threw", [raw] { return raw->stopped(); }, [raw] { raw->run(); });
  });
  return std::unique_ptr<SeedService>(new SeedService(std::move(impl)));
}

}  // namespace drover::mesh
