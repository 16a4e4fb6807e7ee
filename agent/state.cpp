#include "agent/state.hpp"

#include <nlohmann/json.hpp>

#include "core/canon/canonical_json.hpp"

namespace drover::agent {
namespace {

using nlohmann::json;
constexpr std::string_view kFormat = "1";

std::string encode(const ServiceRecord& r) {
  json j = {{"current", r.current},   {"previous", r.previous},
            {"seq", r.seq},           {"seq_state", r.seq_failed ? "failed" : "applied"},
            {"flags", r.flags},       {"active_slot", r.active_slot},
            {"slots", json(r.slots)}, {"tracker", r.tracker}};
  if (!r.proof.empty()) j["proof"] = r.proof;
  // Added with traffic splitting (issue 15): written when not the default.
  if (r.traffic != 1000) j["traffic"] = r.traffic;
  if (r.preview) j["preview"] = true;
  if (r.stop_idle_at_ms != 0) j["stop_idle_at"] = r.stop_idle_at_ms;
  if (r.flags_seq != 0) j["flags_seq"] = r.flags_seq;
  return *canon::encode(j);
}

Result<ServiceRecord> decode_record(std::string_view bytes, const std::string& name) {
  auto parsed = canon::decode(bytes, 4 << 20);
  if (!parsed.ok() || !parsed->is_object()) {
    return make_error(Errc::corrupt, "agent state: record of service '" + name + "' is unreadable");
  }
  try {
    const json& j = *parsed;
    ServiceRecord r;
    r.current = j.at("current").get<std::string>();
    r.previous = j.at("previous").get<std::vector<std::string>>();
    r.seq = j.at("seq").get<std::uint64_t>();
    r.seq_failed = j.at("seq_state").get<std::string>() == "failed";
    r.flags = j.at("flags").get<std::string>();
    r.active_slot = j.at("active_slot").get<std::string>();
    r.slots = j.at("slots").get<std::map<std::string, std::string>>();
    r.tracker = j.at("tracker").get<std::string>();
    r.proof = j.value("proof", "");  // added later: absent in older records
    r.traffic = j.value("traffic", 1000);
    r.preview = j.value("preview", false);
    r.stop_idle_at_ms = j.value("stop_idle_at", std::int64_t{0});
    r.flags_seq = j.value("flags_seq", std::uint64_t{0});
    if (r.traffic < 0 || r.traffic > 1000 || r.stop_idle_at_ms < 0) {
      return make_error(Errc::corrupt, "agent state: record of service '" + name +
                                           "': traffic or stop_idle_at out of range");
    }
    return r;
  } catch (const json::exception& e) {
    return make_error(Errc::corrupt,
                      "agent state: record of service '" + name + "': " + std::string(e.what()));
  }
}

}  // namespace

Result<std::unique_ptr<AgentState>> AgentState::open(const fs::path& dir) {
  std::unique_ptr<AgentState> s(new AgentState());
  lmdb::Options options;
  options.map_size = 256ull << 20;
  DROVER_ASSIGN(s->env_, lmdb::Env::open(dir, options));
  DROVER_ASSIGN(s->meta_, s->env_->table("meta"));
  DROVER_ASSIGN(s->services_, s->env_->table("services"));
  DROVER_ASSIGN(s->intents_, s->env_->table("intents"));
  DROVER_ASSIGN(s->trust_, s->env_->table("trust"));
  DROVER_ASSIGN(auto txn, s->env_->begin_write());
  DROVER_ASSIGN(auto format, txn.get(s->meta_, "agent_format"));
  if (!format) {
    DROVER_TRY(txn.put(s->meta_, "agent_format", kFormat));
  } else if (*format != kFormat) {
    return make_error(Errc::unsupported, "agent state " + dir.string() + " has format '" + *format +
                                             "'; this agent reads format 1");
  }
  DROVER_TRY(txn.commit());
  return s;
}

Result<ServiceRecord> AgentState::service(const std::string& name) {
  DROVER_ASSIGN(auto txn, env_->begin_read());
  DROVER_ASSIGN(auto bytes, txn.get(services_, name));
  if (!bytes) return ServiceRecord{};
  return decode_record(*bytes, name);
}

Result<std::optional<Intent>> AgentState::intent(const std::string& service) {
  DROVER_ASSIGN(auto txn, env_->begin_read());
  DROVER_ASSIGN(auto bytes, txn.get(intents_, service));
  if (!bytes) return std::optional<Intent>();
  json j = json::parse(*bytes, nullptr, false);
  if (!j.is_object()) {
    return make_error(Errc::corrupt, "agent state: intent of '" + service + "' is unreadable");
  }
  Intent i;
  i.step = j.value("step", "");
  i.seq = j.value("seq", std::uint64_t{0});
  i.artifact = j.value("artifact", "");
  i.from = j.value("from", "");
  return std::optional<Intent>(i);
}

Result<std::uint64_t> AgentState::min_cert_version() {
  DROVER_ASSIGN(auto txn, env_->begin_read());
  DROVER_ASSIGN(auto bytes, txn.get(trust_, "min_cert_version"));
  if (!bytes) return std::uint64_t{1};
  return std::stoull(*bytes);
}

Result<std::optional<sign::Root>> AgentState::root() {
  DROVER_ASSIGN(auto txn, env_->begin_read());
  DROVER_ASSIGN(auto bytes, txn.get(trust_, "root"));
  if (!bytes) return std::optional<sign::Root>();
  DROVER_ASSIGN(json j, canon::decode(*bytes, 4096));
  if (!j.is_object() || !j.contains("key") || !j["key"].is_string() || !j.contains("version") ||
      !j["version"].is_number_unsigned()) {
    return make_error(Errc::corrupt, "agent state: the trusted root record is malformed");
  }
  DROVER_ASSIGN(auto key, sign::PublicKey::from_hex(j["key"].get<std::string>()));
  return std::optional<sign::Root>(sign::Root{key, j["version"].get<std::uint64_t>()});
}

Status AgentState::set_root(const sign::Root& root) {
  DROVER_ASSIGN(auto txn, env_->begin_write());
  const json j = {{"key", root.key.hex()}, {"version", root.version}};
  DROVER_TRY(txn.put(trust_, "root", *canon::encode(j)));
  return txn.commit();
}

Status AgentState::put_service(const std::string& name, const ServiceRecord& record) {
  DROVER_ASSIGN(auto txn, env_->begin_write());
  DROVER_TRY(txn.put(services_, name, encode(record)));
  return txn.commit();
}

Status AgentState::put_intent(const std::string& service, const Intent& i) {
  DROVER_ASSIGN(auto txn, env_->begin_write());
  json j = {{"step", i.step}, {"seq", i.seq}, {"artifact", i.artifact}, {"from", i.from}};
  DROVER_TRY(txn.put(intents_, service, *canon::encode(j)));
  return txn.commit();
}

Status AgentState::finish(const std::string& name, const ServiceRecord& record) {
  DROVER_ASSIGN(auto txn, env_->begin_write());
  DROVER_TRY(txn.put(services_, name, encode(record)));
  DROVER_ASSIGN(bool erased, txn.erase(intents_, name));
  (void)erased;
  return txn.commit();
}

Status AgentState::clear_intent(const std::string& service) {
  DROVER_ASSIGN(auto txn, env_->begin_write());
  DROVER_ASSIGN(bool erased, txn.erase(intents_, service));
  (void)erased;
  return txn.commit();
}

Status AgentState::raise_min_cert_version(std::uint64_t version) {
  DROVER_ASSIGN(auto txn, env_->begin_write());
  DROVER_ASSIGN(auto bytes, txn.get(trust_, "min_cert_version"));
  if (bytes && std::stoull(*bytes) >= version) return Ok{};
  DROVER_TRY(txn.put(trust_, "min_cert_version", std::to_string(version)));
  return txn.commit();
}

Result<std::pair<std::uint64_t, std::uint64_t>> AgentState::reserve_report_seqs(
    std::uint64_t count) {
  DROVER_ASSIGN(auto txn, env_->begin_write());
  DROVER_ASSIGN(auto bytes, txn.get(meta_, "report_seq_ceiling"));
  const std::uint64_t from = bytes ? std::stoull(*bytes) : 1;
  DROVER_TRY(txn.put(meta_, "report_seq_ceiling", std::to_string(from + count)));
  DROVER_TRY(txn.commit());
  return std::pair{from, from + count};
}

}  // namespace drover::agent
