// Connects the deploy driver to the rest of the coordinator: the fleet view
// comes from what agents reported (the store), plans go out through the plan
// issuer with the artifact's signed layer list.
#pragma once

#include <functional>
#include <string>

#include "coordinator/orchestrator/orchestrator.hpp"
#include "coordinator/plans/plan_issuer.hpp"

namespace drover::coordinator {

// What hosts of d's service report, with samples since the baseline window
// before d was created. A host counts as having failed d when it reported a
// failure for a plan seq at or above the one that named d's artifact for it.
FleetView store_fleet_view(CoordinatorStore& store, const DeployRecord& d,
                           std::int64_t baseline_window_ms, bool artifact_ready);

// The artifact's manifest bytes (to list its layers in plans).
using ManifestOf = std::function<Result<std::string>(const ContentId&)>;

struct PlanDefaults {
  std::string tracker;                  // the mesh tracker's URL, written into plans
  std::int64_t validity_s = 24 * 3600;  // plans expire this long after issue
};

// Builds, signs, stores and announces the plan revision "hosts run artifact".
Status issue_plan(PlanIssuer& issuer, const ManifestOf& manifests, const PlanDefaults& defaults,
                  const DeployRecord& d, const std::string& artifact,
                  const std::vector<std::string>& hosts, std::int64_t now_s);

}  // namespace drover::coordinator
