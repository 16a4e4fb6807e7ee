// A deploy's plan revisions: "these hosts run this artifact", with every
// layer the artifact's manifest lists (docs/FORMATS.md, "Plans"), issued
// through the plan issuer.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "coordinator/plans/plan_issuer.hpp"
#include "coordinator/store/deploy_record.hpp"
#include "core/hash/sha256.hpp"

namespace drover::coordinator {

// The artifact's manifest bytes (to list its layers in plans).
using ManifestOf = std::function<Result<std::string>(const ContentId&)>;

struct PlanDefaults {
  std::string tracker;                  // the mesh tracker's URL, written into plans
  std::int64_t validity_s = 24 * 3600;  // plans expire this long after issue
};

// The most hosts one revision names: a rollback of 1,000 hosts is 8
// revisions, so each host fetches and verifies a plan of 128 names, not
// 1,000 (with every host fetching its own, the bytes of a whole-fleet plan
// grow with the square of the fleet).
inline constexpr std::size_t kHostsPerRevision = 128;

// Builds, signs, stores and announces the plan revision "hosts run artifact",
// routed as route says (its strategy keys): one revision per
// kHostsPerRevision hosts.
Status issue_plan(PlanIssuer& issuer, const ManifestOf& manifests, const PlanDefaults& defaults,
                  const DeployRecord& d, const std::string& artifact,
                  const std::vector<std::string>& hosts, const PlanRoute& route,
                  std::int64_t now_s);

}  // namespace drover::coordinator
