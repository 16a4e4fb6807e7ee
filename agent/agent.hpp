// The host agent (docs/AGENT.md): it checks each plan, fetches the artifact's
// layers through the mesh into its cache, materializes the release, switches
// to it, supervises the service, samples and pushes its health, and reverts
// locally. It keeps everything it needs to run on disk, so a restart needs no
// coordinator: the service comes back on its current release from local
// state alone, and the agent converges to the newest valid plan once it can.
//
// What to do is decided by the step function (agent/step); this class
// assembles the parts that carry it out and the threads that feed it:
// the cycle thread pulls plans and runs each service's steps (everything
// that changes a service's release happens there, in order); a health
// thread samples; a report thread pushes; an announcement thread listens;
// the status endpoint runs on its own thread.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "agent/config.hpp"
#include "agent/context.hpp"
#include "core/log/log.hpp"
#include "core/proto/plan.hpp"

namespace drover::agent {

class Agent {
 public:
  // The world is borrowed for the agent's lifetime.
  static Result<std::unique_ptr<Agent>> start(const AgentConfig& config, AgentWorld world,
                                              Logger& log, EventSink events);
  ~Agent();  // stops the agent's threads; services keep running

  // Blocks until stop is requested (polled every 100 ms).
  void run(const std::function<bool()>& stop_requested);

  // A plan handed over by a peer or an operator: checked like any other.
  // False when kMaxHandedOver bundles already wait.
  bool hand_over(proto::PlanBundle bundle);
  // Pull now instead of at the next poll.
  void trigger();

  // The status endpoint's JSON object.
  std::string status() const;
  std::uint16_t control_port() const;
  std::uint16_t mesh_port() const;
  std::uint16_t metrics_port() const;  // 0 when metrics_listen is not set

  struct Impl;

 private:
  explicit Agent(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace drover::agent
