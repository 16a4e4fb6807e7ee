// Issues plan revisions (docs/COORDINATOR.md): assigns the service's next
// seq (stored first, so it never repeats), signs with the online key,
// stores the revision as the plan of every host it names, and announces it.
// Thread-safe.
#pragma once

#include <functional>
#include <mutex>

#include "coordinator/gateway/agent_gateway.hpp"
#include "core/proto/plan.hpp"

namespace drover::coordinator {

class PlanIssuer {
 public:
  PlanIssuer(CoordinatorStore& store, AgentGateway& gateway) : store_(store), gateway_(gateway) {}
  // plan.seq is ignored and set here. Returns the signed bundle.
  Result<proto::PlanBundle> issue(proto::Plan plan);

 private:
  CoordinatorStore& store_;
  AgentGateway& gateway_;
  std::mutex mu_;  // one revision of a service at a time, in seq order
};

}  // namespace drover::coordinator
