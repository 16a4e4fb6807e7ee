#include "coordinator/service/metrics.hpp"

#include <nlohmann/json.hpp>

namespace drover::coordinator {
namespace {

constexpr std::size_t kMaxOpen = 100'000;

constexpr const char* kTransitions =
    "Deploy transitions committed, by the audit record's kind (deploy.created, batch.started, "
    "gate.waiting, rollback.started, ...).";
constexpr const char* kFinished =
    "Deploys ended, by outcome (succeeded, rolled_back, failed, rejected, expired, superseded, "
    "cancelled).";
constexpr const char* kBatch =
    "Time from a batch's start to its passing, bake included (per region of a wave).";
constexpr const char* kBake = "Time a batch baked before it passed.";
constexpr const char* kRollback = "Time from a rollback's decision to every host back.";

// What ends a deploy, by the record that ends it.
const char* outcome_of(const std::string& what) {
  if (what == "deploy.succeeded") return "succeeded";
  if (what == "rollback.done") return "rolled_back";
  if (what == "deploy.failed") return "failed";
  if (what == "gate.rejected") return "rejected";
  if (what == "gate.expired") return "expired";
  if (what == "deploy.superseded") return "superseded";
  if (what == "deploy.cancelled") return "cancelled";
  return nullptr;
}

std::string batch_key(const AuditRecord& r, const nlohmann::json& detail) {
  std::string region = detail.value("region", "");
  const auto b = detail.find("batch");
  return r.deploy_id + "/" + r.env + "/" + region + "/" +
         (b != detail.end() && b->is_number_integer() ? std::to_string(b->get<std::int64_t>())
                                                      : "");
}

// The states of a deploy not yet ended, read from the record's own enum
// (its last value is cancelled), so a new state gets its series.
std::vector<std::string> active_states() {
  std::vector<std::string> out;
  for (int s = 0; s <= static_cast<int>(DeployState::cancelled); ++s) {
    const auto state = static_cast<DeployState>(s);
    if (!is_terminal(state)) out.emplace_back(deploy_state_name(state));
  }
  return out;
}

void open(std::map<std::string, std::int64_t>& m, const std::string& key, std::int64_t at) {
  if (m.size() >= kMaxOpen) m.erase(m.begin());
  m[key] = at;
}

// The seconds since key opened, closing it; -1 when it was not open.
double close(std::map<std::string, std::int64_t>& m, const std::string& key, std::int64_t at) {
  auto it = m.find(key);
  if (it == m.end()) return -1;
  const double s = static_cast<double>(at - it->second) / 1000.0;
  m.erase(it);
  return s;
}

}  // namespace

CoordinatorMetrics::CoordinatorMetrics(metrics::Registry& registry) : r_(registry) {
  r_.declare("drover_coordinator_transitions_total", kTransitions, metrics::Type::counter,
             {"what"});
  r_.declare("drover_coordinator_deploys_finished_total", kFinished, metrics::Type::counter,
             {"outcome"});
  r_.declare("drover_coordinator_rollbacks_total", "Rollbacks started (automatic or asked for).",
             metrics::Type::counter);
  r_.declare("drover_coordinator_batch_duration_seconds", kBatch, metrics::Type::histogram);
  r_.declare("drover_coordinator_bake_duration_seconds", kBake, metrics::Type::histogram);
  r_.declare("drover_coordinator_rollback_duration_seconds", kRollback, metrics::Type::histogram);
  for (const std::string& state : active_states()) {
    r_.gauge("drover_coordinator_deploys", "Deploys not yet ended, by state.", {"state"}, {state});
  }
  r_.gauge("drover_coordinator_gates_waiting",
           "Deploys waiting at an environment's gate for approval.");
}

void CoordinatorMetrics::on_records(const std::vector<AuditRecord>& records) {
  std::lock_guard lock(mu_);
  for (const AuditRecord& rec : records) {
    r_.counter("drover_coordinator_transitions_total", kTransitions, {"what"}, {rec.what}).inc();
    if (const char* outcome = outcome_of(rec.what)) {
      r_.counter("drover_coordinator_deploys_finished_total", kFinished, {"outcome"}, {outcome})
          .inc();
    }
    const nlohmann::json detail = nlohmann::json::parse(rec.detail, nullptr, false);
    if (!detail.is_object()) continue;
    if (rec.what == "batch.started") {
      open(started_, batch_key(rec, detail), rec.at_ms);
    } else if (rec.what == "batch.baking") {
      open(baking_, batch_key(rec, detail), rec.at_ms);
    } else if (rec.what == "batch.passed") {
      const std::string key = batch_key(rec, detail);
      if (const double s = close(started_, key, rec.at_ms); s >= 0) {
        r_.histogram("drover_coordinator_batch_duration_seconds", kBatch,
                     metrics::duration_buckets())
            .observe(s);
      }
      if (const double s = close(baking_, key, rec.at_ms); s >= 0) {
        r_.histogram("drover_coordinator_bake_duration_seconds", kBake, metrics::duration_buckets())
            .observe(s);
      }
    } else if (rec.what == "rollback.started") {
      r_.counter("drover_coordinator_rollbacks_total", "").inc();
    } else if (rec.what == "rollback.done") {
      const auto ms = detail.find("ms");
      if (ms != detail.end() && ms->is_number()) {
        r_.histogram("drover_coordinator_rollback_duration_seconds", kRollback,
                     metrics::duration_buckets())
            .observe(ms->get<double>() / 1000.0);
      }
    }
  }
}

namespace {

// Whether a deadline of d (its own wait, or a region's converge or bake)
// passed more than a minute ago: the driver acts at a deadline, so such a
// deploy is stuck (a wedged driver, a store that refuses writes).
bool overdue(const DeployRecord& d, std::int64_t now_ms) {
  constexpr std::int64_t kGraceMs = 60'000;
  auto past = [&](std::int64_t at) { return at > 0 && now_ms - at > kGraceMs; };
  if (d.state == DeployState::paused) return false;  // a person's pause waits for a person
  if (past(d.deadline_ms)) return true;
  const EnvRun* e = d.current_env();
  if (e == nullptr) return false;
  for (const auto& w : e->waves) {
    for (const auto& r : w.regions) {
      if (r.status == "deploying" && past(r.deadline_ms)) return true;
      if (r.status == "baking" && past(r.bake_until_ms)) return true;
    }
  }
  return false;
}

}  // namespace

void CoordinatorMetrics::set_states(const std::vector<DeployRecord>& active, std::int64_t now_ms) {
  std::map<std::string, int> by_state;
  for (const std::string& state : active_states()) by_state[state] = 0;
  int late = 0;
  for (const DeployRecord& d : active) {
    ++by_state[deploy_state_name(d.state)];
    late += overdue(d, now_ms) ? 1 : 0;
  }
  r_.gauge("drover_coordinator_deploys_overdue",
           "Deploys with a deadline (a batch's converge, a bake's end, a gate's) passed over a "
           "minute ago: the driver acts at a deadline, so these are stuck.")
      .set(late);
  for (const auto& [state, n] : by_state) {
    r_.gauge("drover_coordinator_deploys", "", {"state"}, {state}).set(n);
  }
  r_.gauge("drover_coordinator_gates_waiting", "").set(by_state["awaiting_approval"]);
}

}  // namespace drover::coordinator
