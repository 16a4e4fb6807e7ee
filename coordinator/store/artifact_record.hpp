// An artifact the coordinator knows (docs/FORMATS.md, "Artifact records"):
// what its manifest says, and who registered it from where. Stored as
// canonical JSON beside the manifest's bytes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "core/base/result.hpp"

namespace drover::coordinator {

struct ArtifactRecord {
  std::string artifact_id, service, git_sha;
  std::uint64_t size_bytes = 0;  // the layers' stored bytes
  std::uint64_t tree_bytes = 0;  // the files' bytes
  std::uint64_t layers = 0;
  std::map<std::string, std::string> meta;  // the manifest's build metadata
  std::int64_t registered_ms = 0;
  std::string registered_by;
  std::string source;  // "feed" or "api"
};

std::string encode_artifact_record(const ArtifactRecord& a);
Result<ArtifactRecord> decode_artifact_record(std::string_view bytes);

}  // namespace drover::coordinator
