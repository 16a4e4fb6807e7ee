#include "coordinator/plans/plan_issuer.hpp"

namespace drover::coordinator {

Result<proto::PlanBundle> PlanIssuer::issue(proto::Plan plan) {
  std::lock_guard lock(mu_);
  DROVER_ASSIGN(plan.seq, store_.next_plan_seq(plan.service));
  const OnlineKey online = gateway_.online_key();
  DROVER_ASSIGN(proto::PlanBundle bundle, proto::sign_plan(plan, online.key, online.cert));
  DROVER_TRY(store_.put_plan(plan.service, plan.seq, proto::encode_bundle(bundle), plan.hosts));
  gateway_.announce(plan.service, plan.seq);
  return bundle;
}

}  // namespace drover::coordinator
