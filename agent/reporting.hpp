// The agent's health samples and reports (docs/AGENT.md, "Reports"): each
// health interval the serving slot of every service is sampled (its process
// state, and its endpoint when it runs) into the outbox; the report thread
// pushes the outbox to the coordinator, one MACed report at a time, and
// repeats a report until it is acknowledged.
#pragma once

#include <chrono>

#include "agent/context.hpp"
#include "agent/service_runner.hpp"

namespace drover::agent {

// Samples the service once; the sample goes to the outbox and the view, and a
// change of health to the supervisor's event lines.
void sample_service(AgentContext& ctx, const ServiceRunner& service);

// Sends the next report if one waits (only once enrolled); returns how long
// to wait before the next attempt given the last wait, or kNothingToReport
// when the outbox is empty (wait for a push: AgentContext::wait_for_reports).
inline constexpr std::chrono::milliseconds kNothingToReport{-1};
std::chrono::milliseconds push_reports(AgentContext& ctx, std::chrono::milliseconds last_wait);

}  // namespace drover::agent
