// The agent's verdict on a plan (docs/FORMATS.md, "Plan", rules 1-6): what
// the bundle proves (signature, certificate, format) and what this host makes
// of it (for me, newer than what I ran, not expired). Pure: the caller fixes
// "now" once per cycle and passes the stored seq and trust floor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/proto/plan.hpp"

namespace drover::agent {

enum class PlanVerdict {
  apply,    // a valid plan above the stored seq: act on it
  same,     // the seq already acted on: nothing to do
  refused,  // forged, malformed, expired, not for this host...: reported
  replay,   // a valid plan below the stored seq: reported as a replay attempt
};
const char* verdict_name(PlanVerdict v);

struct PlanCheck {
  PlanVerdict verdict = PlanVerdict::refused;
  std::string reason;  // refused and replay: what was wrong, with the values
  proto::Plan plan;    // set unless the bundle did not open
  sign::KeyCert cert;
  bool opened = false;
};

struct HostView {
  std::string host;
  std::vector<std::string> services;
  sign::TrustRoot trust;  // pinned root and the trust floor (min cert version)
};

PlanCheck check_plan(const proto::PlanBundle& bundle, const HostView& me, std::uint64_t stored_seq,
                     std::int64_t now);

}  // namespace drover::agent
