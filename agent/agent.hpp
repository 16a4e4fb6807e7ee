// The host agent (docs/AGENT.md): it checks each plan, fetches the artifact's
// layers through the mesh into its cache, materializes the release, switches
// to it, supervises the service, samples and pushes its health, and reverts
// locally. It keeps everything it needs to run on disk, so a restart needs no
// coordinator: the service comes back on its current release from local
// state alone, and the agent converges to the newest valid plan once it can.
//
// Threads: one cycle thread acts on plans (everything that changes a
// service's release happens there, in order); a health thread samples; a
// report thread pushes; an announcement thread listens; the status endpoint
// runs on its own thread. State shared with the status endpoint is guarded
// by view_mu_.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "agent/config.hpp"
#include "core/log/log.hpp"
#include "core/proto/plan.hpp"
#include "core/world/clock.hpp"

namespace drover::agent {

// A line for whoever supervises the agent (docs/FORMATS.md, "Agent events").
using EventSink = std::function<void(const nlohmann::json&)>;

class Agent {
 public:
  static Result<std::unique_ptr<Agent>> start(const AgentConfig& config, const Clock& clock,
                                              Logger& log, EventSink events);
  ~Agent();  // stops the agent's threads; services keep running

  // Blocks until stop is requested (polled every 100 ms).
  void run(const std::function<bool()>& stop_requested);

  // A plan handed over by a peer or an operator: checked like any other.
  void hand_over(proto::PlanBundle bundle);
  // Pull now instead of at the next poll.
  void trigger();

  nlohmann::json status() const;
  std::uint16_t control_port() const;
  std::uint16_t mesh_port() const;

  struct Impl;

 private:
  explicit Agent(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace drover::agent
