#include "agent/step/plan_check.hpp"

#include <algorithm>

namespace drover::agent {

const char* verdict_name(PlanVerdict v) {
  switch (v) {
    case PlanVerdict::apply: return "apply";
    case PlanVerdict::same: return "same";
    case PlanVerdict::refused: return "refused";
    case PlanVerdict::replay: return "replay";
  }
  return "?";
}

PlanCheck check_plan(const proto::PlanBundle& bundle, const HostView& me, std::uint64_t stored_seq,
                     std::int64_t now) {
  PlanCheck out;
  auto opened = proto::open_plan(bundle, me.trust, now);
  if (!opened.ok()) {
    out.reason = opened.error().message;
    return out;
  }
  out.opened = true;
  out.plan = std::move(opened->plan);
  out.cert = opened->cert;
  const proto::Plan& p = out.plan;
  const std::string what = "plan " + p.service + " seq " + std::to_string(p.seq);
  if (std::find(me.services.begin(), me.services.end(), p.service) == me.services.end()) {
    out.reason = what + " is for service '" + p.service + "', which this host does not run";
    return out;
  }
  if (!p.applies_to(me.host)) {
    out.reason = what + " does not list this host ('" + me.host + "')";
    return out;
  }
  if (p.seq == stored_seq) {
    out.verdict = PlanVerdict::same;
    return out;
  }
  if (p.seq < stored_seq) {
    out.verdict = PlanVerdict::replay;
    out.reason =
        what + " is older than the stored seq " + std::to_string(stored_seq) + ": a replayed plan";
    return out;
  }
  if (now >= p.expires_at) {
    out.reason =
        what + " expired at " + std::to_string(p.expires_at) + " (now " + std::to_string(now) + ")";
    return out;
  }
  if (p.issued_at > now + proto::kMaxClockSkewSeconds) {
    out.reason = what + " is issued at " + std::to_string(p.issued_at) +
                 ", more than 5 minutes after now (" + std::to_string(now) + ")";
    return out;
  }
  out.verdict = PlanVerdict::apply;
  return out;
}

}  // namespace drover::agent
