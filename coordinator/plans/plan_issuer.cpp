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

Status PlanIssuer::issue_split(proto::Plan plan, std::size_t max_hosts) {
  if (max_hosts == 0) max_hosts = 1;
  if (plan.hosts.size() <= max_hosts) {
    DROVER_ASSIGN(auto bundle, issue(std::move(plan)));
    (void)bundle;
    return Ok{};
  }
  std::lock_guard lock(mu_);
  const std::vector<std::string> hosts = std::move(plan.hosts);
  const std::uint64_t count = (hosts.size() + max_hosts - 1) / max_hosts;
  DROVER_ASSIGN(const std::uint64_t first, store_.next_plan_seqs(plan.service, count));
  std::vector<CoordinatorStore::PlanRevision> revisions;
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::size_t from = static_cast<std::size_t>(i) * max_hosts;
    const std::size_t to = std::min(hosts.size(), from + max_hosts);
    plan.seq = first + i;
    plan.hosts.assign(hosts.begin() + static_cast<std::ptrdiff_t>(from),
                      hosts.begin() + static_cast<std::ptrdiff_t>(to));
    DROVER_ASSIGN(proto::PlanBundle bundle, signer_.sign(plan));
    revisions.push_back({plan.seq, proto::encode_bundle(bundle), plan.hosts});
  }
  DROVER_TRY(store_.put_plans(plan.service, revisions));
  if (announce_) announce_(plan.service, revisions.back().seq);
  return Ok{};
}

}  // namespace drover::coordinator
