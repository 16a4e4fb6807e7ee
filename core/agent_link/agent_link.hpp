// The agent's end of the agent protocol, shared by the agent, the
// conformance tests and the coordinator benchmark's simulated agents (docs/FORMATS.md, "Agent
// protocol"): enrollment, plan and manifest pulls, report pushes, over an NNG REQ socket. Every
// call has a timeout and returns an error value when the coordinator is away; nothing here retries
// (the agent's loop does, with backoff).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "core/nng/nng.hpp"
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
  // Returns once the coordinator acknowledged the report's seq.
  virtual Status send_report(const proto::ReportBody& report) = 0;
};

class CoordinatorLink final : public AgentLink {
 public:
  static Result<std::unique_ptr<CoordinatorLink>> connect(const std::string& url, std::string host,
                                                          std::chrono::milliseconds timeout);

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
  Status send_report(const proto::ReportBody& report) override;

 private:
  CoordinatorLink(std::unique_ptr<nng::Client> client, std::string host,
                  std::chrono::milliseconds timeout)
      : client_(std::move(client)), host_(std::move(host)), timeout_(timeout) {}
  Result<proto::Reply> call(std::string_view type, const nlohmann::json& body);

  std::unique_ptr<nng::Client> client_;
  std::string host_;
  std::chrono::milliseconds timeout_;
  std::string report_key_;
};

}  // namespace drover::proto
