#include "core/proto/plan.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "core/base/hex.hpp"
#include "core/base/name.hpp"
#include "core/canon/base64.hpp"
#include "core/canon/canonical_json.hpp"
#include "core/canon/json_fields.hpp"
#include "core/proto/messages.hpp"

namespace drover::proto {
namespace {

using canon::Empty;
using canon::Fields;
using nlohmann::json;

constexpr std::uint64_t kMaxLayerBytes = 64ull << 20;
constexpr std::size_t kMaxLayers = 65'536;
const std::set<std::string> kStrategies = {"rolling", "canary", "blue_green", "feature_flag"};

Error invalid_plan(const std::string& what) {
  return make_error(Errc::invalid_argument, "plan: " + what);
}

Status check_name(std::string_view what, std::string_view value) {
  auto st = validate_name(value, what);
  if (!st.ok()) return invalid_plan(st.error().message);
  return Ok{};
}

bool printable_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
}

json layer_json(const PlanLayer& l) {
  return {{"id", l.id.str()}, {"size", l.size}, {"bt_root", to_hex(l.bt_root.data(), 32)}};
}

// Plan fields are bounded by the plan's size alone; validate_plan() applies
// the format's own limits.
constexpr std::size_t kAnyPlanField = kMaxPlanBytes;

}  // namespace

int Plan::traffic() const {
  const json x = json::parse(strategy_extra, nullptr, false);
  return x.is_object() && x.contains("traffic") && x["traffic"].is_number_integer()
             ? x["traffic"].get<int>()
             : 1000;
}

bool Plan::preview() const {
  const json x = json::parse(strategy_extra, nullptr, false);
  return x.is_object() && x.contains("preview") && x["preview"].is_boolean() &&
         x["preview"].get<bool>();
}

std::optional<std::int64_t> Plan::scale_down_s() const {
  const json x = json::parse(strategy_extra, nullptr, false);
  if (!x.is_object() || !x.contains("scale_down_s") || !x["scale_down_s"].is_number_integer()) {
    return std::nullopt;
  }
  return x["scale_down_s"].get<std::int64_t>();
}

json flag_value_json(const FlagValue& v) {
  return v.is_percent ? json(v.percent) : json(v.on);
}

std::optional<FlagValue> flag_value_of(const json& v) {
  FlagValue fv;
  if (v.is_boolean()) {
    fv.on = v.get<bool>();
    return fv;
  }
  if (v.is_number_integer() && v.get<std::int64_t>() >= 0 && v.get<std::int64_t>() <= 100) {
    fv.is_percent = true;
    fv.percent = static_cast<int>(v.get<std::int64_t>());
    return fv;
  }
  return std::nullopt;
}

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
    return invalid_plan("seq " + std::to_string(p.seq) + " is outside 1 to 2^53-1");
  }
  if (p.deploy_id.empty() || p.deploy_id.size() > 128 || !printable_ascii(p.deploy_id)) {
    return invalid_plan("deploy_id must be 1-128 printable ASCII characters");
  }
  if (p.manifest_size == 0 || p.manifest_size > kMaxManifestBytes) {
    return invalid_plan("manifest_size " + std::to_string(p.manifest_size) +
                        " is outside 1 to 256 MiB");
  }
  if (p.layers.size() > kMaxLayers) return invalid_plan("too many layers");
  std::set<ContentId> seen_layers;
  for (const auto& l : p.layers) {
    if (l.size == 0 || l.size > kMaxLayerBytes) {
      return invalid_plan("layer " + l.id.str() + " size " + std::to_string(l.size) +
                          " is outside 1 to 64 MiB");
    }
    if (!seen_layers.insert(l.id).second)
      return invalid_plan("layer " + l.id.str() + " listed twice");
  }
  if (p.hosts.empty() || p.hosts.size() > kMaxPlanHosts) {
    return invalid_plan("hosts must list 1 to 100000 hosts");
  }
  std::set<std::string_view> seen_hosts;
  for (const auto& h : p.hosts) {
    DROVER_TRY(check_name("host", h));
    if (!seen_hosts.insert(h).second) return invalid_plan("host '" + h + "' listed twice");
  }
  if (!kStrategies.count(p.strategy_kind)) {
    return invalid_plan("strategy kind '" + p.strategy_kind +
                        "' is not one of rolling, canary, blue_green, feature_flag");
  }
  // The strategy keys an agent acts on (docs/FORMATS.md, "Plan"): the
  // others are the coordinator's and pass through.
  {
    auto extra = canon::decode(p.strategy_extra, 64 << 10);
    if (!extra.ok() || !extra->is_object()) {
      return invalid_plan("strategy_extra must be canonical JSON of an object");
    }
    const json& x = *extra;
    if (x.contains("traffic")) {
      if (!x["traffic"].is_number_integer() || x["traffic"].get<std::int64_t>() < 0 ||
          x["traffic"].get<std::int64_t>() > 1000) {
        return invalid_plan("strategy.traffic must be a whole number of per mille, 0-1000");
      }
      if (p.strategy_kind != "blue_green" && p.strategy_kind != "canary") {
        return invalid_plan("strategy.traffic is for blue_green and canary, not " +
                            p.strategy_kind);
      }
    }
    if (x.contains("preview") && !x["preview"].is_boolean()) {
      return invalid_plan("strategy.preview must be true or false");
    }
    if (x.contains("scale_down_s") &&
        (!x["scale_down_s"].is_number_integer() || x["scale_down_s"].get<std::int64_t>() < 0 ||
         x["scale_down_s"].get<std::int64_t>() > 7 * 86400)) {
      return invalid_plan("strategy.scale_down_s must be whole seconds, 0-604800");
    }
  }
  if (p.flags.size() > kMaxFlags) return invalid_plan("more than 256 flags");
  for (const auto& [name, value] : p.flags) {
    DROVER_TRY(check_name("flag", name));
    if (value.is_percent && (value.percent < 0 || value.percent > 100)) {
      return invalid_plan("flag '" + name + "' percentage " + std::to_string(value.percent) +
                          " is outside 0-100");
    }
  }
  if (p.tracker.rfind("http://", 0) != 0 || p.tracker.size() > 512 || !printable_ascii(p.tracker)) {
    return invalid_plan("tracker must be an http:// URL of printable ASCII, got '" +
                        format::printable(p.tracker) + "'");
  }
  if (p.issued_at <= 0 || p.expires_at <= p.issued_at) {
    return invalid_plan("issued_at must be positive and before expires_at");
  }
  return Ok{};
}

Result<std::string> encode_plan(const Plan& p) {
  DROVER_TRY(validate_plan(p));
  json layers = json::array();
  for (const auto& l : p.layers) layers.push_back(layer_json(l));
  json flags = json::object();
  for (const auto& [name, v] : p.flags) {
    flags[name] = flag_value_json(v);
  }
  auto extra = canon::decode(p.strategy_extra, 64 << 10);
  if (!extra.ok() || !extra->is_object() || extra->contains("kind")) {
    return invalid_plan("strategy_extra must be canonical JSON of an object without 'kind'");
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

namespace {

// The plan's fields, decoded and typed; validate_plan() checks their rules.
Result<Plan> read_plan(const json& j) {
  if (!j.is_object()) return make_error(Errc::invalid_argument, "not a JSON object");
  Fields f(j, "", canon::Nulls::refused);
  DROVER_TRY(f.only({"format", "service", "seq", "deploy_id", "artifact", "hosts", "strategy",
                     "flags", "tracker", "issued_at", "expires_at"}));
  DROVER_ASSIGN(std::string format, f.str("format", kAnyPlanField, Empty::allowed));
  if (format != kPlanType) {
    return make_error(Errc::unsupported,
                      "format '" + format + "' is not " + std::string(kPlanType));
  }
  Plan p;
  DROVER_ASSIGN(p.service, f.str("service", kAnyPlanField, Empty::allowed));
  DROVER_ASSIGN(p.seq, f.u64("seq"));
  DROVER_ASSIGN(p.deploy_id, f.str("deploy_id", kAnyPlanField, Empty::allowed));
  DROVER_ASSIGN(p.tracker, f.str("tracker", kAnyPlanField, Empty::allowed));
  constexpr auto kMin = std::numeric_limits<std::int64_t>::min();
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  DROVER_ASSIGN(p.issued_at, f.integer("issued_at", kMin, kMax));
  DROVER_ASSIGN(p.expires_at, f.integer("expires_at", kMin, kMax));

  DROVER_ASSIGN(Fields artifact, f.object("artifact"));
  DROVER_TRY(artifact.only({"id", "manifest_size", "layers"}));
  DROVER_ASSIGN(std::string artifact_id, artifact.str("id", kAnyPlanField, Empty::allowed));
  auto id = ContentId::parse(artifact_id);
  if (!id.ok()) return id.error().context("artifact.id");
  p.artifact = *id;
  DROVER_ASSIGN(p.manifest_size, artifact.u64("manifest_size"));
  DROVER_ASSIGN(auto layers, artifact.objects("layers", kMaxLayers));
  for (const Fields& l : layers) {
    DROVER_TRY(l.only({"id", "size", "bt_root"}));
    PlanLayer layer;
    DROVER_ASSIGN(std::string lid, l.str("id", kAnyPlanField, Empty::allowed));
    auto parsed_id = ContentId::parse(lid);
    if (!parsed_id.ok()) return parsed_id.error().context(l.path("id"));
    layer.id = *parsed_id;
    DROVER_ASSIGN(layer.size, l.u64("size"));
    DROVER_ASSIGN(std::string root, l.str("bt_root", kAnyPlanField, Empty::allowed));
    auto raw = from_hex(root);
    if (!raw || raw->size() != 32 || to_hex(*raw) != root) {
      return make_error(Errc::invalid_argument, l.path("bt_root") + " of layer " + lid +
                                                    " must be 64 lowercase hex digits");
    }
    std::copy(raw->begin(), raw->end(), layer.bt_root.begin());
    p.layers.push_back(layer);
  }
  DROVER_TRY(f.require({"hosts"}));
  DROVER_ASSIGN(p.hosts, f.str_list("hosts", kMaxPlanHosts, kAnyPlanField, Empty::allowed));

  DROVER_ASSIGN(Fields strategy, f.object("strategy"));
  DROVER_ASSIGN(p.strategy_kind, strategy.str("kind", kAnyPlanField, Empty::allowed));
  json extra = strategy.value();
  extra.erase("kind");
  p.strategy_extra = *canon::encode(extra);

  // A flag is on/off or a ramp percentage: two types, read by hand.
  DROVER_ASSIGN(Fields flags, f.object("flags"));
  for (const auto& [name, v] : flags.value().items()) {
    auto fv = flag_value_of(v);
    if (!fv) {
      return make_error(Errc::invalid_argument,
                        "flag '" + name + "' must be true, false or an integer 0-100");
    }
    p.flags[name] = *fv;
  }
  return p;
}

}  // namespace

Result<Plan> decode_plan(std::string_view bytes) {
  auto parsed = canon::decode(bytes, kMaxPlanBytes, 4 * kMaxPlanHosts + 4 * kMaxLayers + 4096);
  if (!parsed.ok()) return parsed.error().context("plan");
  auto plan = read_plan(*parsed);
  if (!plan.ok()) return plan.error().context("plan");
  DROVER_TRY(validate_plan(*plan));
  return plan;
}

std::string encode_bundle(const PlanBundle& b) {
  json j = {{"plan", sign::encode_envelope(b.plan)}, {"cert", sign::encode_envelope(b.cert)}};
  if (b.manifest) j["manifest"] = canon::base64_encode(*b.manifest);
  return j.dump();
}

namespace {

constexpr std::uint64_t kMaxBundleBytes = 2 * kMaxPlanBytes + 2 * kMaxManifestBytes;

// A bundle's fields as they travel: two envelopes and base64, still encoded.
struct BundleFields {
  std::string plan, cert;
  std::optional<std::string> manifest;
};

Result<BundleFields> read_bundle(const json& j) {
  const Fields f(j, "bundle", canon::Nulls::refused);
  DROVER_TRY(f.only({"plan", "cert", "manifest"}));
  BundleFields b;
  DROVER_ASSIGN(b.plan, f.str("plan", kMaxBundleBytes, Empty::allowed));
  DROVER_ASSIGN(b.cert, f.str("cert", kMaxBundleBytes, Empty::allowed));
  DROVER_ASSIGN(b.manifest, f.opt_str("manifest", kMaxBundleBytes));
  return b;
}

}  // namespace

Result<PlanBundle> decode_bundle(std::string_view bytes) {
  if (bytes.size() > kMaxBundleBytes) {
    return invalid_plan("bundle of " + std::to_string(bytes.size()) + " bytes is too large");
  }
  json j = json::parse(bytes, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return invalid_plan("bundle is not a JSON object");
  auto fields = read_bundle(j);
  if (!fields.ok()) return fields.error().context("plan");
  PlanBundle b;
  DROVER_ASSIGN(b.plan, sign::decode_envelope(fields->plan));
  DROVER_ASSIGN(b.cert, sign::decode_envelope(fields->cert));
  if (fields->manifest) {
    auto m = canon::base64_decode(*fields->manifest);
    if (!m.ok()) return invalid_plan("bundle: manifest: " + m.error().message);
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
