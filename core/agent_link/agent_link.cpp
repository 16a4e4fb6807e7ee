#include "core/agent_link/agent_link.hpp"

#include "core/canon/base64.hpp"
#include "core/sign/secret_box.hpp"

namespace drover::proto {
namespace {

// An answer that does not verify is treated like no answer: nothing is acted
// on and the caller tries again later (never a reason to re-enroll).
Error unauthenticated(std::string_view type, const std::string& why) {
  return make_error(Errc::io, "coordinator " + std::string(type) +
                                  ": the answer is not authenticated (" + why + "); ignored");
}

}  // namespace

Result<std::unique_ptr<CoordinatorLink>> CoordinatorLink::connect(const std::string& url,
                                                                  std::string host,
                                                                  std::chrono::milliseconds timeout,
                                                                  LinkOptions options) {
  if (options.protocol != kProtocolVersion && options.protocol != kProtocolV2) {
    return make_error(Errc::invalid_argument,
                      "protocol " + std::to_string(options.protocol) + " is not 1 or 2");
  }
  DROVER_ASSIGN(auto client, nng::Client::dial(url, options.tls));
  return std::unique_ptr<CoordinatorLink>(
      new CoordinatorLink(std::move(client), std::move(host), timeout, std::move(options)));
}

proto::Request CoordinatorLink::request(std::string_view type, nlohmann::json body, bool mac) {
  proto::Request r;
  r.v = options_.protocol;
  if (r.v == kProtocolV2) body["nonce"] = make_nonce(random_);
  r.type = std::string(type);
  r.host = host_;
  r.body = body.dump();
  if (mac && !report_key_.empty()) proto::mac_request(r, report_key_);
  return r;
}

Result<proto::Reply> CoordinatorLink::exchange(const proto::Request& r, std::string_view mac_key,
                                               const SignerFor& signer_for, bool self_certifying) {
  const std::string bytes = proto::encode_request(r);
  auto answer = client_->request(bytes, timeout_);
  if (!answer.ok()) return answer.error().context("coordinator " + r.type);
  if (r.v != kProtocolV2) return proto::decode_reply(*answer);
  auto sealed = proto::decode_sealed_reply(*answer);
  if (!sealed.ok()) return unauthenticated(r.type, sealed.error().message);
  const std::string hash = proto::request_hash(bytes);
  if (!sealed->mac.empty()) {
    if (!proto::check_reply_mac(*sealed, host_, hash, mac_key)) {
      return unauthenticated(r.type, "its MAC does not verify under this host's report key");
    }
  } else if (!self_certifying) {
    // Once a host key exists every answer is MACed; a signature stands only
    // for a refusal given before one (or for what signer_for vouches for).
    if (!signer_for && sealed->type != "error") {
      return unauthenticated(r.type,
                             "a signed '" + sealed->type + "' where only refusals are signed");
    }
    Result<sign::PublicKey> key = make_error(Errc::crypto, "no online key is trusted yet");
    if (signer_for) {
      key = signer_for(*sealed);
    } else if (auto k = online_key()) {
      key = *k;
    }
    if (!key.ok()) return unauthenticated(r.type, key.error().message);
    if (key->key_id() != sealed->key_id) {
      return unauthenticated(r.type, "it is signed by key " + sealed->key_id.substr(0, 12) +
                                         ", not the trusted online key");
    }
    if (!proto::check_reply_sig(*sealed, host_, hash, *key)) {
      return unauthenticated(r.type, "its signature does not verify");
    }
  }
  DROVER_ASSIGN(proto::Reply reply, proto::open_reply(*sealed));
  keep_mesh_token(reply);
  return reply;
}

void CoordinatorLink::trust_online_key(const sign::PublicKey& key) {
  std::lock_guard lock(mu_);
  online_key_ = key;
}

std::optional<sign::PublicKey> CoordinatorLink::online_key() {
  std::lock_guard lock(mu_);
  return online_key_;
}

std::optional<nlohmann::json> CoordinatorLink::mesh_token() {
  std::lock_guard lock(mu_);
  return mesh_token_;
}

void CoordinatorLink::keep_mesh_token(const proto::Reply& reply) {
  auto t = reply.fields.find("mesh_token");
  if (t == reply.fields.end() || !t->is_object()) return;
  std::lock_guard lock(mu_);
  mesh_token_ = *t;
}

Result<sign::Envelope> CoordinatorLink::pull_cert() {
  // In version 2 the answer is signed by the key of the certificate it
  // carries, once that certificate verifies under the agent's root.
  SignerFor signer_for = [this](const proto::SealedReply& sealed) -> Result<sign::PublicKey> {
    if (sealed.type != "cert") {
      if (auto k = online_key()) return *k;
      return make_error(Errc::crypto, "no online key is trusted yet");
    }
    if (!options_.verify_cert) return make_error(Errc::crypto, "no root is pinned");
    DROVER_ASSIGN(auto fields, proto::parse_body(sealed.body));
    auto cert = fields.find("cert");
    if (cert == fields.end() || !cert->is_string()) {
      return make_error(Errc::invalid_argument, "the answer carries no certificate");
    }
    DROVER_ASSIGN(auto envelope, sign::decode_envelope(cert->get<std::string>()));
    return options_.verify_cert(envelope);
  };
  DROVER_ASSIGN(
      proto::Reply reply,
      exchange(request(proto::kCertPull, nlohmann::json::object(), false), "", signer_for));
  auto cert = reply.fields.find("cert");
  if (reply.type != "cert" || cert == reply.fields.end() || !cert->is_string()) {
    return make_error(Errc::invalid_argument,
                      "coordinator: cert_pull answered '" + reply.type + "' without a certificate");
  }
  return sign::decode_envelope(cert->get<std::string>());
}

Result<std::vector<sign::Envelope>> CoordinatorLink::pull_roots(std::uint64_t have_version) {
  if (options_.protocol != kProtocolV2) return std::vector<sign::Envelope>{};
  DROVER_ASSIGN(proto::Reply reply,
                exchange(request(proto::kRootPull, {{"have_version", have_version}}, false), "",
                         nullptr, true));
  auto roots = reply.fields.find("roots");
  if (reply.type != "roots" || roots == reply.fields.end() || !roots->is_array() ||
      roots->size() > 16) {
    return make_error(Errc::invalid_argument,
                      "coordinator: root_pull answered '" + reply.type + "' without roots");
  }
  std::vector<sign::Envelope> out;
  for (const auto& doc : *roots) {
    if (!doc.is_string()) {
      return make_error(Errc::invalid_argument, "coordinator: a root document is not a string");
    }
    DROVER_ASSIGN(auto envelope, sign::decode_envelope(doc.get<std::string>()));
    out.push_back(std::move(envelope));
  }
  return out;
}

Status CoordinatorLink::enroll(proto::EnrollBody body, const sign::KeyPair& agent_key,
                               const sign::PublicKey& online_key, const std::string& report_key) {
  DROVER_ASSIGN(body.sealed_mac_key, sign::seal_to(online_key, report_key));
  proto::Request r = request(proto::kEnroll, proto::to_json(body), false);
  proto::sign_enroll(r, agent_key);
  // "enrolled" comes under the report key just sealed; a refusal is signed.
  DROVER_ASSIGN(proto::Reply reply,
                exchange(r, report_key, [&](const proto::SealedReply&) -> Result<sign::PublicKey> {
                  return online_key;
                }));
  if (reply.type != "enrolled") {
    return make_error(Errc::invalid_argument, "coordinator: enroll answered '" + reply.type + "'");
  }
  trust_online_key(online_key);
  return Ok{};
}

Result<std::optional<proto::PlanBundle>> CoordinatorLink::pull_plan(const std::string& service,
                                                                    std::uint64_t have_seq) {
  DROVER_ASSIGN(proto::Reply reply,
                call(proto::kPlanPull, {{"service", service}, {"have_seq", have_seq}}));
  if (reply.type == "no_plan" || reply.type == "unchanged") {
    return std::optional<proto::PlanBundle>();
  }
  auto bundle = reply.fields.find("bundle");
  if (reply.type != "plan" || bundle == reply.fields.end() || !bundle->is_string()) {
    return make_error(Errc::invalid_argument,
                      "coordinator: plan_pull answered '" + reply.type + "' without a bundle");
  }
  DROVER_ASSIGN(proto::PlanBundle b, proto::decode_bundle(bundle->get<std::string>()));
  return std::optional<proto::PlanBundle>(std::move(b));
}

Result<std::optional<proto::FlagSetBundle>> CoordinatorLink::pull_flags(const std::string& service,
                                                                        std::uint64_t have_seq) {
  if (options_.protocol != proto::kProtocolV2) return std::optional<proto::FlagSetBundle>();
  DROVER_ASSIGN(proto::Reply reply,
                call(proto::kFlagsPull, {{"service", service}, {"have_seq", have_seq}}));
  if (reply.type == "no_flags" || reply.type == "unchanged") {
    return std::optional<proto::FlagSetBundle>();
  }
  auto bundle = reply.fields.find("bundle");
  if (reply.type != "flags" || bundle == reply.fields.end() || !bundle->is_string()) {
    return make_error(Errc::invalid_argument,
                      "coordinator: flags_pull answered '" + reply.type + "' without a bundle");
  }
  DROVER_ASSIGN(proto::FlagSetBundle b, proto::decode_flagset_bundle(bundle->get<std::string>()));
  return std::optional<proto::FlagSetBundle>(std::move(b));
}

Result<std::string> CoordinatorLink::pull_manifest(const ContentId& artifact,
                                                   std::uint64_t max_bytes) {
  DROVER_ASSIGN(proto::Reply reply, call(proto::kManifestPull, {{"artifact", artifact.str()}}));
  auto bytes = reply.fields.find("bytes");
  if (reply.type != "manifest" || bytes == reply.fields.end() || !bytes->is_string()) {
    return make_error(Errc::invalid_argument,
                      "coordinator: manifest_pull answered '" + reply.type + "' without bytes");
  }
  if (bytes->get_ref<const std::string&>().size() > (max_bytes + 2) / 3 * 4 + 4) {
    return make_error(Errc::refused, "coordinator sent a manifest larger than the signed " +
                                         std::to_string(max_bytes) + " bytes");
  }
  return canon::base64_decode(bytes->get<std::string>());
}

Status CoordinatorLink::send_report(const proto::ReportBody& report) {
  DROVER_ASSIGN(proto::Reply reply, call(proto::kReport, proto::to_json(report)));
  if (reply.type != "ack" || !reply.fields.contains("seq") || reply.fields["seq"] != report.seq) {
    return make_error(Errc::invalid_argument, "coordinator: report " + std::to_string(report.seq) +
                                                  " was not acknowledged");
  }
  return Ok{};
}

}  // namespace drover::proto
