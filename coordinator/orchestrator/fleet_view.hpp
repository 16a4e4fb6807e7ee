// The deploy driver's view of the fleet, from what agents reported (the
// store): where each host of the deploy's service is, what it runs, its
// health samples since the baseline window before the run entered its
// current environment, and which hosts failed it.
#pragma once

#include "coordinator/orchestrator/deploy_machine.hpp"
#include "coordinator/store/coordinator_store.hpp"

namespace drover::coordinator {

// A host counts as having failed d when it reported a failure for a plan seq
// at or above the one that named d's artifact for it. Nothing readable in
// the store: an empty view (waits run into their deadlines).
// hosts: where the service's enrolled hosts are (the caller may keep them
// between ticks: they change only with enrollments).
FleetView store_fleet_view(CoordinatorStore& store, const DeployRecord& d, const RunPlan& plan,
                           bool artifact_ready, std::vector<HostPlace> hosts);

// Where the enrolled hosts of service are, from the store.
Result<std::vector<HostPlace>> service_hosts(CoordinatorStore& store, const std::string& service);

}  // namespace drover::coordinator
