#include "agent/control.hpp"

#include <nlohmann/json.hpp>
#include "core/canon/json_text.hpp"

namespace drover::agent {

using nlohmann::json;

std::string status_json(AgentContext& ctx, const Runners& runners) {
  const AgentConfig& config = ctx.config;
  json out = {{"host", config.host}, {"region", config.region}, {"cluster", config.cluster}};
  json svcs = json::object();
  {
    std::lock_guard lock(ctx.view_mu);
    for (const auto& [name, runner] : runners) {
      auto it = ctx.views.find(name);
      const ServiceView empty;
      const ServiceView& v = it == ctx.views.end() ? empty : it->second;
      json procs = json::array();
      for (int i = 0; i < 2; ++i) {
        const ServiceProcess* sup = runner->slot(i);
        if (!sup) continue;
        procs.push_back({{"slot", runner->config().blue_green ? kSlotNames[i] : ""},
                         {"state", run_state_name(sup->state())},
                         {"pid", sup->pid()},
                         {"release", sup->release()},
                         {"exits", sup->exits()}});
      }
      json health = nullptr;
      if (v.last_health) {
        const proto::HealthItem& h = *v.last_health;
        health = {{"ok", h.ok},         {"error", h.error},           {"error_rate", h.error_rate},
                  {"p99_ms", h.p99_ms}, {"saturation", h.saturation}, {"state", h.state},
                  {"at", h.at_ms},      {"release", h.release}};
      }
      svcs[name] = {{"current", v.record.current},
                    {"previous", v.record.previous},
                    {"seq", v.record.seq},
                    {"seq_state", v.record.seq_failed ? "failed" : "applied"},
                    {"active_slot", v.record.active_slot},
                    {"processes", procs},
                    {"phase", v.phase},
                    {"fetch",
                     {{"layers", v.fetch_layers},
                      {"layers_held", v.fetch_layers_held},
                      {"bytes", v.fetch_bytes},
                      {"bytes_held", v.fetch_bytes_held}}},
                    {"last_health", health},
                    {"last_error", v.last_error}};
    }
    out["coordinator"] = {{"reachable", ctx.reachable},
                          {"enrolled", ctx.enrolled},
                          {"last_contact_unix_ms", ctx.last_contact_ms}};
  }
  out["services"] = svcs;
  out["reports"] = {{"buffered", ctx.outbox.size()}, {"dropped", ctx.outbox.dropped()}};
  out["mesh"] = {{"port", ctx.layers->port()},
                 {"tracker", ctx.layers->tracker()},
                 {"layers_held", ctx.layers->held().size()}};
  return json_text(out);
}

http::ServerOptions control_server_options(const AgentConfig& config) {
  http::ServerOptions options;
  options.bind = config.control_listen;
  options.max_body_bytes = proto::kMaxMessageBytes;
  options.max_connections = 16;
  options.max_connections_per_client = 16;
  options.check_headers = [](const http::Request& head) -> std::optional<http::Response> {
    if ((head.method == "GET" && head.path == "/v1/status") ||
        (head.method == "POST" && head.path == "/v1/plans")) {
      return std::nullopt;
    }
    http::Response r;
    r.status = 404;
    r.body =
        R"({"error":"no such resource: the control port serves GET /v1/status and POST /v1/plans"})";
    return r;
  };
  return options;
}

http::Response serve_control(AgentContext& ctx, const Runners& runners, const http::Request& r,
                             const std::function<bool(proto::PlanBundle)>& hand_over) {
  http::Response resp;
  if (r.method == "GET" && r.path == "/v1/status") {
    resp.body = status_json(ctx, runners);
    return resp;
  }
  if (r.method == "POST" && r.path == "/v1/plans") {
    auto bundle = proto::decode_bundle(r.body);
    if (!bundle.ok()) {
      resp.status = 400;
      resp.body = json_text(json{{"error", bundle.error().message}});
      return resp;
    }
    // Signed by a key the pinned root certifies, or not queued at all.
    auto opened = proto::open_plan(*bundle, ctx.trust(), ctx.now_unix_ms() / 1000);
    if (!opened.ok()) {
      ctx.log.warn("agent.hand_over.refused", {{"error", opened.error().message}});
      resp.status = 403;
      resp.body = json_text(json{{"error", "plan refused: " + opened.error().message}});
      return resp;
    }
    if (!hand_over(std::move(*bundle))) {
      resp.status = 503;
      resp.body = json_text(json{{"error", "too many plans handed over wait; try again"}});
      return resp;
    }
    resp.status = 202;
    resp.body = json_text(json{{"queued", true}});
    return resp;
  }
  resp.status = 404;
  resp.body = json_text(json{{"error", "no such resource: " + r.method + " " + r.path}});
  return resp;
}

}  // namespace drover::agent
