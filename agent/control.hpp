// The agent's control endpoint (docs/AGENT.md, "Status"): GET /v1/status
// shows every service (record, processes, phase, fetch progress, last
// health, last error), the coordinator link, the outbox and the mesh;
// POST /v1/plans hands a signed plan bundle over: its signature is checked
// against the pinned root before it is queued (then checked again like any
// plan), and at most kMaxHandedOver wait (503 beyond). It listens on
// loopback only (the config refuses any other address); the port is in
// STATE/control.json.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "agent/context.hpp"
#include "agent/service_runner.hpp"
#include "core/http/http.hpp"

namespace drover::agent {

using Runners = std::map<std::string, std::unique_ptr<ServiceRunner>>;

// The status as one JSON object (the endpoint's body).
std::string status_json(AgentContext& ctx, const Runners& runners);

inline constexpr std::size_t kMaxHandedOver = 8;

// How the control port is served: on config.control_listen; a body of at
// most a bundle with its manifest; 16 connections (all of loopback counts as
// one client); anything but GET /v1/status and POST /v1/plans refused from
// its headers, before a body is read.
http::ServerOptions control_server_options(const AgentConfig& config);

// Answers one request; hand_over queues a verified bundle for the cycle
// thread, and answers false when kMaxHandedOver already wait.
http::Response serve_control(AgentContext& ctx, const Runners& runners, const http::Request& r,
                             const std::function<bool(proto::PlanBundle)>& hand_over);

}  // namespace drover::agent
