#include "coordinator/plans/flag_sets.hpp"

#include <nlohmann/json.hpp>

namespace drover::coordinator {
namespace {

using nlohmann::json;

json to_json(const FlagSetRecord& r) {
  json flags = json::object();
  for (const auto& [k, v] : r.flags) flags[k] = proto::flag_value_json(v);
  return {{"service", r.service}, {"env", r.env},     {"seq", r.seq}, {"flags", flags},
          {"hosts", r.hosts},     {"at_ms", r.at_ms}, {"by", r.by},   {"bundle", r.bundle}};
}

Result<FlagSetRecord> from_json(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return make_error(Errc::corrupt, "a stored flag set is not a JSON object");
  try {
    FlagSetRecord r;
    r.service = j.at("service").get<std::string>();
    r.env = j.at("env").get<std::string>();
    r.seq = j.at("seq").get<std::uint64_t>();
    for (const auto& [k, v] : j.at("flags").items()) {
      auto fv = proto::flag_value_of(v);
      if (!fv)
        return make_error(Errc::corrupt, "a stored flag set's flag '" + k + "' is unreadable");
      r.flags[k] = *fv;
    }
    r.hosts = j.at("hosts").get<std::vector<std::string>>();
    r.at_ms = j.at("at_ms").get<std::int64_t>();
    r.by = j.at("by").get<std::string>();
    r.bundle = j.at("bundle").get<std::string>();
    return r;
  } catch (const json::exception& e) {
    return make_error(Errc::corrupt, std::string("a stored flag set: ") + e.what());
  }
}

}  // namespace

std::string flagset_key(const std::string& service, const std::string& env) {
  return "flags/set/" + service + "/" + env;
}

std::string flags_seq_key(const std::string& service) {
  return "flags/seq/" + service;
}

Result<FlagSets::Loaded*> FlagSets::load(const std::string& service) {
  auto it = cache_.find(service);
  if (it != cache_.end()) return &it->second;
  Loaded l;
  DROVER_ASSIGN(auto stored, store_.settings_under("flags/set/" + service + "/"));
  for (const auto& [key, value] : stored) {
    DROVER_ASSIGN(FlagSetRecord r, from_json(value));
    l.by_env[r.env] = std::move(r);
  }
  // A host listed by two environments' sets (it moved): the newer one.
  std::map<std::string, std::uint64_t> seq_of;
  for (const auto& [env, r] : l.by_env) {
    for (const auto& h : r.hosts) {
      if (r.seq > seq_of[h]) {
        seq_of[h] = r.seq;
        l.env_of_host[h] = env;
      }
    }
  }
  return &(cache_[service] = std::move(l));
}

Result<FlagSetRecord> FlagSets::issue(const std::string& service, const std::string& env,
                                      std::map<std::string, proto::FlagValue> flags,
                                      std::vector<std::string> hosts, std::int64_t now_ms,
                                      AuditRecord audit) {
  std::lock_guard lock(mu_);
  DROVER_ASSIGN(Loaded * loaded, load(service));
  DROVER_ASSIGN(auto last, store_.setting(flags_seq_key(service)));
  const std::uint64_t seq = (last ? std::stoull(*last) : 0) + 1;
  if (seq > proto::kMaxSeq) {
    return make_error(Errc::exhausted, "service '" + service + "' has used every flag set seq");
  }
  proto::FlagSet f;
  f.service = service;
  f.env = env;
  f.seq = seq;
  f.hosts = hosts;
  f.flags = flags;
  f.issued_at = now_ms / 1000;
  const OnlineKey key = keys_.current();
  DROVER_ASSIGN(auto bundle, proto::sign_flagset(f, key.key, key.cert));
  FlagSetRecord r;
  r.service = service;
  r.env = env;
  r.seq = seq;
  r.flags = std::move(flags);
  r.hosts = std::move(hosts);
  r.at_ms = now_ms;
  r.by = audit.who;
  r.bundle = proto::encode_flagset_bundle(bundle);
  audit.at_ms = now_ms;
  audit.service = service;
  audit.env = env;
  DROVER_TRY(store_.write_settings({{flags_seq_key(service), std::to_string(seq)},
                                    {flagset_key(service, env), to_json(r).dump()}},
                                   {}, {audit}));
  // The cache follows the store only once the change is durable.
  if (auto old = loaded->by_env.find(env); old != loaded->by_env.end()) {
    for (const auto& h : old->second.hosts) loaded->env_of_host.erase(h);
  }
  for (const auto& h : r.hosts) loaded->env_of_host[h] = env;
  loaded->by_env[env] = r;
  if (announce_) announce_(service, seq);
  return r;
}

Result<std::optional<FlagSetRecord>> FlagSets::current(const std::string& service,
                                                       const std::string& env) {
  std::lock_guard lock(mu_);
  DROVER_ASSIGN(Loaded * loaded, load(service));
  auto it = loaded->by_env.find(env);
  if (it == loaded->by_env.end()) return std::optional<FlagSetRecord>();
  return std::optional<FlagSetRecord>(it->second);
}

Result<std::vector<FlagSetRecord>> FlagSets::of_service(const std::string& service) {
  std::lock_guard lock(mu_);
  DROVER_ASSIGN(Loaded * loaded, load(service));
  std::vector<FlagSetRecord> out;
  for (const auto& [env, r] : loaded->by_env) out.push_back(r);
  return out;
}

Result<FlagsAnswer> FlagSets::pull(const std::string& service, const std::string& host,
                                   std::uint64_t have_seq) {
  std::lock_guard lock(mu_);
  DROVER_ASSIGN(Loaded * loaded, load(service));
  auto env = loaded->env_of_host.find(host);
  if (env == loaded->env_of_host.end()) return FlagsAnswer{};
  const FlagSetRecord& r = loaded->by_env.at(env->second);
  if (r.seq == have_seq) return FlagsAnswer{FlagsAnswer::Kind::unchanged, r.seq, ""};
  return FlagsAnswer{FlagsAnswer::Kind::bundle, r.seq, r.bundle};
}

}  // namespace drover::coordinator
