#include "coordinator/store/artifact_record.hpp"

#include <nlohmann/json.hpp>

#include "core/canon/canonical_json.hpp"

namespace drover::coordinator {

using nlohmann::json;

std::string encode_artifact_record(const ArtifactRecord& a) {
  const json j = {{"artifact_id", a.artifact_id},
                  {"service", a.service},
                  {"git_sha", a.git_sha},
                  {"size_bytes", a.size_bytes},
                  {"tree_bytes", a.tree_bytes},
                  {"layers", a.layers},
                  {"meta", a.meta},
                  {"registered_ms", a.registered_ms},
                  {"registered_by", a.registered_by},
                  {"source", a.source}};
  return *canon::encode(j);
}

Result<ArtifactRecord> decode_artifact_record(std::string_view bytes) {
  const json j = json::parse(bytes, nullptr, false);
  if (!j.is_object()) return make_error(Errc::corrupt, "an artifact record is unreadable");
  try {
    ArtifactRecord a;
    a.artifact_id = j.value("artifact_id", "");
    a.service = j.value("service", "");
    a.git_sha = j.value("git_sha", "");
    a.size_bytes = j.value("size_bytes", std::uint64_t{0});
    a.tree_bytes = j.value("tree_bytes", std::uint64_t{0});
    a.layers = j.value("layers", std::uint64_t{0});
    a.meta = j.value("meta", std::map<std::string, std::string>());
    a.registered_ms = j.value("registered_ms", std::int64_t{0});
    a.registered_by = j.value("registered_by", "");
    a.source = j.value("source", "");
    return a;
  } catch (const json::exception& e) {
    return make_error(Errc::corrupt, std::string("artifact record: ") + e.what());
  }
}

}  // namespace drover::coordinator
