#include "mesh/peer/layer_cache.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/base/hex.hpp"
#include "core/canon/canonical_json.hpp"

namespace drover::mesh {
namespace {

std::string record_of(const LayerRef& ref) {
  nlohmann::json j = {{"id", ref.id.str()},
                      {"size", ref.size},
                      {"bt_root", to_hex(ref.bt_root.data(), ref.bt_root.size())}};
  return *canon::encode(j);
}

Result<LayerRef> parse_record(std::string_view bytes) {
  auto j = canon::decode(bytes, 4096, 64);
  if (!j.ok()) return j.error();
  LayerRef ref;
  try {
    auto id = ContentId::parse(j->at("id").get<std::string>());
    if (!id.ok()) return id.error();
    ref.id = *id;
    ref.size = j->at("size").get<std::uint64_t>();
    auto root = from_hex(j->at("bt_root").get<std::string>());
    if (!root || root->size() != ref.bt_root.size()) {
      return make_error(Errc::corrupt, "bad pieces root");
    }
    std::copy(root->begin(), root->end(), ref.bt_root.begin());
  } catch (const nlohmann::json::exception&) {
    return make_error(Errc::corrupt, "record fields missing or of the wrong type");
  }
  return ref;
}

std::string mib(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

}  // namespace

LayerCache::LayerCache(MeshNode& node, const CacheOptions& options, const Clock& clock, Logger& log)
    : node_(node), options_(options), clock_(clock), log_(log) {}

Result<std::unique_ptr<LayerCache>> LayerCache::open(MeshNode& node, const CacheOptions& options,
                                                     const Clock& clock, Logger& log) {
  std::unique_ptr<LayerCache> cache(new LayerCache(node, options, clock, log));
  for (const char* sub : {"layers", "complete", "resume"}) {
    DROVER_TRY(cache->fs_.make_dirs(options.dir / sub));
  }
  node.on_event([raw = cache.get()](const MeshEvent& e) { raw->handle(e); });
  node.on_resume_data([raw = cache.get()](const ContentId& id, std::string data) {
    const fs::path path = raw->options_.dir / "resume" / id.hex();
    if (auto st = raw->fs_.write_owned(path, data, 0644); !st.ok()) {
      raw->log_.warn("mesh.cache.resume_write_failed",
                     {{"layer", id.str()}, {"error", st.error().message}});
    }
  });
  DROVER_TRY(cache->seed_held());
  cache->monitor_ = std::thread([raw = cache.get()] {
    keep_running(
        raw->log_, "layer_cache.monitor.threw",
        [raw] {
          std::lock_guard lock(raw->mu_);
          return raw->stopping_;
        },
        [raw] { raw->monitor(); });
  });
  return cache;
}

LayerCache::~LayerCache() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (monitor_.joinable()) monitor_.join();
  node_.on_event({});
  node_.on_resume_data({});
}

// Seeds every layer whose record says it was verified; a record whose file is
// gone or does not hash to the layer is dropped, and the layer fetched again
// when someone asks for it.
Status LayerCache::seed_held() {
  DROVER_ASSIGN(auto names, fs_.list_dir(options_.dir / "complete"));
  for (const auto& name : names) {
    const fs::path record = options_.dir / "complete" / name;
    auto bytes = fs_.read_file(record, 4096);
    auto ref = bytes.ok() ? parse_record(*bytes) : Result<LayerRef>(bytes.error());
    Status st = ref.ok() ? node_.seed(*ref, path_of(ref->id)) : Status(ref.error());
    if (!st.ok()) {
      log_.warn("mesh.cache.dropped", {{"record", name}, {"error", st.error().message}});
      (void)fs_.remove(record);
      continue;
    }
    std::lock_guard lock(mu_);
    held_[ref->id] = *ref;
  }
  log_.info("mesh.cache.opened", {{"dir", options_.dir.string()}, {"layers_held", held_.size()}});
  return Ok{};
}

bool LayerCache::holds(const ContentId& layer) const {
  std::lock_guard lock(mu_);
  return held_.contains(layer);
}

fs::path LayerCache::path_of(const ContentId& layer) const {
  return options_.dir / "layers" / layer.hex();
}

std::vector<LayerRef> LayerCache::held() const {
  std::lock_guard lock(mu_);
  std::vector<LayerRef> out;
  for (const auto& [id, ref] : held_) out.push_back(ref);
  return out;
}

Status LayerCache::drop(const ContentId& layer) {
  {
    std::lock_guard lock(mu_);
    if (fetching_.contains(layer)) {
      return make_error(Errc::refused, "layer " + layer.str() + " is being fetched");
    }
    held_.erase(layer);
    failed_.erase(layer);
  }
  node_.remove(layer);
  // The record goes first: a crash in between leaves an unrecorded file,
  // which is fetched over, never trusted.
  for (const char* sub : {"complete", "resume", "layers"}) {
    Status st = fs_.remove(options_.dir / sub / layer.hex());
    if (!st.ok() && st.error().code != Errc::not_found) return st;
  }
  return fs_.sync_dir(options_.dir / "complete");
}

void LayerCache::on_event(std::function<void(const MeshEvent&)> handler) {
  std::lock_guard lock(mu_);
  handler_ = std::move(handler);
}

Status LayerCache::fetch(const std::vector<LayerRef>& layers) {
  {
    std::lock_guard lock(mu_);
    const std::size_t n = layers.size();
    for (std::size_t k = 0; k < n; ++k) {
      const LayerRef& ref = layers[(k + (n ? options_.stagger % n : 0)) % n];
      if (held_.contains(ref.id) || fetching_.contains(ref.id)) continue;
      if (std::any_of(queued_.begin(), queued_.end(),
                      [&](const LayerRef& q) { return q.id == ref.id; }))
        continue;
      failed_.erase(ref.id);
      queued_.push_back(ref);
    }
  }
  return start_queued();
}

Status LayerCache::start_queued() {
  for (;;) {
    LayerRef ref;
    {
      std::lock_guard lock(mu_);
      if (queued_.empty() || (options_.max_active > 0 && fetching_.size() >= options_.max_active)) {
        return Ok{};
      }
      ref = queued_.front();
      queued_.pop_front();
      const SteadyTime now = clock_.steady();
      fetching_[ref.id] = Fetch{ref, 0, now, now};
    }
    auto resume = fs_.read_file(options_.dir / "resume" / ref.id.hex(), 64 << 20);
    Status st = node_.fetch(ref, path_of(ref.id), resume.ok() ? *resume : std::string());
    if (!st.ok()) {
      std::lock_guard lock(mu_);
      fetching_.erase(ref.id);
      failed_[ref.id] = st.error().message;
      changed_.notify_all();
      return st;
    }
  }
}

void LayerCache::handle(const MeshEvent& e) {
  switch (e.kind) {
    case MeshEvent::Kind::progress: {
      std::lock_guard lock(mu_);
      auto it = fetching_.find(e.layer);
      if (it != fetching_.end() && e.done > it->second.done) {
        it->second.done = e.done;
        it->second.last_progress = clock_.steady();
      }
      break;
    }
    case MeshEvent::Kind::complete: {
      LayerRef ref;
      {
        std::lock_guard lock(mu_);
        auto it = fetching_.find(e.layer);
        if (it == fetching_.end()) break;
        ref = it->second.ref;
      }
      const fs::path record = options_.dir / "complete" / ref.id.hex();
      Status st = fs_.sync_file(path_of(ref.id));  // the bytes are durable before the record
      if (st.ok()) st = fs_.write_owned(record, record_of(ref), 0644);
      (void)fs_.remove(options_.dir / "resume" / ref.id.hex());
      std::lock_guard lock(mu_);
      fetching_.erase(ref.id);
      if (st.ok()) {
        held_[ref.id] = ref;
      } else {
        failed_[ref.id] = "layer " + ref.id.str() + ": " + st.error().message;
      }
      changed_.notify_all();
      break;
    }
    case MeshEvent::Kind::failed: {
      // The bytes are not the layer: throw them away, so a retry starts clean.
      node_.remove(e.layer);
      (void)fs_.remove(path_of(e.layer));
      (void)fs_.remove(options_.dir / "resume" / e.layer.hex());
      std::lock_guard lock(mu_);
      fetching_.erase(e.layer);
      failed_[e.layer] = e.detail;
      changed_.notify_all();
      break;
    }
    default: break;
  }
  if (e.kind == MeshEvent::Kind::complete || e.kind == MeshEvent::Kind::failed) {
    (void)start_queued();  // a failure to start is recorded for wait() to report
  }
  std::function<void(const MeshEvent&)> h;
  {
    std::lock_guard lock(mu_);
    h = handler_;
  }
  if (h) h(e);
}

// Fails stalled fetches and saves resume data of the others, a few times a second.
void LayerCache::monitor() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    changed_.wait_for(lock, std::chrono::milliseconds(250));
    if (stopping_) break;
    const SteadyTime now = clock_.steady();
    std::vector<ContentId> stalled, save;
    for (auto& [id, f] : fetching_) {
      if (now - f.last_progress > options_.stall_timeout) {
        stalled.push_back(id);
      } else if (now - f.last_resume_save > options_.resume_interval) {
        f.last_resume_save = now;
        save.push_back(id);
      }
    }
    for (const ContentId& id : stalled) {
      const Fetch f = fetching_[id];
      lock.unlock();
      auto diag = node_.diagnostics(id);
      node_.save_resume(id);
      node_.remove(id);  // the partial bytes and resume data stay for a retry
      std::string tried = "tracker " + (node_.options().tracker.empty() ? std::string("(none)")
                                                                        : node_.options().tracker);
      tried +=
          diag && !diag->tracker_status.empty() ? " " + diag->tracker_status : " never answered";
      std::string peers;
      if (diag) {
        for (const auto& c : diag->connected) peers += (peers.empty() ? "" : ", ") + c;
      }
      tried += "; connected to: " + (peers.empty() ? std::string("no one") : peers);
      const auto secs =
          std::chrono::duration_cast<std::chrono::seconds>(options_.stall_timeout).count();
      std::string why = "layer " + id.str() + ": no progress for " + std::to_string(secs) +
                        " s (have " + mib(f.done) + " of " + mib(f.ref.size) + "); tried " + tried;
      log_.error("mesh.layer.stalled", {{"layer", id.str()}, {"error", why}});
      lock.lock();
      fetching_.erase(id);
      failed_[id] = why;
      changed_.notify_all();
      lock.unlock();
      std::function<void(const MeshEvent&)> h;
      {
        std::lock_guard hl(mu_);
        h = handler_;
      }
      if (h) h({MeshEvent::Kind::failed, id, f.done, f.ref.size, why});
      (void)start_queued();
      lock.lock();
    }
    lock.unlock();
    for (const ContentId& id : save) node_.save_resume(id);
    lock.lock();
  }
}

Status LayerCache::wait(const std::vector<LayerRef>& layers, SteadyTime deadline) {
  std::unique_lock lock(mu_);
  for (;;) {
    std::size_t held = 0;
    for (const LayerRef& ref : layers) {
      if (auto it = failed_.find(ref.id); it != failed_.end()) {
        return make_error(Errc::io, it->second);
      }
      held += held_.contains(ref.id) ? 1 : 0;
    }
    if (held == layers.size()) return Ok{};
    if (clock_.steady() >= deadline) {
      return make_error(Errc::timeout, "timed out waiting for layers: " + std::to_string(held) +
                                           " of " + std::to_string(layers.size()) + " held");
    }
    changed_.wait_for(lock, std::chrono::milliseconds(100));
  }
}

}  // namespace drover::mesh
