// A coordinator stand-in that speaks the agent protocol (docs/FORMATS.md,
// "Agent protocol"), kept beside the contract it fakes: the agent's tests,
// the protocol's conformance suite (tests/conformance_test.cpp) and the agent
// benchmark talk to it. It enrolls agents (binding a host to its first key),
// serves plans, manifests and the online key's certificate, checks every MAC,
// ingests reports once per seq, and announces plans. Tests drive it: publish
// plans (well-formed or hostile), make it unreachable, and read what the
// agents sent.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/nng/nng.hpp"
#include "core/proto/messages.hpp"
#include "core/proto/plan.hpp"
#include "core/sign/envelope.hpp"
#include "core/world/random.hpp"

namespace drover::testing {

class FakeCoordinator {
 public:
  // An answer, and the report key it is MACed under in version 2 ("" : signed).
  struct Answer {
    std::string type;
    nlohmann::json fields;
    std::string mac_key;
  };
  FakeCoordinator();
  ~FakeCoordinator();

  const std::string& requests_url() const { return requests_url_; }
  const std::string& announcements_url() const { return announcements_url_; }
  const sign::KeyPair& root() const { return root_; }
  const sign::KeyPair& online() const { return *online_; }
  const sign::Envelope& cert() const { return cert_; }

  void add_join_token(const std::string& token);
  // Root-signed rotation: a new online key with a certificate of a higher version.
  void rotate_online_key();

  // Signs (with the online key unless `with` is given) and serves plan as the
  // current plan of its service; announces it.
  proto::PlanBundle publish(const proto::Plan& plan, const sign::KeyPair* with = nullptr);
  // Signs and answers plan to every host, named or not (a coordinator that
  // is wrong or compromised; the real one answers only hosts a plan names).
  void publish_to_everyone(const proto::Plan& plan);
  // Serves exactly this bundle (for forged and hostile ones).
  void serve(const std::string& service, const proto::PlanBundle& bundle);
  void add_manifest(const ContentId& artifact, std::string bytes);
  // An admin's reset: the host may enroll with another key.
  void reset_host(const std::string& host);

  // When false, requests get no answer (the agent times out).
  void set_reachable(bool reachable) { reachable_ = reachable; }

  struct Report {
    std::string host;
    proto::ReportBody body;
  };
  std::vector<Report> reports() const;
  std::vector<proto::EventItem> events(const std::string& event = "") const;
  std::vector<proto::HealthItem> health(const std::string& service) const;
  int requests(const std::string& type) const;
  int refused_macs() const;
  std::optional<sign::PublicKey> host_key(const std::string& host) const;

 private:
  std::string handle(std::string_view bytes);
  Answer handle_locked(const proto::Request& r);

  SeededRandom random_{77};
  sign::KeyPair root_;
  std::optional<sign::KeyPair> online_;
  sign::Envelope cert_;
  std::uint64_t cert_version_ = 1;
  std::atomic<bool> reachable_{true};

  mutable std::mutex mu_;  // guards everything below
  std::set<std::string> tokens_;
  struct Host {
    sign::PublicKey key;
    std::string report_key;
    std::set<std::uint64_t> seen;
  };
  std::map<std::string, Host> hosts_;
  std::map<std::string, proto::PlanBundle> plans_;  // newest per service
  std::map<std::string, std::map<std::string, proto::PlanBundle>> host_plans_;  // service, host
  std::map<ContentId, std::string> manifests_;
  std::vector<Report> reports_;
  std::map<std::string, int> requests_;
  int refused_macs_ = 0;

  std::unique_ptr<nng::Server> server_;
  std::unique_ptr<nng::Publisher> publisher_;
  std::string requests_url_, announcements_url_;
};

}  // namespace drover::testing
