#include "coordinator/pipelines/pipeline_codec.hpp"

#include "core/base/name.hpp"
#include "core/canon/canonical_json.hpp"
#include "core/canon/json_fields.hpp"

namespace drover::coordinator {
namespace {

using canon::Fields;
using nlohmann::json;

constexpr std::int64_t kDay = 24 * 3600;

Status check_name(const std::string& value, const std::string& field) {
  if (auto st = validate_name(value, field); !st.ok()) return st.error();
  return Ok{};
}

Result<HealthThresholds> parse_health(const Fields& f, DeployParams& params) {
  DROVER_TRY(f.only({"judge", "bake_s", "min_samples", "consecutive", "error_rate_relative",
                     "error_rate_floor", "p99_delta_ms", "saturation_delta", "confidence",
                     "baseline_window_s"}));
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
  return {
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
}

json strategy_json(const Strategy& s) {
  json j = {{"kind", s.kind}, {"max_unavailable", s.shape.max_unavailable}};
  if (s.shape.batch_percent > 0) {
    j["batch_percent"] = s.shape.batch_percent;
  } else {
    j["batch_size"] = s.shape.batch_size;
  }
  if (s.kind == "canary") j["canary_percents"] = s.shape.canary_percents;
  return j;
}

}  // namespace

Result<Strategy> strategy_from_json(const json& value, const std::string& where) {
  DROVER_ASSIGN(Fields f, Fields::of(value, where));
  DROVER_TRY(f.only({"kind", "batch_size", "batch_percent", "max_unavailable", "canary_percents"}));
  Strategy s;
  DROVER_ASSIGN(auto kind, f.opt_str("kind"));
  if (kind) s.kind = *kind;
  if (s.kind == "blue_green" || s.kind == "feature_flag") {
    return make_error(Errc::invalid_argument,
                      f.path("kind") + " '" + s.kind +
                          "' is not offered by this coordinator yet; use rolling or canary");
  }
  if (s.kind != "rolling" && s.kind != "canary") {
    return make_error(Errc::invalid_argument, f.path("kind") + " must be 'rolling' or 'canary'");
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
  } else if (s.kind == "canary") {
    s.shape.canary_percents = {1, 5, 25};
  }
  if (auto st = validate_shape(s.shape); !st.ok()) {
    std::string m = st.error().message;
    if (m.rfind("strategy: ", 0) == 0) m = m.substr(10);
    return make_error(Errc::invalid_argument, where + ": " + m);
  }
  return s;
}

Result<Pipeline> pipeline_from_json(const json& body) {
  DROVER_ASSIGN(Fields f, Fields::of(body, ""));
  DROVER_TRY(f.only({"id", "service", "source_repo", "envs", "strategy", "approval_gates",
                     "health_checks", "timeouts", "artifact_ready"}));
  Pipeline p;
  DROVER_ASSIGN(p.service, f.str("service", 128));
  DROVER_TRY(check_name(p.service, "service"));
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
  if (p.envs.empty()) p.envs.push_back({"production", "", ""});

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

  DROVER_ASSIGN(auto timeouts, f.opt_object("timeouts"));
  if (timeouts) {
    DROVER_TRY(timeouts->only({"ready_s", "converge_s", "rollback_s"}));
    DROVER_ASSIGN(auto ready, timeouts->opt_int("ready_s", 1, kDay));
    DROVER_ASSIGN(auto converge, timeouts->opt_int("converge_s", 1, kDay));
    DROVER_ASSIGN(auto back, timeouts->opt_int("rollback_s", 1, kDay));
    if (ready) p.params.ready_timeout_ms = *ready * 1000;
    if (converge) p.params.converge_timeout_ms = *converge * 1000;
    if (back) p.params.rollback_timeout_ms = *back * 1000;
  }
  DROVER_ASSIGN(auto ready, f.opt_str("artifact_ready"));
  if (ready) {
    if (*ready != "seeds" && *ready != "origin") {
      return make_error(Errc::invalid_argument, "artifact_ready must be 'seeds' or 'origin'");
    }
    p.artifact_ready = *ready;
  }
  return p;
}

json pipeline_to_json(const Pipeline& p) {
  json envs = json::array();
  for (const auto& e : p.envs) {
    envs.push_back({{"name", e.name}, {"region", e.region}, {"cluster", e.cluster}});
  }
  return {{"id", p.id},
          {"service", p.service},
          {"source_repo", p.source_repo},
          {"envs", envs},
          {"strategy", strategy_json(p.strategy)},
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
                                   const std::string& started_by) {
  const json config = {{"pipeline", pipeline_to_json(pipeline)},
                       {"env", env},
                       {"artifact_id", artifact_id},
                       {"git_sha", git_sha},
                       {"started_by", started_by}};
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
  if (auto it = j.find("pipeline"); it != j.end()) {
    auto p = decode_pipeline_record(it->dump());
    if (p.ok()) out.pipeline = std::move(*p);
  }
  return out;
}

}  // namespace drover::coordinator
