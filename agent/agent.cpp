#include "agent/agent.hpp"

#include <unistd.h>

#include <algorithm>
#include <set>

#include "agent/coordinator_link.hpp"
#include "agent/health.hpp"
#include "agent/outbox.hpp"
#include "agent/step/plan_check.hpp"
#include "agent/releases.hpp"
#include "agent/state.hpp"
#include "agent/supervisor.hpp"
#include "core/canon/canonical_json.hpp"
#include "core/http/http.hpp"
#include "core/nng/nng.hpp"
#include "core/sign/envelope.hpp"
#include "core/sign/secret_box.hpp"
#include "mesh/peer/layer_cache.hpp"

namespace drover::agent {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

constexpr std::uint64_t kReportSeqBlock = 1000;
constexpr std::size_t kMaxReportItemsPerMessage = 256;
const char* const kSlotNames[2] = {"blue", "green"};

std::int64_t unix_ms(SystemTime t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

// Reads layers for materialize from the agent's layer cache.
class CacheSource final : public store::LayerSource {
 public:
  explicit CacheSource(const mesh::LayerCache& cache) : cache_(cache) {}
  Result<std::string> read_layer(const format::Layer& layer) override {
    PosixFilesystem fsys;
    return fsys.read_file(cache_.path_of(layer.id), layer.size);
  }

 private:
  const mesh::LayerCache& cache_;
};

struct ServiceRuntime {
  ServiceConfig config;
  std::unique_ptr<ReleaseDir> releases;
  std::unique_ptr<Supervisor> slots[2];  // single: [0]; blue/green: [0] blue, [1] green
  std::string health_url[2];             // of what each slot runs; guarded by view_mu
  fs::path flags_file, router_file;
};

struct ServiceView {
  ServiceRecord record;
  std::string phase = "idle";  // idle, fetching, unpacking, switching
  std::uint64_t fetch_layers = 0, fetch_layers_held = 0, fetch_bytes = 0, fetch_bytes_held = 0;
  json last_health;
  bool last_ok = false;
  bool health_seen = false;
  std::string last_error;
};

}  // namespace

struct Agent::Impl {
  Impl(const AgentConfig& c, const Clock& clk, Logger& l, EventSink e)
      : config(c), clock(clk), log(l), events(std::move(e)), outbox(c.report_buffer_items) {}

  AgentConfig config;
  const Clock& clock;
  Logger& log;
  EventSink events;
  SystemRandom random;
  PosixFilesystem fsys;
  std::unique_ptr<AgentState> state;
  std::optional<sign::KeyPair> key;
  sign::PublicKey root;
  std::string report_key;
  std::unique_ptr<CoordinatorLink> link;
  std::unique_ptr<nng::Subscriber> announcements;

  mutable std::mutex mesh_mu;  // guards node, cache, mesh_tracker (the cycle thread builds them)
  std::unique_ptr<mesh::MeshNode> node;
  std::unique_ptr<mesh::LayerCache> cache;
  std::string mesh_tracker;

  std::map<std::string, ServiceRuntime> services;
  Outbox outbox;
  std::unique_ptr<http::Server> control;

  std::mutex seq_mu;  // guards seq_next, seq_end
  std::uint64_t seq_next = 0, seq_end = 0;

  std::mutex cycle_mu;  // guards triggered, handed, quit
  std::condition_variable cycle_cv;
  bool triggered = true;
  std::deque<proto::PlanBundle> handed;
  bool quit = false;

  mutable std::mutex view_mu;  // guards views, reachable, last_contact, enrolled
  std::map<std::string, ServiceView> views;
  bool reachable = false;
  std::int64_t last_contact_ms = 0;
  bool enrolled = false;

  std::vector<std::thread> threads;

  fs::path dir(const char* sub) const { return config.state_dir / sub; }

  // ---- small helpers ----

  void emit(json line) {
    if (events) events(line);
  }

  void event_item(const std::string& service, const std::string& event, std::uint64_t seq,
                  const std::string& detail) {
    proto::EventItem e{service, unix_ms(clock.now()), event, seq, detail};
    outbox.push({std::nullopt, e});
  }

  void set_view(const std::string& service, const std::function<void(ServiceView&)>& fn) {
    std::lock_guard lock(view_mu);
    fn(views[service]);
  }

  void contact(bool ok) {
    std::lock_guard lock(view_mu);
    reachable = ok;
    if (ok) last_contact_ms = unix_ms(clock.now());
  }

  bool is_stopping() {
    std::lock_guard lock(cycle_mu);
    return quit;
  }

  std::uint64_t next_report_seq() {
    std::lock_guard lock(seq_mu);
    if (seq_next >= seq_end) {
      auto block = state->reserve_report_seqs(kReportSeqBlock);
      if (!block.ok()) {
        // Without a durable ceiling a restart could reuse numbers: stop loudly.
        fatal(block.error().message.c_str(), __FILE__, __LINE__);
      }
      seq_next = block->first;
      seq_end = block->second;
    }
    return seq_next++;
  }

  // ---- start ----

  Status init() {
    for (const char* sub :
         {"keys", "manifests", "cache", "releases", "run", "logs", "agent.lmdb"}) {
      DROVER_TRY(fsys.make_dirs(dir(sub)));
    }
    DROVER_ASSIGN(state, AgentState::open(dir("agent.lmdb")));
    const fs::path key_file = dir("keys") / "agent.key";
    DROVER_ASSIGN(bool have_key, fsys.exists(key_file));
    if (!have_key) {
      DROVER_TRY(sign::save_key_pair(fsys, sign::KeyPair::generate(random), key_file));
    }
    DROVER_ASSIGN(auto k, sign::load_key_pair(fsys, key_file));
    key = k;
    DROVER_ASSIGN(root, sign::load_public_key(fsys, config.root_key));
    const fs::path report_key_file = dir("keys") / "report.key";
    DROVER_ASSIGN(bool have_report_key, fsys.exists(report_key_file));
    if (!have_report_key) {
      DROVER_TRY(fsys.write_atomic(report_key_file, report_key_file.string() + ".tmp",
                                   random.bytes(sign::kMacKeySize), 0600, false));
    }
    DROVER_ASSIGN(report_key, fsys.read_file(report_key_file, 64));
    if (report_key.size() != sign::kMacKeySize) {
      return make_error(Errc::corrupt, report_key_file.string() + " is not a 32-byte key");
    }
    DROVER_ASSIGN(link, CoordinatorLink::connect(config.coordinator_requests, config.host,
                                                 config.request_timeout));
    link->set_report_key(report_key);
    if (!config.coordinator_announcements.empty()) {
      DROVER_ASSIGN(announcements, nng::Subscriber::dial(config.coordinator_announcements,
                                                         proto::kAnnouncePrefix));
    }
    for (const auto& sc : config.services) {
      ServiceRuntime& s = services[sc.name];
      s.config = sc;
      s.releases = std::make_unique<ReleaseDir>(dir("releases") / sc.name, random);
      DROVER_TRY(fsys.make_dirs(s.releases->root()));
      s.flags_file = sc.flags_file.empty() ? dir("run") / (sc.name + ".flags.json") : sc.flags_file;
      s.router_file =
          sc.router_file.empty() ? dir("run") / (sc.name + ".router.json") : sc.router_file;
      const int n = sc.blue_green ? 2 : 1;
      for (int i = 0; i < n; ++i) {
        const std::string label = sc.blue_green ? sc.name + "-" + kSlotNames[i] : sc.name;
        s.slots[i] = std::make_unique<Supervisor>(
            label, dir("run") / (label + ".pid"), SupervisorOptions{}, log,
            [this, name = sc.name, label](RunState st, const std::string& why) {
              on_process(name, label, st, why);
            });
      }
    }
    // Bring every service back on its current release before anything else:
    // this needs nothing but local state.
    for (auto& [name, s] : services) recover(s);
    std::string tracker;
    for (auto& [name, s] : services) {
      auto rec = state->service(name);
      if (rec.ok() && !rec->tracker.empty()) tracker = rec->tracker;
    }
    if (!tracker.empty()) {
      if (auto st = ensure_mesh(tracker); !st.ok()) {
        log.error("agent.mesh.start_failed", {{"error", st.error().message}});
      }
    }
    http::ServerOptions options;
    options.bind = config.control_listen;
    options.max_body_bytes = 64 << 20;
    DROVER_ASSIGN(control, http::Server::start(
                               options,
                               [this](const http::Request& r, http::Responder respond) {
                                 respond(serve_control(r));
                               },
                               log));
    json control_file = {{"port", control->port()}, {"pid", ::getpid()}};
    DROVER_TRY(fsys.write_atomic(dir("control.json"), dir("control.json").string() + ".tmp",
                                 control_file.dump() + "\n", 0644));
    threads.emplace_back([this] { cycle_loop(); });
    threads.emplace_back([this] { health_loop(); });
    threads.emplace_back([this] { report_loop(); });
    if (announcements) threads.emplace_back([this] { announcement_loop(); });
    return Ok{};
  }

  void stop() {
    {
      std::lock_guard lock(cycle_mu);
      quit = true;
    }
    cycle_cv.notify_all();
    if (announcements) announcements->close();
    for (auto& t : threads) t.join();
    threads.clear();
    control.reset();
    std::lock_guard lock(mesh_mu);
    cache.reset();
    node.reset();
  }

  void on_process(const std::string& service, const std::string& label, RunState st,
                  const std::string& why) {
    if (st == RunState::crash_loop) {
      log.error("agent.service.crash_loop", {{"service", label}, {"detail", why}});
      emit({{"event", "crash_loop"}, {"service", service}, {"detail", why}});
      event_item(service, "crash_loop", 0, label + ": " + why);
    } else if (st == RunState::running && why.rfind("restarted", 0) == 0) {
      event_item(service, "restarted", 0, label + ": " + why);
    }
  }

  // ---- the mesh ----

  Status ensure_mesh(const std::string& tracker) {
    std::lock_guard lock(mesh_mu);
    if (node && mesh_tracker == tracker) return Ok{};
    cache.reset();
    node.reset();
    mesh::NodeOptions options;
    options.role = mesh::NodeRole::peer;
    options.host = config.host;
    options.region = config.region;
    options.cluster = config.cluster;
    options.tracker = tracker;
    options.listen = config.mesh_listen;
    options.upload_rate = config.mesh_upload_rate;
    options.download_rate = config.mesh_download_rate;
    options.min_announce_interval_s = config.mesh_announce_interval_s;
    DROVER_ASSIGN(node, mesh::MeshNode::start(options, log));
    mesh::CacheOptions cache_options;
    cache_options.dir = dir("cache");
    cache_options.stall_timeout = config.fetch_stall_timeout;
    cache_options.stagger = std::hash<std::string>{}(config.host);
    auto opened = mesh::LayerCache::open(*node, cache_options, clock, log);
    if (!opened.ok()) {
      node.reset();
      return opened.error();
    }
    cache = std::move(*opened);
    mesh_tracker = tracker;
    emit({{"event", "mesh"}, {"port", node->port()}, {"tracker", tracker}});
    return Ok{};
  }

  // ---- processes ----

  Result<Hooks> hooks_for(ServiceRuntime& s, const ContentId& release, int slot) {
    const ServiceConfig& c = s.config;
    HookSources src{c.start, c.stop, c.health, c.start_timeout_s, c.stop_timeout_s};
    const std::uint16_t port = c.blue_green ? (slot == 0 ? c.blue_port : c.green_port) : c.port;
    return resolve_hooks(src, s.releases->path_of(release), port, s.flags_file);
  }

  ProcessSpec spec_for(ServiceRuntime& s, const Hooks& h, const ContentId& release, int slot) {
    const ServiceConfig& c = s.config;
    const std::uint16_t port = c.blue_green ? (slot == 0 ? c.blue_port : c.green_port) : c.port;
    ProcessSpec spec;
    spec.argv = h.start;
    spec.cwd = s.releases->path_of(release);
    spec.env = {{"DROVER_SERVICE", c.name},
                {"DROVER_RELEASE", release.str()},
                {"DROVER_RELEASE_DIR", spec.cwd.string()},
                {"DROVER_PORT", std::to_string(port)},
                {"DROVER_FLAGS_FILE", s.flags_file.string()},
                {"DROVER_SLOT", c.blue_green ? kSlotNames[slot] : ""}};
    spec.log_file =
        dir("logs") / ((c.blue_green ? c.name + "-" + kSlotNames[slot] : c.name) + ".log");
    return spec;
  }

  Status start_slot(ServiceRuntime& s, const ContentId& release, int slot) {
    DROVER_ASSIGN(Hooks h, hooks_for(s, release, slot));
    {
      std::lock_guard lock(view_mu);
      s.health_url[slot] = h.health;
    }
    DROVER_TRY(s.slots[slot]->run(spec_for(s, h, release, slot), release.str()));
    emit({{"event", "started"},
          {"service", s.config.name},
          {"release", release.str()},
          {"pid", s.slots[slot]->pid()},
          {"slot", s.config.blue_green ? kSlotNames[slot] : ""}});
    return Ok{};
  }

  void stop_slot(ServiceRuntime& s, int slot) {
    Supervisor& sup = *s.slots[slot];
    std::vector<std::string> drain;
    int timeout_s = s.config.stop_timeout_s.value_or(10);
    if (auto running = ContentId::parse(sup.release()); running.ok() && s.releases->has(*running)) {
      if (auto h = hooks_for(s, *running, slot); h.ok()) {
        drain = h->stop;
        timeout_s = h->stop_timeout_s;
      }
    }
    sup.stop(drain, std::chrono::seconds(timeout_s));
    std::lock_guard lock(view_mu);
    s.health_url[slot].clear();
  }

  // Waits until the slot's health endpoint answers well, the process keeps
  // dying, or the start timeout passes.
  Status wait_healthy(ServiceRuntime& s, int slot, const ContentId& release) {
    DROVER_ASSIGN(Hooks h, hooks_for(s, release, slot));
    Supervisor& sup = *s.slots[slot];
    const auto deadline = SteadyClock::now() + std::chrono::seconds(h.start_timeout_s);
    std::string last = "no sample yet";
    milliseconds retry(2);
    if (h.health.empty()) {
      // Without an endpoint, healthy means: still running a second later.
      const auto settle = std::min(deadline, SteadyClock::now() + std::chrono::seconds(1));
      while (SteadyClock::now() < settle && sup.exits() == 0) {
        std::this_thread::sleep_for(milliseconds(20));
      }
      if (sup.exits() == 0) return Ok{};
      return make_error(Errc::refused, release.short_str() + " exited during start");
    }
    while (SteadyClock::now() < deadline) {
      if (is_stopping()) return make_error(Errc::timeout, "agent stopping");
      if (sup.exits() >= 2) {
        return make_error(Errc::refused, release.short_str() + " exited " +
                                             std::to_string(sup.exits()) +
                                             " times during start; last health: " + last);
      }
      proto::HealthItem sample = sample_health(h.health, milliseconds(1000));
      // The answer must come from the process we started, still running.
      if (sample.ok && sup.exits() == 0 && sup.state() == RunState::running) return Ok{};
      last = sample.error;
      // Most services answer within milliseconds: ask again soon, then less often.
      std::this_thread::sleep_for(retry);
      retry = std::min(retry * 2, milliseconds(100));
    }
    return make_error(Errc::timeout, release.short_str() + " was not healthy within " +
                                         std::to_string(h.start_timeout_s) +
                                         " s; last health: " + last);
  }

  Status write_flags(ServiceRuntime& s, const std::string& flags_json, std::uint64_t seq) {
    json flags = json::parse(flags_json.empty() ? "{}" : flags_json);
    json j = {{"format", "drover.flags.v1"},
              {"service", s.config.name},
              {"flags", flags},
              {"plan_seq", seq}};
    DROVER_TRY(fsys.make_dirs(s.flags_file.parent_path()));
    return fsys.write_atomic(s.flags_file, s.flags_file.string() + ".tmp", *canon::encode(j) + "\n",
                             0644);
  }

  Status write_router(ServiceRuntime& s, int slot, const ContentId& release) {
    json j = {{"format", "drover.router.v1"},
              {"service", s.config.name},
              {"active", kSlotNames[slot]},
              {"port", slot == 0 ? s.config.blue_port : s.config.green_port},
              {"release", release.str()}};
    DROVER_TRY(fsys.make_dirs(s.router_file.parent_path()));
    return fsys.write_atomic(s.router_file, s.router_file.string() + ".tmp",
                             *canon::encode(j) + "\n", 0644);
  }

  // ---- recovery after a restart ----

  void recover(ServiceRuntime& s) {
    const std::string& name = s.config.name;
    s.releases->clean_leftovers();
    auto intent = state->intent(name);
    if (intent.ok() && *intent) {
      log.warn("agent.recover.intent", {{"service", name},
                                        {"step", (*intent)->step},
                                        {"artifact", (*intent)->artifact},
                                        {"seq", (*intent)->seq}});
      // The record is the truth: what the step left half done is undone
      // below (links re-pointed, the stale process replaced), and the plan
      // is applied again when it is pulled.
      (void)state->clear_intent(name);
    }
    auto rec = state->service(name);
    if (!rec.ok()) {
      log.error("agent.recover.state", {{"service", name}, {"error", rec.error().message}});
      return;
    }
    set_view(name, [&](ServiceView& v) { v.record = *rec; });
    if (!rec->flags.empty()) (void)write_flags(s, rec->flags, rec->seq);
    if (s.config.blue_green) {
      for (int i = 0; i < 2; ++i) {
        auto it = rec->slots.find(kSlotNames[i]);
        if (it == rec->slots.end()) continue;
        auto id = ContentId::parse(it->second);
        if (!id.ok() || !s.releases->has(*id)) continue;
        (void)s.releases->set_link(kSlotNames[i], *id);
        if (auto st = start_slot(s, *id, i); !st.ok()) {
          log.error("agent.recover.start", {{"service", name}, {"error", st.error().message}});
        }
      }
      auto active = rec->slots.find(rec->active_slot);
      if (active != rec->slots.end()) {
        const int slot = rec->active_slot == "green" ? 1 : 0;
        if (auto id = ContentId::parse(active->second); id.ok() && s.releases->has(*id)) {
          (void)write_router(s, slot, *id);
          (void)s.releases->set_link("current", *id);
        }
      }
      return;
    }
    if (rec->current.empty()) return;
    auto current = ContentId::parse(rec->current);
    if (!current.ok() || !s.releases->has(*current)) {
      log.error("agent.recover.missing_release", {{"service", name}, {"release", rec->current}});
      return;
    }
    if (s.releases->link("current") != *current) {
      if (auto st = s.releases->set_link("current", *current); !st.ok()) {
        log.error("agent.recover.link", {{"service", name}, {"error", st.error().message}});
      }
    }
    if (auto st = start_slot(s, *current, 0); !st.ok()) {
      log.error("agent.recover.start", {{"service", name}, {"error", st.error().message}});
    }
  }

  // ---- plans ----

  void refuse(const std::string& service, std::uint64_t seq, const std::string& event,
              const std::string& reason) {
    log.warn("agent.plan.refused",
             {{"service", service}, {"seq", seq}, {"event", event}, {"reason", reason}});
    emit({{"event", "plan_refused"},
          {"service", service},
          {"seq", seq},
          {"kind", event},
          {"reason", reason}});
    event_item(service, event, seq, reason);
  }

  // Manifest bytes for the plan: kept locally, carried in the bundle, or pulled.
  Result<format::Manifest> manifest_for(const proto::Plan& plan,
                                        const std::optional<std::string>& carried) {
    const fs::path path = dir("manifests") / plan.artifact.hex();
    auto local = fsys.read_file(path, plan.manifest_size);
    if (local.ok()) {
      auto m = proto::check_manifest(plan, *local);
      if (m.ok()) return m;
      (void)fsys.remove(path);  // damaged: fetch it again
    }
    std::string bytes;
    if (carried) {
      bytes = *carried;
    } else {
      auto pulled = link->pull_manifest(plan.artifact, plan.manifest_size);
      if (!pulled.ok()) return pulled.error();
      bytes = std::move(*pulled);
    }
    DROVER_ASSIGN(format::Manifest m, proto::check_manifest(plan, bytes));
    DROVER_TRY(fsys.write_atomic(path, path.string() + ".tmp", bytes, 0644));
    return m;
  }

  // The layer cache, for the cycle thread: only that thread replaces it (in
  // ensure_mesh), so the pointer stays valid while it uses it.
  mesh::LayerCache* current_cache() {
    std::lock_guard lock(mesh_mu);
    return cache.get();
  }

  Status fetch_layers(ServiceRuntime& s, const proto::Plan& plan) {
    std::vector<mesh::LayerRef> layers;
    for (const auto& l : plan.layers) layers.push_back({l.id, l.size, l.bt_root});
    DROVER_TRY(ensure_mesh(plan.tracker));
    mesh::LayerCache* cache_now = current_cache();
    DROVER_TRY(cache_now->fetch(layers));
    for (;;) {
      Status st = cache_now->wait(layers, clock.steady() + milliseconds(200));
      std::uint64_t held = 0, held_bytes = 0;
      for (const auto& l : layers) {
        if (cache_now->holds(l.id)) {
          ++held;
          held_bytes += l.size;
        }
      }
      set_view(s.config.name, [&](ServiceView& v) {
        v.fetch_layers_held = held;
        v.fetch_bytes_held = held_bytes;
      });
      if (st.ok()) return Ok{};
      if (st.error().code != Errc::timeout) return st;
      if (is_stopping()) return make_error(Errc::timeout, "agent stopping");
    }
  }

  std::uint64_t downloaded_bytes() {
    std::lock_guard lock(mesh_mu);
    return node ? node->counters().down.total() : 0;
  }

  // Returns whether the coordinator answered (for backoff).
  bool cycle_service(ServiceRuntime& s, std::int64_t now,
                     std::optional<proto::PlanBundle> handed_bundle) {
    const std::string& name = s.config.name;
    auto rec = state->service(name);
    if (!rec.ok()) {
      log.error("agent.state", {{"service", name}, {"error", rec.error().message}});
      return true;
    }
    std::optional<proto::PlanBundle> bundle = std::move(handed_bundle);
    bool answered = true;
    if (!bundle) {
      auto pulled = link->pull_plan(name, rec->seq);
      if (!pulled.ok()) {
        if (pulled.error().code == Errc::crypto || pulled.error().code == Errc::not_found) {
          std::lock_guard lock(view_mu);
          enrolled = false;  // the coordinator no longer knows our key
        }
        log.debug("agent.pull.failed", {{"service", name}, {"error", pulled.error().message}});
        return pulled.error().code != Errc::timeout && pulled.error().code != Errc::io;
      }
      if (!*pulled) return true;
      bundle = std::move(*pulled);
    }
    auto min_version = state->min_cert_version();
    HostView me{config.host, {}, {root, min_version.ok() ? *min_version : 1}};
    for (const auto& sc : config.services) me.services.push_back(sc.name);
    PlanCheck check = check_plan(*bundle, me, rec->seq, now);
    const std::uint64_t seq = check.opened ? check.plan.seq : 0;
    switch (check.verdict) {
      case PlanVerdict::same: return answered;
      case PlanVerdict::refused: refuse(name, seq, "plan_refused", check.reason); return answered;
      case PlanVerdict::replay: refuse(name, seq, "replay_refused", check.reason); return answered;
      case PlanVerdict::apply: break;
    }
    if (check.cert.version > me.trust.min_cert_version) {
      if (auto st = state->raise_min_cert_version(check.cert.version); st.ok()) {
        log.info("agent.trust.rotated", {{"min_cert_version", check.cert.version}});
      }
    }
    apply(s, *rec, check.plan, bundle->manifest);
    return answered;
  }

  // Recovery does not depend on the intent (the record is the truth, and
  // leftovers are cleaned whatever it says), so a failed write is logged and
  // the step goes on.
  void note_intent(const std::string& service, const Intent& intent) {
    if (auto st = state->put_intent(service, intent); !st.ok()) {
      log.error("agent.state.intent", {{"service", service}, {"error", st.error().message}});
    }
  }

  void fail_plan(ServiceRuntime& s, ServiceRecord rec, const proto::Plan& plan,
                 const std::string& event, const std::string& why) {
    log.error("agent.apply.failed",
              {{"service", s.config.name}, {"seq", plan.seq}, {"error", why}});
    emit({{"event", "apply_failed"},
          {"service", s.config.name},
          {"seq", plan.seq},
          {"kind", event},
          {"error", why}});
    event_item(s.config.name, event, plan.seq, why);
    rec.seq = plan.seq;
    rec.seq_failed = true;
    if (auto st = state->finish(s.config.name, rec); !st.ok()) {
      log.error("agent.state", {{"service", s.config.name}, {"error", st.error().message}});
    }
    set_view(s.config.name, [&](ServiceView& v) {
      v.record = rec;
      v.phase = "idle";
      v.last_error = why;
    });
  }

  std::string flags_json(const proto::Plan& plan) {
    json flags = json::object();
    for (const auto& [k, v] : plan.flags) flags[k] = v.is_percent ? json(v.percent) : json(v.on);
    return *canon::encode(flags);
  }

  void apply(ServiceRuntime& s, ServiceRecord rec, const proto::Plan& plan,
             const std::optional<std::string>& carried_manifest) {
    const std::string& name = s.config.name;
    const auto started = SteadyClock::now();
    const std::uint64_t down_before = downloaded_bytes();
    auto manifest = manifest_for(plan, carried_manifest);
    if (!manifest.ok()) {
      // A manifest that did not arrive is tried again; one that arrived wrong
      // condemns the plan.
      const Errc c = manifest.error().code;
      if (c == Errc::timeout || c == Errc::io) {
        log.warn("agent.manifest.unavailable",
                 {{"service", name}, {"error", manifest.error().message}});
        return;
      }
      fail_plan(s, rec, plan, "plan_refused", manifest.error().message);
      return;
    }
    const std::string flags = flags_json(plan);
    const std::string artifact = plan.artifact.str();
    const bool running_it = s.config.blue_green ? (rec.slots.count(rec.active_slot) &&
                                                   rec.slots[rec.active_slot] == artifact)
                                                : rec.current == artifact;
    if (!s.releases->has(plan.artifact)) {
      set_view(name, [&](ServiceView& v) {
        v.phase = "fetching";
        v.fetch_layers = plan.layers.size();
        v.fetch_bytes = plan.layer_bytes();
        v.fetch_layers_held = v.fetch_bytes_held = 0;
      });
      emit({{"event", "fetching"},
            {"service", name},
            {"artifact", artifact},
            {"layers", plan.layers.size()},
            {"bytes", plan.layer_bytes()}});
      note_intent(name, {"fetch", plan.seq, artifact, rec.current});
      Status fetched = fetch_layers(s, plan);
      if (!fetched.ok()) {
        (void)state->clear_intent(name);
        set_view(name, [&](ServiceView& v) {
          v.phase = "idle";
          v.last_error = fetched.error().message;
        });
        log.error("agent.fetch.failed", {{"service", name}, {"error", fetched.error().message}});
        emit({{"event", "fetch_failed"}, {"service", name}, {"error", fetched.error().message}});
        event_item(name, "fetch_failed", plan.seq, fetched.error().message);
        return;  // tried again at the next cycle
      }
      set_view(name, [](ServiceView& v) { v.phase = "unpacking"; });
      note_intent(name, {"unpack", plan.seq, artifact, rec.current});
      emit({{"event", "unpacking"}, {"service", name}, {"artifact", artifact}});
      CacheSource source(*current_cache());
      auto made = s.releases->materialize(*manifest, plan.artifact, source);
      if (!made.ok()) {
        fail_plan(s, rec, plan, "apply_failed", "unpack: " + made.error().message);
        return;
      }
    }
    set_view(name, [](ServiceView& v) { v.phase = "switching"; });
    note_intent(name, {"switch", plan.seq, artifact, rec.current});
    emit({{"event", "switching"}, {"service", name}, {"artifact", artifact}});
    // Flags first: a new release starts with the plan's flags in place.
    if (flags != rec.flags) {
      if (auto st = write_flags(s, flags, plan.seq); !st.ok()) {
        fail_plan(s, rec, plan, "apply_failed", "flags: " + st.error().message);
        return;
      }
      event_item(name, "flags_written", plan.seq, flags);
    }
    if (!running_it) {
      Status switched = s.config.blue_green ? switch_blue_green(s, rec, plan.artifact)
                                            : switch_single(s, rec, plan.artifact);
      if (!switched.ok()) {
        if (flags != rec.flags) (void)write_flags(s, rec.flags, rec.seq);  // "" writes {}
        fail_plan(s, rec, plan, "apply_failed", switched.error().message);
        return;
      }
      if (!rec.current.empty() && rec.current != artifact) {
        rec.previous.insert(rec.previous.begin(), rec.current);
      }
      std::erase(rec.previous, artifact);
      std::vector<std::string> unique;
      for (const auto& p : rec.previous) {
        if (std::find(unique.begin(), unique.end(), p) == unique.end()) unique.push_back(p);
      }
      if (unique.size() > config.keep_releases - 1) unique.resize(config.keep_releases - 1);
      rec.previous = unique;
      rec.current = artifact;
    }
    rec.seq = plan.seq;
    rec.seq_failed = false;
    rec.flags = flags;
    rec.tracker = plan.tracker;
    if (auto st = state->finish(name, rec); !st.ok()) {
      log.error("agent.state", {{"service", name}, {"error", st.error().message}});
      return;
    }
    const std::uint64_t downloaded = downloaded_bytes() - down_before;
    const auto ms = std::chrono::duration_cast<milliseconds>(SteadyClock::now() - started).count();
    set_view(name, [&](ServiceView& v) {
      v.record = rec;
      v.phase = "idle";
      v.last_error.clear();
    });
    log.info("agent.applied", {{"service", name},
                               {"seq", plan.seq},
                               {"artifact", artifact},
                               {"downloaded", downloaded},
                               {"ms", ms}});
    emit({{"event", "applied"},
          {"service", name},
          {"seq", plan.seq},
          {"artifact", artifact},
          {"downloaded", downloaded},
          {"ms", ms}});
    event_item(name, "applied", plan.seq, artifact);
    collect_garbage();
  }

  Status switch_single(ServiceRuntime& s, const ServiceRecord& rec, const ContentId& to) {
    // A release that cannot say how to start fails before the old one stops.
    DROVER_ASSIGN(Hooks h, hooks_for(s, to, 0));
    (void)h;
    std::optional<ContentId> from;
    if (auto id = ContentId::parse(rec.current); id.ok() && s.releases->has(*id)) from = *id;
    stop_slot(s, 0);
    DROVER_TRY(s.releases->set_link("current", to));
    Status st = start_slot(s, to, 0);
    if (st.ok()) st = wait_healthy(s, 0, to);
    if (st.ok()) {
      emit({{"event", "switched"}, {"service", s.config.name}, {"release", to.str()}});
      return Ok{};
    }
    // Put the previous release back, as it was.
    stop_slot(s, 0);
    if (from) {
      (void)s.releases->set_link("current", *from);
      if (auto back = start_slot(s, *from, 0); !back.ok()) {
        log.error("agent.revert.failed",
                  {{"service", s.config.name}, {"error", back.error().message}});
      }
    } else {
      (void)s.releases->remove_link("current");
    }
    return st;
  }

  Status switch_blue_green(ServiceRuntime& s, ServiceRecord& rec, const ContentId& to) {
    const int active = rec.active_slot == "green" ? 1 : (rec.active_slot == "blue" ? 0 : -1);
    const int idle = active == 0 ? 1 : 0;
    Supervisor& sup = *s.slots[idle];
    const bool warm = rec.slots.count(kSlotNames[idle]) &&
                      rec.slots[kSlotNames[idle]] == to.str() && sup.state() == RunState::running &&
                      sup.release() == to.str();
    if (!warm || !wait_healthy(s, idle, to).ok()) {
      DROVER_ASSIGN(Hooks h, hooks_for(s, to, idle));
      (void)h;
      stop_slot(s, idle);
      DROVER_TRY(s.releases->set_link(kSlotNames[idle], to));
      Status st = start_slot(s, to, idle);
      if (st.ok()) st = wait_healthy(s, idle, to);
      if (!st.ok()) {
        // The active slot was never touched; the failed one stops.
        stop_slot(s, idle);
        if (auto old = rec.slots.find(kSlotNames[idle]); old != rec.slots.end()) {
          if (auto id = ContentId::parse(old->second); id.ok() && s.releases->has(*id)) {
            (void)s.releases->set_link(kSlotNames[idle], *id);
          }
        }
        rec.slots.erase(kSlotNames[idle]);
        return st;
      }
    }
    // Healthy: flip. The router file is what the host's router reads.
    DROVER_TRY(write_router(s, idle, to));
    (void)s.releases->set_link("current", to);
    rec.active_slot = kSlotNames[idle];
    rec.slots[kSlotNames[idle]] = to.str();
    emit({{"event", "switched"},
          {"service", s.config.name},
          {"release", to.str()},
          {"slot", kSlotNames[idle]}});
    event_item(s.config.name, "switched", 0, std::string("active slot ") + kSlotNames[idle]);
    return Ok{};
  }

  // Keeps the releases every service still needs, their manifests and their
  // layers; removes the rest.
  void collect_garbage() {
    std::size_t releases_removed = 0, layers_removed = 0;
    std::set<std::string> keep;
    for (auto& [name, s] : services) {
      auto rec = state->service(name);
      if (!rec.ok()) return;  // never delete on a state we could not read
      std::set<std::string> mine;
      if (!rec->current.empty()) mine.insert(rec->current);
      for (const auto& p : rec->previous) mine.insert(p);
      for (const auto& [slot, id] : rec->slots) mine.insert(id);
      releases_removed += s.releases->remove_all_but(mine);
      keep.insert(mine.begin(), mine.end());
    }
    std::set<ContentId> layers;
    auto names = fsys.list_dir(dir("manifests"));
    if (!names.ok()) return;
    for (const auto& file : *names) {
      if (!keep.count("sha256:" + file)) {
        (void)fsys.remove(dir("manifests") / file);
        continue;
      }
      auto bytes = fsys.read_file(dir("manifests") / file, proto::kMaxManifestBytes);
      auto m =
          bytes.ok() ? format::decode_manifest(*bytes) : Result<format::Manifest>(bytes.error());
      if (!m.ok()) return;  // unsure what is needed: keep every layer
      for (const auto& l : m->layers) layers.insert(l.id);
    }
    std::lock_guard lock(mesh_mu);
    if (!cache) return;
    for (const auto& ref : cache->held()) {
      if (layers.count(ref.id)) continue;
      if (auto st = cache->drop(ref.id); !st.ok()) {
        log.warn("agent.gc.layer", {{"layer", ref.id.str()}, {"error", st.error().message}});
      } else {
        ++layers_removed;
      }
    }
    log.info("agent.gc",
             {{"releases_removed", releases_removed}, {"layers_removed", layers_removed}});
    emit({{"event", "gc"},
          {"releases_removed", releases_removed},
          {"layers_removed", layers_removed}});
  }

  // ---- loops ----

  bool try_enroll(std::int64_t now) {
    {
      std::lock_guard lock(view_mu);
      if (enrolled) return true;
    }
    auto cert = link->pull_cert();
    if (!cert.ok()) {
      log.debug("agent.enroll.unreachable", {{"error", cert.error().message}});
      return false;
    }
    auto min_version = state->min_cert_version();
    auto verified = sign::verify_cert(*cert, {root, min_version.ok() ? *min_version : 1}, now);
    if (!verified.ok()) {
      log.error("agent.enroll.cert", {{"error", verified.error().message}});
      return false;
    }
    proto::EnrollBody body;
    body.host = config.host;
    body.region = config.region;
    body.cluster = config.cluster;
    for (const auto& s : config.services) body.services.push_back(s.name);
    body.public_key = key->public_key();
    {
      // Where peers reach this host's mesh node: the listen address, or the
      // host's name when it listens on every address.
      std::string where = config.mesh_listen.substr(0, config.mesh_listen.rfind(':'));
      if (where == "0.0.0.0" || where == "[::]" || where.empty()) where = config.host;
      std::lock_guard lock(mesh_mu);
      body.mesh_peer = node ? where + ":" + std::to_string(node->port()) : "";
    }
    body.join_token = config.join_token;
    body.at = now;
    Status st = link->enroll(body, *key, verified->subject, report_key);
    if (!st.ok()) {
      log.error("agent.enroll.refused", {{"error", st.error().message}});
      emit({{"event", "enroll_failed"}, {"error", st.error().message}});
      return false;
    }
    log.info("agent.enrolled", {{"host", config.host}});
    emit({{"event", "enrolled"}, {"host", config.host}});
    std::lock_guard lock(view_mu);
    enrolled = true;
    return true;
  }

  void cycle_loop() {
    milliseconds backoff(500);
    int failures = 0;  // cycles in a row the coordinator did not answer
    for (;;) {
      std::deque<proto::PlanBundle> bundles;
      {
        std::unique_lock lock(cycle_mu);
        if (!quit && !triggered && handed.empty()) {
          cycle_cv.wait_for(lock, backoff);
        }
        if (quit) return;
        triggered = false;
        bundles.swap(handed);
      }
      // One "now" for every check of this cycle.
      const std::int64_t now = unix_seconds(clock.now());
      for (auto& b : bundles) {
        std::string service;
        if (auto p = proto::decode_plan(b.plan.payload); p.ok()) service = p->service;
        auto it = services.find(service);
        if (it == services.end()) {
          refuse(service, 0, "plan_refused",
                 "handed-over plan names service '" + service + "', which this host does not run");
          continue;
        }
        cycle_service(it->second, now, std::move(b));
      }
      bool answered = try_enroll(now);
      if (answered) {
        for (auto& [name, s] : services) {
          if (is_stopping()) return;
          answered = cycle_service(s, now, std::nullopt) && answered;
        }
      }
      contact(answered);
      // Unanswered: retry after 0.5 s, doubling up to the poll interval.
      failures = answered ? 0 : failures + 1;
      backoff = answered ? config.poll_interval
                         : std::min(config.poll_interval,
                                    milliseconds(500) * (1 << std::min(failures - 1, 16)));
      if (answered) continue;
      log.debug("agent.coordinator.unreachable", {{"retry_ms", backoff.count()}});
    }
  }

  void health_loop() {
    for (;;) {
      {
        std::unique_lock lock(cycle_mu);
        cycle_cv.wait_for(lock, config.health_interval, [this] { return quit; });
        if (quit) return;
      }
      for (auto& [name, s] : services) sample_service(s);
    }
  }

  void sample_service(ServiceRuntime& s) {
    const std::string& name = s.config.name;
    ServiceRecord rec;
    std::string url[2];
    {
      std::lock_guard lock(view_mu);
      rec = views[name].record;
      url[0] = s.health_url[0];
      url[1] = s.health_url[1];
    }
    const int slot = s.config.blue_green ? (rec.active_slot == "green" ? 1 : 0) : 0;
    if (s.config.blue_green ? rec.active_slot.empty() : rec.current.empty()) return;
    Supervisor& sup = *s.slots[slot];
    proto::HealthItem h;
    const RunState run = sup.state();
    if (run == RunState::running && !url[slot].empty()) {
      h = sample_health(url[slot], std::min(config.health_interval, milliseconds(2000)));
    } else if (run == RunState::running) {
      h.ok = true;
    } else {
      h.ok = false;
      h.error = run == RunState::crash_loop
                    ? "crash loop: " + std::to_string(sup.exits()) + " exits since start"
                    : std::string("process ") + run_state_name(run);
    }
    if (run == RunState::crash_loop) {
      h.ok = false;
      h.error = "crash loop: " + std::to_string(sup.exits()) + " exits since start";
    }
    h.service = name;
    h.release = sup.release();
    h.slot = s.config.blue_green ? kSlotNames[slot] : "";
    h.at_ms = unix_ms(clock.now());
    h.state = run_state_name(run);
    outbox.push({h, std::nullopt});
    bool changed = false;
    json shown = {{"ok", h.ok},         {"error", h.error},           {"error_rate", h.error_rate},
                  {"p99_ms", h.p99_ms}, {"saturation", h.saturation}, {"state", h.state},
                  {"at", h.at_ms},      {"release", h.release}};
    {
      std::lock_guard lock(view_mu);
      ServiceView& v = views[name];
      changed = !v.health_seen || v.last_ok != h.ok;
      v.health_seen = true;
      v.last_ok = h.ok;
      v.last_health = shown;
    }
    if (changed) {
      emit({{"event", "health"},
            {"service", name},
            {"ok", h.ok},
            {"state", h.state},
            {"error", h.error}});
    }
  }

  void report_loop() {
    milliseconds backoff(200);
    for (;;) {
      {
        std::unique_lock lock(cycle_mu);
        cycle_cv.wait_for(lock, backoff, [this] { return quit; });
        if (quit) return;
      }
      bool enrolled_now;
      {
        std::lock_guard lock(view_mu);
        enrolled_now = enrolled;
      }
      if (!enrolled_now) continue;
      auto report = outbox.take(kMaxReportItemsPerMessage, [this] { return next_report_seq(); });
      if (!report) {
        backoff = milliseconds(200);
        continue;
      }
      report->sent_at_ms = unix_ms(clock.now());
      Status st = link->send_report(*report);
      if (st.ok()) {
        outbox.acknowledged(report->seq);
        backoff = milliseconds(20);  // more may be waiting
        continue;
      }
      log.debug("agent.report.failed", {{"seq", report->seq}, {"error", st.error().message}});
      backoff = std::min(milliseconds(30'000), std::max(milliseconds(500), backoff * 2));
    }
  }

  void announcement_loop() {
    while (!is_stopping()) {
      // stop() closes the socket, which ends a receive at once.
      auto m = announcements->receive(milliseconds(5000));
      if (!m.ok() || !*m) continue;
      auto a = proto::decode_announcement(**m);
      if (!a.ok() || !services.count(a->service)) continue;
      {
        std::lock_guard lock(view_mu);
        if (views[a->service].record.seq >= a->seq) continue;
      }
      log.debug("agent.announcement", {{"service", a->service}, {"seq", a->seq}});
      std::lock_guard lock(cycle_mu);
      triggered = true;
      cycle_cv.notify_all();
    }
  }

  // ---- the status endpoint ----

  http::Response serve_control(const http::Request& r) {
    http::Response resp;
    if (r.method == "GET" && r.path == "/v1/status") {
      resp.body = status_json().dump();
      return resp;
    }
    if (r.method == "POST" && r.path == "/v1/plans") {
      auto bundle = proto::decode_bundle(r.body);
      if (!bundle.ok()) {
        resp.status = 400;
        resp.body = json{{"error", bundle.error().message}}.dump();
        return resp;
      }
      {
        std::lock_guard lock(cycle_mu);
        handed.push_back(std::move(*bundle));
      }
      cycle_cv.notify_all();
      resp.status = 202;
      resp.body = json{{"queued", true}}.dump();
      return resp;
    }
    resp.status = 404;
    resp.body = json{{"error", "no such resource: " + r.method + " " + r.path}}.dump();
    return resp;
  }

  json status_json() const {
    json out = {{"host", config.host}, {"region", config.region}, {"cluster", config.cluster}};
    json svcs = json::object();
    std::lock_guard lock(view_mu);
    for (const auto& [name, s] : services) {
      auto it = views.find(name);
      const ServiceView empty;
      const ServiceView& v = it == views.end() ? empty : it->second;
      json procs = json::array();
      for (int i = 0; i < 2; ++i) {
        if (!s.slots[i]) continue;
        procs.push_back({{"slot", s.config.blue_green ? kSlotNames[i] : ""},
                         {"state", run_state_name(s.slots[i]->state())},
                         {"pid", s.slots[i]->pid()},
                         {"release", s.slots[i]->release()},
                         {"exits", s.slots[i]->exits()}});
      }
      svcs[name] = {{"current", v.record.current},
                    {"previous", v.record.previous},
                    {"seq", v.record.seq},
                    {"seq_state", v.record.seq_failed ? "failed" : "applied"},
                    {"active_slot", v.record.active_slot},
                    {"processes", procs},
                    {"phase", v.phase},
                    {"fetch",
                     {{"layers", v.fetch_layers},
                      {"layers_held", v.fetch_layers_held},
                      {"bytes", v.fetch_bytes},
                      {"bytes_held", v.fetch_bytes_held}}},
                    {"last_health", v.last_health},
                    {"last_error", v.last_error}};
    }
    out["services"] = svcs;
    out["coordinator"] = {{"reachable", reachable},
                          {"enrolled", enrolled},
                          {"last_contact_unix_ms", last_contact_ms}};
    out["reports"] = {{"buffered", outbox.size()}, {"dropped", outbox.dropped()}};
    std::lock_guard mesh_lock(mesh_mu);  // never taken before view_mu elsewhere
    out["mesh"] = {{"port", node ? node->port() : 0},
                   {"tracker", mesh_tracker},
                   {"layers_held", cache ? cache->held().size() : 0}};
    return out;
  }
};

Agent::Agent(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Agent::~Agent() {
  impl_->stop();
}

Result<std::unique_ptr<Agent>> Agent::start(const AgentConfig& config, const Clock& clock,
                                            Logger& log, EventSink events) {
  auto impl = std::make_unique<Impl>(config, clock, log, std::move(events));
  Status st = impl->init();
  if (!st.ok()) {
    impl->stop();
    return st.error();
  }
  return std::unique_ptr<Agent>(new Agent(std::move(impl)));
}

void Agent::run(const std::function<bool()>& stop_requested) {
  while (!stop_requested()) std::this_thread::sleep_for(milliseconds(100));
}

void Agent::hand_over(proto::PlanBundle bundle) {
  {
    std::lock_guard lock(impl_->cycle_mu);
    impl_->handed.push_back(std::move(bundle));
  }
  impl_->cycle_cv.notify_all();
}

void Agent::trigger() {
  {
    std::lock_guard lock(impl_->cycle_mu);
    impl_->triggered = true;
  }
  impl_->cycle_cv.notify_all();
}

json Agent::status() const {
  return impl_->status_json();
}

std::uint16_t Agent::control_port() const {
  return impl_->control ? impl_->control->port() : 0;
}

std::uint16_t Agent::mesh_port() const {
  std::lock_guard lock(impl_->mesh_mu);
  return impl_->node ? impl_->node->port() : 0;
}

}  // namespace drover::agent
