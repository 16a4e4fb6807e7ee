// Runs one service's step function for real (docs/AGENT.md, "The step
// function"): it delivers events to the machine and runs the actions it
// returns against the release directory, the supervisors, the layers, the
// durable state and the outbox, feeding each operation's outcome back as the
// next event. Nothing here decides: what to do next is the machine's.
//
// Threads: run() and recover() on the agent's cycle thread only; slot() and
// config() from any thread (service processes are thread-safe).
#pragma once

#include <memory>
#include <optional>

#include "agent/context.hpp"
#include "agent/releases.hpp"
#include "agent/router/router.hpp"
#include "agent/supervisor.hpp"

namespace drover::agent {

class ServiceRunner {
 public:
  ServiceRunner(AgentContext& ctx, const ServiceConfig& config);

  // Brings the service back on its recorded release (at start, before any plan).
  void recover();
  // Delivers one event and runs what follows until nothing is in flight.
  // unix_ms fixes the first step's wall time (one "now" per pull cycle).
  void run(Event first, std::int64_t unix_ms);

  const ServiceConfig& config() const { return config_; }
  const ServiceState& state() const { return state_; }  // cycle thread
  ServiceProcess* slot(int i) const { return slots_[i].get(); }
  ReleaseDir& releases() { return *releases_; }
  // The world as the machine sees it now.
  Observed observe() const;
  // While the active slot is previewed: the requests of the router's
  // preview probe, sent through the preview route (any thread).
  void drive_preview() const;

 private:
  std::optional<Event> execute(const Action& a);
  std::optional<Event> start_slot_op(const act::StartSlot& a);
  std::optional<Event> probe_op(const act::Probe& a);
  Result<format::Manifest> load_manifest(const proto::Plan& plan,
                                         const std::optional<std::string>& carried);
  Result<Hooks> hooks_for(const ContentId& release, int slot);
  Status start_slot(const ContentId& release, int slot);
  void stop_slot(int slot);
  Status write_flags(const std::string& flags_json, std::uint64_t seq);
  Status write_router(int slot, const ContentId& release, int traffic, bool preview);
  std::string link_name(int slot) const;
  // The group releases and the flags file are shared with: the service's,
  // when the agent switches users for it; otherwise none (all the agent's).
  std::optional<std::uint32_t> shared_group() const;
  void publish_view();
  void on_process(const std::string& label, RunState st, const std::string& why);

  AgentContext& ctx_;
  ServiceConfig config_;
  fs::path flags_file_, router_file_;
  std::unique_ptr<ReleaseDir> releases_;
  std::unique_ptr<Router> router_;            // blue/green only
  std::unique_ptr<ServiceProcess> slots_[2];  // single: [0]; blue/green: [0] blue, [1] green
  ServiceState state_;
};

}  // namespace drover::agent
