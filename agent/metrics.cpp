#include "agent/metrics.hpp"

namespace drover::agent {
namespace {

constexpr const char* kApplies =
    "Plans applied (outcome applied) or failed at apply time (outcome failed), per service.";
constexpr const char* kApplySeconds =
    "Time from a plan's start to its release running, by where the release came from: "
    "fetched, kept on the host (a rollback to a release it already had), or running already.";

std::string text(const nlohmann::json& line, const char* key) {
  const auto it = line.find(key);
  return it != line.end() && it->is_string() ? it->get<std::string>() : "";
}

const char* source_of(const std::string& s) {
  if (s == "kept") return "kept";
  if (s == "running") return "running";
  return "fetched";
}

}  // namespace

AgentMetrics::AgentMetrics(metrics::Registry& registry) : r_(registry) {
  r_.declare("drover_agent_applies_total", kApplies, metrics::Type::counter,
             {"service", "outcome"});
  r_.declare("drover_agent_apply_duration_seconds", kApplySeconds, metrics::Type::histogram,
             {"source"});
  r_.declare("drover_agent_plans_refused_total", "Plans refused, by reason.",
             metrics::Type::counter, {"reason"});
  r_.declare("drover_agent_service_starts_total",
             "Service processes started by a plan or at the agent's start (first starts and "
             "switches), per service; restarts after an exit are counted apart.",
             metrics::Type::counter, {"service"});
  r_.declare("drover_agent_service_restarts_total",
             "Service processes restarted by the agent after they exited, per service.",
             metrics::Type::counter, {"service"});
  r_.declare("drover_agent_crash_loops_total",
             "Times a service was found crash-looping (restarts given up), per service.",
             metrics::Type::counter, {"service"});
  r_.declare("drover_agent_health_samples_total",
             "Health samples taken, per service, by result (ok or unhealthy).",
             metrics::Type::counter, {"service", "result"});
}

void AgentMetrics::on_event(const nlohmann::json& line) {
  if (!line.is_object()) return;
  const std::string event = text(line, "event");
  const std::string service = text(line, "service");
  if (event == "applied") {
    r_.counter("drover_agent_applies_total", kApplies, {"service", "outcome"}, {service, "applied"})
        .inc();
    const auto ms = line.find("ms");
    if (ms != line.end() && ms->is_number()) {
      r_.histogram("drover_agent_apply_duration_seconds", kApplySeconds,
                   metrics::duration_buckets(), {"source"}, {source_of(text(line, "source"))})
          .observe(ms->get<double>() / 1000.0);
    }
  } else if (event == "apply_failed") {
    r_.counter("drover_agent_applies_total", kApplies, {"service", "outcome"}, {service, "failed"})
        .inc();
  } else if (event == "plan_refused") {
    r_.counter("drover_agent_plans_refused_total", "Plans refused, by reason.", {"reason"},
               {text(line, "kind")})
        .inc();
  } else if (event == "started") {
    r_.counter("drover_agent_service_starts_total", "", {"service"}, {service}).inc();
  } else if (event == "restarted") {
    r_.counter("drover_agent_service_restarts_total", "", {"service"}, {service}).inc();
  } else if (event == "crash_loop") {
    r_.counter("drover_agent_crash_loops_total", "", {"service"}, {service}).inc();
  }
}

void AgentMetrics::on_sample(const std::string& service, bool healthy) {
  r_.counter("drover_agent_health_samples_total", "", {"service", "result"},
             {service, healthy ? "ok" : "unhealthy"})
      .inc();
}

}  // namespace drover::agent
