#include "agent/step/service_step.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/canon/canonical_json.hpp"

namespace drover::agent {

const char* run_state_name(RunState s) {
  switch (s) {
    case RunState::stopped: return "stopped";
    case RunState::running: return "running";
    case RunState::backoff: return "backoff";
    case RunState::crash_loop: return "crash_loop";
  }
  return "?";
}

const char* phase_view_name(Phase p) {
  switch (p) {
    case Phase::idle:
    case Phase::manifest: return "idle";
    case Phase::fetching: return "fetching";
    case Phase::unpacking: return "unpacking";
    case Phase::flags:
    case Phase::starting:
    case Phase::probing:
    case Phase::flipping:
    case Phase::committing: return "switching";
    case Phase::flagset: return "idle";
  }
  return "?";
}

namespace {

using Level = act::Log::Level;
constexpr std::int64_t kFirstProbeRetryMs = 2;
constexpr std::int64_t kMaxProbeRetryMs = 100;
constexpr std::int64_t kSettleMs = 1000;  // no endpoint: healthy = still running after this
constexpr std::int64_t kSettlePollMs = 20;

std::string flags_json(const proto::Plan& plan) {
  nlohmann::json flags = nlohmann::json::object();
  for (const auto& [k, v] : plan.flags) {
    flags[k] = v.is_percent ? nlohmann::json(v.percent) : nlohmann::json(v.on);
  }
  return *canon::encode(flags);
}

int slot_index(const std::string& name) {
  return name == "green" ? 1 : (name == "blue" ? 0 : -1);
}

// One transition being built: the next state and its actions.
class Transition {
 public:
  Transition(const ServiceState& s, const Observed& now) : now_(now) { out_.next = s; }

  Step finish() && { return std::move(out_); }

  void offer(const proto::PlanBundle& bundle);
  void on(const ev::ManifestLoaded& e);
  void on(const ev::Fetched& e);
  void on(const ev::Unpacked& e);
  void on(const ev::FlagsWritten& e);
  void on(const ev::SlotStarted& e);
  void on(const ev::Probed& e);
  void on(const ev::Woke& e);
  void on(const ev::Flipped& e);
  void on(const ev::Committed& e);
  void on(const ev::Tick& e);
  void offer_flags(const proto::FlagSetBundle& bundle);

  ServiceState& s() { return out_.next; }
  Progress& p() { return out_.next.progress; }
  const std::string& name() { return out_.next.spec.name; }

 private:
  void add(Action a) { out_.actions.push_back(std::move(a)); }
  void log(Level level, std::string what, Fields f) {
    add(act::Log{level, std::move(what), std::move(f)});
  }
  void notice(std::string event, Fields f) { add(act::Notice{std::move(event), std::move(f)}); }
  void report(const std::string& event, std::uint64_t seq, const std::string& detail) {
    add(act::Report{{name(), now_.unix_ms, event, seq, detail}});
  }
  void refuse(std::uint64_t seq, const std::string& kind, const std::string& reason);
  void fail(const std::string& kind, const std::string& why);
  void idle() { p() = Progress{}; }
  void begin_switch();
  void after_flags();
  void start(int slot);
  void begin_probe(int slot);
  void healthy();
  void flip(int slot);
  // Why the plan's traffic cannot be routed on this host ("" when it can).
  std::string unroutable(int slot);
  void switch_failed(const std::string& why, bool touched);
  void commit();
  std::string artifact() { return p().plan.artifact.str(); }

  const Observed& now_;
  Step out_;
};

void Transition::refuse(std::uint64_t seq, const std::string& kind, const std::string& reason) {
  log(Level::warn, "agent.plan.refused",
      {{"service", name()}, {"seq", seq}, {"event", kind}, {"reason", reason}});
  notice("plan_refused", {{"service", name()}, {"seq", seq}, {"kind", kind}, {"reason", reason}});
  if (kind == "replay_refused" && !s().record.proof.empty()) {
    // Offered a plan below the one held: the coordinator may have been
    // restored from an old backup. Show it the plan held, so its next one
    // is numbered above (docs/COORDINATOR.md, "Plan seqs").
    add(act::Report{{name(), now_.unix_ms, kind, seq, reason, s().record.proof}});
    return;
  }
  report(kind, seq, reason);
}

void Transition::offer(const proto::PlanBundle& bundle) {
  PlanCheck check = check_plan(bundle, now_.me, s().record.seq, now_.unix_ms / 1000);
  const std::uint64_t seq = check.opened ? check.plan.seq : 0;
  switch (check.verdict) {
    case PlanVerdict::same: return;
    case PlanVerdict::refused: refuse(seq, "plan_refused", check.reason); return;
    case PlanVerdict::replay: refuse(seq, "replay_refused", check.reason); return;
    case PlanVerdict::apply: break;
  }
  if (check.cert.version > now_.me.trust.min_cert_version) {
    add(act::RaiseTrust{check.cert.version});
  }
  Progress& pr = p();
  pr = Progress{};
  pr.phase = Phase::manifest;
  pr.plan = check.plan;
  pr.rec = s().record;
  if (std::string proof = proto::encode_bundle({bundle.plan, bundle.cert, std::nullopt});
      proof.size() <= proto::kMaxProofBytesV2) {
    pr.proof = std::move(proof);
  }
  pr.started_ms = now_.mono_ms;
  pr.downloaded_before = now_.downloaded_bytes;
  const int traffic = pr.plan.traffic();
  const bool preview = pr.plan.preview();
  if (traffic != kTrafficAll || preview) {
    // A share of traffic or a preview this host cannot route is refused,
    // never turned into a flip of everything.
    std::string why;
    if (!s().spec.blue_green) {
      why = "service '" + name() + "' runs one slot here";
    } else if (!s().spec.weighted_router && ((traffic != 0 && traffic != kTrafficAll) || preview)) {
      why = "its router here is the file, which names one slot and has no preview route";
    }
    if (!why.empty()) {
      fail("plan_refused", "plan seq " + std::to_string(pr.plan.seq) + " asks for " +
                               std::to_string(traffic) + " per mille of traffic" +
                               (preview ? " and a preview" : "") + ", but " + why);
      return;
    }
  }
  add(act::LoadManifest{check.plan, bundle.manifest});
}

void Transition::fail(const std::string& kind, const std::string& why) {
  const std::uint64_t seq = p().plan.seq;
  log(Level::error, "agent.apply.failed", {{"service", name()}, {"seq", seq}, {"error", why}});
  notice("apply_failed", {{"service", name()}, {"seq", seq}, {"kind", kind}, {"error", why}});
  report(kind, seq, why);
  ServiceRecord rec = p().rec;
  rec.seq = seq;
  rec.seq_failed = true;
  rec.proof = p().proof;
  add(act::RecordFailure{rec});
  s().record = rec;
  s().last_error = why;
  idle();
}

void Transition::on(const ev::ManifestLoaded& e) {
  if (!e.manifest.ok()) {
    // A manifest that did not arrive is tried again at the next pull; one
    // that arrived wrong condemns the plan.
    const Errc c = e.manifest.error().code;
    if (c == Errc::timeout || c == Errc::io) {
      log(Level::warn, "agent.manifest.unavailable",
          {{"service", name()}, {"error", e.manifest.error().message}});
      idle();
      return;
    }
    fail("plan_refused", e.manifest.error().message);
    return;
  }
  Progress& pr = p();
  pr.manifest = *e.manifest;
  // Once the host holds a flag set, it is the flags' only source.
  pr.flags = pr.rec.flags_seq > 0 ? pr.rec.flags : flags_json(pr.plan);
  const ServiceRecord& rec = pr.rec;
  if (s().spec.blue_green) {
    auto it = rec.slots.find(rec.active_slot);
    pr.running_it = it != rec.slots.end() && it->second == artifact();
  } else {
    pr.running_it = rec.current == artifact();
  }
  if (e.release_present) {
    begin_switch();
    return;
  }
  pr.phase = Phase::fetching;
  s().fetch_layers = pr.plan.layers.size();
  s().fetch_bytes = pr.plan.layer_bytes();
  notice("fetching", {{"service", name()},
                      {"artifact", artifact()},
                      {"layers", std::uint64_t(pr.plan.layers.size())},
                      {"bytes", pr.plan.layer_bytes()}});
  add(act::NoteIntent{{"fetch", pr.plan.seq, artifact(), rec.current}});
  add(act::Fetch{pr.plan});
}

void Transition::on(const ev::Fetched& e) {
  if (!e.status.ok()) {
    const std::string& why = e.status.error().message;
    add(act::ClearIntent{});
    log(Level::error, "agent.fetch.failed", {{"service", name()}, {"error", why}});
    notice("fetch_failed", {{"service", name()}, {"error", why}});
    report("fetch_failed", p().plan.seq, why);
    s().last_error = why;
    idle();  // tried again at the next pull
    return;
  }
  p().phase = Phase::unpacking;
  add(act::NoteIntent{{"unpack", p().plan.seq, artifact(), p().rec.current}});
  notice("unpacking", {{"service", name()}, {"artifact", artifact()}});
  add(act::Unpack{p().manifest, p().plan.artifact, !s().spec.planted_unsynced_unpack});
}

void Transition::on(const ev::Unpacked& e) {
  if (!e.status.ok()) {
    fail("apply_failed", "unpack: " + e.status.error().message);
    return;
  }
  begin_switch();
}

void Transition::begin_switch() {
  Progress& pr = p();
  if (s().spec.blue_green) {
    // A split this host cannot route fails before anything changes.
    const int active = slot_index(pr.rec.active_slot);
    const int target = pr.running_it ? active : (active == 0 ? 1 : 0);
    if (std::string why = unroutable(target); !why.empty()) {
      fail("apply_failed", why);
      return;
    }
  }
  add(act::NoteIntent{{"switch", pr.plan.seq, artifact(), pr.rec.current}});
  notice("switching", {{"service", name()}, {"artifact", artifact()}});
  // Flags first: a new release starts with the plan's flags in place.
  if (pr.flags != pr.rec.flags) {
    pr.phase = Phase::flags;
    add(act::WriteFlags{pr.flags, pr.plan.seq});
    return;
  }
  after_flags();
}

void Transition::on(const ev::FlagsWritten& e) {
  if (p().phase == Phase::flagset) {
    const std::uint64_t seq = p().flags_seq;
    if (!e.status.ok()) {
      const std::string why = "flags: " + e.status.error().message;
      log(Level::error, "agent.flags.failed", {{"service", name()}, {"seq", seq}, {"error", why}});
      report("flags_refused", 0, "flag set " + std::to_string(seq) + ": " + why);
      s().last_error = why;
      idle();  // pulled again at the next cycle
      return;
    }
    ServiceRecord rec = s().record;
    rec.flags = p().flags;
    rec.flags_seq = seq;
    add(act::StoreRecord{rec});
    s().record = rec;
    log(Level::info, "agent.flags.applied", {{"service", name()}, {"seq", seq}});
    notice("flags_applied", {{"service", name()}, {"seq", seq}});
    report("flags_applied", 0, "{\"seq\":" + std::to_string(seq) + "}");
    idle();
    return;
  }
  if (!e.status.ok()) {
    fail("apply_failed", "flags: " + e.status.error().message);
    return;
  }
  report("flags_written", p().plan.seq, p().flags);
  after_flags();
}

void Transition::after_flags() {
  Progress& pr = p();
  if (pr.running_it) {
    if (s().spec.blue_green &&
        (pr.plan.traffic() != pr.rec.traffic || pr.plan.preview() != pr.rec.preview)) {
      // The release serves already: only the router changes (no start, no
      // download).
      flip(slot_index(pr.rec.active_slot));
      return;
    }
    commit();
    return;
  }
  if (!s().spec.blue_green) {
    start(0);
    return;
  }
  const int idle_slot = slot_index(pr.rec.active_slot) == 0 ? 1 : 0;
  const SlotView& v = now_.slots[idle_slot];
  auto it = pr.rec.slots.find(kSlotNames[idle_slot]);
  const bool warm = it != pr.rec.slots.end() && it->second == artifact() &&
                    v.state == RunState::running && v.release == artifact();
  if (warm) {
    // The idle slot still runs this release (a rollback to the warm slot):
    // it flips once healthy, with no restart.
    pr.warm = true;
    begin_probe(idle_slot);
    return;
  }
  start(idle_slot);
}

void Transition::start(int slot) {
  Progress& pr = p();
  pr.phase = Phase::starting;
  pr.slot = slot;
  pr.warm = false;
  add(act::StartSlot{slot, pr.plan.artifact});
}

void Transition::on(const ev::SlotStarted& e) {
  if (!e.status.ok()) {
    switch_failed(e.status.error().message, e.touched);
    return;
  }
  begin_probe(p().slot);
}

void Transition::begin_probe(int slot) {
  Progress& pr = p();
  pr.phase = Phase::probing;
  pr.slot = slot;
  pr.probe_from_ms = now_.mono_ms;
  pr.deadline_ms = 0;
  pr.retry_ms = kFirstProbeRetryMs;
  pr.last_health = "no sample yet";
  add(act::Probe{slot, pr.plan.artifact});
}

void Transition::on(const ev::Probed& e) {
  Progress& pr = p();
  const SlotView& v = now_.slots[pr.slot];
  const std::string what = pr.plan.artifact.short_str();
  pr.endpoint = e.has_endpoint;
  pr.start_timeout_s = e.start_timeout_s;
  if (pr.deadline_ms == 0)
    pr.deadline_ms = pr.probe_from_ms + std::int64_t(e.start_timeout_s) * 1000;
  if (!e.has_endpoint) {
    // Without an endpoint, healthy means: still running a second later.
    if (v.exits != 0) {
      switch_failed(what + " exited during start", true);
      return;
    }
    const std::int64_t settle = std::min(pr.deadline_ms, pr.probe_from_ms + kSettleMs);
    if (now_.mono_ms >= settle) {
      healthy();
      return;
    }
    add(act::WakeAt{std::min(settle, now_.mono_ms + kSettlePollMs)});
    return;
  }
  if (v.exits >= 2) {
    switch_failed(what + " exited " + std::to_string(v.exits) +
                      " times during start; last health: " + pr.last_health,
                  true);
    return;
  }
  // The answer must come from the process we started, still running.
  if (e.ok && v.exits == 0 && v.state == RunState::running) {
    healthy();
    return;
  }
  pr.last_health = e.error;
  // Most services answer within milliseconds: ask again soon, then less often.
  add(act::WakeAt{now_.mono_ms + pr.retry_ms});
  pr.retry_ms = std::min(pr.retry_ms * 2, kMaxProbeRetryMs);
}

void Transition::on(const ev::Woke& e) {
  Progress& pr = p();
  if (pr.phase != Phase::probing) return;
  if (e.stopping) {
    switch_failed("agent stopping", true);
    return;
  }
  if (pr.endpoint && now_.mono_ms >= pr.deadline_ms) {
    switch_failed(pr.plan.artifact.short_str() + " was not healthy within " +
                      std::to_string(pr.start_timeout_s) + " s; last health: " + pr.last_health,
                  true);
    return;
  }
  add(act::Probe{pr.slot, pr.plan.artifact});
}

void Transition::healthy() {
  Progress& pr = p();
  if (!s().spec.blue_green) {
    notice("switched", {{"service", name()}, {"release", artifact()}});
    commit();
    return;
  }
  // Healthy: flip. The router is what sends the host's traffic.
  flip(pr.slot);
}

void Transition::flip(int slot) {
  Progress& pr = p();
  pr.phase = Phase::flipping;
  pr.slot = slot;
  add(act::Flip{slot, pr.plan.artifact, pr.plan.traffic(), pr.plan.preview()});
}

std::string Transition::unroutable(int slot) {
  const Progress& pr = p();
  const ServiceRecord& rec = pr.rec;
  const int other = 1 - slot;
  const std::string other_name = kSlotNames[other];
  const std::string what = "plan seq " + std::to_string(pr.plan.seq);
  auto held = rec.slots.find(other_name);
  const SlotView& v = now_.slots[other];
  if (slot_index(rec.active_slot) == other && rec.traffic < kTrafficAll) {
    // The slot to start shares live traffic now: starting a release there
    // would cut that share off.
    auto mine = rec.slots.find(kSlotNames[slot]);
    const bool starts = mine == rec.slots.end() || mine->second != artifact() ||
                        now_.slots[slot].release != artifact();
    if (starts && rec.traffic > 0) {
      return what + ": slot " + std::string(kSlotNames[slot]) + " still carries " +
             std::to_string(kTrafficAll - rec.traffic) +
             " per mille of live traffic; send a plan of its release at 1000 first";
    }
  }
  if (pr.plan.traffic() < kTrafficAll) {
    // The other slot takes the rest: it must be running what the record says.
    const bool serving =
        held != rec.slots.end() && v.state == RunState::running && v.release == held->second;
    if (!serving) {
      return what + " gives " + std::to_string(kTrafficAll - pr.plan.traffic()) +
             " per mille of traffic to slot " + other_name + ", which runs no release";
    }
  }
  return "";
}

void Transition::on(const ev::Flipped& e) {
  Progress& pr = p();
  if (!e.status.ok()) {
    switch_failed(e.status.error().message, false);
    return;
  }
  const bool was_active = pr.rec.active_slot == kSlotNames[pr.slot];
  const int before = pr.rec.traffic;
  const int traffic = pr.plan.traffic();
  pr.rec.active_slot = kSlotNames[pr.slot];
  pr.rec.slots[kSlotNames[pr.slot]] = artifact();
  pr.rec.traffic = traffic;
  pr.rec.preview = pr.plan.preview();
  // The other slot stops scale_down_s after it lost its last live traffic
  // (a re-weight that keeps it at none keeps the time already set).
  const auto scale_down = pr.plan.scale_down_s();
  if (traffic < kTrafficAll || !scale_down) {
    pr.rec.stop_idle_at_ms = 0;
  } else if (!(was_active && before == kTrafficAll && pr.rec.stop_idle_at_ms != 0)) {
    pr.rec.stop_idle_at_ms = now_.unix_ms + *scale_down * 1000;
  }
  notice("switched", {{"service", name()},
                      {"release", artifact()},
                      {"slot", kSlotNames[pr.slot]},
                      {"traffic", std::int64_t(traffic)}});
  report("switched", 0,
         std::string("active slot ") + kSlotNames[pr.slot] + " at " + std::to_string(traffic) +
             " per mille" + (pr.rec.preview ? ", previewed" : ""));
  commit();
}

void Transition::switch_failed(const std::string& why, bool touched) {
  Progress& pr = p();
  if (pr.phase == Phase::probing && pr.warm) {
    // The warm slot did not answer: start it afresh.
    start(pr.slot);
    return;
  }
  if (touched && !s().spec.blue_green) {
    // Put the previous release back, as it was.
    add(act::RestoreSingle{pr.rec.current});
  } else if (touched) {
    // The active slot was never touched; the failed one stops.
    const std::string slot = kSlotNames[pr.slot];
    auto it = pr.rec.slots.find(slot);
    add(act::RestoreIdle{pr.slot, it == pr.rec.slots.end() ? "" : it->second});
    pr.rec.slots.erase(slot);
  }
  if (pr.flags != pr.rec.flags) add(act::PutFlags{pr.rec.flags, pr.rec.seq});
  fail("apply_failed", why);
}

void Transition::commit() {
  Progress& pr = p();
  ServiceRecord rec = pr.rec;
  const std::string id = artifact();
  if (!pr.running_it) {
    if (!rec.current.empty() && rec.current != id)
      rec.previous.insert(rec.previous.begin(), rec.current);
    std::erase(rec.previous, id);
    std::vector<std::string> unique;
    for (const auto& prev : rec.previous) {
      if (std::find(unique.begin(), unique.end(), prev) == unique.end()) unique.push_back(prev);
    }
    const std::size_t keep = s().spec.keep_releases > 0 ? s().spec.keep_releases - 1 : 0;
    if (unique.size() > keep) unique.resize(keep);
    rec.previous = unique;
    rec.current = id;
  }
  rec.seq = pr.plan.seq;
  rec.seq_failed = false;
  rec.proof = pr.proof;
  rec.flags = pr.flags;
  rec.tracker = pr.plan.tracker;
  pr.rec = rec;
  pr.phase = Phase::committing;
  add(act::Commit{rec});
}

void Transition::on(const ev::Committed& e) {
  Progress& pr = p();
  if (!e.status.ok()) {
    log(Level::error, "agent.state", {{"service", name()}, {"error", e.status.error().message}});
    idle();
    return;
  }
  const std::string id = artifact();
  // Where the release came from: running already (a new plan naming it),
  // kept on the host from before (going back to it was a local switch, a
  // rollback as a rule), or fetched.
  const auto& kept = s().record.previous;
  const char* source = s().record.current == id                                ? "running"
                       : std::find(kept.begin(), kept.end(), id) != kept.end() ? "kept"
                                                                               : "fetched";
  s().record = pr.rec;
  s().last_error.clear();
  const std::uint64_t seq = pr.plan.seq;
  const std::uint64_t downloaded =
      now_.downloaded_bytes - std::min(now_.downloaded_bytes, pr.downloaded_before);
  const std::int64_t ms = now_.mono_ms - pr.started_ms;
  Fields f = {{"service", name()},        {"seq", seq}, {"artifact", id},
              {"downloaded", downloaded}, {"ms", ms},   {"source", source}};
  log(Level::info, "agent.applied", f);
  notice("applied", f);
  report("applied", seq, id);
  add(act::CollectGarbage{});
  idle();
}

void Transition::offer_flags(const proto::FlagSetBundle& bundle) {
  auto opened = proto::open_flagset(bundle, now_.me.trust, now_.unix_ms / 1000);
  auto refuse_flags = [&](std::uint64_t seq, const std::string& why) {
    log(Level::warn, "agent.flags.refused", {{"service", name()}, {"seq", seq}, {"reason", why}});
    notice("flags_refused", {{"service", name()}, {"seq", seq}, {"reason", why}});
    report("flags_refused", 0, why);
  };
  if (!opened.ok()) {
    refuse_flags(0, opened.error().message);
    return;
  }
  const proto::FlagSet& f = *opened;
  const std::string what = "flag set " + f.service + " seq " + std::to_string(f.seq);
  if (f.service != name()) return refuse_flags(f.seq, what + " is for another service");
  if (!f.applies_to(now_.me.host)) {
    return refuse_flags(f.seq, what + " does not list this host ('" + now_.me.host + "')");
  }
  if (f.seq == s().record.flags_seq) return;
  if (f.seq < s().record.flags_seq) {
    return refuse_flags(f.seq, what + " is older than the held seq " +
                                   std::to_string(s().record.flags_seq) + ": a replayed flag set");
  }
  if (f.issued_at > now_.unix_ms / 1000 + proto::kMaxClockSkewSeconds) {
    return refuse_flags(f.seq, what + " is issued more than 5 minutes after now");
  }
  Progress& pr = p();
  pr = Progress{};
  pr.phase = Phase::flagset;
  pr.flags = f.flags_json();
  pr.flags_seq = f.seq;
  add(act::WriteFlags{pr.flags, f.seq});
}

void Transition::on(const ev::Tick&) {
  ServiceRecord& rec = s().record;
  if (p().phase != Phase::idle || !s().spec.blue_green || rec.stop_idle_at_ms == 0 ||
      now_.unix_ms < rec.stop_idle_at_ms || rec.traffic < kTrafficAll) {
    return;
  }
  const int active = slot_index(rec.active_slot);
  if (active < 0) return;
  const int other = 1 - active;
  auto held = rec.slots.find(kSlotNames[other]);
  const std::string release = held == rec.slots.end() ? "" : held->second;
  add(act::StopSlot{other});
  rec.slots.erase(kSlotNames[other]);
  rec.stop_idle_at_ms = 0;
  add(act::StoreRecord{rec});
  log(Level::info, "agent.scaled_down",
      {{"service", name()}, {"slot", kSlotNames[other]}, {"release", release}});
  notice("scaled_down", {{"service", name()}, {"slot", kSlotNames[other]}, {"release", release}});
  report("scaled_down", 0, std::string("slot ") + kSlotNames[other] + " stopped");
}

}  // namespace

Step step(const ServiceState& s, const Event& e, const Observed& now) {
  Transition t(s, now);
  if (const auto* offer = std::get_if<ev::Offer>(&e)) {
    if (t.p().phase != Phase::idle) {
      t.s().pending = offer->bundle;  // the newest offer wins
      return std::move(t).finish();
    }
    t.offer(offer->bundle);
  } else if (const auto* flags = std::get_if<ev::FlagsOffer>(&e)) {
    if (t.p().phase != Phase::idle) {
      t.s().pending_flags = flags->bundle;
      return std::move(t).finish();
    }
    t.offer_flags(flags->bundle);
  } else {
    std::visit(
        [&](const auto& event) {
          using E = std::decay_t<decltype(event)>;
          if constexpr (!std::is_same_v<E, ev::Offer> && !std::is_same_v<E, ev::FlagsOffer>) {
            t.on(event);
          }
        },
        e);
  }
  // Back at idle with a flag set or an offer kept while busy: consider it
  // now, the flag set first (a kill waits for nothing it need not).
  if (t.p().phase == Phase::idle && t.s().pending_flags) {
    proto::FlagSetBundle kept = std::move(*t.s().pending_flags);
    t.s().pending_flags.reset();
    t.offer_flags(kept);
  }
  if (t.p().phase == Phase::idle && t.s().pending) {
    proto::PlanBundle kept = std::move(*t.s().pending);
    t.s().pending.reset();
    t.offer(kept);
  }
  return std::move(t).finish();
}

Step recover(const ServiceState& s, const std::optional<Intent>& leftover) {
  Step out{s, {}};
  const ServiceRecord& rec = s.record;
  out.actions.push_back(act::CleanLeftovers{});
  if (leftover) {
    out.actions.push_back(act::Log{act::Log::Level::warn,
                                   "agent.recover.intent",
                                   {{"service", s.spec.name},
                                    {"step", leftover->step},
                                    {"artifact", leftover->artifact},
                                    {"seq", leftover->seq}}});
    out.actions.push_back(act::ClearIntent{});
  }
  if (!rec.flags.empty()) {
    out.actions.push_back(act::PutFlags{rec.flags, rec.flags_seq ? rec.flags_seq : rec.seq});
  }
  if (s.spec.blue_green) {
    for (int i = 0; i < 2; ++i) {
      auto it = rec.slots.find(kSlotNames[i]);
      if (it != rec.slots.end()) out.actions.push_back(act::RecoverSlot{i, it->second});
    }
    auto active = rec.slots.find(rec.active_slot);
    if (active != rec.slots.end()) {
      out.actions.push_back(act::RecoverActive{slot_index(rec.active_slot), active->second,
                                               rec.traffic, rec.preview});
    }
    return out;
  }
  if (!rec.current.empty()) out.actions.push_back(act::RecoverCurrent{rec.current});
  return out;
}

std::int64_t next_pull_wait_ms(bool answered, int failures, std::int64_t poll_interval_ms) {
  if (answered || failures <= 0) return poll_interval_ms;
  return std::min(poll_interval_ms, std::int64_t(500) << std::min(failures - 1, 16));
}

int serving_slot(const ServiceState& s) {
  return s.spec.blue_green && s.record.active_slot == "green" ? 1 : 0;
}

std::optional<proto::HealthItem> health_item(const ServiceState& s, const SlotView& serving,
                                             const std::optional<proto::HealthItem>& probed,
                                             std::int64_t unix_ms) {
  const ServiceRecord& rec = s.record;
  if (s.spec.blue_green ? rec.active_slot.empty() : rec.current.empty()) return std::nullopt;
  proto::HealthItem h;
  if (serving.state == RunState::running && probed) {
    h = *probed;
  } else if (serving.state == RunState::running) {
    h.ok = true;
  } else {
    h.ok = false;
    h.error = serving.state == RunState::crash_loop
                  ? "crash loop: " + std::to_string(serving.exits) + " exits since start"
                  : std::string("process ") + run_state_name(serving.state);
  }
  h.service = s.spec.name;
  h.release = serving.release;
  h.slot = s.spec.blue_green ? kSlotNames[serving_slot(s)] : "";
  h.at_ms = unix_ms;
  h.state = run_state_name(serving.state);
  return h;
}

}  // namespace drover::agent
