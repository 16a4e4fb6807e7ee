#include "coordinator/plans/plan_signer.hpp"

namespace drover::coordinator {

Result<proto::PlanBundle> OnlineKeySigner::sign(const proto::Plan& plan) {
  const OnlineKey key = current();
  return proto::sign_plan(plan, key.key, key.cert);
}

void OnlineKeySigner::rotate(OnlineKey key) {
  std::lock_guard lock(mu_);
  key_ = std::move(key);
}

OnlineKey OnlineKeySigner::current() const {
  std::lock_guard lock(mu_);
  return key_;
}

}  // namespace drover::coordinator
