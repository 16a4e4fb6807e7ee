// Issues plan revisions (docs/COORDINATOR.md): assigns the service's next
// seq (stored first, so it never repeats), signs through the plan signer,
// stores the revision as the plan of every host it names, and announces it.
// Thread-safe.
#pragma once

#include <functional>
#include <mutex>

#include "coordinator/plans/plan_signer.hpp"
#include "coordinator/store/coordinator_store.hpp"
#include "core/proto/plan.hpp"

namespace drover::coordinator {

class PlanIssuer {
 public:
  // Best effort: "plan seq of service exists" (agents also poll).
  using Announce = std::function<void(const std::string& service, std::uint64_t seq)>;

  PlanIssuer(CoordinatorStore& store, PlanSigner& signer, Announce announce)
      : store_(store), signer_(signer), announce_(std::move(announce)) {}
  // plan.seq is ignored and set here. Returns the signed bundle.
  Result<proto::PlanBundle> issue(proto::Plan plan);

 private:
  CoordinatorStore& store_;
  PlanSigner& signer_;
  Announce announce_;
  std::mutex mu_;  // one revision of a service at a time, in seq order
};

}  // namespace drover::coordinator
