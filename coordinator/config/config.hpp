// drover-coordinator's config file, drover.coordinator-config.v1
// (docs/FORMATS.md, "Coordinator config"): where its state lives, its online
// key, where it listens, the origin it follows. Every bad field is named.
#pragma once

#include <string>

#include "coordinator/api/http_api.hpp"
#include "coordinator/service/coordinator.hpp"
#include "core/world/filesystem.hpp"

namespace drover::coordinator {

struct CoordinatorConfig {
  CoordinatorOptions coordinator;
  ApiOptions api;
  // "HOST:PORT" of a GET-only metrics listener without tokens ("" none).
  std::string metrics_listen;
};

// Reads the file and everything it points to (keys, the webhook secret).
Result<CoordinatorConfig> load_coordinator_config(Filesystem& fs, const fs::path& path);

}  // namespace drover::coordinator
