#include "agent/service_runner.hpp"

#include <nlohmann/json.hpp>

#include "core/canon/canonical_json.hpp"
#include "core/canon/json_text.hpp"
#include "core/flags/flagd.hpp"
#include "core/http/http.hpp"

namespace drover::agent {
namespace {

using nlohmann::json;

// Reads layers for materialize from the agent's layers.
class FetchedLayers final : public store::LayerSource {
 public:
  explicit FetchedLayers(LayerFetcher& layers) : layers_(layers) {}
  Result<std::string> read_layer(const format::Layer& layer) override {
    return layers_.read(layer);
  }

 private:
  LayerFetcher& layers_;
};

json to_json(const Fields& fields) {
  json j = json::object();
  for (const auto& f : fields) std::visit([&](const auto& v) { j[f.key] = v; }, f.value);
  return j;
}

std::vector<LogField> to_log(const Fields& fields) {
  std::vector<LogField> out;
  for (const auto& f : fields) {
    std::visit([&](const auto& v) { out.emplace_back(f.key, v); }, f.value);
  }
  return out;
}

LogLevel level_of(act::Log::Level l) {
  switch (l) {
    case act::Log::Level::debug: return LogLevel::debug;
    case act::Log::Level::info: return LogLevel::info;
    case act::Log::Level::warn: return LogLevel::warn;
    case act::Log::Level::error: return LogLevel::error;
  }
  return LogLevel::error;
}

}  // namespace

ServiceRunner::ServiceRunner(AgentContext& ctx, const ServiceConfig& config)
    : ctx_(ctx), config_(config) {
  state_.spec = {config.name, config.blue_green, ctx.config.keep_releases,
                 config.blue_green && config.nginx.has_value()};
  releases_ = std::make_unique<ReleaseDir>(ctx.dir("releases") / config.name, ctx.world.fs,
                                           ctx.world.random, shared_group());
  flags_file_ = config.flags_file.empty() ? ctx.dir("run") / (config.name + ".flags.json")
                                          : config.flags_file;
  router_file_ = config.router_file.empty() ? ctx.dir("run") / (config.name + ".router.json")
                                            : config.router_file;
  if (config.blue_green && config.nginx) {
    NginxRouterConfig n;
    n.conf_file = config.nginx->conf_file;
    n.listen = config.nginx->listen;
    n.preview_listen = config.nginx->preview_listen;
    n.access_log = config.nginx->access_log;
    n.command = config.nginx->command;
    n.work_dir = ctx.dir("run");
    n.stopping = [&ctx] { return ctx.is_stopping(); };
    router_ = make_nginx_router(ctx.world.fs, std::move(n), ctx.world.clock, ctx.log);
  } else if (config.blue_green) {
    router_ = make_file_router(ctx.world.fs, router_file_);
  }
  const int n = config.blue_green ? 2 : 1;
  for (int i = 0; i < n; ++i) {
    const std::string label = config.blue_green ? config.name + "-" + kSlotNames[i] : config.name;
    slots_[i] = ctx.world.processes.make(
        label, ctx.dir("run") / (label + ".pid"),
        [this, label](RunState st, const std::string& why) { on_process(label, st, why); });
  }
}

void ServiceRunner::on_process(const std::string& label, RunState st, const std::string& why) {
  const std::string& service = config_.name;
  if (st == RunState::crash_loop) {
    ctx_.log.error("agent.service.crash_loop", {{"service", label}, {"detail", why}});
    ctx_.emit(json_text(json{{"event", "crash_loop"}, {"service", service}, {"detail", why}}));
    ctx_.outbox.push({std::nullopt, proto::EventItem{service, ctx_.now_unix_ms(), "crash_loop", 0,
                                                     label + ": " + why}});
  } else if (st == RunState::running && why.rfind("restarted", 0) == 0) {
    ctx_.emit(json_text(json{{"event", "restarted"}, {"service", service}, {"detail", why}}));
    ctx_.outbox.push({std::nullopt, proto::EventItem{service, ctx_.now_unix_ms(), "restarted", 0,
                                                     label + ": " + why}});
  }
}

Observed ServiceRunner::observe() const {
  Observed o;
  o.unix_ms = ctx_.now_unix_ms();
  o.mono_ms = ctx_.now_mono_ms();
  o.me = {ctx_.config.host, {}, ctx_.trust()};
  for (const auto& sc : ctx_.config.services) o.me.services.push_back(sc.name);
  for (int i = 0; i < 2; ++i) {
    if (!slots_[i]) continue;
    o.slots[i] = {slots_[i]->state(), slots_[i]->release(), slots_[i]->exits()};
  }
  o.downloaded_bytes = ctx_.layers ? ctx_.layers->downloaded_bytes() : 0;
  return o;
}

void ServiceRunner::drive_preview() const {
  if (!config_.nginx) return;
  if (config_.nginx->preview_requests <= 0 && config_.verify.empty()) return;
  const std::string& listen = config_.nginx->preview_listen;
  const std::size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return;
  // A wildcard listens on every address: loopback reaches it.
  std::string host = listen.substr(0, colon);
  if (host == "*" || host == "0.0.0.0") host = "127.0.0.1";
  if (host == "[::]") host = "[::1]";
  const std::string base = "http://" + host + listen.substr(colon);
  if (!config_.verify.empty()) {
    // The service's own verify hook sends the preview its requests.
    ProcessSpec spec;
    for (std::string arg : config_.verify) {
      for (std::size_t at; (at = arg.find("{preview}")) != std::string::npos;) {
        arg.replace(at, 9, base);
      }
      spec.argv.push_back(std::move(arg));
    }
    spec.cwd = ctx_.dir("run");
    spec.env = {{"DROVER_SERVICE", config_.name}, {"DROVER_PREVIEW_URL", base}};
    spec.log_file = ctx_.dir("logs") / (config_.name + ".verify.log");
    spec.run_as = config_.run_as;
    const auto timeout = std::clamp(ctx_.config.health_interval, std::chrono::milliseconds(1000),
                                    std::chrono::milliseconds(30'000));
    auto ran = run_command(spec, timeout);
    if (!ran.ok() || *ran != 0) {
      ctx_.log.warn(
          "agent.verify.failed",
          {{"service", config_.name},
           {"error", ran.ok() ? "exit status " + std::to_string(*ran) : ran.error().message}});
    }
    return;
  }
  const std::string url = base + config_.nginx->preview_path;
  // Within half a health interval (at most 2 s): a previewed release that
  // hangs never starves the other services' samples of this loop.
  using std::chrono::milliseconds;
  const auto budget = std::min(ctx_.config.health_interval / 2, milliseconds(2000));
  const auto until = std::chrono::steady_clock::now() + budget;
  for (int i = 0; i < config_.nginx->preview_requests && !ctx_.is_stopping(); ++i) {
    const auto left =
        std::chrono::duration_cast<milliseconds>(until - std::chrono::steady_clock::now());
    if (left <= milliseconds(0)) break;
    // The answers do not matter here: the service's own health reports them.
    (void)http::request("GET", url, "", std::min(left, milliseconds(500)), "", 1 << 16);
  }
}

void ServiceRunner::publish_view() {
  ctx_.update_view(config_.name, [&](ServiceView& v) {
    const std::string phase = phase_view_name(state_.progress.phase);
    if (phase == "fetching" && v.phase != "fetching") {
      v.fetch_layers = state_.fetch_layers;
      v.fetch_bytes = state_.fetch_bytes;
      v.fetch_layers_held = v.fetch_bytes_held = 0;
    }
    v.phase = phase;
    v.record = state_.record;
    v.last_error = state_.last_error;
  });
}

void ServiceRunner::recover() {
  const std::string& name = config_.name;
  auto rec = ctx_.state->service(name);
  if (!rec.ok()) {
    ctx_.log.error("agent.recover.state", {{"service", name}, {"error", rec.error().message}});
    return;
  }
  state_.record = *rec;
  auto intent = ctx_.state->intent(name);
  std::optional<Intent> leftover;
  if (intent.ok() && *intent) leftover = **intent;
  Step st = agent::recover(state_, leftover);
  state_ = std::move(st.next);
  publish_view();
  for (const auto& a : st.actions) (void)execute(a);
}

void ServiceRunner::run(Event first, std::int64_t unix_ms) {
  std::optional<Event> next = std::move(first);
  bool fixed_now = true;
  while (next) {
    Observed now = observe();
    if (fixed_now) now.unix_ms = unix_ms;
    fixed_now = false;
    Step st = step(state_, *next, now);
    state_ = std::move(st.next);
    publish_view();
    next.reset();
    for (const auto& a : st.actions) {
      if (auto e = execute(a)) next = std::move(e);
    }
  }
}

std::optional<std::uint32_t> ServiceRunner::shared_group() const {
  if (!config_.run_as.switch_ids) return std::nullopt;
  return config_.run_as.gid;
}

std::string ServiceRunner::link_name(int slot) const {
  return config_.blue_green ? kSlotNames[slot] : "current";
}

Result<Hooks> ServiceRunner::hooks_for(const ContentId& release, int slot) {
  HookSources src{config_.start, config_.stop, config_.health, config_.start_timeout_s,
                  config_.stop_timeout_s};
  const std::uint16_t port =
      config_.blue_green ? (slot == 0 ? config_.blue_port : config_.green_port) : config_.port;
  return resolve_hooks(ctx_.world.fs, src, releases_->path_of(release), port, flags_file_);
}

Status ServiceRunner::start_slot(const ContentId& release, int slot) {
  DROVER_ASSIGN(Hooks h, hooks_for(release, slot));
  ctx_.update_view(config_.name, [&](ServiceView& v) { v.health_url[slot] = h.health; });
  const std::uint16_t port =
      config_.blue_green ? (slot == 0 ? config_.blue_port : config_.green_port) : config_.port;
  ProcessSpec spec;
  spec.argv = h.start;
  spec.cwd = releases_->path_of(release);
  spec.env = {{"DROVER_SERVICE", config_.name},
              {"DROVER_RELEASE", release.str()},
              {"DROVER_RELEASE_DIR", spec.cwd.string()},
              {"DROVER_PORT", std::to_string(port)},
              {"DROVER_FLAGS_FILE", flags_file_.string()},
              {"DROVER_SLOT", config_.blue_green ? kSlotNames[slot] : ""},
              {"DROVER_HOST", ctx_.config.host},
              {"DROVER_REGION", ctx_.config.region},
              {"DROVER_CLUSTER", ctx_.config.cluster}};
  const std::string label =
      config_.blue_green ? config_.name + "-" + kSlotNames[slot] : config_.name;
  spec.log_file = ctx_.dir("logs") / (label + ".log");
  spec.run_as = config_.run_as;
  DROVER_TRY(slots_[slot]->run(spec, release.str()));
  ctx_.emit(json_text(json{{"event", "started"},
                           {"service", config_.name},
                           {"release", release.str()},
                           {"pid", slots_[slot]->pid()},
                           {"slot", config_.blue_green ? kSlotNames[slot] : ""}}));
  return Ok{};
}

void ServiceRunner::stop_slot(int slot) {
  ServiceProcess& sup = *slots_[slot];
  std::vector<std::string> drain;
  int timeout_s = config_.stop_timeout_s.value_or(10);
  if (auto running = ContentId::parse(sup.release()); running.ok() && releases_->has(*running)) {
    if (auto h = hooks_for(*running, slot); h.ok()) {
      drain = h->stop;
      timeout_s = h->stop_timeout_s;
    }
  }
  sup.stop(drain, std::chrono::seconds(timeout_s));
  ctx_.update_view(config_.name, [&](ServiceView& v) { v.health_url[slot].clear(); });
}

Status ServiceRunner::write_flags(const std::string& flags_json, std::uint64_t seq) {
  const json flags = json::parse(flags_json.empty() ? "{}" : flags_json, nullptr, false);
  std::string text;
  if (config_.flags_flagd) {
    // flagd's format (docs/FORMATS.md, "Flags file, version 2"): a service
    // reads it with any OpenFeature SDK through flagd's file provider.
    DROVER_ASSIGN(text, flags::render(flags, config_.name, seq));
  } else {
    const json j = {{"format", "drover.flags.v1"},
                    {"service", config_.name},
                    {"flags", flags},
                    {"plan_seq", seq}};
    text = *canon::encode(j);
  }
  DROVER_TRY(ctx_.world.fs.make_dirs(flags_file_.parent_path()));
  // The service reads it; only the agent writes it (docs/FORMATS.md).
  return ctx_.world.fs.write_owned(flags_file_, text + "\n", 0640, true, shared_group());
}

Status ServiceRunner::write_router(int slot, const ContentId& release, int traffic, bool preview) {
  if (!router_) return Ok{};
  Routes r;
  r.service = config_.name;
  r.ports[0] = config_.blue_port;
  r.ports[1] = config_.green_port;
  r.weights[slot] = traffic;
  r.weights[1 - slot] = kWeightTotal - traffic;
  if (preview) r.preview = slot;
  r.release = primary_slot(r) == slot ? release.str() : slots_[1 - slot]->release();
  return router_->apply(r);
}

// Manifest bytes for the plan: kept locally, carried in the bundle, or pulled.
Result<format::Manifest> ServiceRunner::load_manifest(const proto::Plan& plan,
                                                      const std::optional<std::string>& carried) {
  Filesystem& fsys = ctx_.world.fs;
  const fs::path path = ctx_.dir("manifests") / plan.artifact.hex();
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
    auto pulled = ctx_.link->pull_manifest(plan.artifact, plan.manifest_size);
    if (!pulled.ok()) return pulled.error();
    bytes = std::move(*pulled);
  }
  DROVER_ASSIGN(format::Manifest m, proto::check_manifest(plan, bytes));
  DROVER_TRY(fsys.write_owned(path, bytes, 0644));
  return m;
}

std::optional<Event> ServiceRunner::start_slot_op(const act::StartSlot& a) {
  // A release that cannot say how to start fails before the old one stops.
  if (auto h = hooks_for(a.release, a.slot); !h.ok()) return ev::SlotStarted{h.error(), false};
  stop_slot(a.slot);
  if (Status st = releases_->set_link(link_name(a.slot), a.release); !st.ok()) {
    return ev::SlotStarted{st, true};
  }
  return ev::SlotStarted{start_slot(a.release, a.slot), true};
}

std::optional<Event> ServiceRunner::probe_op(const act::Probe& a) {
  auto h = hooks_for(a.release, a.slot);
  if (!h.ok()) return ev::Probed{true, false, h.error().message, 0};
  if (h->health.empty()) return ev::Probed{false, false, "", h->start_timeout_s};
  proto::HealthItem sample = ctx_.world.probe.sample(h->health, std::chrono::milliseconds(1000));
  return ev::Probed{true, sample.ok, sample.error, h->start_timeout_s};
}

std::optional<Event> ServiceRunner::execute(const Action& action) {
  const std::string& name = config_.name;
  AgentState& state = *ctx_.state;
  auto log_failure = [&](const char* what, const Status& st) {
    if (!st.ok()) ctx_.log.error(what, {{"service", name}, {"error", st.error().message}});
  };
  return std::visit(
      [&](const auto& a) -> std::optional<Event> {
        using A = std::decay_t<decltype(a)>;
        if constexpr (std::is_same_v<A, act::Log>) {
          ctx_.log.log(level_of(a.level), a.name, to_log(a.fields));
        } else if constexpr (std::is_same_v<A, act::Notice>) {
          json line = to_json(a.fields);
          line["event"] = a.event;
          ctx_.emit(json_text(line));
        } else if constexpr (std::is_same_v<A, act::Report>) {
          ctx_.outbox.push({std::nullopt, a.item});
        } else if constexpr (std::is_same_v<A, act::RaiseTrust>) {
          if (state.raise_min_cert_version(a.min_cert_version).ok()) {
            ctx_.log.info("agent.trust.rotated", {{"min_cert_version", a.min_cert_version}});
          }
        } else if constexpr (std::is_same_v<A, act::NoteIntent>) {
          // Recovery does not depend on the intent (the record is the truth),
          // so a failed write is logged and the step goes on.
          log_failure("agent.state.intent", state.put_intent(name, a.intent));
        } else if constexpr (std::is_same_v<A, act::ClearIntent>) {
          (void)state.clear_intent(name);
        } else if constexpr (std::is_same_v<A, act::RestoreSingle>) {
          stop_slot(0);
          auto from = ContentId::parse(a.from);
          if (from.ok() && releases_->has(*from)) {
            (void)releases_->set_link("current", *from);
            log_failure("agent.revert.failed", start_slot(*from, 0));
          } else {
            (void)releases_->remove_link("current");
          }
        } else if constexpr (std::is_same_v<A, act::RestoreIdle>) {
          stop_slot(a.slot);
          if (auto id = ContentId::parse(a.release); id.ok() && releases_->has(*id)) {
            (void)releases_->set_link(kSlotNames[a.slot], *id);
          }
        } else if constexpr (std::is_same_v<A, act::PutFlags>) {
          (void)write_flags(a.flags, a.seq);
        } else if constexpr (std::is_same_v<A, act::RecordFailure>) {
          log_failure("agent.state", state.finish(name, a.record));
        } else if constexpr (std::is_same_v<A, act::CollectGarbage>) {
          if (ctx_.collect_garbage) ctx_.collect_garbage();
        } else if constexpr (std::is_same_v<A, act::LoadManifest>) {
          return ev::ManifestLoaded{load_manifest(a.plan, a.carried),
                                    releases_->has(a.plan.artifact)};
        } else if constexpr (std::is_same_v<A, act::Fetch>) {
          return ev::Fetched{ctx_.layers->fetch(
              a.plan.tracker, a.plan.layers,
              [&](std::uint64_t held, std::uint64_t bytes) {
                ctx_.update_view(name, [&](ServiceView& v) {
                  v.fetch_layers_held = held;
                  v.fetch_bytes_held = bytes;
                });
              },
              [&] { return ctx_.is_stopping(); })};
        } else if constexpr (std::is_same_v<A, act::Unpack>) {
          FetchedLayers source(*ctx_.layers);
          auto made = releases_->materialize(a.manifest, a.artifact, source, a.durable);
          return ev::Unpacked{made.ok() ? Status(Ok{}) : Status(made.error())};
        } else if constexpr (std::is_same_v<A, act::WriteFlags>) {
          return ev::FlagsWritten{write_flags(a.flags, a.seq)};
        } else if constexpr (std::is_same_v<A, act::StartSlot>) {
          return start_slot_op(a);
        } else if constexpr (std::is_same_v<A, act::Probe>) {
          return probe_op(a);
        } else if constexpr (std::is_same_v<A, act::WakeAt>) {
          const SteadyTime at{std::chrono::milliseconds(a.mono_ms)};
          return ev::Woke{ctx_.wait_until(at)};
        } else if constexpr (std::is_same_v<A, act::Flip>) {
          // The router (the file, or nginx) sends the host's traffic there.
          if (Status st = write_router(a.slot, a.release, a.traffic, a.preview); !st.ok()) {
            return ev::Flipped{st};
          }
          (void)releases_->set_link("current", a.release);
          return ev::Flipped{Ok{}};
        } else if constexpr (std::is_same_v<A, act::StopSlot>) {
          stop_slot(a.slot);
        } else if constexpr (std::is_same_v<A, act::StoreRecord>) {
          log_failure("agent.state", state.finish(name, a.record));
        } else if constexpr (std::is_same_v<A, act::Commit>) {
          return ev::Committed{state.finish(name, a.record)};
        } else if constexpr (std::is_same_v<A, act::CleanLeftovers>) {
          releases_->clean_leftovers();
        } else if constexpr (std::is_same_v<A, act::RecoverSlot>) {
          auto id = ContentId::parse(a.release);
          if (id.ok() && releases_->has(*id)) {
            (void)releases_->set_link(kSlotNames[a.slot], *id);
            log_failure("agent.recover.start", start_slot(*id, a.slot));
          }
        } else if constexpr (std::is_same_v<A, act::RecoverActive>) {
          if (auto id = ContentId::parse(a.release); id.ok() && releases_->has(*id)) {
            log_failure("agent.recover.router", write_router(a.slot, *id, a.traffic, a.preview));
            (void)releases_->set_link("current", *id);
          }
        } else if constexpr (std::is_same_v<A, act::RecoverCurrent>) {
          auto current = ContentId::parse(a.release);
          if (!current.ok() || !releases_->has(*current)) {
            ctx_.log.error("agent.recover.missing_release",
                           {{"service", name}, {"release", a.release}});
            return std::nullopt;
          }
          if (releases_->link("current") != *current) {
            log_failure("agent.recover.link", releases_->set_link("current", *current));
          }
          log_failure("agent.recover.start", start_slot(*current, 0));
        }
        return std::nullopt;
      },
      action);
}

}  // namespace drover::agent
