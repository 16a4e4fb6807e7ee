#include "coordinator/artifacts/registry.hpp"

#include <nlohmann/json.hpp>

#include "core/canon/canonical_json.hpp"
#include "core/canon/json_fields.hpp"
#include "core/format/manifest.hpp"
#include "core/http/http.hpp"

namespace drover::coordinator {

using nlohmann::json;

Result<ArtifactRecord> ArtifactRegistry::register_from_origin(const ContentId& id,
                                                              const std::string& who) {
  DROVER_ASSIGN(auto known, store_.artifact(id.str()));
  if (known) return *known;
  if (origin_.empty()) {
    return make_error(Errc::refused, "this coordinator follows no origin feed to register from");
  }
  DROVER_ASSIGN(auto m, http::request("GET", origin_ + "/v1/manifests/" + id.hex(), "",
                                      std::chrono::seconds(30)));
  if (m.status == 404) {
    return make_error(Errc::not_found, "artifact_id " + id.str() + " is not in the origin's store");
  }
  if (m.status != 200) {
    return make_error(Errc::io, "origin feed answered " + std::to_string(m.status));
  }
  return register_manifest(id, m.body, "api", who);
}

Result<ArtifactRecord> ArtifactRegistry::register_manifest(const ContentId& id,
                                                           const std::string& bytes,
                                                           const std::string& source,
                                                           const std::string& who) {
  if (ContentId::of(bytes) != id) {
    return make_error(Errc::corrupt, "the manifest served for " + id.str() + " hashes to " +
                                         ContentId::of(bytes).str());
  }
  DROVER_ASSIGN(format::Manifest m, format::decode_manifest(bytes));
  ArtifactRecord rec;
  rec.artifact_id = id.str();
  rec.service = m.service;
  rec.git_sha = m.git_sha;
  rec.size_bytes = m.stored_bytes();
  rec.tree_bytes = m.tree_bytes();
  rec.layers = m.layers.size();
  rec.meta = m.meta;
  rec.registered_ms = unix_ms(clock_.now());
  rec.registered_by = who;
  rec.source = source;
  DROVER_ASSIGN(bool fresh, store_.put_artifact(rec, bytes));
  if (!fresh) {
    DROVER_ASSIGN(auto existing, store_.artifact(id.str()));
    if (!existing) return make_error(Errc::internal, "artifact " + id.str() + " vanished");
    return *existing;
  }
  log_.info("coordinator.artifact.registered",
            {{"artifact", id.str()}, {"service", m.service}, {"source", source}});
  AuditRecord r;
  r.at_ms = unix_ms(clock_.now());
  r.who = who;
  r.what = "artifact.registered";
  r.service = m.service;
  r.artifact = id.str();
  r.detail =
      *canon::encode(json{{"artifact", id.str()}, {"service", m.service}, {"source", source}});
  DROVER_TRY(store_.append_audit(r));
  return rec;
}

Result<std::string> ArtifactRegistry::manifest(const ContentId& id) {
  DROVER_ASSIGN(auto bytes, store_.manifest(id.str()));
  if (!bytes) return make_error(Errc::not_found, "artifact " + id.str() + " is not registered");
  return *bytes;
}

Status ArtifactRegistry::follow_feed_once(int wait_s) {
  DROVER_ASSIGN(auto last, store_.setting("feed_seq"));
  const std::string after = last.value_or("0");
  DROVER_ASSIGN(auto r, http::request("GET",
                                      origin_ + "/v1/artifacts?after=" + after +
                                          "&wait=" + std::to_string(wait_s),
                                      "", std::chrono::seconds(wait_s + 10)));
  if (r.status != 200) {
    return make_error(Errc::io, "origin feed answered " + std::to_string(r.status));
  }
  json j = json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("artifacts") || !j["artifacts"].is_array()) {
    return make_error(Errc::corrupt, "origin feed answer is not an artifact list");
  }
  for (const auto& a : j["artifacts"]) {
    // Every field is checked for its type before use: a feed entry of the
    // wrong shape is an error for this pass, never an exception on the
    // follower's thread.
    DROVER_ASSIGN(const canon::Fields entry, canon::Fields::of(a, "origin feed entry"));
    DROVER_ASSIGN(const std::string id, entry.str("artifact_id", 128));
    DROVER_ASSIGN(const auto push_seq, entry.opt_int("push_seq", 0, (std::int64_t{1} << 53) - 1));
    DROVER_ASSIGN(ContentId cid, ContentId::parse(id));
    DROVER_ASSIGN(auto known, store_.artifact(cid.str()));
    if (!known) {
      DROVER_ASSIGN(auto m, http::request("GET", origin_ + "/v1/manifests/" + cid.hex(), "",
                                          std::chrono::seconds(30)));
      if (m.status != 200) {
        return make_error(Errc::io,
                          "origin feed: manifest " + id + ": status " + std::to_string(m.status));
      }
      DROVER_ASSIGN(auto rec, register_manifest(cid, m.body, "feed", "system"));
      (void)rec;
    }
    DROVER_TRY(store_.put_setting("feed_seq", std::to_string(push_seq.value_or(0))));
  }
  return Ok{};
}

}  // namespace drover::coordinator
