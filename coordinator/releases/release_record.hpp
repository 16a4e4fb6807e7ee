// A release of several services as the coordinator records it,
// drover.release.v1 (docs/FORMATS.md, "Releases"): its members (one run per
// service, in dependency order), its environments in the order every member's
// pipeline agrees on, its gates, its failures and its outcome. Canonical JSON,
// read back exactly as written.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/store/deploy_record.hpp"
#include "core/base/result.hpp"

namespace drover::coordinator {

// Services one release may change at most.
inline constexpr std::size_t kMaxReleaseServices = 32;

enum class ReleaseState { running, succeeded, failed, rolled_back, rejected, superseded };
const char* release_state_name(ReleaseState s);

enum class ReleasePolicy {
  failed_only,  // a failed service rolls back; services not depending on it go on
  all,          // every service the release changed in that environment rolls back
};
const char* release_policy_name(ReleasePolicy p);
Result<ReleasePolicy> parse_release_policy(std::string_view name);

struct ReleaseMember {
  std::string service, pipeline_id, artifact, deploy_id;
  std::vector<std::string> depends_on;  // services of this release
};

// The release's gate of one environment: approvals given once for every
// member that waits there.
struct ReleaseGate {
  std::string env;
  int required = 0;  // the most any member's gate there asks
  std::vector<GateAct> approvals;
  std::optional<GateAct> rejection;  // comment: the reason
};

struct ReleaseFailure {
  std::string env, service, reason;
};

struct ReleaseRecord {
  std::string id;
  std::string started_by;  // the person (gates compare persons)
  std::string who;         // the token that created it
  ReleasePolicy policy = ReleasePolicy::failed_only;
  ReleaseState state = ReleaseState::running;
  std::vector<std::string> environments;
  std::vector<ReleaseMember> services;  // dependencies before their dependents
  std::vector<ReleaseGate> gates;
  std::vector<ReleaseFailure> failures;  // each failed member once, in the order seen
  // Members the release could not roll back (policy all), and why: it goes on
  // without them.
  std::map<std::string, std::string> left = {};
  std::int64_t created_ms = 0, completed_ms = 0;
  std::string reason;

  const ReleaseMember* member(const std::string& service) const;
  ReleaseGate* gate(const std::string& env);
  const ReleaseGate* gate(const std::string& env) const;
};

std::string encode_release(const ReleaseRecord& r);
Result<ReleaseRecord> decode_release(std::string_view bytes);

}  // namespace drover::coordinator
