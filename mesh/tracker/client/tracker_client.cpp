#include "mesh/tracker/client/tracker_client.hpp"

#include <nlohmann/json.hpp>

#include "core/http/http.hpp"

namespace drover::mesh {

Result<std::vector<Holder>> HttpTrackerClient::holders(const std::string& info_hash_hex) {
  DROVER_ASSIGN(
      http::Response r,
      http::request("GET", base_url_ + "/swarm?info_hash=" + info_hash_hex, "", timeout_));
  if (r.status != 200) {
    return make_error(Errc::io, "tracker " + base_url_ + " answered /swarm with status " +
                                    std::to_string(r.status));
  }
  const nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("complete") || !j["complete"].is_array()) {
    return make_error(Errc::corrupt, "tracker " + base_url_ + ": /swarm answer has no 'complete'");
  }
  std::vector<Holder> out;
  for (const auto& h : j["complete"]) {
    if (!h.is_object()) continue;
    Holder holder;
    const auto text = [&h](const char* key) {
      auto it = h.find(key);
      return it != h.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    // An unknown role counts as a peer: it is no source to wait for.
    if (!parse_role(text("role"), holder.role)) holder.role = NodeRole::peer;
    holder.region = text("region");
    holder.host = text("host");
    out.push_back(std::move(holder));
  }
  return out;
}

}  // namespace drover::mesh
