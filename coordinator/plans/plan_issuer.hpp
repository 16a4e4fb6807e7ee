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
  // The same plan as revisions of at most max_hosts hosts each (consecutive
  // seqs, stored in one transaction, announced once, by the last seq): each
  // host fetches a plan the size of its share, not of the whole list.
  Status issue_split(proto::Plan plan, std::size_t max_hosts);

 private:
  CoordinatorStore& store_;
  PlanSigner& signer_;
  Announce announce_;
  std::mutex mu_;  // one revision of a service at a time, in seq order
};

}  // namespace drover::coordinator
