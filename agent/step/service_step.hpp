// The agent's decisions for one service, as a pure step function
// (docs/AGENT.md, "The step function"): given what the agent knows of the
// service (its durable record and the apply in flight), one event and the
// world as observed now (time, the supervisor's view of each slot, the trust
// floor), it returns the next state and the actions to run, in order.
//
// Nothing here reads a clock, touches a file or a socket: executors around it
// (agent/service_runner) run the actions, and an action whose outcome the machine
// needs (loading a manifest, fetching, unpacking, starting, probing, waiting,
// flipping, committing) comes back as the next event. At most one such action
// is in flight per service; the others are effects whose failure is logged.
// Tests drive it in virtual time, event by event.
//
//   idle -> manifest -> [fetching -> unpacking] -> [flags] -> starting -> probing
//        -> [flipping] -> committing -> idle                 (apply)
//   any failure -> idle, the plan's seq recorded as failed (the previous
//   release put back first when the old process had been stopped)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "agent/step/plan_check.hpp"
#include "agent/step/record.hpp"
#include "core/base/result.hpp"
#include "core/format/manifest.hpp"
#include "core/proto/flagset.hpp"
#include "core/proto/messages.hpp"

namespace drover::agent {

inline constexpr const char* kSlotNames[2] = {"blue", "green"};
inline constexpr int kTrafficAll = 1000;  // traffic shares are per mille

// A value in a log line or a supervisor event line.
struct Field {
  std::string key;
  std::variant<std::string, std::int64_t, std::uint64_t> value;
};
using Fields = std::vector<Field>;

// What the machine knows of its service (fixed for a run).
struct ServiceSpec {
  std::string name;
  bool blue_green = false;
  std::size_t keep_releases = 3;  // the current one and up to K-1 before it
  // Blue/green: the router splits traffic by weights and has a preview
  // route (nginx); the file router names one slot and has neither.
  bool weighted_router = false;
  // Test only, a planted bug (docs/CHAOS.md, "Planted bugs"): releases are
  // unpacked without the sync before `current` may point at them. kill -9
  // keeps the page cache, so only the simulation's power loss can see it.
  bool planted_unsynced_unpack = false;
};

enum class Phase {
  idle,
  manifest,
  fetching,
  unpacking,
  flags,
  starting,
  probing,
  flipping,
  committing,
  flagset  // writing a flag set's flags (outside any apply)
};
// What the status endpoint shows: idle, fetching, unpacking or switching.
const char* phase_view_name(Phase p);

// The apply in flight. In memory only: a restarted agent begins at idle and
// recovers from the record (recover() below).
struct Progress {
  Phase phase = Phase::idle;
  proto::Plan plan;             // the plan being applied
  format::Manifest manifest;    // its checked manifest
  ServiceRecord rec;            // the record it started from, as the switch changes it
  std::string flags;            // the plan's (or the flag set's) flags, canonical JSON
  std::uint64_t flags_seq = 0;  // flagset: the flag set being written
  std::string proof;            // the plan's signed bundle, without the manifest
  bool running_it = false;      // the plan names the release already serving
  int slot = 0;                 // the slot being started or probed
  bool warm = false;            // blue/green: probing an idle slot that already ran the release
  bool touched = false;         // the old process of the slot was stopped
  std::int64_t started_ms = 0;  // when the apply began (monotonic)
  std::uint64_t downloaded_before = 0;  // the mesh's download counter then
  std::int64_t probe_from_ms = 0;       // when probing began (monotonic)
  std::int64_t deadline_ms = 0;         // probing: start timeout (0 until the first answer)
  std::int64_t retry_ms = 0;            // the next wait between probes
  bool endpoint = false;                // the release has a health endpoint
  int start_timeout_s = 30;
  std::string last_health = "no sample yet";
};

struct ServiceState {
  ServiceSpec spec;
  ServiceRecord record;  // as last committed
  Progress progress;
  std::optional<proto::PlanBundle> pending;           // offered while busy; considered once idle
  std::optional<proto::FlagSetBundle> pending_flags;  // the same, for flag sets
  // What the status endpoint shows.
  std::string last_error;
  std::uint64_t fetch_layers = 0, fetch_bytes = 0;
};

// The world as observed when an event is delivered.
struct SlotView {
  RunState state = RunState::stopped;
  std::string release;  // what the slot's process runs ("" none)
  int exits = 0;        // unexpected exits since it was started
};
struct Observed {
  std::int64_t unix_ms = 0;            // wall time: plan expiry, report timestamps
  std::int64_t mono_ms = 0;            // monotonic time: waits and deadlines
  HostView me;                         // host, its services, the pinned root and trust floor
  SlotView slots[2];                   // single slot: [0]; blue/green: [0] blue, [1] green
  std::uint64_t downloaded_bytes = 0;  // the mesh's download counter
};

// ---- events ----
namespace ev {
struct Offer {  // a plan pulled from the coordinator or handed over
  proto::PlanBundle bundle;
};
struct ManifestLoaded {
  Result<format::Manifest> manifest;  // timeout and io errors: try again later
  bool release_present = false;       // the release is on disk already
};
struct Fetched {
  Status status;
};
struct Unpacked {
  Status status;
};
struct FlagsWritten {
  Status status;
};
struct SlotStarted {
  Status status;
  bool touched = false;  // the slot's old process was stopped before the failure
};
struct Probed {
  bool has_endpoint = false;  // false: healthy means still running a second later
  bool ok = false;
  std::string error;
  int start_timeout_s = 30;
};
struct Woke {
  bool stopping = false;  // the agent is stopping: give up the wait
};
struct Flipped {
  Status status;
};
struct Committed {
  Status status;
};
struct Tick {};      // once per agent cycle: due housekeeping (a scale-down)
struct FlagsOffer {  // a flag set pulled from the coordinator
  proto::FlagSetBundle bundle;
};
}  // namespace ev
using Event = std::variant<ev::Offer, ev::ManifestLoaded, ev::Fetched, ev::Unpacked,
                           ev::FlagsWritten, ev::SlotStarted, ev::Probed, ev::Woke, ev::Flipped,
                           ev::Committed, ev::Tick, ev::FlagsOffer>;

// ---- actions ----
namespace act {
// Effects: run in order, failures logged, nothing comes back.
struct Log {
  enum class Level { debug, info, warn, error } level = Level::info;
  std::string name;
  Fields fields;
};
struct Notice {  // a line for whoever supervises the agent ("Agent events")
  std::string event;
  Fields fields;
};
struct Report {  // an event item for the coordinator
  proto::EventItem item;
};
struct RaiseTrust {
  std::uint64_t min_cert_version = 0;
};
struct NoteIntent {
  Intent intent;
};
struct ClearIntent {};
struct RestoreSingle {  // stop slot 0; start `from` again, or remove `current` if none
  std::string from;
};
struct RestoreIdle {  // blue/green: stop the slot, point its link back at `release` if any
  int slot = 0;
  std::string release;
};
struct PutFlags {  // write these flags ("" writes {}): the record's, put back or recovered
  std::string flags;
  std::uint64_t seq = 0;
};
struct RecordFailure {  // the plan failed: store the record (seq marked failed)
  ServiceRecord record;
};
struct CollectGarbage {};
// Operations: the outcome is the next event.
struct LoadManifest {  // -> ManifestLoaded
  proto::Plan plan;
  std::optional<std::string> carried;
};
struct Fetch {  // -> Fetched
  proto::Plan plan;
};
struct Unpack {  // -> Unpacked
  format::Manifest manifest;
  ContentId artifact;
  // The release reaches the disk before it is renamed into place, so a
  // power loss never leaves `current` on a tree of empty files. False only
  // under ServiceSpec::planted_unsynced_unpack.
  bool durable = true;
};
struct WriteFlags {  // -> FlagsWritten
  std::string flags;
  std::uint64_t seq = 0;
};
struct StartSlot {  // -> SlotStarted: resolve hooks, stop the slot, point its link, start
  int slot = 0;
  ContentId release;
};
struct Probe {  // -> Probed
  int slot = 0;
  ContentId release;
};
struct WakeAt {  // -> Woke
  std::int64_t mono_ms = 0;
};
struct Flip {  // -> Flipped: the router gives the slot `traffic` per mille (the
               // other slot the rest), `current` names the release
  int slot = 0;
  ContentId release;
  int traffic = 1000;
  bool preview = false;  // the preview route reaches the slot
};
struct StopSlot {  // the slot's process stops (its link stays)
  int slot = 0;
};
struct StoreRecord {  // the record, outside an apply (failure logged)
  ServiceRecord record;
};
struct Commit {  // -> Committed: the record and no intent, in one transaction
  ServiceRecord record;
};
// Recovery at start (see recover()).
struct CleanLeftovers {};
struct RecoverSlot {  // start the slot on its recorded release if it is on disk
  int slot = 0;
  std::string release;
};
struct RecoverActive {  // router and `current` on the active slot's release
  int slot = 0;
  std::string release;
  int traffic = 1000;
  bool preview = false;
};
struct RecoverCurrent {  // single slot: `current` on the release, then start it
  std::string release;
};
}  // namespace act
using Action =
    std::variant<act::Log, act::Notice, act::Report, act::RaiseTrust, act::NoteIntent,
                 act::ClearIntent, act::RestoreSingle, act::RestoreIdle, act::PutFlags,
                 act::RecordFailure, act::CollectGarbage, act::LoadManifest, act::Fetch,
                 act::Unpack, act::WriteFlags, act::StartSlot, act::Probe, act::WakeAt, act::Flip,
                 act::StopSlot, act::StoreRecord, act::Commit, act::CleanLeftovers,
                 act::RecoverSlot, act::RecoverActive, act::RecoverCurrent>;

struct Step {
  ServiceState next;
  std::vector<Action> actions;
};

// One event. An Offer while an apply is in flight is kept (the newest wins)
// and considered once the machine is idle again.
Step step(const ServiceState& s, const Event& e, const Observed& now);

// At start, before any plan: bring the service back on its recorded release
// from local state alone. A leftover intent is logged and cleared: the record
// is the truth, and what the step left half done is undone by re-pointing
// links and replacing the stale process.
Step recover(const ServiceState& s, const std::optional<Intent>& leftover);

// Whether an announcement of seq for this service is worth a pull.
inline bool wants_pull(const ServiceRecord& r, std::uint64_t announced_seq, bool flags = false) {
  return announced_seq > (flags ? r.flags_seq : r.seq);
}

// The wait before the next pull: the poll interval after an answer; after
// `failures` unanswered cycles in a row, 0.5 s doubling up to the interval.
std::int64_t next_pull_wait_ms(bool answered, int failures, std::int64_t poll_interval_ms);

// A health item for the slot that serves, from its process state and (when
// running with an endpoint) a probe's answer. nullopt: nothing serves yet.
std::optional<proto::HealthItem> health_item(const ServiceState& s, const SlotView& serving,
                                             const std::optional<proto::HealthItem>& probed,
                                             std::int64_t unix_ms);
// Which slot serves (0 for a single slot).
int serving_slot(const ServiceState& s);

}  // namespace drover::agent
