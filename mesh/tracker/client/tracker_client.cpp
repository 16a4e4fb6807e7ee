#include "mesh/tracker/client/tracker_client.hpp"

#include <algorithm>
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

Result<Vouched> fetch_vouched(const std::string& base_url, const std::string& token,
                              std::chrono::milliseconds timeout) {
  DROVER_ASSIGN(http::Response r,
                http::request("GET", base_url + "/vouched?token=" + http::percent_encode(token), "",
                              timeout));
  const nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
  if (r.status != 200) {
    std::string why = "status " + std::to_string(r.status);
    if (j.is_object() && j.contains("error") && j["error"].is_string())
      why += ": " + j["error"].get<std::string>().substr(0, 300);
    return make_error(r.status == 403 ? Errc::refused : Errc::io,
                      "tracker " + base_url + " answered /vouched with " + why);
  }
  if (!j.is_object() || !j.contains("addresses") || !j["addresses"].is_array() ||
      j["addresses"].size() > 1'000'000) {
    return make_error(Errc::corrupt,
                      "tracker " + base_url + ": /vouched answer has no list of 'addresses'");
  }
  Vouched out;
  for (const auto& a : j["addresses"]) {
    std::string address = a.is_string() ? canonical_address(a.get<std::string>()) : "";
    if (address.empty()) {
      return make_error(Errc::corrupt,
                        "tracker " + base_url + ": /vouched answer holds a non-address");
    }
    out.addresses.push_back(std::move(address));
  }
  if (auto it = j.find("interval"); it != j.end() && it->is_number_integer()) {
    out.interval = std::chrono::seconds(std::clamp<std::int64_t>(it->get<std::int64_t>(), 1, 3600));
  }
  return out;
}

}  // namespace drover::mesh
