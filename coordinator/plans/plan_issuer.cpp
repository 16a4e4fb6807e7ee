#include "coordinator/plans/plan_issuer.hpp"

namespace drover::coordinator {

Result<proto::PlanBundle> PlanIssuer::issue(proto::Plan plan) {
  std::lock_guard lock(mu_);
  DROVER_ASSIGN(plan.seq, store_.next_plan_seq(plan.service));
  DROVER_ASSIGN(proto::PlanBundle bundle, signer_.sign(plan));
  DROVER_TRY(store_.put_plan(plan.service, plan.seq, proto::encode_bundle(bundle), plan.hosts));
  if (announce_) announce_(plan.service, plan.seq);
  return bundle;
}

}  // namespace drover::coordinator
