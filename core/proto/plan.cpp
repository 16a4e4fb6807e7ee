#include "core/proto/plan.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "core/base/hex.hpp"
#include "core/canon/base64.hpp"
#include "core/canon/canonical_json.hpp"

namespace drover::proto {
namespace {

using nlohmann::json;

constexpr std::uint64_t kMaxSeq = (1ull << 53) - 1;
constexpr std::uint64_t kMaxLayerBytes = 64ull << 20;
constexpr std::size_t kMaxLayers = 65'536;
const std::set<std::string> kStrategies = {"rolling", "canary", "blue_green", "feature_flag"};

Error invalid(const std::string& what) {
  return make_error(Errc::invalid_argument, "plan: " + what);
}

Status check_name(std::string_view what, std::string_view value) {
  auto st = format::validate_service(value);
  if (!st.ok()) return invalid(std::string(what) + ": " + st.error().message);
  return Ok{};
}

bool printable_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
}

json layer_json(const PlanLayer& l) {
  return {{"id", l.id.str()}, {"size", l.size}, {"bt_root", to_hex(l.bt_root.data(), 32)}};
}

// Reads a field of an object, refusing a missing one or one of the wrong type.
struct Fields {
  const json& j;
  std::string where;
  Result<const json*> get(const char* key, json::value_t type) const {
    auto it = j.find(key);
    if (it == j.end()) return invalid(where + "missing field '" + key + "'");
    if (it->type() != type) return invalid(where + "field '" + key + "' has the wrong type");
    return &*it;
  }
  Result<std::string> str(const char* key) const {
    DROVER_ASSIGN(const json* v, get(key, json::value_t::string));
    return v->get<std::string>();
  }
  Result<std::uint64_t> u64(const char* key) const {
    DROVER_ASSIGN(const json* v, get(key, json::value_t::number_unsigned));
    return v->get<std::uint64_t>();
  }
  Status only(std::initializer_list<const char*> keys) const {
    for (const auto& [k, v] : j.items()) {
      if (std::find_if(keys.begin(), keys.end(), [&](const char* n) { return k == n; }) ==
          keys.end()) {
        return invalid(where + "unknown field '" + k + "'");
      }
    }
    return Ok{};
  }
};

}  // namespace

bool Plan::applies_to(std::string_view host) const {
  return std::find(hosts.begin(), hosts.end(), host) != hosts.end();
}

std::uint64_t Plan::layer_bytes() const {
  std::uint64_t n = 0;
  for (const auto& l : layers) n += l.size;
  return n;
}

Status validate_plan(const Plan& p) {
  DROVER_TRY(check_name("service", p.service));
  if (p.seq == 0 || p.seq > kMaxSeq) {
    return invalid("seq " + std::to_string(p.seq) + " is outside 1 to 2^53-1");
  }
  if (p.deploy_id.empty() || p.deploy_id.size() > 128 || !printable_ascii(p.deploy_id)) {
    return invalid("deploy_id must be 1-128 printable ASCII characters");
  }
  if (p.manifest_size == 0 || p.manifest_size > kMaxManifestBytes) {
    return invalid("manifest_size " + std::to_string(p.manifest_size) + " is outside 1 to 256 MiB");
  }
  if (p.layers.size() > kMaxLayers) return invalid("too many layers");
  std::set<ContentId> seen_layers;
  for (const auto& l : p.layers) {
    if (l.size == 0 || l.size > kMaxLayerBytes) {
      return invalid("layer " + l.id.str() + " size " + std::to_string(l.size) +
                     " is outside 1 to 64 MiB");
    }
    if (!seen_layers.insert(l.id).second) return invalid("layer " + l.id.str() + " listed twice");
  }
  if (p.hosts.empty() || p.hosts.size() > kMaxPlanHosts) {
    return invalid("hosts must list 1 to 100000 hosts");
  }
  std::set<std::string_view> seen_hosts;
  for (const auto& h : p.hosts) {
    DROVER_TRY(check_name("host", h));
    if (!seen_hosts.insert(h).second) return invalid("host '" + h + "' listed twice");
  }
  if (!kStrategies.count(p.strategy_kind)) {
    return invalid("strategy kind '" + p.strategy_kind +
                   "' is not one of rolling, canary, blue_green, feature_flag");
  }
  if (p.flags.size() > kMaxFlags) return invalid("more than 256 flags");
  for (const auto& [name, value] : p.flags) {
    DROVER_TRY(check_name("flag", name));
    if (value.is_percent && (value.percent < 0 || value.percent > 100)) {
      return invalid("flag '" + name + "' percentage " + std::to_string(value.percent) +
                     " is outside 0-100");
    }
  }
  if (p.tracker.rfind("http://", 0) != 0 || p.tracker.size() > 512 || !printable_ascii(p.tracker)) {
    return invalid("tracker must be an http:// URL of printable ASCII, got '" +
                   format::printable(p.tracker) + "'");
  }
  if (p.issued_at <= 0 || p.expires_at <= p.issued_at) {
    return invalid("issued_at must be positive and before expires_at");
  }
  return Ok{};
}

Result<std::string> encode_plan(const Plan& p) {
  DROVER_TRY(validate_plan(p));
  json layers = json::array();
  for (const auto& l : p.layers) layers.push_back(layer_json(l));
  json flags = json::object();
  for (const auto& [name, v] : p.flags) {
    flags[name] = v.is_percent ? json(v.percent) : json(v.on);
  }
  auto extra = canon::decode(p.strategy_extra, 64 << 10);
  if (!extra.ok() || !extra->is_object() || extra->contains("kind")) {
    return invalid("strategy_extra must be canonical JSON of an object without 'kind'");
  }
  json strategy = *extra;
  strategy["kind"] = p.strategy_kind;
  json j = {{"format", kPlanType},
            {"service", p.service},
            {"seq", p.seq},
            {"deploy_id", p.deploy_id},
            {"artifact",
             {{"id", p.artifact.str()}, {"manifest_size", p.manifest_size}, {"layers", layers}}},
            {"hosts", p.hosts},
            {"strategy", strategy},
            {"flags", flags},
            {"tracker", p.tracker},
            {"issued_at", p.issued_at},
            {"expires_at", p.expires_at}};
  return canon::encode(j);
}

Result<Plan> decode_plan(std::string_view bytes) {
  auto parsed = canon::decode(bytes, kMaxPlanBytes, 4 * kMaxPlanHosts + 4 * kMaxLayers + 4096);
  if (!parsed.ok()) return parsed.error().context("plan");
  const json& j = *parsed;
  if (!j.is_object()) return invalid("not a JSON object");
  Fields f{j, ""};
  DROVER_TRY(f.only({"format", "service", "seq", "deploy_id", "artifact", "hosts", "strategy",
                     "flags", "tracker", "issued_at", "expires_at"}));
  DROVER_ASSIGN(std::string format, f.str("format"));
  if (format != kPlanType) {
    return make_error(Errc::unsupported,
                      "plan: format '" + format + "' is not " + std::string(kPlanType));
  }
  Plan p;
  DROVER_ASSIGN(p.service, f.str("service"));
  DROVER_ASSIGN(p.seq, f.u64("seq"));
  DROVER_ASSIGN(p.deploy_id, f.str("deploy_id"));
  DROVER_ASSIGN(p.tracker, f.str("tracker"));
  for (auto [key, out] : {std::pair{"issued_at", &p.issued_at}, {"expires_at", &p.expires_at}}) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer()) {
      return invalid(std::string("field '") + key + "' must be an integer");
    }
    *out = it->get<std::int64_t>();
  }
  DROVER_ASSIGN(const json* artifact, f.get("artifact", json::value_t::object));
  Fields af{*artifact, "artifact: "};
  DROVER_TRY(af.only({"id", "manifest_size", "layers"}));
  DROVER_ASSIGN(std::string artifact_id, af.str("id"));
  auto id = ContentId::parse(artifact_id);
  if (!id.ok()) return invalid("artifact id: " + id.error().message);
  p.artifact = *id;
  DROVER_ASSIGN(p.manifest_size, af.u64("manifest_size"));
  DROVER_ASSIGN(const json* layers, af.get("layers", json::value_t::array));
  for (const auto& l : *layers) {
    if (!l.is_object()) return invalid("artifact: a layer is not an object");
    Fields lf{l, "layer: "};
    DROVER_TRY(lf.only({"id", "size", "bt_root"}));
    PlanLayer layer;
    DROVER_ASSIGN(std::string lid, lf.str("id"));
    auto parsed_id = ContentId::parse(lid);
    if (!parsed_id.ok()) return invalid("layer id: " + parsed_id.error().message);
    layer.id = *parsed_id;
    DROVER_ASSIGN(layer.size, lf.u64("size"));
    DROVER_ASSIGN(std::string root, lf.str("bt_root"));
    auto raw = from_hex(root);
    if (!raw || raw->size() != 32 || to_hex(*raw) != root) {
      return invalid("layer " + lid + ": bt_root must be 64 lowercase hex digits");
    }
    std::copy(raw->begin(), raw->end(), layer.bt_root.begin());
    p.layers.push_back(layer);
  }
  DROVER_ASSIGN(const json* hosts, f.get("hosts", json::value_t::array));
  for (const auto& h : *hosts) {
    if (!h.is_string()) return invalid("hosts: every host must be a string");
    p.hosts.push_back(h.get<std::string>());
  }
  DROVER_ASSIGN(const json* strategy, f.get("strategy", json::value_t::object));
  {
    json extra = *strategy;
    auto kind = extra.find("kind");
    if (kind == extra.end() || !kind->is_string()) return invalid("strategy: missing 'kind'");
    p.strategy_kind = kind->get<std::string>();
    extra.erase("kind");
    p.strategy_extra = *canon::encode(extra);
  }
  DROVER_ASSIGN(const json* flags, f.get("flags", json::value_t::object));
  for (const auto& [name, v] : flags->items()) {
    FlagValue fv;
    if (v.is_boolean()) {
      fv.on = v.get<bool>();
    } else if (v.is_number_integer() && v.get<std::int64_t>() >= 0 &&
               v.get<std::int64_t>() <= 100) {
      fv.is_percent = true;
      fv.percent = static_cast<int>(v.get<std::int64_t>());
    } else {
      return invalid("flag '" + name + "' must be true, false or an integer 0-100");
    }
    p.flags[name] = fv;
  }
  DROVER_TRY(validate_plan(p));
  return p;
}

std::string encode_bundle(const PlanBundle& b) {
  json j = {{"plan", sign::encode_envelope(b.plan)}, {"cert", sign::encode_envelope(b.cert)}};
  if (b.manifest) j["manifest"] = canon::base64_encode(*b.manifest);
  return j.dump();
}

Result<PlanBundle> decode_bundle(std::string_view bytes) {
  if (bytes.size() > 2 * kMaxPlanBytes + 2 * kMaxManifestBytes) {
    return invalid("bundle of " + std::to_string(bytes.size()) + " bytes is too large");
  }
  json j = json::parse(bytes, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return invalid("bundle is not a JSON object");
  Fields f{j, "bundle: "};
  DROVER_TRY(f.only({"plan", "cert", "manifest"}));
  PlanBundle b;
  DROVER_ASSIGN(std::string plan, f.str("plan"));
  DROVER_ASSIGN(std::string cert, f.str("cert"));
  DROVER_ASSIGN(b.plan, sign::decode_envelope(plan));
  DROVER_ASSIGN(b.cert, sign::decode_envelope(cert));
  if (j.contains("manifest")) {
    DROVER_ASSIGN(std::string m64, f.str("manifest"));
    auto m = canon::base64_decode(m64);
    if (!m.ok()) return invalid("bundle: manifest: " + m.error().message);
    b.manifest = std::move(*m);
  }
  return b;
}

Result<PlanBundle> sign_plan(const Plan& plan, const sign::KeyPair& online,
                             const sign::Envelope& cert) {
  DROVER_ASSIGN(std::string payload, encode_plan(plan));
  return PlanBundle{sign::seal(kPlanType, std::move(payload), online), cert, std::nullopt};
}

Result<OpenedPlan> open_plan(const PlanBundle& bundle, const sign::TrustRoot& trust,
                             std::int64_t now) {
  auto verified = sign::open_certified(bundle.plan, kPlanType, bundle.cert, trust, now);
  if (!verified.ok()) return verified.error().context("plan signature");
  auto plan = decode_plan(verified->payload);
  if (!plan.ok()) return plan.error();
  return OpenedPlan{std::move(*plan), verified->cert};
}

Result<format::Manifest> check_manifest(const Plan& plan, std::string_view bytes) {
  if (bytes.size() != plan.manifest_size) {
    return make_error(Errc::refused, "manifest of " + plan.artifact.str() + " is " +
                                         std::to_string(bytes.size()) + " bytes; the plan signs " +
                                         std::to_string(plan.manifest_size));
  }
  if (ContentId::of(bytes) != plan.artifact) {
    return make_error(Errc::corrupt, "manifest bytes hash to " + ContentId::of(bytes).str() +
                                         ", not the planned artifact " + plan.artifact.str());
  }
  auto manifest = format::decode_manifest(bytes);
  if (!manifest.ok()) return manifest.error().context("manifest of " + plan.artifact.str());
  if (manifest->service != plan.service) {
    return make_error(Errc::refused, "artifact " + plan.artifact.str() + " is of service '" +
                                         manifest->service + "', the plan is for '" + plan.service +
                                         "'");
  }
  if (manifest->layers.size() != plan.layers.size()) {
    return make_error(Errc::refused, "manifest lists " + std::to_string(manifest->layers.size()) +
                                         " layers; the plan signs " +
                                         std::to_string(plan.layers.size()));
  }
  for (std::size_t i = 0; i < plan.layers.size(); ++i) {
    const auto& m = manifest->layers[i];
    const auto& s = plan.layers[i];
    if (m.id != s.id || m.size != s.size || m.bt_root != s.bt_root) {
      return make_error(Errc::refused, "layer " + std::to_string(i) + " of the manifest (" +
                                           m.id.str() + ", " + std::to_string(m.size) +
                                           " bytes) is not the plan's (" + s.id.str() + ", " +
                                           std::to_string(s.size) + " bytes)");
    }
  }
  return manifest;
}

}  // namespace drover::proto
