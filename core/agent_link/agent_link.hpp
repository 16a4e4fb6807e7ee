// The agent's end of the agent protocol, shared by the agent, the
// conformance tests and the coordinator benchmark's simulated agents (docs/FORMATS.md, "Agent
// protocol"): enrollment, plan and manifest pulls, report pushes, over an NNG REQ socket. Every
// call has a timeout and returns an error value when the coordinator is away; nothing here retries
// (the agent's loop does, with backoff).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/nng/nng.hpp"
#include "core/proto/flagset.hpp"
#include "core/proto/messages.hpp"
#include "core/proto/plan.hpp"
#include "core/sign/keys.hpp"

namespace drover::proto {

// What the agent asks of the coordinator. NNG's CoordinatorLink below is the
// real one; tests and simulations hand in their own.
class AgentLink {
 public:
  virtual ~AgentLink() = default;
  // The current certificate of the online key (unauthenticated: the caller
  // verifies it against the pinned root).
  virtual Result<sign::Envelope> pull_cert() = 0;
  // Enrolls this host; report_key is sealed to online_key on the way.
  virtual Status enroll(proto::EnrollBody body, const sign::KeyPair& agent_key,
                        const sign::PublicKey& online_key, const std::string& report_key) = 0;
  // The newest plan naming this host above have_seq, or nullopt.
  virtual Result<std::optional<proto::PlanBundle>> pull_plan(const std::string& service,
                                                             std::uint64_t have_seq) = 0;
  // At most max_bytes are accepted.
  virtual Result<std::string> pull_manifest(const ContentId& artifact, std::uint64_t max_bytes) = 0;
  // The flag set of this host's environment when its seq is not have_seq,
  // or nullopt (unchanged, or none set).
  virtual Result<std::optional<proto::FlagSetBundle>> pull_flags(const std::string& /*service*/,
                                                                 std::uint64_t /*have_seq*/) {
    return std::optional<proto::FlagSetBundle>();
  }
  // Returns once the coordinator acknowledged the report's seq.
  virtual Status send_report(const proto::ReportBody& report) = 0;
  // The root documents above have_version, oldest first (none from a
  // coordinator that serves none, or over protocol 1). Not authenticated by
  // the answer: each document is verified by the root before it.
  virtual Result<std::vector<sign::Envelope>> pull_roots(std::uint64_t /*have_version*/) {
    return std::vector<sign::Envelope>{};
  }
  // The online key a verified certificate names: version-2 replies signed by
  // it are authentic. Called again on every rotation.
  virtual void trust_online_key(const sign::PublicKey& /*key*/) {}
  // The newest tracker credential the coordinator handed out ({"token",
  // "expires_at"}), or nullopt.
  virtual std::optional<nlohmann::json> mesh_token() { return std::nullopt; }
};

struct LinkOptions {
  // 2, or 1 to speak as agents did before version 2 (for tests of a
  // coordinator serving a fleet that is being upgraded).
  int protocol = proto::kProtocolV2;
  // Required for a tls+tcp:// URL.
  std::optional<nng::TlsClient> tls;
  // Verifies a certificate the coordinator sends against the agent's pinned
  // root and floor, returning the key it certifies: a version-2 cert answer
  // must be signed by that key.
  std::function<Result<sign::PublicKey>(const sign::Envelope& cert)> verify_cert;
};

class CoordinatorLink final : public AgentLink {
 public:
  static Result<std::unique_ptr<CoordinatorLink>> connect(const std::string& url, std::string host,
                                                          std::chrono::milliseconds timeout,
                                                          LinkOptions options = {});

  Result<sign::Envelope> pull_cert() override;
  // report_key must be the key given to set_report_key.
  Status enroll(proto::EnrollBody body, const sign::KeyPair& agent_key,
                const sign::PublicKey& online_key, const std::string& report_key) override;
  // The key every later request is MACed with. Set once, before the link is
  // used from several threads.
  void set_report_key(std::string key) { report_key_ = std::move(key); }

  Result<std::optional<proto::PlanBundle>> pull_plan(const std::string& service,
                                                     std::uint64_t have_seq) override;
  Result<std::string> pull_manifest(const ContentId& artifact, std::uint64_t max_bytes) override;
  Result<std::optional<proto::FlagSetBundle>> pull_flags(const std::string& service,
                                                         std::uint64_t have_seq) override;
  Status send_report(const proto::ReportBody& report) override;
  void trust_online_key(const sign::PublicKey& key) override;
  std::optional<nlohmann::json> mesh_token() override;
  Result<std::vector<sign::Envelope>> pull_roots(std::uint64_t have_version) override;

 private:
  CoordinatorLink(std::unique_ptr<nng::Client> client, std::string host,
                  std::chrono::milliseconds timeout, LinkOptions options)
      : client_(std::move(client)),
        host_(std::move(host)),
        timeout_(timeout),
        options_(std::move(options)) {}
  // A request of this link's version: a fresh nonce in version 2, MACed
  // under the report key when it is set and mac is true.
  proto::Request request(std::string_view type, nlohmann::json body, bool mac = true);
  // Sends r and returns its answer. In version 2 the answer counts only when
  // it is authenticated for this very request: by a MAC under mac_key, or a
  // signature by the key signer_for names (the trusted online key without it).
  using SignerFor = std::function<Result<sign::PublicKey>(const proto::SealedReply&)>;
  // self_certifying: the answer's contents verify on their own (root
  // documents), so its signature is not required.
  Result<proto::Reply> exchange(const proto::Request& r, std::string_view mac_key,
                                const SignerFor& signer_for = nullptr,
                                bool self_certifying = false);
  Result<proto::Reply> call(std::string_view type, nlohmann::json body) {
    return exchange(request(type, std::move(body)), report_key_);
  }
  std::optional<sign::PublicKey> online_key();
  void keep_mesh_token(const proto::Reply& reply);

  std::unique_ptr<nng::Client> client_;
  std::string host_;
  std::chrono::milliseconds timeout_;
  LinkOptions options_;
  std::string report_key_;
  SystemRandom random_;
  std::mutex mu_;  // guards online_key_ and mesh_token_
  std::optional<sign::PublicKey> online_key_;
  std::optional<nlohmann::json> mesh_token_;
};

}  // namespace drover::proto
