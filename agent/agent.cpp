#include "agent/agent.hpp"
#include "core/base/thread_name.hpp"

#include <unistd.h>

#include <deque>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "agent/control.hpp"
#include "agent/enrollment.hpp"
#include "agent/mesh_layers.hpp"
#include "agent/metrics.hpp"
#include "agent/privileges.hpp"
#include "agent/reporting.hpp"
#include "agent/service_runner.hpp"
#include "core/canon/json_text.hpp"
#include "core/metrics/endpoint.hpp"
#include "core/nng/nng.hpp"
#include "core/sign/secret_box.hpp"

namespace drover::agent {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

constexpr std::uint64_t kReportSeqBlock = 1000;

}  // namespace

struct Agent::Impl {
  Impl(const AgentConfig& c, AgentWorld w, Logger& l, EventSink e)
      : config(c),
        counted(registry),
        ctx(config, w, l, [this, sink = std::move(e)](const std::string& line) {
          counted.on_event(json::parse(line, nullptr, false));
          if (sink) sink(line);
        }) {}

  AgentConfig config;
  // Before ctx: every event line ctx emits is counted here first.
  metrics::Registry registry;
  AgentMetrics counted;
  AgentContext ctx;
  std::unique_ptr<nng::Subscriber> announcements;
  Runners runners;
  std::unique_ptr<http::Server> control;
  std::unique_ptr<http::Server> metrics_server;  // when config.metrics_listen is set

  std::mutex seq_mu;  // guards seq_next, seq_end
  std::uint64_t seq_next = 0, seq_end = 0;

  std::mutex cycle_mu;  // guards triggered, handed
  std::condition_variable cycle_cv;
  bool triggered = true;
  std::deque<proto::PlanBundle> handed;

  std::vector<std::thread> threads;

  Logger& log() { return ctx.log; }
  Filesystem& fsys() { return ctx.world.fs; }

  std::uint64_t next_report_seq() {
    std::lock_guard lock(seq_mu);
    if (seq_next >= seq_end) {
      auto block = ctx.state->reserve_report_seqs(kReportSeqBlock);
      if (!block.ok()) {
        // Without a durable ceiling a restart could reuse numbers: stop loudly.
        fatal(block.error().message.c_str(), __FILE__, __LINE__);
      }
      seq_next = block->first;
      seq_end = block->second;
    }
    return seq_next++;
  }

  Status init() {
    DROVER_TRY(prepare_state_dir(fsys(), config.state_dir));
    DROVER_ASSIGN(ctx.state, AgentState::open(ctx.dir("agent.lmdb")));
    DROVER_TRY(load_keys());
    proto::LinkOptions link_options;
    link_options.protocol = config.protocol;
    if (!config.coordinator_ca_file.empty()) {
      auto ca = fsys().read_file(config.coordinator_ca_file, 1 << 20);
      if (!ca.ok()) return ca.error().context("coordinator.tls.ca_file");
      link_options.tls = nng::TlsClient{*ca, config.coordinator_server_name};
    }
    // A certificate the coordinator sends counts only under the pinned root
    // and the trust floor.
    link_options.verify_cert = [this](const sign::Envelope& cert) -> Result<sign::PublicKey> {
      const std::int64_t now = unix_seconds(ctx.world.clock.now());
      auto verified = sign::verify_cert(cert, ctx.trust(), now);
      // Not under the trusted root: it may have rotated while this host was
      // away. Walk the chain, then try once more.
      if (!verified.ok() && verified.error().code == Errc::crypto && catch_up_roots(ctx, now)) {
        verified = sign::verify_cert(cert, ctx.trust(), now);
      }
      if (!verified.ok()) return verified.error();
      return verified->subject;
    };
    auto link = CoordinatorLink::connect(config.coordinator_requests, config.host,
                                         config.request_timeout, link_options);
    if (!link.ok()) return link.error();
    (*link)->set_report_key(ctx.report_key);
    ctx.link = std::move(*link);
    if (!config.coordinator_announcements.empty()) {
      DROVER_ASSIGN(announcements, nng::Subscriber::dial(config.coordinator_announcements,
                                                         proto::kAnnouncePrefix, link_options.tls));
    }
    ctx.layers = std::make_unique<MeshLayers>(
        config, fsys(), ctx.world.clock, log(), [this](std::uint16_t port, const std::string& t) {
          ctx.emit(json_text(json{{"event", "mesh"}, {"port", port}, {"tracker", t}}));
        });
    ctx.collect_garbage = [this] { collect_garbage(); };
    ctx.on_sample = [this](const std::string& service, bool ok) { counted.on_sample(service, ok); };
    ctx.next_report_seq = [this] { return next_report_seq(); };
    for (const auto& sc : config.services) {
      auto runner = std::make_unique<ServiceRunner>(ctx, sc);
      DROVER_TRY(runner->releases().prepare());
      runners[sc.name] = std::move(runner);
    }
    // Bring every service back on its current release before anything else:
    // this needs nothing but local state.
    for (auto& [name, runner] : runners) runner->recover();
    std::string tracker;
    for (auto& [name, runner] : runners) {
      if (!runner->state().record.tracker.empty()) tracker = runner->state().record.tracker;
    }
    if (!tracker.empty()) {
      if (auto st = ctx.layers->join(tracker); !st.ok()) {
        log().error("agent.mesh.start_failed", {{"error", st.error().message}});
      }
    }
    const http::ServerOptions options = control_server_options(config);
    DROVER_ASSIGN(control, http::Server::start(
                               options,
                               [this](const http::Request& r, http::Responder respond) {
                                 respond(serve_control(ctx, runners, r, [this](auto b) {
                                   return queue(std::move(b));
                                 }));
                               },
                               log()));
    json control_file = {{"port", control->port()}, {"pid", ::getpid()}};
    DROVER_TRY(fsys().write_owned(ctx.dir("control.json"), control_file.dump() + "\n", 0644));
    DROVER_TRY(start_metrics());
    threads.emplace_back([this] {
      name_this_thread("agent-cycle");
      keep_running("agent.cycle.threw", &Impl::cycle_loop);
    });
    threads.emplace_back([this] {
      name_this_thread("agent-health");
      keep_running("agent.health.threw", &Impl::health_loop);
    });
    threads.emplace_back([this] {
      name_this_thread("agent-report");
      keep_running("agent.report.threw", &Impl::report_loop);
    });
    if (announcements) {
      threads.emplace_back([this] {
        name_this_thread("agent-announce");
        keep_running("agent.announcement.threw", &Impl::announcement_loop);
      });
    }
    return Ok{};
  }

  // The host's identity key and report key: made once, kept in STATE/keys.
  Status load_keys() {
    const fs::path key_file = ctx.dir("keys") / "agent.key";
    DROVER_ASSIGN(bool have_key, fsys().exists(key_file));
    if (!have_key) {
      DROVER_TRY(sign::save_key_pair(fsys(), sign::KeyPair::generate(ctx.world.random), key_file));
    }
    DROVER_ASSIGN(auto k, sign::load_key_pair(fsys(), key_file));
    ctx.key = k;
    DROVER_ASSIGN(ctx.root, sign::load_public_key(fsys(), config.root_key));
    // A root this agent rotated to since (through root documents) wins over
    // the pinned one: the walk never goes back.
    DROVER_ASSIGN(auto moved, ctx.state->root());
    if (moved && moved->version > 1) ctx.set_root(*moved);
    const fs::path report_key_file = ctx.dir("keys") / "report.key";
    DROVER_ASSIGN(bool have_report_key, fsys().exists(report_key_file));
    if (!have_report_key) {
      DROVER_TRY(fsys().write_owned(report_key_file, ctx.world.random.bytes(sign::kMacKeySize),
                                    0600, false));
    }
    DROVER_ASSIGN(ctx.report_key, fsys().read_file(report_key_file, 64));
    if (ctx.report_key.size() != sign::kMacKeySize) {
      return make_error(Errc::corrupt, report_key_file.string() + " is not a 32-byte key");
    }
    return Ok{};
  }

  void stop() {
    {
      std::lock_guard lock(ctx.stop_mu);
      ctx.stopping = true;
    }
    ctx.stop_cv.notify_all();
    ctx.reports_cv.notify_all();
    // The cycle thread checks the flag holding cycle_mu: passing through the
    // lock here means it either saw the flag or is waiting for this notify.
    { std::lock_guard lock(cycle_mu); }
    cycle_cv.notify_all();
    if (announcements) announcements->close();
    for (auto& t : threads) t.join();
    threads.clear();
    metrics_server.reset();
    control.reset();
    if (ctx.layers) static_cast<MeshLayers&>(*ctx.layers).close();
  }

  // The families of docs/METRICS.md, "Agent", and their listener.
  Status start_metrics() {
    metrics::build_info(registry, "agent");
    static_cast<MeshLayers&>(*ctx.layers).export_metrics(registry);
    registry.on_collect([this](metrics::Registry& r) {
      r.gauge("drover_agent_report_queue_items",
              "Report items waiting to reach the coordinator (health samples and events).")
          .set(static_cast<double>(ctx.outbox.size()));
      r.counter("drover_agent_report_items_dropped_total",
                "Report items dropped because the queue was full (the oldest health first).")
          .catch_up(static_cast<double>(ctx.outbox.dropped()));
      std::lock_guard lock(ctx.view_mu);
      r.gauge("drover_agent_coordinator_reachable",
              "1 when the coordinator answered the last request, else 0.")
          .set(ctx.reachable ? 1 : 0);
      r.gauge("drover_agent_last_contact_timestamp_seconds",
              "When the coordinator last answered (Unix seconds; 0: never since start).")
          .set(static_cast<double>(ctx.last_contact_ms) / 1000.0);
    });
    if (config.metrics_listen.empty()) return Ok{};
    DROVER_ASSIGN(metrics_server, metrics::serve(config.metrics_listen, registry, log()));
    return Ok{};
  }

  bool queue(proto::PlanBundle bundle) {
    {
      std::lock_guard lock(cycle_mu);
      if (handed.size() >= kMaxHandedOver) return false;
      handed.push_back(std::move(bundle));
    }
    cycle_cv.notify_all();
    return true;
  }

  void trigger() {
    {
      std::lock_guard lock(cycle_mu);
      triggered = true;
    }
    cycle_cv.notify_all();
  }

  // Keeps the releases every service still needs, their manifests and their
  // layers; removes the rest.
  void collect_garbage() {
    std::size_t releases_removed = 0, layers_removed = 0;
    std::set<std::string> keep;
    for (auto& [name, runner] : runners) {
      const ServiceRecord& rec = runner->state().record;
      std::set<std::string> mine;
      if (!rec.current.empty()) mine.insert(rec.current);
      for (const auto& p : rec.previous) mine.insert(p);
      for (const auto& [slot, id] : rec.slots) mine.insert(id);
      releases_removed += runner->releases().remove_all_but(mine);
      keep.insert(mine.begin(), mine.end());
    }
    std::set<ContentId> layers;
    auto names = fsys().list_dir(ctx.dir("manifests"));
    if (!names.ok()) return;
    for (const auto& file : *names) {
      if (!keep.count("sha256:" + file)) {
        (void)fsys().remove(ctx.dir("manifests") / file);
        continue;
      }
      auto bytes = fsys().read_file(ctx.dir("manifests") / file, proto::kMaxManifestBytes);
      auto m =
          bytes.ok() ? format::decode_manifest(*bytes) : Result<format::Manifest>(bytes.error());
      if (!m.ok()) return;  // unsure what is needed: keep every layer
      for (const auto& l : m->layers) layers.insert(l.id);
    }
    for (const auto& id : ctx.layers->held()) {
      if (layers.count(id)) continue;
      if (auto st = ctx.layers->drop(id); !st.ok()) {
        log().warn("agent.gc.layer", {{"layer", id.str()}, {"error", st.error().message}});
      } else {
        ++layers_removed;
      }
    }
    log().info("agent.gc",
               {{"releases_removed", releases_removed}, {"layers_removed", layers_removed}});
    ctx.emit(json_text(json{{"event", "gc"},
                            {"releases_removed", releases_removed},
                            {"layers_removed", layers_removed}}));
  }

  // ---- threads: each only delivers events and runs what follows ----

  // The service's flag set, before its plan: a kill is never held behind a
  // plan's apply of the same cycle. A coordinator from before flag sets
  // answers "unsupported": asked again ten minutes later.
  void pull_flags(ServiceRunner& runner, std::int64_t now_ms) {
    if (now_ms < flags_retry_ms) return;
    const std::string& name = runner.config().name;
    auto pulled = ctx.link->pull_flags(name, runner.state().record.flags_seq);
    if (!pulled.ok()) {
      if (pulled.error().code == Errc::unsupported) flags_retry_ms = now_ms + 600'000;
      log().debug("agent.flags.pull_failed",
                  {{"service", name}, {"error", pulled.error().message}});
      return;
    }
    if (*pulled) runner.run(ev::FlagsOffer{std::move(**pulled)}, now_ms);
  }
  std::int64_t flags_retry_ms = 0;  // cycle thread

  // Returns whether the coordinator answered (for backoff).
  bool pull(ServiceRunner& runner, std::int64_t now_ms) {
    const std::string& name = runner.config().name;
    auto pulled = ctx.link->pull_plan(name, runner.state().record.seq);
    if (!pulled.ok()) {
      if (pulled.error().code == Errc::crypto || pulled.error().code == Errc::not_found) {
        std::lock_guard lock(ctx.view_mu);
        ctx.enrolled = false;  // the coordinator no longer knows our key
      }
      log().info("agent.pull.failed", {{"service", name}, {"error", pulled.error().message}});
      return pulled.error().code != Errc::timeout && pulled.error().code != Errc::io;
    }
    hand_mesh_token();  // the answer may have renewed it: the fetch announces with it
    if (*pulled) runner.run(ev::Offer{std::move(**pulled)}, now_ms);
    return true;
  }

  // The newest tracker credential the coordinator handed out goes to the
  // mesh node (which keeps the one it has until a renewal is due).
  void hand_mesh_token() {
    auto t = ctx.link->mesh_token();
    if (t && t->contains("token") && (*t)["token"].is_string()) {
      ctx.layers->set_mesh_token((*t)["token"].get<std::string>());
    }
  }

  void refuse_unknown(const proto::PlanBundle& b, std::int64_t now_ms) {
    std::string service;
    if (auto p = proto::decode_plan(b.plan.payload); p.ok()) service = p->service;
    const std::string reason =
        "handed-over plan names service '" + service + "', which this host does not run";
    log().warn("agent.plan.refused",
               {{"service", service}, {"seq", 0}, {"event", "plan_refused"}, {"reason", reason}});
    ctx.emit(json_text(json{{"event", "plan_refused"},
                            {"service", service},
                            {"seq", 0},
                            {"kind", "plan_refused"},
                            {"reason", reason}}));
    ctx.outbox.push({std::nullopt, proto::EventItem{service, now_ms, "plan_refused", 0, reason}});
  }

  // A loop that throws is logged and started again a second later, so no
  // input can end the agent (docs/AGENT.md); stop() still ends it.
  void keep_running(std::string_view what, void (Impl::*loop)()) {
    while (!ctx.is_stopping()) {
      if (run_guarded(log(), what, [&] { (this->*loop)(); }).ok()) return;
      ctx.wait_until(ctx.world.clock.steady() + std::chrono::seconds(1));
    }
  }

  void cycle_loop() {
    milliseconds wait(500);
    int failures = 0;  // cycles in a row the coordinator did not answer
    // Enrollment checks the certificate; later cycles check it again this often.
    std::int64_t trust_checked_ms = ctx.now_unix_ms();
    for (;;) {
      std::deque<proto::PlanBundle> bundles;
      {
        std::unique_lock lock(cycle_mu);
        if (!ctx.is_stopping() && !triggered && handed.empty()) cycle_cv.wait_for(lock, wait);
        if (ctx.is_stopping()) return;
        triggered = false;
        bundles.swap(handed);
      }
      // One "now" for every check of this cycle.
      const std::int64_t now_ms = ctx.now_unix_ms();
      for (auto& b : bundles) {
        std::string service;
        if (auto p = proto::decode_plan(b.plan.payload); p.ok()) service = p->service;
        auto it = runners.find(service);
        if (it == runners.end()) {
          refuse_unknown(b, now_ms);
          continue;
        }
        it->second->run(ev::Offer{std::move(b)}, now_ms);
      }
      bool answered = try_enroll(ctx, now_ms / 1000);
      if (answered) hand_mesh_token();  // before any fetch of this cycle
      if (answered && now_ms - trust_checked_ms >= config.cert_poll_interval.count()) {
        if (refresh_trust(ctx, now_ms / 1000)) trust_checked_ms = now_ms;
      }
      if (answered) {
        for (auto& [name, runner] : runners) {
          if (ctx.is_stopping()) return;
          pull_flags(*runner, now_ms);
          answered = pull(*runner, now_ms) && answered;
        }
      }
      // Housekeeping due (a slot's scale-down), reachable or not.
      for (auto& [name, runner] : runners) runner->run(ev::Tick{}, now_ms);
      {
        std::lock_guard lock(ctx.view_mu);
        ctx.reachable = answered;
        if (answered) ctx.last_contact_ms = ctx.now_unix_ms();
      }
      // Unanswered: retry after 0.5 s, doubling up to the poll interval.
      failures = answered ? 0 : failures + 1;
      wait = milliseconds(next_pull_wait_ms(answered, failures, config.poll_interval.count()));
      if (failures >= 3) {
        log().warn("agent.coordinator.unreachable",
                   {{"failures", failures}, {"retry_ms", wait.count()}});
      } else if (!answered) {
        log().debug("agent.coordinator.unreachable", {{"retry_ms", wait.count()}});
      }
    }
  }

  void health_loop() {
    while (!ctx.wait_until(ctx.world.clock.steady() + config.health_interval)) {
      for (auto& [name, runner] : runners) sample_service(ctx, *runner);
    }
  }

  void report_loop() {
    milliseconds wait(200);
    for (;;) {
      // Nothing to send: asleep until an item is pushed (kIdle is a bound,
      // not a poll). Otherwise the wait push_reports chose: the next report
      // at once, or a backoff after a failure that a push does not cut short.
      const bool stopping =
          wait == kNothingToReport
              ? ctx.wait_for_reports(ctx.world.clock.steady() + milliseconds(30'000))
              : ctx.wait_until(ctx.world.clock.steady() + wait);
      if (stopping) return;
      wait = push_reports(ctx, wait == kNothingToReport ? milliseconds(200) : wait);
    }
  }

  void announcement_loop() {
    while (!ctx.is_stopping()) {
      // stop() closes the socket, which ends a receive at once.
      auto m = announcements->receive(milliseconds(5000));
      if (!m.ok() || !*m) continue;
      auto a = proto::decode_announcement(**m);
      if (!a.ok() || !runners.count(a->service)) continue;
      {
        std::lock_guard lock(ctx.view_mu);
        if (!wants_pull(ctx.views[a->service].record, a->seq, a->flags)) continue;
      }
      log().debug("agent.announcement", {{"service", a->service}, {"seq", a->seq}});
      trigger();
    }
  }
};

Agent::Agent(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Agent::~Agent() {
  impl_->stop();
}

Result<std::unique_ptr<Agent>> Agent::start(const AgentConfig& config, AgentWorld world,
                                            Logger& log, EventSink events) {
  auto impl = std::make_unique<Impl>(config, world, log, std::move(events));
  Status st = impl->init();
  if (!st.ok()) {
    impl->stop();
    return st.error();
  }
  return std::unique_ptr<Agent>(new Agent(std::move(impl)));
}

void Agent::run(const std::function<bool()>& stop_requested) {
  while (!stop_requested()) {
    impl_->ctx.wait_until(impl_->ctx.world.clock.steady() + milliseconds(100));
  }
}

bool Agent::hand_over(proto::PlanBundle bundle) {
  return impl_->queue(std::move(bundle));
}

void Agent::trigger() {
  impl_->trigger();
}

std::string Agent::status() const {
  return status_json(impl_->ctx, impl_->runners);
}

std::uint16_t Agent::control_port() const {
  return impl_->control ? impl_->control->port() : 0;
}

std::uint16_t Agent::metrics_port() const {
  return impl_->metrics_server ? impl_->metrics_server->port() : 0;
}

std::uint16_t Agent::mesh_port() const {
  return impl_->ctx.layers ? impl_->ctx.layers->port() : 0;
}

}  // namespace drover::agent
