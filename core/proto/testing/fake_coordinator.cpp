#include "core/proto/testing/fake_coordinator.hpp"

#include <stdexcept>
#include <thread>

#include "core/canon/base64.hpp"
#include "core/sign/secret_box.hpp"
#include "core/world/clock.hpp"

namespace drover::testing {
namespace {

using nlohmann::json;

std::int64_t now_s() {
  return unix_seconds(std::chrono::system_clock::now());
}

template <class T>
T must(Result<T> r) {
  if (!r.ok()) throw std::runtime_error(r.error().message);
  return std::move(r).value();
}

}  // namespace

FakeCoordinator::FakeCoordinator() : root_(sign::KeyPair::generate(random_)) {
  online_ = sign::KeyPair::generate(random_);
  cert_ = sign::certify(
      root_, {"online", online_->public_key(), cert_version_, now_s() - 60, now_s() + 86400});
  server_ = must(nng::Server::listen(
      "tcp://127.0.0.1:0", [this](std::string_view req) { return handle(req); }, 4));
  publisher_ = must(nng::Publisher::listen("tcp://127.0.0.1:0"));
  requests_url_ = server_->url();
  announcements_url_ = publisher_->url();
}

FakeCoordinator::~FakeCoordinator() {
  server_.reset();
  publisher_.reset();
}

void FakeCoordinator::add_join_token(const std::string& token) {
  std::lock_guard lock(mu_);
  tokens_.insert(token);
}

void FakeCoordinator::rotate_online_key() {
  std::lock_guard lock(mu_);
  online_ = sign::KeyPair::generate(random_);
  ++cert_version_;
  cert_ = sign::certify(
      root_, {"online", online_->public_key(), cert_version_, now_s() - 60, now_s() + 86400});
}

proto::PlanBundle FakeCoordinator::publish(const proto::Plan& plan, const sign::KeyPair* with) {
  proto::PlanBundle b;
  {
    std::lock_guard lock(mu_);
    b = must(proto::sign_plan(plan, with ? *with : *online_, cert_));
    plans_[plan.service] = b;
    for (const auto& h : plan.hosts) host_plans_[plan.service][h] = b;
  }
  (void)publisher_->publish(proto::encode_announcement({plan.service, plan.seq}));
  return b;
}

void FakeCoordinator::publish_to_everyone(const proto::Plan& plan) {
  {
    std::lock_guard lock(mu_);
    plans_[plan.service] = must(proto::sign_plan(plan, *online_, cert_));
    host_plans_.erase(plan.service);
  }
  (void)publisher_->publish(proto::encode_announcement({plan.service, plan.seq}));
}

void FakeCoordinator::serve(const std::string& service, const proto::PlanBundle& bundle) {
  std::lock_guard lock(mu_);
  plans_[service] = bundle;
  host_plans_.erase(service);
}

void FakeCoordinator::reset_host(const std::string& host) {
  std::lock_guard lock(mu_);
  hosts_.erase(host);
}

void FakeCoordinator::add_manifest(const ContentId& artifact, std::string bytes) {
  std::lock_guard lock(mu_);
  manifests_[artifact] = std::move(bytes);
}

std::string FakeCoordinator::handle(std::string_view bytes) {
  if (!reachable_) {
    // No answer in time: the agent's request times out, as with a dead peer.
    std::this_thread::sleep_for(std::chrono::seconds(3));
    return proto::encode_error_reply(make_error(Errc::timeout, "unreachable"));
  }
  auto r = proto::decode_request(bytes);
  if (!r.ok()) return proto::encode_error_reply(r.error());
  std::lock_guard lock(mu_);
  ++requests_[r->type];
  Answer a = handle_locked(*r);
  // In the request's version: version 2 under the host's report key, or
  // signed by the online key where none is established.
  if (r->v != proto::kProtocolV2) return proto::encode_reply(a.type, std::move(a.fields));
  const std::string hash = proto::request_hash(bytes);
  if (!a.mac_key.empty()) return proto::mac_reply(a.type, a.fields, r->host, hash, a.mac_key);
  return proto::sign_reply(a.type, a.fields, r->host, hash, *online_);
}

namespace {

FakeCoordinator::Answer fail(const Error& e, std::string mac_key = {}) {
  return {"error", {{"code", errc_name(e.code)}, {"message", e.message}}, std::move(mac_key)};
}

}  // namespace

FakeCoordinator::Answer FakeCoordinator::handle_locked(const proto::Request& r) {
  if (r.type == proto::kCertPull) return {"cert", {{"cert", sign::encode_envelope(cert_)}}, {}};
  auto body = proto::parse_body(r.body);
  if (!body.ok()) return fail(body.error());
  if (r.type == proto::kEnroll) {
    auto e = proto::enroll_body(*body);
    if (!e.ok()) return fail(e.error());
    if (e->host != r.host) return fail(make_error(Errc::refused, "body names another host"));
    if (!proto::check_enroll_sig(r, e->public_key)) {
      return fail(make_error(Errc::crypto, "enrollment signature"));
    }
    if (!tokens_.count(e->join_token)) return fail(make_error(Errc::refused, "unknown join token"));
    auto it = hosts_.find(r.host);
    if (it != hosts_.end() && !(it->second.key == e->public_key)) {
      return fail(make_error(
          Errc::refused, "host '" + r.host + "' is bound to another key; an admin must reset it"));
    }
    auto key = sign::unseal(*online_, e->sealed_mac_key);
    if (!key.ok()) return fail(key.error());
    Host& h = hosts_[r.host];
    h.key = e->public_key;
    h.report_key = *key;
    return {"enrolled", {{"host", r.host}, {"cert", sign::encode_envelope(cert_)}}, *key};
  }
  auto host = hosts_.find(r.host);
  if (host == hosts_.end()) return fail(make_error(Errc::not_found, "host not enrolled"));
  if (!proto::check_mac(r, host->second.report_key)) {
    ++refused_macs_;
    return fail(make_error(Errc::crypto, "bad MAC"));
  }
  const std::string& key = host->second.report_key;
  if (r.type == proto::kPlanPull) {
    // The newest plan that names the host, as the coordinator answers; else
    // whatever the test serves (a hostile bundle is for everyone).
    const std::string service = body->value("service", "");
    if (auto hp = host_plans_.find(service); hp != host_plans_.end()) {
      if (auto it = hp->second.find(r.host); it != hp->second.end()) {
        return {"plan", {{"bundle", proto::encode_bundle(it->second)}}, key};
      }
    }
    auto it = plans_.find(service);
    if (it == plans_.end()) return {"no_plan", {{"service", service}}, key};
    return {"plan", {{"bundle", proto::encode_bundle(it->second)}}, key};
  }
  if (r.type == proto::kManifestPull) {
    auto id = ContentId::parse(body->value("artifact", ""));
    if (!id.ok() || !manifests_.count(*id)) {
      return fail(make_error(Errc::not_found, "no such manifest"), key);
    }
    return {"manifest",
            {{"artifact", id->str()}, {"bytes", canon::base64_encode(manifests_[*id])}},
            key};
  }
  if (r.type == proto::kReport) {
    auto rep = proto::report_body(*body);
    if (!rep.ok()) return fail(rep.error(), key);
    if (host->second.seen.insert(rep->seq).second) reports_.push_back({r.host, *rep});
    return {"ack", {{"seq", rep->seq}}, key};
  }
  return fail(make_error(Errc::unsupported, "unknown request type '" + r.type + "'"), key);
}

std::vector<FakeCoordinator::Report> FakeCoordinator::reports() const {
  std::lock_guard lock(mu_);
  return reports_;
}

std::vector<proto::EventItem> FakeCoordinator::events(const std::string& event) const {
  std::lock_guard lock(mu_);
  std::vector<proto::EventItem> out;
  for (const auto& r : reports_) {
    for (const auto& i : r.body.items) {
      if (i.event && (event.empty() || i.event->event == event)) out.push_back(*i.event);
    }
  }
  return out;
}

std::vector<proto::HealthItem> FakeCoordinator::health(const std::string& service) const {
  std::lock_guard lock(mu_);
  std::vector<proto::HealthItem> out;
  for (const auto& r : reports_) {
    for (const auto& i : r.body.items) {
      if (i.health && i.health->service == service) out.push_back(*i.health);
    }
  }
  return out;
}

int FakeCoordinator::requests(const std::string& type) const {
  std::lock_guard lock(mu_);
  auto it = requests_.find(type);
  return it == requests_.end() ? 0 : it->second;
}

int FakeCoordinator::refused_macs() const {
  std::lock_guard lock(mu_);
  return refused_macs_;
}

std::optional<sign::PublicKey> FakeCoordinator::host_key(const std::string& host) const {
  std::lock_guard lock(mu_);
  auto it = hosts_.find(host);
  if (it == hosts_.end()) return std::nullopt;
  return it->second.key;
}

}  // namespace drover::testing
