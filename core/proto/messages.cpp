#include "core/proto/messages.hpp"

#include <cmath>

#include "core/base/hex.hpp"
#include "core/canon/base64.hpp"
#include "core/sign/secret_box.hpp"

namespace drover::proto {
namespace {

using nlohmann::json;

Error invalid(const std::string& what) {
  return make_error(Errc::invalid_argument, what);
}

Result<json> parse_object(std::string_view bytes, const char* what) {
  if (bytes.size() > kMaxMessageBytes) {
    return invalid(std::string(what) + " of " + std::to_string(bytes.size()) +
                   " bytes exceeds 16 MiB");
  }
  json j = json::parse(bytes, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return invalid(std::string(what) + " is not a JSON object");
  }
  return j;
}

Result<std::string> str(const json& j, const char* key, const char* where) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) {
    return invalid(std::string(where) + ": field '" + key + "' must be a string");
  }
  return it->get<std::string>();
}

Result<std::int64_t> int64(const json& j, const char* key, const char* where) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) {
    return invalid(std::string(where) + ": field '" + key + "' must be an integer");
  }
  return it->get<std::int64_t>();
}

Result<std::uint64_t> u64(const json& j, const char* key, const char* where) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_unsigned()) {
    return invalid(std::string(where) + ": field '" + key + "' must be a whole number");
  }
  return it->get<std::uint64_t>();
}

Result<double> number(const json& j, const char* key, const char* where) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) {
    return invalid(std::string(where) + ": field '" + key + "' must be a number");
  }
  const double v = it->get<double>();
  if (!std::isfinite(v)) return invalid(std::string(where) + ": field '" + key + "' is not finite");
  return v;
}

Status check_version(const json& j, const char* what) {
  auto v = j.find("v");
  if (v == j.end() || !v->is_number_integer()) {
    return invalid(std::string(what) + ": missing protocol version 'v'");
  }
  if (v->get<std::int64_t>() != kProtocolVersion) {
    return make_error(Errc::unsupported, std::string(what) + ": protocol version " + v->dump() +
                                             " is not supported (this build speaks 1)");
  }
  return Ok{};
}

std::string mac_input(const Request& r) {
  return "drover-msg-v1\n" + r.type + "\n" + r.host + "\n" + r.body;
}

Errc errc_from_name(std::string_view name) {
  for (Errc c :
       {Errc::invalid_argument, Errc::not_found, Errc::already_exists, Errc::io, Errc::corrupt,
        Errc::refused, Errc::crypto, Errc::unsupported, Errc::timeout, Errc::internal}) {
    if (name == errc_name(c)) return c;
  }
  return Errc::internal;
}

}  // namespace

std::string encode_request(const Request& r) {
  json j = {{"v", kProtocolVersion}, {"type", r.type}, {"host", r.host}, {"body", r.body}};
  if (!r.mac.empty()) j["mac"] = to_hex(r.mac);
  if (!r.sig.empty()) j["sig"] = canon::base64_encode(r.sig);
  return j.dump();
}

Result<Request> decode_request(std::string_view bytes) {
  DROVER_ASSIGN(json j, parse_object(bytes, "request"));
  DROVER_TRY(check_version(j, "request"));
  Request r;
  DROVER_ASSIGN(r.type, str(j, "type", "request"));
  DROVER_ASSIGN(r.host, str(j, "host", "request"));
  DROVER_ASSIGN(r.body, str(j, "body", "request"));
  if (j.contains("mac")) {
    DROVER_ASSIGN(std::string hex, str(j, "mac", "request"));
    auto raw = from_hex(hex);
    if (!raw || raw->size() != 32) return invalid("request: mac must be 64 hex digits");
    r.mac = std::move(*raw);
  }
  if (j.contains("sig")) {
    DROVER_ASSIGN(std::string b64, str(j, "sig", "request"));
    auto raw = canon::base64_decode(b64);
    if (!raw.ok() || raw->size() != 64) return invalid("request: sig must be 64 bytes in base64");
    r.sig = std::move(*raw);
  }
  return r;
}

void mac_request(Request& r, std::string_view key) {
  r.mac = sign::hmac_sha256(key, mac_input(r));
}

bool check_mac(const Request& r, std::string_view key) {
  return !r.mac.empty() && sign::mac_equal(r.mac, sign::hmac_sha256(key, mac_input(r)));
}

void sign_enroll(Request& r, const sign::KeyPair& agent_key) {
  r.sig = agent_key.sign("drover-enroll-v1\n" + r.body);
}

bool check_enroll_sig(const Request& r, const sign::PublicKey& agent_key) {
  return agent_key.verify("drover-enroll-v1\n" + r.body, r.sig);
}

std::string encode_reply(std::string_view type, json fields) {
  if (!fields.is_object()) fields = json::object();
  fields["v"] = kProtocolVersion;
  fields["type"] = type;
  return fields.dump();
}

std::string encode_error_reply(const Error& error) {
  return encode_reply("error", {{"code", errc_name(error.code)}, {"message", error.message}});
}

Result<Reply> decode_reply(std::string_view bytes) {
  DROVER_ASSIGN(json j, parse_object(bytes, "reply"));
  DROVER_TRY(check_version(j, "reply"));
  Reply r;
  DROVER_ASSIGN(r.type, str(j, "type", "reply"));
  if (r.type == "error") {
    auto code = str(j, "code", "error reply");
    auto message = str(j, "message", "error reply");
    return make_error(code.ok() ? errc_from_name(*code) : Errc::internal,
                      "coordinator: " + (message.ok() ? *message : std::string("(no message)")));
  }
  j.erase("v");
  j.erase("type");
  r.fields = std::move(j);
  return r;
}

std::string encode_announcement(const Announcement& a) {
  return std::string(kAnnouncePrefix) +
         json{{"v", kProtocolVersion}, {"service", a.service}, {"seq", a.seq}}.dump();
}

Result<Announcement> decode_announcement(std::string_view bytes) {
  if (bytes.substr(0, kAnnouncePrefix.size()) != kAnnouncePrefix) {
    return invalid("announcement does not start with '" + std::string(kAnnouncePrefix) + "'");
  }
  DROVER_ASSIGN(json j, parse_object(bytes.substr(kAnnouncePrefix.size()), "announcement"));
  DROVER_TRY(check_version(j, "announcement"));
  Announcement a;
  DROVER_ASSIGN(a.service, str(j, "service", "announcement"));
  DROVER_ASSIGN(a.seq, u64(j, "seq", "announcement"));
  return a;
}

json to_json(const EnrollBody& b) {
  return {{"host", b.host},
          {"region", b.region},
          {"cluster", b.cluster},
          {"services", b.services},
          {"public_key", b.public_key.hex()},
          {"mesh_peer", b.mesh_peer},
          {"join_token", b.join_token},
          {"sealed_mac_key", canon::base64_encode(b.sealed_mac_key)},
          {"at", b.at}};
}

Result<EnrollBody> enroll_body(const json& j) {
  constexpr const char* w = "enroll";
  EnrollBody b;
  DROVER_ASSIGN(b.host, str(j, "host", w));
  DROVER_ASSIGN(b.region, str(j, "region", w));
  DROVER_ASSIGN(b.cluster, str(j, "cluster", w));
  DROVER_ASSIGN(b.mesh_peer, str(j, "mesh_peer", w));
  DROVER_ASSIGN(b.join_token, str(j, "join_token", w));
  DROVER_ASSIGN(b.at, int64(j, "at", w));
  DROVER_ASSIGN(std::string pk, str(j, "public_key", w));
  DROVER_ASSIGN(b.public_key, sign::PublicKey::from_hex(pk));
  DROVER_ASSIGN(std::string sealed, str(j, "sealed_mac_key", w));
  auto raw = canon::base64_decode(sealed);
  if (!raw.ok()) return invalid("enroll: sealed_mac_key is not base64");
  b.sealed_mac_key = std::move(*raw);
  auto services = j.find("services");
  if (services == j.end() || !services->is_array()) {
    return invalid("enroll: field 'services' must be a list of names");
  }
  for (const auto& s : *services) {
    if (!s.is_string()) return invalid("enroll: every service must be a string");
    b.services.push_back(s.get<std::string>());
  }
  return b;
}

json to_json(const ReportBody& b) {
  json items = json::array();
  for (const auto& item : b.items) {
    if (item.health) {
      const HealthItem& h = *item.health;
      json custom = json::object();
      for (const auto& [k, v] : h.custom) custom[k] = v;
      items.push_back({{"kind", "health"},
                       {"service", h.service},
                       {"release", h.release},
                       {"slot", h.slot},
                       {"at", h.at_ms},
                       {"ok", h.ok},
                       {"error", h.error},
                       {"error_rate", h.error_rate},
                       {"p99_ms", h.p99_ms},
                       {"saturation", h.saturation},
                       {"custom", custom},
                       {"state", h.state}});
    } else if (item.event) {
      const EventItem& e = *item.event;
      items.push_back({{"kind", "event"},
                       {"service", e.service},
                       {"at", e.at_ms},
                       {"event", e.event},
                       {"seq", e.seq},
                       {"detail", e.detail}});
    }
  }
  return {{"seq", b.seq}, {"sent_at", b.sent_at_ms}, {"items", items}};
}

Result<ReportBody> report_body(const json& j) {
  constexpr const char* w = "report";
  ReportBody b;
  DROVER_ASSIGN(b.seq, u64(j, "seq", w));
  DROVER_ASSIGN(b.sent_at_ms, int64(j, "sent_at", w));
  auto items = j.find("items");
  if (items == j.end() || !items->is_array() || items->empty() || items->size() > kMaxReportItems) {
    return invalid("report: 'items' must list 1 to 256 items");
  }
  for (const auto& it : *items) {
    if (!it.is_object()) return invalid("report: an item is not an object");
    DROVER_ASSIGN(std::string kind, str(it, "kind", w));
    ReportItem item;
    if (kind == "health") {
      HealthItem h;
      DROVER_ASSIGN(h.service, str(it, "service", w));
      DROVER_ASSIGN(h.release, str(it, "release", w));
      DROVER_ASSIGN(h.slot, str(it, "slot", w));
      DROVER_ASSIGN(h.at_ms, int64(it, "at", w));
      DROVER_ASSIGN(h.error, str(it, "error", w));
      DROVER_ASSIGN(h.state, str(it, "state", w));
      auto ok = it.find("ok");
      if (ok == it.end() || !ok->is_boolean()) return invalid("report: 'ok' must be a boolean");
      h.ok = ok->get<bool>();
      DROVER_ASSIGN(h.error_rate, number(it, "error_rate", w));
      DROVER_ASSIGN(h.p99_ms, number(it, "p99_ms", w));
      DROVER_ASSIGN(h.saturation, number(it, "saturation", w));
      auto custom = it.find("custom");
      if (custom == it.end() || !custom->is_object()) {
        return invalid("report: 'custom' must be an object");
      }
      for (const auto& [k, v] : custom->items()) {
        if (!v.is_number()) return invalid("report: custom metric '" + k + "' is not a number");
        h.custom[k] = v.get<double>();
      }
      item.health = std::move(h);
    } else if (kind == "event") {
      EventItem e;
      DROVER_ASSIGN(e.service, str(it, "service", w));
      DROVER_ASSIGN(e.at_ms, int64(it, "at", w));
      DROVER_ASSIGN(e.event, str(it, "event", w));
      DROVER_ASSIGN(e.seq, u64(it, "seq", w));
      DROVER_ASSIGN(e.detail, str(it, "detail", w));
      item.event = std::move(e);
    } else {
      return invalid("report: unknown item kind '" + kind + "'");
    }
    b.items.push_back(std::move(item));
  }
  return b;
}

Result<json> parse_body(std::string_view body) {
  return parse_object(body, "request body");
}

}  // namespace drover::proto
