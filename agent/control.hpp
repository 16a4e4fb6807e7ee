// The agent's control endpoint (docs/AGENT.md, "Status"): GET /v1/status
// shows every service (record, processes, phase, fetch progress, last
// health, last error), the coordinator link, the outbox and the mesh;
// POST /v1/plans hands a signed plan bundle over (checked like any plan).
// It listens on loopback by default; the port is in STATE/control.json.
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

// Answers one request; hand_over queues a decoded bundle for the cycle thread.
http::Response serve_control(AgentContext& ctx, const Runners& runners, const http::Request& r,
                             const std::function<void(proto::PlanBundle)>& hand_over);

}  // namespace drover::agent
