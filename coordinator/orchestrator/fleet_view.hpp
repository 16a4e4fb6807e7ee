// The deploy driver's view of the fleet, from what agents reported (the
// store): what each host of the deploy's service runs, its health samples
// since the baseline window before the deploy, and which hosts failed it.
#pragma once

#include "coordinator/orchestrator/deploy_machine.hpp"
#include "coordinator/store/coordinator_store.hpp"

namespace drover::coordinator {

// A host counts as having failed d when it reported a failure for a plan seq
// at or above the one that named d's artifact for it. Nothing readable in
// the store: an empty view (waits run into their deadlines).
FleetView store_fleet_view(CoordinatorStore& store, const DeployRecord& d,
                           std::int64_t baseline_window_ms, bool artifact_ready);

}  // namespace drover::coordinator
