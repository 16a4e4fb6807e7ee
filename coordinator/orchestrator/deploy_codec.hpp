// A deploy record on disk, drover.deploy.v1 (docs/FORMATS.md, "Deploy
// records"): canonical JSON, read back exactly as written.
#pragma once

#include <string>
#include <string_view>

#include "coordinator/orchestrator/deploy_machine.hpp"
#include "core/base/result.hpp"

namespace drover::coordinator {

std::string encode_deploy(const DeployRecord& d);
Result<DeployRecord> decode_deploy(std::string_view bytes);
// The state named by deploy_state_name.
Result<DeployState> parse_deploy_state(std::string_view name);

}  // namespace drover::coordinator
