#include "agent/config.hpp"

#include <nlohmann/json.hpp>
#include <set>

#include "core/format/manifest.hpp"

namespace drover::agent {
namespace {

using nlohmann::json;

Error bad(const std::string& what) {
  return make_error(Errc::invalid_argument, "agent config: " + what);
}

Status only(const json& j, const std::set<std::string>& keys, const std::string& where) {
  for (const auto& [k, v] : j.items()) {
    if (!keys.count(k)) return bad(where + "unknown field '" + k + "'");
  }
  return Ok{};
}

Result<std::string> str(const json& j, const char* key, const std::string& where, bool required,
                        std::string fallback = "") {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) return bad(where + "missing field '" + key + "'");
    return fallback;
  }
  if (!it->is_string()) return bad(where + "field '" + key + "' must be a string");
  return it->get<std::string>();
}

Result<std::int64_t> integer(const json& j, const char* key, const std::string& where,
                             std::int64_t fallback, std::int64_t lo, std::int64_t hi) {
  auto it = j.find(key);
  if (it == j.end()) return fallback;
  if (!it->is_number_integer() || it->get<std::int64_t>() < lo || it->get<std::int64_t>() > hi) {
    return bad(where + "field '" + key + "' must be an integer from " + std::to_string(lo) +
               " to " + std::to_string(hi));
  }
  return it->get<std::int64_t>();
}

Result<std::vector<std::string>> argv(const json& j, const char* key, const std::string& where) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end()) return out;
  if (!it->is_array()) return bad(where + "field '" + key + "' must be a list of strings");
  for (const auto& a : *it) {
    if (!a.is_string()) return bad(where + "field '" + key + "' must be a list of strings");
    out.push_back(a.get<std::string>());
  }
  return out;
}

Result<ServiceConfig> read_service(const json& j) {
  if (!j.is_object()) return bad("every service must be an object");
  ServiceConfig s;
  DROVER_ASSIGN(s.name, str(j, "name", "service: ", true));
  if (auto st = format::validate_service(s.name); !st.ok()) {
    return bad("service name: " + st.error().message);
  }
  const std::string where = "service '" + s.name + "': ";
  DROVER_TRY(only(j,
                  {"name", "start", "stop", "health", "start_timeout_s", "stop_timeout_s", "port",
                   "blue_green", "router_file", "flags_file"},
                  where));
  DROVER_ASSIGN(s.start, argv(j, "start", where));
  DROVER_ASSIGN(s.stop, argv(j, "stop", where));
  DROVER_ASSIGN(s.health, str(j, "health", where, false));
  if (j.contains("start_timeout_s")) {
    DROVER_ASSIGN(auto t, integer(j, "start_timeout_s", where, 30, 1, 3600));
    s.start_timeout_s = static_cast<int>(t);
  }
  if (j.contains("stop_timeout_s")) {
    DROVER_ASSIGN(auto t, integer(j, "stop_timeout_s", where, 10, 1, 3600));
    s.stop_timeout_s = static_cast<int>(t);
  }
  DROVER_ASSIGN(auto port, integer(j, "port", where, 0, 0, 65535));
  s.port = static_cast<std::uint16_t>(port);
  if (auto bg = j.find("blue_green"); bg != j.end()) {
    if (!bg->is_object()) return bad(where + "'blue_green' must be {\"ports\":[blue, green]}");
    DROVER_TRY(only(*bg, {"ports"}, where + "blue_green: "));
    auto ports = bg->find("ports");
    if (ports == bg->end() || !ports->is_array() || ports->size() != 2 ||
        !(*ports)[0].is_number_unsigned() || !(*ports)[1].is_number_unsigned() ||
        (*ports)[0] == (*ports)[1] || (*ports)[0].get<std::uint64_t>() > 65535 ||
        (*ports)[1].get<std::uint64_t>() > 65535 || (*ports)[0] == 0 || (*ports)[1] == 0) {
      return bad(where + "blue_green.ports must be two different ports 1-65535");
    }
    s.blue_green = true;
    s.blue_port = (*ports)[0].get<std::uint16_t>();
    s.green_port = (*ports)[1].get<std::uint16_t>();
  }
  DROVER_ASSIGN(std::string router, str(j, "router_file", where, false));
  DROVER_ASSIGN(std::string flags, str(j, "flags_file", where, false));
  s.router_file = router;
  s.flags_file = flags;
  return s;
}

}  // namespace

const ServiceConfig* AgentConfig::service(std::string_view name) const {
  for (const auto& s : services) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

Result<AgentConfig> parse_config(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  DROVER_TRY(only(
      j,
      {"format", "host", "region", "cluster", "state_dir", "root_key", "coordinator", "join_token",
       "poll_interval_ms", "health_interval_ms", "request_timeout_ms", "fetch_stall_timeout_s",
       "keep_releases", "report_buffer_items", "mesh", "control_listen", "services"},
      ""));
  DROVER_ASSIGN(std::string format, str(j, "format", "", true));
  if (format != "drover.agent-config.v1") {
    return make_error(Errc::unsupported,
                      "agent config: format '" + format + "' is not drover.agent-config.v1");
  }
  AgentConfig c;
  DROVER_ASSIGN(c.host, str(j, "host", "", true));
  for (const auto& [what, value] : {std::pair{"host", &c.host}}) {
    if (auto st = format::validate_service(*value); !st.ok()) {
      return bad(std::string(what) + ": " + st.error().message);
    }
  }
  DROVER_ASSIGN(c.region, str(j, "region", "", false));
  DROVER_ASSIGN(c.cluster, str(j, "cluster", "", false));
  DROVER_ASSIGN(std::string state, str(j, "state_dir", "", true));
  DROVER_ASSIGN(std::string root, str(j, "root_key", "", true));
  c.state_dir = state;
  c.root_key = root;
  DROVER_ASSIGN(c.join_token, str(j, "join_token", "", false));
  auto coord = j.find("coordinator");
  if (coord == j.end() || !coord->is_object()) {
    return bad("missing 'coordinator': {\"requests\":URL, \"announcements\":URL}");
  }
  DROVER_TRY(only(*coord, {"requests", "announcements"}, "coordinator: "));
  DROVER_ASSIGN(c.coordinator_requests, str(*coord, "requests", "coordinator: ", true));
  DROVER_ASSIGN(c.coordinator_announcements, str(*coord, "announcements", "coordinator: ", false));
  DROVER_ASSIGN(auto poll, integer(j, "poll_interval_ms", "", 30000, 50, 86'400'000));
  DROVER_ASSIGN(auto health, integer(j, "health_interval_ms", "", 5000, 50, 3'600'000));
  DROVER_ASSIGN(auto req, integer(j, "request_timeout_ms", "", 5000, 50, 600'000));
  DROVER_ASSIGN(auto stall, integer(j, "fetch_stall_timeout_s", "", 60, 1, 86400));
  DROVER_ASSIGN(auto keep, integer(j, "keep_releases", "", 3, 1, 100));
  DROVER_ASSIGN(auto buffer, integer(j, "report_buffer_items", "", 4096, 16, 1'000'000));
  c.poll_interval = std::chrono::milliseconds(poll);
  c.health_interval = std::chrono::milliseconds(health);
  c.request_timeout = std::chrono::milliseconds(req);
  c.fetch_stall_timeout = std::chrono::seconds(stall);
  c.keep_releases = static_cast<std::size_t>(keep);
  c.report_buffer_items = static_cast<std::size_t>(buffer);
  if (auto mesh = j.find("mesh"); mesh != j.end()) {
    if (!mesh->is_object()) return bad("'mesh' must be an object");
    DROVER_TRY(
        only(*mesh, {"listen", "upload_rate", "download_rate", "announce_interval_s"}, "mesh: "));
    DROVER_ASSIGN(c.mesh_listen, str(*mesh, "listen", "mesh: ", false, c.mesh_listen));
    DROVER_ASSIGN(auto up, integer(*mesh, "upload_rate", "mesh: ", 0, 0, 1ll << 40));
    DROVER_ASSIGN(auto down, integer(*mesh, "download_rate", "mesh: ", 0, 0, 1ll << 40));
    DROVER_ASSIGN(auto every, integer(*mesh, "announce_interval_s", "mesh: ", 30, 1, 3600));
    c.mesh_upload_rate = static_cast<std::uint64_t>(up);
    c.mesh_download_rate = static_cast<std::uint64_t>(down);
    c.mesh_announce_interval_s = static_cast<int>(every);
  }
  DROVER_ASSIGN(c.control_listen, str(j, "control_listen", "", false, c.control_listen));
  auto services = j.find("services");
  if (services == j.end() || !services->is_array() || services->empty()) {
    return bad("'services' must list at least one service");
  }
  for (const auto& s : *services) {
    DROVER_ASSIGN(ServiceConfig sc, read_service(s));
    if (c.service(sc.name)) return bad("service '" + sc.name + "' is listed twice");
    c.services.push_back(std::move(sc));
  }
  return c;
}

Result<AgentConfig> load_config(Filesystem& fs, const fs::path& path) {
  auto text = fs.read_file(path, 1 << 20);
  if (!text.ok()) return text.error().context("agent config");
  auto c = parse_config(*text);
  if (!c.ok()) return c.error().context(path.string());
  return c;
}

}  // namespace drover::agent
