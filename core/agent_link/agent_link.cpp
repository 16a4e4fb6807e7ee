#include "core/agent_link/agent_link.hpp"

#include "core/canon/base64.hpp"
#include "core/sign/secret_box.hpp"

namespace drover::proto {

Result<std::unique_ptr<CoordinatorLink>> CoordinatorLink::connect(
    const std::string& url, std::string host, std::chrono::milliseconds timeout) {
  DROVER_ASSIGN(auto client, nng::Client::dial(url));
  return std::unique_ptr<CoordinatorLink>(
      new CoordinatorLink(std::move(client), std::move(host), timeout));
}

Result<proto::Reply> CoordinatorLink::call(std::string_view type, const nlohmann::json& body) {
  proto::Request r{std::string(type), host_, body.dump(), "", ""};
  if (!report_key_.empty()) proto::mac_request(r, report_key_);
  auto answer = client_->request(proto::encode_request(r), timeout_);
  if (!answer.ok()) return answer.error().context("coordinator " + std::string(type));
  return proto::decode_reply(*answer);
}

Result<sign::Envelope> CoordinatorLink::pull_cert() {
  DROVER_ASSIGN(proto::Reply reply, call(proto::kCertPull, nlohmann::json::object()));
  auto cert = reply.fields.find("cert");
  if (reply.type != "cert" || cert == reply.fields.end() || !cert->is_string()) {
    return make_error(Errc::invalid_argument,
                      "coordinator: cert_pull answered '" + reply.type + "' without a certificate");
  }
  return sign::decode_envelope(cert->get<std::string>());
}

Status CoordinatorLink::enroll(proto::EnrollBody body, const sign::KeyPair& agent_key,
                               const sign::PublicKey& online_key, const std::string& report_key) {
  DROVER_ASSIGN(body.sealed_mac_key, sign::seal_to(online_key, report_key));
  proto::Request r{std::string(proto::kEnroll), host_, proto::to_json(body).dump(), "", ""};
  proto::sign_enroll(r, agent_key);
  auto answer = client_->request(proto::encode_request(r), timeout_);
  if (!answer.ok()) return answer.error().context("coordinator enroll");
  DROVER_ASSIGN(proto::Reply reply, proto::decode_reply(*answer));
  if (reply.type != "enrolled") {
    return make_error(Errc::invalid_argument, "coordinator: enroll answered '" + reply.type + "'");
  }
  return Ok{};
}

Result<std::optional<proto::PlanBundle>> CoordinatorLink::pull_plan(const std::string& service,
                                                                    std::uint64_t have_seq) {
  DROVER_ASSIGN(proto::Reply reply,
                call(proto::kPlanPull, {{"service", service}, {"have_seq", have_seq}}));
  if (reply.type == "no_plan") return std::optional<proto::PlanBundle>();
  auto bundle = reply.fields.find("bundle");
  if (reply.type != "plan" || bundle == reply.fields.end() || !bundle->is_string()) {
    return make_error(Errc::invalid_argument,
                      "coordinator: plan_pull answered '" + reply.type + "' without a bundle");
  }
  DROVER_ASSIGN(proto::PlanBundle b, proto::decode_bundle(bundle->get<std::string>()));
  return std::optional<proto::PlanBundle>(std::move(b));
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
