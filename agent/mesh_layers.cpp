#include "agent/mesh_layers.hpp"

#include "mesh/node/node_metrics.hpp"
#include "mesh/peer/layer_cache.hpp"

namespace drover::agent {

MeshLayers::MeshLayers(const AgentConfig& config, Filesystem& fs, const Clock& clock, Logger& log,
                       std::function<void(std::uint16_t, const std::string&)> on_joined)
    : config_(config), fs_(fs), clock_(clock), log_(log), on_joined_(std::move(on_joined)) {}

MeshLayers::~MeshLayers() {
  close();
}

void MeshLayers::close() {
  std::lock_guard lock(mu_);
  cache_.reset();
  node_.reset();
}

Status MeshLayers::join(const std::string& tracker) {
  std::uint16_t port = 0;
  {
    std::lock_guard lock(mu_);
    if (node_ && tracker_ == tracker) return Ok{};
    cache_.reset();
    if (node_) mesh::add_counters(retired_, node_->counters());
    node_.reset();
    mesh::NodeOptions options;
    options.role = mesh::NodeRole::peer;
    options.host = config_.host;
    options.region = config_.region;
    options.cluster = config_.cluster;
    options.tracker = tracker;
    options.listen = config_.mesh_listen;
    options.upload_rate = config_.mesh_upload_rate;
    options.download_rate = config_.mesh_download_rate;
    options.min_announce_interval_s = config_.mesh_announce_interval_s;
    options.token = token_;
    // The stall watchdog acts before the fetch would fail (docs/MESH.md, "Fallback").
    options.stall_kick_s = static_cast<int>(std::min<std::int64_t>(
        30,
        std::chrono::duration_cast<std::chrono::seconds>(config_.fetch_stall_timeout).count() / 2));
    DROVER_ASSIGN(node_, mesh::MeshNode::start(options, log_));
    mesh::CacheOptions cache_options;
    cache_options.dir = config_.state_dir / "cache";
    cache_options.stall_timeout = config_.fetch_stall_timeout;
    cache_options.stagger = std::hash<std::string>{}(config_.host);
    auto opened = mesh::LayerCache::open(*node_, cache_options, clock_, log_);
    if (!opened.ok()) {
      node_.reset();
      return opened.error();
    }
    cache_ = std::move(*opened);
    tracker_ = tracker;
    port = node_->port();
  }
  if (on_joined_) on_joined_(port, tracker);
  return Ok{};
}

Status MeshLayers::fetch(const std::string& tracker, const std::vector<proto::PlanLayer>& layers,
                         const std::function<void(std::uint64_t, std::uint64_t)>& progress,
                         const std::function<bool()>& stopping) {
  std::vector<mesh::LayerRef> refs;
  for (const auto& l : layers) refs.push_back({l.id, l.size, l.bt_root});
  DROVER_TRY(join(tracker));
  mesh::LayerCache* cache;
  {
    std::lock_guard lock(mu_);
    cache = cache_.get();
  }
  DROVER_TRY(cache->fetch(refs));
  for (;;) {
    Status st = cache->wait(refs, clock_.steady() + std::chrono::milliseconds(200));
    std::uint64_t held = 0, held_bytes = 0;
    for (const auto& l : refs) {
      if (cache->holds(l.id)) {
        ++held;
        held_bytes += l.size;
      }
    }
    progress(held, held_bytes);
    if (st.ok()) return Ok{};
    if (st.error().code != Errc::timeout) return st;
    if (stopping()) return make_error(Errc::timeout, "agent stopping");
  }
}

Result<std::string> MeshLayers::read(const format::Layer& layer) {
  fs::path path;
  {
    std::lock_guard lock(mu_);
    if (!cache_) return make_error(Errc::not_found, "no layer cache: the mesh never started");
    path = cache_->path_of(layer.id);
  }
  return fs_.read_file(path, layer.size);
}

std::vector<ContentId> MeshLayers::held() {
  std::lock_guard lock(mu_);
  std::vector<ContentId> out;
  if (!cache_) return out;
  for (const auto& ref : cache_->held()) out.push_back(ref.id);
  return out;
}

Status MeshLayers::drop(const ContentId& layer) {
  std::lock_guard lock(mu_);
  if (!cache_) return Ok{};
  return cache_->drop(layer);
}

void MeshLayers::export_metrics(metrics::Registry& registry) {
  registry.on_collect([this](metrics::Registry& r) {
    mesh::NodeCounters total;
    mesh::MeshNode::Swarms swarms;
    {
      std::lock_guard lock(mu_);
      total = retired_;
      if (node_) {
        mesh::add_counters(total, node_->counters());
        swarms = node_->swarms();
      }
    }
    mesh::set_node_metrics(r, total, swarms);
  });
}

std::uint64_t MeshLayers::downloaded_bytes() {
  std::lock_guard lock(mu_);
  return node_ ? node_->counters().down.total() : 0;
}

std::uint16_t MeshLayers::port() {
  std::lock_guard lock(mu_);
  return node_ ? node_->port() : 0;
}

std::string MeshLayers::tracker() {
  std::lock_guard lock(mu_);
  return tracker_;
}

void MeshLayers::set_mesh_token(const std::string& token) {
  std::lock_guard lock(mu_);
  if (token.empty() || token == token_) return;
  token_ = token;
  if (node_) node_->set_token(token);
}

}  // namespace drover::agent
