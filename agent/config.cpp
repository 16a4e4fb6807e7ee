#include "agent/config.hpp"

#include <arpa/inet.h>
#include <unistd.h>

#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/base/name.hpp"
#include "core/canon/json_fields.hpp"
#include "core/format/manifest.hpp"
#include "core/http/http.hpp"
#include "core/nng/nng.hpp"

namespace drover::agent {
namespace {

using canon::Empty;
using canon::Fields;
using nlohmann::json;

// Config strings are bounded by the file alone (load_config reads at most 1 MiB).
constexpr std::size_t kAnySize = std::numeric_limits<std::size_t>::max();

Error bad(const std::string& what) {
  return make_error(Errc::invalid_argument, what);
}

bool is_loopback(const std::string& address) {
  if (address == "::1" || address == "localhost") return true;
  in_addr a{};
  return ::inet_pton(AF_INET, address.c_str(), &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

// The port of an nginx listen address: ADDRESS:PORT with ADDRESS an IPv4
// address, a bracketed IPv6 address or *, and nothing else (the text is
// rendered into nginx's configuration). nullopt when it is not that.
std::optional<std::uint16_t> nginx_listen_port(const std::string& text) {
  const std::size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return std::nullopt;
  const std::string host = text.substr(0, colon), port = text.substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  const unsigned long n = std::stoul(port);
  if (n == 0 || n > 65535) return std::nullopt;
  bool ok = host == "*";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    in6_addr a6{};
    ok = ::inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &a6) == 1;
  } else if (!ok) {
    in_addr a4{};
    ok = ::inet_pton(AF_INET, host.c_str(), &a4) == 1;
  }
  if (!ok) return std::nullopt;
  return static_cast<std::uint16_t>(n);
}

// Text rendered into nginx's configuration: none of its syntax, no control bytes.
bool rendered_safe(const std::string& text) {
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return text.find_first_of(" ;{}\"'$#\\") == std::string::npos;
}

Result<ServiceConfig> read_service(const Fields& f) {
  ServiceConfig s;
  DROVER_ASSIGN(s.name, f.str("name", kAnySize, Empty::allowed));
  if (auto st = format::validate_service(s.name); !st.ok()) {
    return bad("service name: " + st.error().message);
  }
  DROVER_TRY(f.only({"name", "start", "stop", "health", "start_timeout_s", "stop_timeout_s", "port",
                     "blue_green", "router_file", "router", "flags_file", "flags_format", "user",
                     "group", "verify"}));
  if (f.has("verify")) {
    DROVER_ASSIGN(s.verify, f.str_list("verify", 64, kAnySize, Empty::allowed));
    if (s.verify.empty()) return bad(f.path("verify") + " is empty");
  }
  DROVER_ASSIGN(s.start, f.str_list("start", kAnySize, kAnySize, Empty::allowed));
  DROVER_ASSIGN(s.stop, f.str_list("stop", kAnySize, kAnySize, Empty::allowed));
  DROVER_ASSIGN(auto health, f.opt_str("health", kAnySize));
  s.health = health.value_or("");
  DROVER_ASSIGN(auto start_timeout, f.opt_int("start_timeout_s", 1, 3600));
  if (start_timeout) s.start_timeout_s = static_cast<int>(*start_timeout);
  DROVER_ASSIGN(auto stop_timeout, f.opt_int("stop_timeout_s", 1, 3600));
  if (stop_timeout) s.stop_timeout_s = static_cast<int>(*stop_timeout);
  DROVER_ASSIGN(auto port, f.opt_int("port", 0, 65535));
  s.port = static_cast<std::uint16_t>(port.value_or(0));
  DROVER_ASSIGN(auto bg, f.opt_object("blue_green"));
  if (bg) {
    DROVER_TRY(bg->only({"ports"}));
    // A pair of distinct ports: checked by hand, as a pair.
    const json* ports = bg->raw("ports");
    auto port_at = [&](std::size_t i) {
      const json& p = (*ports)[i];
      return p.is_number_unsigned() && p.get<std::uint64_t>() >= 1 &&
                     p.get<std::uint64_t>() <= 65535
                 ? p.get<std::uint16_t>()
                 : std::uint16_t{0};
    };
    if (ports == nullptr || !ports->is_array() || ports->size() != 2 || port_at(0) == 0 ||
        port_at(1) == 0 || port_at(0) == port_at(1)) {
      return bad(bg->path("ports") + " must be two different ports 1-65535");
    }
    s.blue_green = true;
    s.blue_port = port_at(0);
    s.green_port = port_at(1);
  }
  DROVER_ASSIGN(auto router, f.opt_str("router_file", kAnySize));
  DROVER_ASSIGN(auto flags, f.opt_str("flags_file", kAnySize));
  s.router_file = router.value_or("");
  DROVER_ASSIGN(auto flags_format, f.opt_str("flags_format", 64));
  if (flags_format && *flags_format != "flagd" && *flags_format != "drover.flags.v1") {
    return bad(f.path("flags_format") + " must be \"flagd\" or \"drover.flags.v1\"");
  }
  s.flags_flagd = flags_format && *flags_format == "flagd";
  DROVER_ASSIGN(auto routing, f.opt_object("router"));
  if (routing) {
    if (!s.blue_green) return bad(f.path("router") + " needs blue_green (two slots to route)");
    DROVER_ASSIGN(std::string kind, routing->str("kind", 16));
    if (kind == "file") {
      DROVER_TRY(routing->only({"kind", "file"}));
      if (router) return bad(f.path("router") + ": give the file here or router_file, not both");
      DROVER_ASSIGN(auto file, routing->opt_str("file", kAnySize));
      s.router_file = file.value_or("");
    } else if (kind == "nginx") {
      DROVER_TRY(routing->only({"kind", "conf_file", "listen", "preview_listen", "access_log",
                                "command", "preview_probe"}));
      if (router) return bad(f.path("router") + ": nginx routes the service, not router_file");
      ServiceConfig::Nginx n;
      DROVER_ASSIGN(std::string conf, routing->str("conf_file", kAnySize));
      n.conf_file = conf;
      if (!n.conf_file.is_absolute() || n.conf_file.extension() != ".conf") {
        return bad(routing->path("conf_file") + " must be an absolute path ending in .conf");
      }
      DROVER_ASSIGN(n.listen, routing->str("listen", 256));
      DROVER_ASSIGN(auto preview, routing->opt_str("preview_listen", 256));
      n.preview_listen = preview.value_or("");
      for (const auto& [field, value] : {std::pair<const char*, std::string>{"listen", n.listen},
                                         {"preview_listen", n.preview_listen}}) {
        if (value.empty() && std::string(field) == "preview_listen") continue;
        // Rendered into nginx's configuration: an address and a port, nothing else.
        if (!nginx_listen_port(value)) {
          return bad(routing->path(field) +
                     " must be ADDRESS:PORT: an IPv4 address, [IPv6] or *, and a port 1-65535");
        }
      }
      if (!n.preview_listen.empty() &&
          nginx_listen_port(n.listen) == nginx_listen_port(n.preview_listen)) {
        return bad(routing->path("preview_listen") + " must be on another port than listen");
      }
      DROVER_ASSIGN(auto log, routing->opt_str("access_log", kAnySize));
      n.access_log = log.value_or("");
      if (!n.access_log.empty() &&
          (!fs::path(n.access_log).is_absolute() || !rendered_safe(n.access_log))) {
        return bad(routing->path("access_log") +
                   " must be an absolute path without spaces, quotes, ';', '{', '}', '$', '#', "
                   "'\\' or control characters");
      }
      if (routing->has("command")) {
        DROVER_ASSIGN(n.command, routing->str_list("command", 32, kAnySize));
        if (n.command.empty()) return bad(routing->path("command") + " is empty");
      }
      DROVER_ASSIGN(auto probe, routing->opt_object("preview_probe"));
      if (probe) {
        DROVER_TRY(probe->only({"path", "requests"}));
        if (n.preview_listen.empty()) {
          return bad(routing->path("preview_probe") + " needs preview_listen (the route it uses)");
        }
        DROVER_ASSIGN(auto path, probe->opt_str("path", 256));
        n.preview_path = path.value_or("/");
        const bool plain = std::all_of(n.preview_path.begin(), n.preview_path.end(),
                                       [](char c) { return c > ' ' && c < 127; });
        if (n.preview_path.empty() || n.preview_path[0] != '/' || !plain) {
          return bad(probe->path("path") +
                     " must start with '/' and hold printable ASCII without spaces");
        }
        DROVER_ASSIGN(auto requests, probe->opt_int("requests", 1, 1000));
        n.preview_requests = static_cast<int>(requests.value_or(20));
      }
      s.nginx = std::move(n);
    } else {
      return bad(routing->path("kind") + " must be \"file\" or \"nginx\", not \"" + kind + "\"");
    }
  }
  if (!s.verify.empty() && (!s.nginx || s.nginx->preview_listen.empty())) {
    return bad(f.path("verify") +
               " needs the nginx router with a preview_listen (the route it tests)");
  }
  s.flags_file = flags.value_or("");
  DROVER_ASSIGN(auto user, f.opt_str("user", 256));
  DROVER_ASSIGN(auto group, f.opt_str("group", 256));
  s.user = user.value_or("");
  s.group = group.value_or("");
  return s;
}

Result<AgentConfig> read_config(const Fields& f) {
  DROVER_TRY(
      f.only({"format", "host", "region", "cluster", "state_dir", "root_key", "coordinator",
              "join_token", "poll_interval_ms", "health_interval_ms", "request_timeout_ms",
              "cert_poll_interval_ms", "fetch_stall_timeout_s", "keep_releases",
              "report_buffer_items", "mesh", "control_listen", "metrics_listen", "services"}));
  DROVER_ASSIGN(std::string format, f.str("format", kAnySize, Empty::allowed));
  if (format != "drover.agent-config.v1") {
    return make_error(Errc::unsupported, "format '" + format + "' is not drover.agent-config.v1");
  }
  AgentConfig c;
  DROVER_ASSIGN(c.host, f.str("host", kAnySize, Empty::allowed));
  if (auto st = validate_name(c.host, "host"); !st.ok()) return bad(st.error().message);
  DROVER_ASSIGN(auto region, f.opt_str("region", kAnySize));
  DROVER_ASSIGN(auto cluster, f.opt_str("cluster", kAnySize));
  c.region = region.value_or("");
  c.cluster = cluster.value_or("");
  if (!c.region.empty()) {
    if (auto st = validate_name(c.region, "region"); !st.ok()) return bad(st.error().message);
  }
  if (!c.cluster.empty()) {
    if (auto st = validate_name(c.cluster, "cluster"); !st.ok()) return bad(st.error().message);
  }
  DROVER_ASSIGN(std::string state, f.str("state_dir", kAnySize, Empty::allowed));
  DROVER_ASSIGN(std::string root, f.str("root_key", kAnySize, Empty::allowed));
  c.state_dir = state;
  c.root_key = root;
  DROVER_ASSIGN(auto join_token, f.opt_str("join_token", kAnySize));
  c.join_token = join_token.value_or("");
  const json* coordinator = f.raw("coordinator");
  if (coordinator == nullptr || !coordinator->is_object()) {
    return bad("missing 'coordinator': {\"requests\":URL, \"announcements\":URL}");
  }
  const Fields coord(*coordinator, "coordinator", canon::Nulls::refused);
  DROVER_TRY(coord.only({"requests", "announcements", "tls", "allow_plaintext", "protocol"}));
  DROVER_ASSIGN(c.coordinator_requests, coord.str("requests", kAnySize, Empty::allowed));
  DROVER_ASSIGN(auto announcements, coord.opt_str("announcements", kAnySize));
  c.coordinator_announcements = announcements.value_or("");
  DROVER_ASSIGN(auto plaintext, coord.opt_bool("allow_plaintext"));
  c.allow_plaintext = plaintext.value_or(false);
  DROVER_ASSIGN(auto protocol, coord.opt_int("protocol", 1, 2));
  c.protocol = static_cast<int>(protocol.value_or(2));
  for (const std::string* url : {&c.coordinator_requests, &c.coordinator_announcements}) {
    if (url->empty()) continue;
    if (auto st = nng::check_transport(*url, c.allow_plaintext); !st.ok()) {
      return bad("coordinator: " + st.error().message);
    }
  }
  DROVER_ASSIGN(auto tls, coord.opt_object("tls"));
  if (tls) {
    DROVER_TRY(tls->only({"ca_file", "server_name"}));
    DROVER_ASSIGN(std::string ca, tls->str("ca_file", kAnySize));
    DROVER_ASSIGN(auto name, tls->opt_str("server_name", 255));
    c.coordinator_ca_file = ca;
    c.coordinator_server_name = name.value_or("");
  }
  const bool wants_tls = c.coordinator_requests.rfind("tls+tcp://", 0) == 0 ||
                         c.coordinator_announcements.rfind("tls+tcp://", 0) == 0;
  if (wants_tls && c.coordinator_ca_file.empty()) {
    return bad(
        "coordinator.tls.ca_file is required for a tls+tcp:// URL: the coordinator's "
        "certificate (or its CA) to pin");
  }
  DROVER_ASSIGN(auto poll, f.opt_int("poll_interval_ms", 50, 86'400'000));
  DROVER_ASSIGN(auto health, f.opt_int("health_interval_ms", 50, 3'600'000));
  DROVER_ASSIGN(auto req, f.opt_int("request_timeout_ms", 50, 600'000));
  DROVER_ASSIGN(auto cert_poll, f.opt_int("cert_poll_interval_ms", 50, 86'400'000));
  c.cert_poll_interval = std::chrono::milliseconds(cert_poll.value_or(600'000));
  DROVER_ASSIGN(auto stall, f.opt_int("fetch_stall_timeout_s", 1, 86400));
  DROVER_ASSIGN(auto keep, f.opt_int("keep_releases", 1, 100));
  DROVER_ASSIGN(auto buffer, f.opt_int("report_buffer_items", 16, 1'000'000));
  c.poll_interval = std::chrono::milliseconds(poll.value_or(30000));
  c.health_interval = std::chrono::milliseconds(health.value_or(5000));
  c.request_timeout = std::chrono::milliseconds(req.value_or(5000));
  c.fetch_stall_timeout = std::chrono::seconds(stall.value_or(60));
  c.keep_releases = static_cast<std::size_t>(keep.value_or(3));
  c.report_buffer_items = static_cast<std::size_t>(buffer.value_or(4096));
  DROVER_ASSIGN(auto mesh, f.opt_object("mesh"));
  if (mesh) {
    DROVER_TRY(mesh->only({"listen", "upload_rate", "download_rate", "announce_interval_s"}));
    DROVER_ASSIGN(auto listen, mesh->opt_str("listen", kAnySize));
    DROVER_ASSIGN(auto up, mesh->opt_int("upload_rate", 0, 1ll << 40));
    DROVER_ASSIGN(auto down, mesh->opt_int("download_rate", 0, 1ll << 40));
    DROVER_ASSIGN(auto every, mesh->opt_int("announce_interval_s", 1, 3600));
    c.mesh_listen = listen.value_or(c.mesh_listen);
    c.mesh_upload_rate = static_cast<std::uint64_t>(up.value_or(0));
    c.mesh_download_rate = static_cast<std::uint64_t>(down.value_or(0));
    c.mesh_announce_interval_s = static_cast<int>(every.value_or(30));
  }
  DROVER_ASSIGN(auto control, f.opt_str("control_listen", kAnySize));
  c.control_listen = control.value_or(c.control_listen);
  // The control port hands plans over and shows the host's state: a local
  // caller's only, never the network's.
  if (!is_loopback(c.control_listen)) {
    return bad("control_listen '" + c.control_listen +
               "' must be a loopback address (127.0.0.0/8 or ::1)");
  }
  // Prometheus metrics: a listener of their own, GET /metrics only, off
  // unless asked for (docs/METRICS.md).
  DROVER_ASSIGN(auto metrics_listen, f.opt_str("metrics_listen", kAnySize));
  c.metrics_listen = metrics_listen.value_or("");
  if (!c.metrics_listen.empty()) {
    if (auto where = http::parse_listen(c.metrics_listen); !where.ok()) {
      return bad("metrics_listen '" + c.metrics_listen + "': " + where.error().message);
    }
  }
  if (!f.has("services")) return bad("'services' must list at least one service");
  DROVER_ASSIGN(auto services, f.objects("services", kAnySize));
  if (services.empty()) return bad("'services' must list at least one service");
  for (const Fields& s : services) {
    DROVER_ASSIGN(ServiceConfig sc, read_service(s));
    if (c.service(sc.name)) return bad("service '" + sc.name + "' is listed twice");
    c.services.push_back(std::move(sc));
  }
  // Services routed by nginx share it: each its own drop-in and its own
  // ports (two servers on one port would take each other's traffic).
  std::map<std::uint16_t, std::string> ports;
  std::map<std::string, std::string> drop_ins;
  for (const auto& sc : c.services) {
    if (!sc.nginx) continue;
    if (auto [at, fresh] = drop_ins.emplace(sc.nginx->conf_file.string(), sc.name); !fresh) {
      return bad("services '" + at->second + "' and '" + sc.name + "' name the same conf_file");
    }
    for (const std::string& listen : {sc.nginx->listen, sc.nginx->preview_listen}) {
      if (listen.empty()) continue;
      const std::uint16_t port = *nginx_listen_port(listen);
      if (auto [at, fresh] = ports.emplace(port, sc.name); !fresh && at->second != sc.name) {
        return bad("services '" + at->second + "' and '" + sc.name + "' both listen on port " +
                   std::to_string(port) + " in nginx");
      }
    }
  }
  return c;
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
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object").context("agent config");
  auto c = read_config(Fields(j, "", canon::Nulls::refused));
  if (!c.ok()) return c.error().context("agent config");
  return c;
}

Status resolve_users(AgentConfig& config, std::uint32_t agent_uid) {
  for (std::size_t i = 0; i < config.services.size(); ++i) {
    ServiceConfig& s = config.services[i];
    auto run_as =
        resolve_run_as(s.user, s.group, agent_uid, "services[" + std::to_string(i) + "].user");
    if (!run_as.ok()) return run_as.error().context("agent config");
    s.run_as = std::move(*run_as);
  }
  return Ok{};
}

Result<AgentConfig> load_config(Filesystem& fs, const fs::path& path) {
  auto text = fs.read_file(path, 1 << 20);
  if (!text.ok()) return text.error().context("agent config");
  auto c = parse_config(*text);
  if (!c.ok()) return c.error().context(path.string());
  if (Status st = resolve_users(*c, static_cast<std::uint32_t>(::geteuid())); !st.ok()) {
    return st.error().context(path.string());
  }
  return c;
}

}  // namespace drover::agent
