// The JSON forms of a pipeline (docs/FORMATS.md, "Pipeline records"): the
// body of POST /pipelines (every error names its field), the stored record,
// and a deploy's config snapshot. The snapshot's bytes are hashed into the
// audit chain, so its encoding never changes without a format version.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "coordinator/pipelines/pipeline.hpp"

namespace drover::coordinator {

// A pipeline as a client sends it; version, updated_ms and updated_by are
// the caller's to set.
Result<Pipeline> pipeline_from_json(const nlohmann::json& body);
// A strategy object (the pipeline's, or a deploy's strategy_override); where
// names it in errors.
Result<Strategy> strategy_from_json(const nlohmann::json& value, const std::string& where);
nlohmann::json strategy_to_json(const Strategy& s);
// The stored and shown form.
nlohmann::json pipeline_to_json(const Pipeline& p);

std::string encode_pipeline_record(const Pipeline& p);
Result<Pipeline> decode_pipeline_record(std::string_view bytes);

// Pipelines carry fractional thresholds, which canonical JSON does not
// encode; nlohmann's dump is deterministic (sorted keys, shortest round-trip
// numbers), so the snapshot's hash is stable.
std::string encode_config_snapshot(const Pipeline& pipeline, const std::string& env,
                                   const std::string& artifact_id, const std::string& git_sha,
                                   const std::string& started_by,
                                   const std::string& redeploy_of = "");
// Reads what it can: an unreadable pipeline leaves DeployConfig::pipeline empty.
DeployConfig decode_config_snapshot(std::string_view bytes);

}  // namespace drover::coordinator
