#include "coordinator/releases/release_record.hpp"

#include <nlohmann/json.hpp>

#include "core/canon/canonical_json.hpp"

namespace drover::coordinator {
namespace {

using nlohmann::json;
constexpr std::string_view kFormat = "drover.release.v1";

constexpr ReleaseState kStates[] = {ReleaseState::running,  ReleaseState::succeeded,
                                    ReleaseState::failed,   ReleaseState::rolled_back,
                                    ReleaseState::rejected, ReleaseState::superseded};

json act_json(const GateAct& a) {
  return {{"person", a.person}, {"token", a.token}, {"at_ms", a.at_ms}, {"comment", a.comment}};
}

GateAct act_of(const json& j) {
  return {j.at("person").get<std::string>(), j.at("token").get<std::string>(),
          j.at("at_ms").get<std::int64_t>(), j.at("comment").get<std::string>()};
}

}  // namespace

const char* release_state_name(ReleaseState s) {
  switch (s) {
    case ReleaseState::running: return "running";
    case ReleaseState::succeeded: return "succeeded";
    case ReleaseState::failed: return "failed";
    case ReleaseState::rolled_back: return "rolled_back";
    case ReleaseState::rejected: return "rejected";
    case ReleaseState::superseded: return "superseded";
  }
  return "?";
}

const char* release_policy_name(ReleasePolicy p) {
  return p == ReleasePolicy::all ? "all" : "failed_only";
}

Result<ReleasePolicy> parse_release_policy(std::string_view name) {
  if (name == "failed_only") return ReleasePolicy::failed_only;
  if (name == "all") return ReleasePolicy::all;
  return make_error(Errc::invalid_argument,
                    "policy '" + std::string(name) + "' is not failed_only or all");
}

const ReleaseMember* ReleaseRecord::member(const std::string& service) const {
  for (const auto& m : services) {
    if (m.service == service) return &m;
  }
  return nullptr;
}

ReleaseGate* ReleaseRecord::gate(const std::string& env) {
  for (auto& g : gates) {
    if (g.env == env) return &g;
  }
  return nullptr;
}

const ReleaseGate* ReleaseRecord::gate(const std::string& env) const {
  return const_cast<ReleaseRecord*>(this)->gate(env);
}

std::string encode_release(const ReleaseRecord& r) {
  json services = json::array();
  for (const auto& m : r.services) {
    services.push_back({{"service", m.service},
                        {"pipeline_id", m.pipeline_id},
                        {"artifact", m.artifact},
                        {"deploy_id", m.deploy_id},
                        {"depends_on", m.depends_on}});
  }
  json gates = json::array();
  for (const auto& g : r.gates) {
    json approvals = json::array();
    for (const auto& a : g.approvals) approvals.push_back(act_json(a));
    gates.push_back({{"env", g.env},
                     {"required", g.required},
                     {"approvals", approvals},
                     {"rejection", g.rejection ? act_json(*g.rejection) : json(nullptr)}});
  }
  json failures = json::array();
  for (const auto& f : r.failures) {
    failures.push_back({{"env", f.env}, {"service", f.service}, {"reason", f.reason}});
  }
  json j = {{"format", kFormat},
            {"id", r.id},
            {"started_by", r.started_by},
            {"who", r.who},
            {"policy", release_policy_name(r.policy)},
            {"state", release_state_name(r.state)},
            {"environments", r.environments},
            {"services", services},
            {"gates", gates},
            {"failures", failures},
            {"left", r.left},
            {"created_ms", r.created_ms},
            {"completed_ms", r.completed_ms},
            {"reason", r.reason}};
  return *canon::encode(j);
}

Result<ReleaseRecord> decode_release(std::string_view bytes) {
  auto parsed = canon::decode(bytes, 16 << 20);
  if (!parsed.ok()) return parsed.error().context("release record");
  try {
    const json& j = *parsed;
    if (j.at("format") != kFormat) {
      return make_error(Errc::unsupported, "release record of format " + j.at("format").dump());
    }
    ReleaseRecord r;
    r.id = j.at("id").get<std::string>();
    r.started_by = j.at("started_by").get<std::string>();
    r.who = j.at("who").get<std::string>();
    DROVER_ASSIGN(r.policy, parse_release_policy(j.at("policy").get<std::string>()));
    const std::string state = j.at("state").get<std::string>();
    bool known = false;
    for (ReleaseState s : kStates) {
      if (state == release_state_name(s)) {
        r.state = s;
        known = true;
      }
    }
    if (!known) return make_error(Errc::corrupt, "release record: unknown state '" + state + "'");
    r.environments = j.at("environments").get<std::vector<std::string>>();
    for (const auto& m : j.at("services")) {
      r.services.push_back(
          {m.at("service").get<std::string>(), m.at("pipeline_id").get<std::string>(),
           m.at("artifact").get<std::string>(), m.at("deploy_id").get<std::string>(),
           m.at("depends_on").get<std::vector<std::string>>()});
    }
    for (const auto& g : j.at("gates")) {
      ReleaseGate gate;
      gate.env = g.at("env").get<std::string>();
      gate.required = g.at("required").get<int>();
      for (const auto& a : g.at("approvals")) gate.approvals.push_back(act_of(a));
      if (!g.at("rejection").is_null()) gate.rejection = act_of(g.at("rejection"));
      r.gates.push_back(std::move(gate));
    }
    for (const auto& f : j.at("failures")) {
      r.failures.push_back({f.at("env").get<std::string>(), f.at("service").get<std::string>(),
                            f.at("reason").get<std::string>()});
    }
    r.left = j.at("left").get<std::map<std::string, std::string>>();
    r.created_ms = j.at("created_ms").get<std::int64_t>();
    r.completed_ms = j.at("completed_ms").get<std::int64_t>();
    r.reason = j.at("reason").get<std::string>();
    return r;
  } catch (const std::exception& e) {
    return make_error(Errc::corrupt, std::string("release record: ") + e.what());
  }
}

}  // namespace drover::coordinator
