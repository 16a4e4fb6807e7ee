#include "tests/support/notify_receiver.hpp"

#include <set>

#include "core/base/hex.hpp"
#include "core/sign/secret_box.hpp"

namespace drover::testing {

NotifyReceiver::NotifyReceiver(std::string secret) : secret_(std::move(secret)) {
  http::ServerOptions o;
  o.bind = "127.0.0.1";
  server_ = http::Server::start(
                o,
                [this](const http::Request& req, http::Responder respond) {
                  auto header = [&req](const char* name) {
                    auto it = req.headers.find(name);
                    return it == req.headers.end() ? std::string() : it->second;
                  };
                  Delivery d;
                  d.path = req.path;
                  d.kind = header("x-drover-event");
                  d.event_id = header("x-drover-delivery");
                  d.timestamp = header("x-drover-timestamp");
                  d.body = nlohmann::json::parse(req.body, nullptr, false);
                  // Computed here from the documented message, not with the
                  // coordinator's code.
                  const std::string expect =
                      "sha256=" +
                      to_hex(sign::hmac_sha256(secret_, "drover-notification-v1\n" + d.timestamp +
                                                            "\n" + d.event_id + "\n" + req.body));
                  d.signature_ok = !secret_.empty() && header("x-drover-signature") == expect;
                  {
                    std::lock_guard lock(mu_);
                    d.answered = status_;
                    deliveries_.push_back(d);
                  }
                  http::Response r;
                  r.status = d.answered;
                  r.body = "{}";
                  respond(std::move(r));
                },
                log_)
                .value();
}

NotifyReceiver::~NotifyReceiver() {
  server_.reset();
}

std::string NotifyReceiver::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port()) + path;
}

void NotifyReceiver::answer(int status) {
  std::lock_guard lock(mu_);
  status_ = status;
}

std::vector<NotifyReceiver::Delivery> NotifyReceiver::deliveries() const {
  std::lock_guard lock(mu_);
  return deliveries_;
}

std::vector<NotifyReceiver::Delivery> NotifyReceiver::accepted() const {
  std::lock_guard lock(mu_);
  std::vector<Delivery> out;
  std::set<std::string> seen;
  for (const auto& d : deliveries_) {
    if (d.answered < 200 || d.answered >= 300) continue;
    if (seen.insert(d.event_id).second) out.push_back(d);
  }
  return out;
}

std::vector<std::string> NotifyReceiver::kinds() const {
  std::vector<std::string> out;
  for (const auto& d : accepted()) out.push_back(d.kind);
  return out;
}

}  // namespace drover::testing
