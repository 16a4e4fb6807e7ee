// The two coordinators the agent protocol's tests talk to (the fake the
// agent's tests use, and the real store, gateway and plan issuer), and a
// fixture holding agents that speak to one of them through the agent's own
// client (CoordinatorLink).
#pragma once

#include <gtest/gtest.h>

#include <atomic>

#include "coordinator/gateway/agent_gateway.hpp"
#include "coordinator/plans/plan_issuer.hpp"
#include "coordinator/store/lmdb_coordinator_store.hpp"
#include "core/agent_link/agent_link.hpp"
#include "core/proto/testing/fake_coordinator.hpp"
#include "core/sign/secret_box.hpp"
#include "tests/support/test_support.hpp"

namespace drover::protocol_testing {

using drover::testing::TempDir;
using namespace std::chrono_literals;

inline const std::string kManifest = "manifest bytes";

// What a conformance case needs of a coordinator.
class Side {
 public:
  virtual ~Side() = default;
  virtual std::string requests_url() = 0;
  virtual sign::PublicKey root() = 0;
  virtual void add_join_token(const std::string& token) = 0;
  // Issues a plan revision (the side assigns its seq); returns the seq.
  virtual std::uint64_t publish(proto::Plan plan) = 0;
  virtual int reports_ingested() = 0;
  virtual void reset_host(const std::string& host) = 0;
  virtual void rotate() = 0;
};

class FakeSide : public Side {
 public:
  FakeSide() { fake_.add_manifest(ContentId::of(kManifest), kManifest); }
  std::string requests_url() override { return fake_.requests_url(); }
  sign::PublicKey root() override { return fake_.root().public_key(); }
  void add_join_token(const std::string& token) override { fake_.add_join_token(token); }
  std::uint64_t publish(proto::Plan plan) override {
    plan.seq = ++seq_;
    fake_.publish(plan);
    return plan.seq;
  }
  int reports_ingested() override { return static_cast<int>(fake_.reports().size()); }
  void reset_host(const std::string& host) override { fake_.reset_host(host); }
  void rotate() override { fake_.rotate_online_key(); }

 private:
  testing::FakeCoordinator fake_;
  std::uint64_t seq_ = 0;
};

class RealSide : public Side {
 public:
  RealSide() {
    store_ = coordinator::LmdbCoordinatorStore::open(dir_.path() / "coordinator").value();
    keys_ = std::make_unique<coordinator::OnlineKeySigner>(key(1));
    start_gateway({});
    issuer_ = std::make_unique<coordinator::PlanIssuer>(
        *store_, *keys_, [this](const std::string& service, std::uint64_t seq) {
          gateway_->announce(service, seq);
        });
  }
  // (Re)starts the gateway, serving these root documents.
  void start_gateway(std::vector<std::string> root_chain) {
    gateway_.reset();
    coordinator::GatewayOptions options;
    options.legacy_requests = {"tcp://127.0.0.1:0"};  // agents of protocol 1 too
    options.root_chain = std::move(root_chain);
    gateway_ = coordinator::AgentGateway::start(
                   options, *store_, *keys_,
                   [](const ContentId& id) -> Result<std::string> {
                     if (id == ContentId::of(kManifest)) return kManifest;
                     return make_error(Errc::not_found, "no manifest " + id.str());
                   },
                   [this](const coordinator::HostRecord&, const proto::ReportBody&) { ++reports_; },
                   clock_, Logger::discard())
                   .value();
  }
  std::string requests_url() override { return gateway_->requests_url(); }
  std::string legacy_url() { return gateway_->legacy_requests_url(); }
  coordinator::AgentGateway& gateway() { return *gateway_; }
  sign::PublicKey root() override { return root_.public_key(); }
  const sign::KeyPair& root_key() const { return root_; }
  sign::KeyPair online_key() const { return keys_->current().key; }
  void add_join_token(const std::string& token) override {
    coordinator::CoordinatorStore::JoinTokenSpec spec;
    spec.uses = 100;  // one token for the fleet of a case
    ASSERT_TRUE(store_->add_join_token(token, "admin", unix_seconds(clock_.now()), spec).ok());
  }
  std::uint64_t publish(proto::Plan plan) override {
    auto b = issuer_->issue(plan);
    EXPECT_TRUE(b.ok()) << b.error().message;
    return proto::decode_plan(b->plan.payload)->seq;
  }
  int reports_ingested() override { return reports_.load(); }
  void reset_host(const std::string& host) override { ASSERT_TRUE(store_->reset_host(host).ok()); }
  void rotate() override { keys_->rotate(key(2)); }
  // A plan this coordinator's key signed, as a host holds it (without manifest).
  std::string signed_bundle(const proto::Plan& plan) {
    return proto::encode_bundle(keys_->sign(plan).value());
  }

 private:
  coordinator::OnlineKey key(std::uint64_t version) {
    const auto now = unix_seconds(clock_.now());
    online_.push_back(sign::KeyPair::generate(rnd_));
    return {online_.back(), sign::certify(root_, {"online", online_.back().public_key(), version,
                                                  now - 60, now + 86400})};
  }
  TempDir dir_;
  SeededRandom rnd_{5};
  sign::KeyPair root_ = sign::KeyPair::generate(rnd_);
  std::vector<sign::KeyPair> online_;
  SystemClock clock_;
  std::unique_ptr<coordinator::CoordinatorStore> store_;
  std::unique_ptr<coordinator::OnlineKeySigner> keys_;
  std::unique_ptr<coordinator::AgentGateway> gateway_;
  std::unique_ptr<coordinator::PlanIssuer> issuer_;
  std::atomic<int> reports_{0};
};

template <class S>
class AgentProtocol : public ::testing::Test {
 protected:
  struct Agent {
    sign::KeyPair key;
    std::string report_key;
    std::unique_ptr<proto::CoordinatorLink> link;
  };
  AgentProtocol() { side_.add_join_token("join-1"); }

  // An agent of protocol version `protocol`, dialing url (the side's
  // version-2 listener unless given).
  Agent agent(const std::string& host, std::uint64_t seed, const std::string& url = "",
              int protocol = proto::kProtocolV2) {
    SeededRandom r(seed);
    Agent a{sign::KeyPair::generate(r), r.bytes(32), nullptr};
    proto::LinkOptions options;
    options.verify_cert = [this](const sign::Envelope& c) -> Result<sign::PublicKey> {
      DROVER_ASSIGN(auto verified,
                    sign::verify_cert(c, {side_.root(), 1}, unix_seconds(clock_.now())));
      return verified.subject;
    };
    options.protocol = protocol;
    a.link =
        proto::CoordinatorLink::connect(url.empty() ? side_.requests_url() : url, host, 5s, options)
            .value();
    a.link->set_report_key(a.report_key);
    // As an agent does first: the certificate, and so the key whose
    // signature makes a refusal authentic.
    if (auto c = cert(a); c.ok()) a.link->trust_online_key(c->subject);
    return a;
  }
  Result<sign::KeyCert> cert(Agent& a, std::uint64_t floor = 1) {
    DROVER_ASSIGN(auto envelope, a.link->pull_cert());
    return sign::verify_cert(envelope, {side_.root(), floor}, unix_seconds(clock_.now()));
  }
  Status enroll(Agent& a, const std::string& host, const std::string& token = "join-1") {
    DROVER_ASSIGN(auto verified, cert(a));
    proto::EnrollBody b;
    b.host = host;
    b.region = "eu";
    b.cluster = "c1";
    b.services = {"web"};
    b.public_key = a.key.public_key();
    b.mesh_peer = "127.0.0.1:7000";
    b.join_token = token;
    b.at = unix_seconds(clock_.now());
    return a.link->enroll(b, a.key, verified.subject, a.report_key);
  }
  proto::Plan plan(const std::vector<std::string>& hosts) {
    proto::Plan p;
    p.service = "web";
    p.deploy_id = "d-1";
    p.artifact = ContentId::of(kManifest);
    p.manifest_size = kManifest.size();
    p.hosts = hosts;
    p.tracker = "http://127.0.0.1:1";
    p.issued_at = unix_seconds(clock_.now()) - 1;
    p.expires_at = p.issued_at + 3600;
    return p;
  }
  Result<proto::OpenedPlan> pull(Agent& a, std::uint64_t floor = 1) {
    DROVER_ASSIGN(auto got, a.link->pull_plan("web", 0));
    if (!got) return make_error(Errc::not_found, "no plan");
    return proto::open_plan(*got, {side_.root(), floor}, unix_seconds(clock_.now()));
  }

  S side_;
  SystemClock clock_;
};

}  // namespace drover::protocol_testing
