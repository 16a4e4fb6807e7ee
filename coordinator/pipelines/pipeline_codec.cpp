#include "coordinator/pipelines/pipeline_codec.hpp"

#include <algorithm>
#include <cmath>

#include "core/base/name.hpp"
#include "core/canon/canonical_json.hpp"
#include "core/canon/json_fields.hpp"
#include "core/http/http.hpp"

namespace drover::coordinator {
namespace {

using canon::Fields;
using nlohmann::json;

constexpr std::int64_t kDay = 24 * 3600;

Status check_name(const std::string& value, const std::string& field) {
  if (auto st = validate_name(value, field); !st.ok()) return st.error();
  return Ok{};
}

// health_checks.prometheus (issue 18): docs/FORMATS.md, "Prometheus health
// checks".
Result<PromCheck> parse_prometheus(const Fields& f) {
  DROVER_TRY(f.only({"url", "interval_s", "failure_limit", "inconclusive_limit", "queries"}));
  PromCheck c;
  DROVER_ASSIGN(c.url, f.str("url", 1024));
  if (auto url = http::parse_url(c.url); !url.ok()) {
    return make_error(Errc::invalid_argument, f.path("url") + " " + url.error().message);
  }
  if (c.url.find('?') != std::string::npos || c.url.find('#') != std::string::npos) {
    return make_error(Errc::invalid_argument,
                      f.path("url") + " must be the server's base URL, without a query");
  }
  DROVER_ASSIGN(auto interval, f.opt_int("interval_s", 1, 3600));
  if (interval) c.interval_ms = *interval * 1000;
  DROVER_ASSIGN(auto failures, f.opt_int("failure_limit", 1, 100));
  if (failures) c.failure_limit = static_cast<int>(*failures);
  DROVER_ASSIGN(auto inconclusive, f.opt_int("inconclusive_limit", 0, 100));
  if (inconclusive) c.inconclusive_limit = static_cast<int>(*inconclusive);
  DROVER_ASSIGN(auto queries, f.objects("queries", 16));
  if (queries.empty()) {
    return make_error(Errc::invalid_argument, f.path("queries") + " must list 1 to 16 queries");
  }
  for (const auto& q : queries) {
    DROVER_TRY(q.only({"name", "query", "max", "max_increase"}));
    PromQuery one;
    DROVER_ASSIGN(one.name, q.str("name", 64));
    DROVER_TRY(check_name(one.name, q.path("name")));
    for (const auto& other : c.queries) {
      if (other.name == one.name) {
        return make_error(Errc::invalid_argument,
                          q.path("name") + " '" + one.name + "' names a query twice");
      }
    }
    DROVER_ASSIGN(one.query, q.str("query", 4096));
    DROVER_TRY(check_query_template(one.query, q.path("query")));
    DROVER_ASSIGN(one.max, q.opt_num("max", -1e300, 1e300));
    DROVER_ASSIGN(one.max_increase, q.opt_num("max_increase", 0, 1e300));
    if (!one.max && !one.max_increase) {
      return make_error(Errc::invalid_argument,
                        q.path("query") + " needs a bound: max, max_increase or both");
    }
    c.queries.push_back(std::move(one));
  }
  return c;
}

json prometheus_json(const PromCheck& c) {
  json queries = json::array();
  for (const auto& q : c.queries) {
    json one = {{"name", q.name}, {"query", q.query}};
    if (q.max) one["max"] = *q.max;
    if (q.max_increase) one["max_increase"] = *q.max_increase;
    queries.push_back(std::move(one));
  }
  return {{"url", c.url},
          {"interval_s", c.interval_ms / 1000},
          {"failure_limit", c.failure_limit},
          {"inconclusive_limit", c.inconclusive_limit},
          {"queries", std::move(queries)}};
}

Result<HealthThresholds> parse_health(const Fields& f, DeployParams& params) {
  DROVER_TRY(f.only({"judge", "bake_s", "min_samples", "consecutive", "error_rate_relative",
                     "error_rate_floor", "p99_delta_ms", "saturation_delta", "confidence",
                     "baseline_window_s", "prometheus"}));
  DROVER_ASSIGN(auto prometheus, f.opt_object("prometheus"));
  if (prometheus) {
    DROVER_ASSIGN(params.prometheus, parse_prometheus(*prometheus));
  }
  HealthThresholds h;
  DROVER_ASSIGN(auto judge, f.opt_str("judge"));
  if (judge) {
    if (*judge == "threshold") {
      h.judge = HealthThresholds::Judge::threshold;
    } else if (*judge == "mann_whitney") {
      h.judge = HealthThresholds::Judge::mann_whitney;
    } else {
      return make_error(Errc::invalid_argument,
                        f.path("judge") + " must be 'threshold' or 'mann_whitney'");
    }
  }
  DROVER_ASSIGN(auto bake, f.opt_int("bake_s", 0, kDay));
  if (bake) params.bake_ms = *bake * 1000;
  DROVER_ASSIGN(auto window, f.opt_int("baseline_window_s", 0, kDay));
  if (window) params.baseline_window_ms = *window * 1000;
  DROVER_ASSIGN(auto min_samples, f.opt_int("min_samples", 0, 100'000));
  if (min_samples) h.min_samples = static_cast<int>(*min_samples);
  DROVER_ASSIGN(auto consecutive, f.opt_int("consecutive", 1, 1000));
  if (consecutive) h.consecutive = static_cast<int>(*consecutive);
  DROVER_ASSIGN(auto rel, f.opt_num("error_rate_relative", 0, 100));
  if (rel) h.error_rate_relative = *rel;
  DROVER_ASSIGN(auto floor, f.opt_num("error_rate_floor", 0, 1));
  if (floor) h.error_rate_floor = *floor;
  DROVER_ASSIGN(auto p99, f.opt_num("p99_delta_ms", 0, 3.6e6));
  if (p99) h.p99_delta_ms = *p99;
  DROVER_ASSIGN(auto sat, f.opt_num("saturation_delta", 0, 1));
  if (sat) h.saturation_delta = *sat;
  DROVER_ASSIGN(auto conf, f.opt_num("confidence", 0.5, 0.9999));
  if (conf) h.confidence = *conf;
  return h;
}

json health_json(const DeployParams& p) {
  const HealthThresholds& h = p.health;
  json out = {
      {"judge", h.judge == HealthThresholds::Judge::mann_whitney ? "mann_whitney" : "threshold"},
      {"bake_s", p.bake_ms / 1000},
      {"baseline_window_s", p.baseline_window_ms / 1000},
      {"min_samples", h.min_samples},
      {"consecutive", h.consecutive},
      {"error_rate_relative", h.error_rate_relative},
      {"error_rate_floor", h.error_rate_floor},
      {"p99_delta_ms", h.p99_delta_ms},
      {"saturation_delta", h.saturation_delta},
      {"confidence", h.confidence}};
  // Stored only when given: a record without it encodes as it always did.
  if (p.prometheus) out["prometheus"] = prometheus_json(*p.prometheus);
  return out;
}

}  // namespace

json strategy_to_json(const Strategy& s) {
  json j = {{"kind", s.kind}, {"max_unavailable", s.shape.max_unavailable}};
  if (s.shape.batch_percent > 0) {
    j["batch_percent"] = s.shape.batch_percent;
  } else {
    j["batch_size"] = s.shape.batch_size;
  }
  const RolloutShape::Split& split = s.shape.split;
  if (split.kind == RolloutShape::Split::Kind::traffic) {
    json steps = json::array();
    for (int t : split.steps) steps.push_back(t / 10.0);
    j["traffic_percents"] = steps;
  } else if (s.kind == "canary") {
    j["canary_percents"] = s.shape.canary_percents;
  }
  if (split.kind == RolloutShape::Split::Kind::blue_green) {
    j["scope"] = split.per_region ? "region" : "batch";
    j["preview_min_requests"] = split.preview_min_requests;
  }
  if (split.kind != RolloutShape::Split::Kind::none) j["scale_down_s"] = split.scale_down_s;
  if (s.shape.ramp_percents != RolloutShape{}.ramp_percents)
    j["ramp_percents"] = s.shape.ramp_percents;
  return j;
}

Result<Strategy> strategy_from_json(const json& value, const std::string& where) {
  DROVER_ASSIGN(Fields f, Fields::of(value, where));
  DROVER_TRY(f.only({"kind", "batch_size", "batch_percent", "max_unavailable", "canary_percents",
                     "traffic_percents", "scope", "preview_min_requests", "scale_down_s",
                     "ramp_percents"}));
  Strategy s;
  DROVER_ASSIGN(auto kind, f.opt_str("kind"));
  if (kind) s.kind = *kind;
  if (s.kind == "feature_flag") {
    return make_error(Errc::invalid_argument,
                      f.path("kind") + " 'feature_flag' is not offered by this coordinator yet; " +
                          "use rolling, canary or blue_green");
  }
  if (s.kind != "rolling" && s.kind != "canary" && s.kind != "blue_green") {
    return make_error(Errc::invalid_argument,
                      f.path("kind") + " must be 'rolling', 'canary' or 'blue_green'");
  }
  using Split = RolloutShape::Split;
  Split& split = s.shape.split;
  if (s.kind == "blue_green") split.kind = Split::Kind::blue_green;
  if (const json* steps = f.raw("traffic_percents")) {
    if (s.kind != "canary") {
      return make_error(Errc::invalid_argument,
                        f.path("traffic_percents") + " is only for kind 'canary'");
    }
    if (f.raw("canary_percents")) {
      return make_error(Errc::invalid_argument,
                        f.path("traffic_percents") + " and " + f.path("canary_percents") +
                            " exclude each other: a canary moves traffic or hosts, not both");
    }
    if (!steps->is_array() || steps->empty() || steps->size() > 10) {
      return make_error(Errc::invalid_argument,
                        f.path("traffic_percents") + " must be an array of 1 to 10 percentages");
    }
    int last = 0;
    for (std::size_t i = 0; i < steps->size(); ++i) {
      const json& v = (*steps)[i];
      const double pct = v.is_number() ? v.get<double>() : -1;
      const double per_mille = pct * 10;
      // Shares are per mille on the hosts: a percentage with at most one decimal.
      if (!(pct >= 0.1 && pct < 100) || std::abs(per_mille - std::round(per_mille)) > 1e-9 ||
          static_cast<int>(std::round(per_mille)) <= last) {
        return make_error(Errc::invalid_argument,
                          f.path("traffic_percents") + "[" + std::to_string(i) +
                              "] must be an increasing percentage from 0.1 to below 100 with at "
                              "most one decimal");
      }
      last = static_cast<int>(std::round(per_mille));
      split.steps.push_back(last);
    }
    split.kind = Split::Kind::traffic;
  }
  if (const json* ramp = f.raw("ramp_percents")) {
    // A flag ramp's steps (any kind: they move flags, not releases).
    if (!ramp->is_array() || ramp->empty() || ramp->size() > 10) {
      return make_error(Errc::invalid_argument,
                        f.path("ramp_percents") + " must be an array of 1 to 10 percentages");
    }
    s.shape.ramp_percents.clear();
    for (std::size_t i = 0; i < ramp->size(); ++i) {
      const json& v = (*ramp)[i];
      const int last = s.shape.ramp_percents.empty() ? 0 : s.shape.ramp_percents.back();
      if (!v.is_number_integer() || v.get<std::int64_t>() <= last || v.get<std::int64_t>() > 100) {
        return make_error(Errc::invalid_argument,
                          f.path("ramp_percents") + "[" + std::to_string(i) +
                              "] must be a whole percentage above the one before, at most 100");
      }
      s.shape.ramp_percents.push_back(static_cast<int>(v.get<std::int64_t>()));
    }
  }
  DROVER_ASSIGN(auto scope, f.opt_str("scope"));
  if (scope) {
    if (split.kind != Split::Kind::blue_green) {
      return make_error(Errc::invalid_argument, f.path("scope") + " is only for kind 'blue_green'");
    }
    if (*scope != "batch" && *scope != "region") {
      return make_error(Errc::invalid_argument, f.path("scope") + " must be 'batch' or 'region'");
    }
    split.per_region = *scope == "region";
  }
  DROVER_ASSIGN(auto min_requests, f.opt_int("preview_min_requests", 0, 1'000'000'000));
  if (min_requests) {
    if (split.kind != Split::Kind::blue_green) {
      return make_error(Errc::invalid_argument,
                        f.path("preview_min_requests") + " is only for kind 'blue_green'");
    }
    split.preview_min_requests = *min_requests;
  }
  DROVER_ASSIGN(auto scale_down, f.opt_int("scale_down_s", 0, 604'800));
  if (scale_down) {
    if (split.kind == Split::Kind::none) {
      return make_error(Errc::invalid_argument,
                        f.path("scale_down_s") +
                            " is only for kind 'blue_green' or a canary by traffic_percents");
    }
    split.scale_down_s = *scale_down;
  }
  DROVER_ASSIGN(auto size, f.opt_int("batch_size", 1, 1'000'000));
  DROVER_ASSIGN(auto percent, f.opt_num("batch_percent", 0.001, 100));
  if (size && percent) {
    return make_error(
        Errc::invalid_argument,
        f.path("batch_size") + " and " + f.path("batch_percent") + " exclude each other; give one");
  }
  if (size) s.shape.batch_size = static_cast<std::size_t>(*size);
  if (percent) s.shape.batch_percent = *percent;
  if (!size && !percent) s.shape.batch_percent = 25;
  DROVER_ASSIGN(auto unavailable, f.opt_int("max_unavailable", 0, 1'000'000));
  if (unavailable) s.shape.max_unavailable = static_cast<std::size_t>(*unavailable);
  if (const json* steps = f.raw("canary_percents")) {
    if (s.kind != "canary") {
      return make_error(Errc::invalid_argument,
                        f.path("canary_percents") + " is only for kind 'canary'");
    }
    if (!steps->is_array() || steps->empty() || steps->size() > 10) {
      return make_error(Errc::invalid_argument,
                        f.path("canary_percents") + " must be an array of 1 to 10 percentages");
    }
    for (std::size_t i = 0; i < steps->size(); ++i) {
      const json& v = (*steps)[i];
      if (!v.is_number() || v.get<double>() <= 0 || v.get<double>() >= 100) {
        return make_error(Errc::invalid_argument, f.path("canary_percents") + "[" +
                                                      std::to_string(i) +
                                                      "] must be a percentage above 0, below 100");
      }
      s.shape.canary_percents.push_back(v.get<double>());
    }
  } else if (s.kind == "canary" && split.kind == Split::Kind::none) {
    s.shape.canary_percents = {1, 5, 25};
  }
  if (auto st = validate_shape(s.shape); !st.ok()) {
    std::string m = st.error().message;
    if (m.rfind("strategy: ", 0) == 0) m = m.substr(10);
    return make_error(Errc::invalid_argument, where + ": " + m);
  }
  return s;
}

namespace {

constexpr std::string_view kPipelineV2 = "drover.pipeline.v2";

Status parse_timeouts(const Fields& t, DeployParams& params, std::int64_t& gate_ms) {
  DROVER_TRY(t.only({"ready_s", "converge_s", "rollback_s", "gate_s", "pause_s"}));
  DROVER_ASSIGN(auto ready, t.opt_int("ready_s", 1, kDay));
  DROVER_ASSIGN(auto converge, t.opt_int("converge_s", 1, kDay));
  DROVER_ASSIGN(auto back, t.opt_int("rollback_s", 1, kDay));
  DROVER_ASSIGN(auto gate, t.opt_int("gate_s", 60, 30 * kDay));
  DROVER_ASSIGN(auto pause, t.opt_int("pause_s", 60, 30 * kDay));
  if (ready) params.ready_timeout_ms = *ready * 1000;
  if (converge) params.converge_timeout_ms = *converge * 1000;
  if (back) params.rollback_timeout_ms = *back * 1000;
  if (gate) gate_ms = *gate * 1000;
  if (pause) params.pause_timeout_ms = *pause * 1000;
  return Ok{};
}

json timeouts_json(const DeployParams& p, std::int64_t gate_ms) {
  return {{"ready_s", p.ready_timeout_ms / 1000},
          {"converge_s", p.converge_timeout_ms / 1000},
          {"rollback_s", p.rollback_timeout_ms / 1000},
          {"gate_s", gate_ms / 1000},
          {"pause_s", p.pause_timeout_ms / 1000}};
}

constexpr std::int64_t kDefaultGateMs = kDay * 1000;
constexpr std::int64_t kDefaultWatchMs = 600'000;

// A version-1 pipeline's promotion path: one wave of its region per env, a
// gate of one approval where approval_gates names the env.
void environments_of_v1(Pipeline& p) {
  for (const auto& env : p.envs) {
    Environment e;
    e.name = env.name;
    Wave w;
    w.name = "all";
    w.regions.push_back({env.region, env.cluster});
    e.waves.push_back(std::move(w));
    if (std::find(p.approval_gates.begin(), p.approval_gates.end(), env.name) !=
        p.approval_gates.end()) {
      e.gate = Gate{1, kDefaultGateMs};
    }
    p.environments.push_back(std::move(e));
    p.settings.push_back({p.strategy, p.params, 0});
  }
}

// Each environment's overrides read, checked (errors name the field) and
// written back with their defaults filled in.
Status resolve_environments(Pipeline& p, std::int64_t gate_ms) {
  for (std::size_t i = 0; i < p.environments.size(); ++i) {
    Environment& e = p.environments[i];
    const std::string at = "environments[" + std::to_string(i) + "]";
    EnvSettings s{p.strategy, p.params, e.watch_ms.value_or(p.watch_ms)};
    if (e.strategy) {
      DROVER_ASSIGN(s.strategy, strategy_from_json(*e.strategy, at + ".strategy"));
      e.strategy = strategy_to_json(s.strategy);
    }
    if (e.health_checks) {
      const json body = *e.health_checks;  // Fields refers to it
      DROVER_ASSIGN(Fields h, Fields::of(body, at + ".health_checks"));
      DeployParams fresh;
      DROVER_ASSIGN(fresh.health, parse_health(h, fresh));
      s.params.health = fresh.health;
      s.params.bake_ms = fresh.bake_ms;
      s.params.baseline_window_ms = fresh.baseline_window_ms;
      s.params.prometheus = fresh.prometheus;
      e.health_checks = health_json(s.params);
    }
    if (e.timeouts) {
      const json body = *e.timeouts;
      DROVER_ASSIGN(Fields t, Fields::of(body, at + ".timeouts"));
      // An environment's gate has its own deadline_s.
      DROVER_TRY(t.only({"ready_s", "converge_s", "rollback_s", "pause_s"}));
      DeployParams fresh;
      std::int64_t unused_gate_ms = gate_ms;
      DROVER_TRY(parse_timeouts(t, fresh, unused_gate_ms));
      s.params.ready_timeout_ms = fresh.ready_timeout_ms;
      s.params.converge_timeout_ms = fresh.converge_timeout_ms;
      s.params.rollback_timeout_ms = fresh.rollback_timeout_ms;
      s.params.pause_timeout_ms = fresh.pause_timeout_ms;
      json shown = timeouts_json(fresh, gate_ms);
      shown.erase("gate_s");
      e.timeouts = std::move(shown);
    }
    auto frozen = freeze_check(e.freeze, at + ".freeze");
    if (!frozen.ok()) return frozen.error();
    p.settings.push_back(std::move(s));
  }
  return Ok{};
}

}  // namespace

Result<Pipeline> pipeline_from_json(const json& body) {
  DROVER_ASSIGN(Fields f, Fields::of(body, ""));
  DROVER_ASSIGN(auto format, f.opt_str("format", 64));
  Pipeline p;
  if (format) {
    if (*format != kPipelineV2) {
      return make_error(Errc::invalid_argument,
                        "format must be '" + std::string(kPipelineV2) +
                            "' (or absent, for a version-1 pipeline); got '" + *format + "'");
    }
    p.format = 2;
    DROVER_TRY(
        f.only({"format", "id", "service", "source_repo", "branch", "environments", "strategy",
                "health_checks", "timeouts", "watch_s", "artifact_ready", "depends_on"}));
    DROVER_ASSIGN(p.depends_on, f.str_list("depends_on", 32, 128));
    for (std::size_t i = 0; i < p.depends_on.size(); ++i) {
      const std::string at = "depends_on[" + std::to_string(i) + "]";
      DROVER_TRY(check_name(p.depends_on[i], at));
      if (std::count(p.depends_on.begin(), p.depends_on.end(), p.depends_on[i]) > 1) {
        return make_error(Errc::invalid_argument, at + " '" + p.depends_on[i] + "' appears twice");
      }
    }
    DROVER_ASSIGN(auto branch, f.opt_str("branch", 128));
    if (branch) {
      // A git branch name as drover takes it: name-rule parts joined by '/'.
      std::size_t from = 0;
      for (;;) {
        const std::size_t slash = branch->find('/', from);
        DROVER_TRY(check_name(branch->substr(from, slash - from), "branch"));
        if (slash == std::string::npos) break;
        from = slash + 1;
      }
      p.branch = *branch;
    }
  } else {
    if (f.has("environments")) {
      return make_error(Errc::invalid_argument, "environments is a field of format '" +
                                                    std::string(kPipelineV2) +
                                                    "': add format: " + std::string(kPipelineV2));
    }
    DROVER_TRY(f.only({"id", "service", "source_repo", "envs", "strategy", "approval_gates",
                       "health_checks", "timeouts", "artifact_ready"}));
  }
  DROVER_ASSIGN(p.service, f.str("service", 128));
  DROVER_TRY(check_name(p.service, "service"));
  for (std::size_t i = 0; i < p.depends_on.size(); ++i) {
    if (p.depends_on[i] == p.service) {
      return make_error(Errc::invalid_argument, "depends_on[" + std::to_string(i) + "]: service '" +
                                                    p.service + "' cannot depend on itself");
    }
  }
  DROVER_ASSIGN(auto id, f.opt_str("id", 128));
  p.id = id && !id->empty() ? *id : p.service;
  DROVER_TRY(check_name(p.id, "id"));
  DROVER_ASSIGN(auto repo, f.opt_str("source_repo", 1024));
  if (repo) p.source_repo = *repo;

  if (const json* envs = f.raw("envs")) {
    if (!envs->is_array() || envs->size() > 64) {
      return make_error(Errc::invalid_argument, "envs must be an array of at most 64 objects");
    }
    for (std::size_t i = 0; i < envs->size(); ++i) {
      DROVER_ASSIGN(Fields e, Fields::of((*envs)[i], "envs[" + std::to_string(i) + "]"));
      DROVER_TRY(e.only({"name", "region", "cluster"}));
      PipelineEnv env;
      DROVER_ASSIGN(env.name, e.str("name", 128));
      DROVER_TRY(check_name(env.name, e.path("name")));
      DROVER_ASSIGN(auto region, e.opt_str("region", 128));
      DROVER_ASSIGN(auto cluster, e.opt_str("cluster", 128));
      env.region = region.value_or("");
      env.cluster = cluster.value_or("");
      if (!env.region.empty()) DROVER_TRY(check_name(env.region, e.path("region")));
      if (!env.cluster.empty()) DROVER_TRY(check_name(env.cluster, e.path("cluster")));
      if (find_env(p, env.name) != nullptr) {
        return make_error(Errc::invalid_argument,
                          e.path("name") + " '" + env.name + "' appears twice");
      }
      p.envs.push_back(std::move(env));
    }
  }
  if (p.format == 1 && p.envs.empty()) p.envs.push_back({"production", "", ""});

  if (const json* s = f.raw("strategy")) {
    DROVER_ASSIGN(p.strategy, strategy_from_json(*s, "strategy"));
  } else {
    DROVER_ASSIGN(p.strategy, strategy_from_json(json::object(), "strategy"));
  }
  DROVER_ASSIGN(p.approval_gates, f.str_list("approval_gates", 64, 128));
  for (std::size_t i = 0; i < p.approval_gates.size(); ++i) {
    if (find_env(p, p.approval_gates[i]) == nullptr) {
      return make_error(Errc::invalid_argument, "approval_gates[" + std::to_string(i) +
                                                    "] names no env of this pipeline: '" +
                                                    p.approval_gates[i] + "'");
    }
  }
  DROVER_ASSIGN(auto health, f.opt_object("health_checks"));
  if (health) {
    DROVER_ASSIGN(p.params.health, parse_health(*health, p.params));
  }

  std::int64_t gate_ms = kDefaultGateMs;
  DROVER_ASSIGN(auto timeouts, f.opt_object("timeouts"));
  if (timeouts) {
    if (p.format == 1) {
      DROVER_TRY(timeouts->only({"ready_s", "converge_s", "rollback_s"}));
    }
    DROVER_TRY(parse_timeouts(*timeouts, p.params, gate_ms));
  }
  DROVER_ASSIGN(auto ready, f.opt_str("artifact_ready"));
  if (ready) {
    if (*ready != "seeds" && *ready != "origin") {
      return make_error(Errc::invalid_argument, "artifact_ready must be 'seeds' or 'origin'");
    }
    p.artifact_ready = *ready;
  }
  if (p.format == 1) {
    environments_of_v1(p);
    return p;
  }
  DROVER_ASSIGN(auto watch, f.opt_int("watch_s", 0, 7 * kDay));
  p.watch_ms = watch ? *watch * 1000 : kDefaultWatchMs;
  const json* envs = f.raw("environments");
  if (envs == nullptr) {
    return make_error(Errc::invalid_argument, "environments is required (1 to 16 environments)");
  }
  DROVER_ASSIGN(p.environments, environments_from_json(*envs, gate_ms));
  DROVER_TRY(resolve_environments(p, gate_ms));
  p.gate_ms = gate_ms;
  return p;
}

json pipeline_to_json(const Pipeline& p) {
  if (p.format == 2) {
    json j = {{"format", kPipelineV2},
              {"id", p.id},
              {"service", p.service},
              {"source_repo", p.source_repo},
              {"branch", p.branch},
              {"strategy", strategy_to_json(p.strategy)},
              {"health_checks", health_json(p.params)},
              {"timeouts", timeouts_json(p.params, p.gate_ms)},
              {"watch_s", p.watch_ms / 1000},
              {"artifact_ready", p.artifact_ready},
              {"environments", environments_to_json(p.environments)},
              {"version", p.version},
              {"updated_ms", p.updated_ms},
              {"updated_by", p.updated_by}};
    if (!p.depends_on.empty()) j["depends_on"] = p.depends_on;
    return j;
  }
  json envs = json::array();
  for (const auto& e : p.envs) {
    envs.push_back({{"name", e.name}, {"region", e.region}, {"cluster", e.cluster}});
  }
  return {{"id", p.id},
          {"service", p.service},
          {"source_repo", p.source_repo},
          {"envs", envs},
          {"strategy", strategy_to_json(p.strategy)},
          {"approval_gates", p.approval_gates},
          {"health_checks", health_json(p.params)},
          {"timeouts",
           {{"ready_s", p.params.ready_timeout_ms / 1000},
            {"converge_s", p.params.converge_timeout_ms / 1000},
            {"rollback_s", p.params.rollback_timeout_ms / 1000}}},
          {"artifact_ready", p.artifact_ready},
          {"version", p.version},
          {"updated_ms", p.updated_ms},
          {"updated_by", p.updated_by}};
}

std::string encode_pipeline_record(const Pipeline& p) {
  return pipeline_to_json(p).dump();
}

Result<Pipeline> decode_pipeline_record(std::string_view bytes) {
  json j = json::parse(bytes, nullptr, false);
  if (!j.is_object()) return make_error(Errc::corrupt, "a stored pipeline is unreadable");
  const auto version = j.value("version", std::uint64_t{0});
  const auto updated_ms = j.value("updated_ms", std::int64_t{0});
  const auto updated_by = j.value("updated_by", std::string());
  j.erase("version");
  j.erase("updated_ms");
  j.erase("updated_by");
  auto p = pipeline_from_json(j);
  if (!p.ok()) return make_error(Errc::corrupt, "stored pipeline: " + p.error().message);
  p->version = version;
  p->updated_ms = updated_ms;
  p->updated_by = updated_by;
  return p;
}

std::string encode_config_snapshot(const Pipeline& pipeline, const std::string& env,
                                   const std::string& artifact_id, const std::string& git_sha,
                                   const std::string& started_by, const std::string& redeploy_of) {
  json config = {{"pipeline", pipeline_to_json(pipeline)},
                 {"env", env},
                 {"artifact_id", artifact_id},
                 {"git_sha", git_sha},
                 {"started_by", started_by}};
  // Only when set: every snapshot written before keeps its bytes and hash.
  if (!redeploy_of.empty()) config["redeploy_of"] = redeploy_of;
  return config.dump();
}

DeployConfig decode_config_snapshot(std::string_view bytes) {
  DeployConfig out;
  const json j = json::parse(bytes, nullptr, false);
  if (!j.is_object()) return out;
  auto text = [&](const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  out.env = text("env");
  out.artifact_id = text("artifact_id");
  out.git_sha = text("git_sha");
  out.started_by = text("started_by");
  out.redeploy_of = text("redeploy_of");
  if (auto it = j.find("pipeline"); it != j.end()) {
    auto p = decode_pipeline_record(it->dump());
    if (p.ok()) out.pipeline = std::move(*p);
  }
  return out;
}

}  // namespace drover::coordinator
