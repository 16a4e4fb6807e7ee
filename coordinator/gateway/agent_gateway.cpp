#include "coordinator/gateway/agent_gateway.hpp"

#include <future>

#include "core/canon/base64.hpp"
#include "core/format/manifest.hpp"
#include "core/proto/plan.hpp"
#include "core/sign/secret_box.hpp"

namespace drover::coordinator {
namespace {

std::string error_reply(Errc code, const std::string& message) {
  return proto::encode_error_reply(make_error(code, message));
}

}  // namespace

AgentGateway::AgentGateway(CoordinatorStore& store, const OnlineKeySigner& keys,
                           ManifestLookup manifests, ReportHandler reports, const Clock& clock,
                           Logger& log)
    : store_(store),
      manifests_(std::move(manifests)),
      reports_(std::move(reports)),
      clock_(clock),
      log_(log),
      keys_(keys) {}

AgentGateway::~AgentGateway() {
  server_.reset();  // no new requests; answers still to come are dropped
  {
    std::lock_guard lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (committer_.joinable()) committer_.join();
  publisher_.reset();
}

Result<std::unique_ptr<AgentGateway>> AgentGateway::start(
    const GatewayOptions& options, CoordinatorStore& store, const OnlineKeySigner& keys,
    ManifestLookup manifests, ReportHandler reports, const Clock& clock, Logger& log) {
  std::unique_ptr<AgentGateway> g(
      new AgentGateway(store, keys, std::move(manifests), std::move(reports), clock, log));
  DROVER_ASSIGN(g->publisher_, nng::Publisher::listen(options.announcements_listen));
  g->committer_ = std::thread([raw = g.get()] { raw->commit_reports(); });
  DROVER_ASSIGN(g->server_, nng::Server::listen_async(
                                options.requests_listen,
                                [raw = g.get()](std::string_view req, nng::Server::Reply reply) {
                                  raw->handle_async(req, std::move(reply));
                                },
                                options.workers));
  return g;
}

std::string AgentGateway::requests_url() const {
  return server_->url();
}

std::string AgentGateway::announcements_url() const {
  return publisher_->url();
}

void AgentGateway::announce(const std::string& service, std::uint64_t seq) {
  if (auto st = publisher_->publish(proto::encode_announcement({service, seq})); !st.ok()) {
    log_.warn("coordinator.announce", {{"service", service}, {"error", st.error().message}});
  }
}

std::string AgentGateway::enroll(const proto::Request& r) {
  auto body = proto::parse_body(r.body);
  if (!body.ok()) return proto::encode_error_reply(body.error());
  auto e = proto::enroll_body(*body);
  if (!e.ok()) return proto::encode_error_reply(e.error());
  if (e->host != r.host) {
    return error_reply(Errc::refused, "the enrollment body names host '" + e->host +
                                          "', the request '" + r.host + "'");
  }
  if (auto st = format::validate_service(e->host); !st.ok()) {
    return error_reply(Errc::invalid_argument, "host id: " + st.error().message);
  }
  if (!proto::check_enroll_sig(r, e->public_key)) {
    return error_reply(Errc::crypto, "the enrollment is not signed by the key it presents");
  }
  auto token_ok = store_.join_token_valid(e->join_token);
  if (!token_ok.ok()) return proto::encode_error_reply(token_ok.error());
  if (!*token_ok) return error_reply(Errc::refused, "unknown or revoked join token");
  auto report_key = sign::unseal(keys_.current().key, e->sealed_mac_key);
  if (!report_key.ok()) return proto::encode_error_reply(report_key.error());
  if (report_key->size() != sign::kMacKeySize) {
    return error_reply(Errc::invalid_argument, "the sealed report key is not 32 bytes");
  }
  HostRecord h;
  h.host = e->host;
  h.region = e->region;
  h.cluster = e->cluster;
  h.services = e->services;
  h.key = e->public_key;
  h.report_key = *report_key;
  h.mesh_peer = e->mesh_peer;
  h.enrolled_at = h.last_seen = unix_seconds(clock_.now());
  if (auto st = store_.enroll(h); !st.ok()) {
    log_.warn("coordinator.enroll.refused", {{"host", h.host}, {"error", st.error().message}});
    return proto::encode_error_reply(st.error());
  }
  log_.info("coordinator.enrolled", {{"host", h.host}, {"key", h.key.key_id().substr(0, 12)}});
  return proto::encode_reply("enrolled", {{"host", h.host}});
}

std::string AgentGateway::handle(std::string_view bytes) {
  std::promise<std::string> answer;
  handle_async(bytes, [&answer](std::string a) { answer.set_value(std::move(a)); });
  return answer.get_future().get();
}

void AgentGateway::handle_async(std::string_view bytes, nng::Server::Reply reply) {
  auto r = proto::decode_request(bytes);
  if (!r.ok()) return reply(proto::encode_error_reply(r.error()));
  if (r->type == proto::kCertPull) {
    return reply(
        proto::encode_reply("cert", {{"cert", sign::encode_envelope(keys_.current().cert)}}));
  }
  if (r->type == proto::kEnroll) return reply(enroll(*r));

  // Everything else speaks for an enrolled host, under its report key.
  auto host = enrolled(r->host);
  if (!host.ok()) return reply(proto::encode_error_reply(host.error()));
  if (!*host) return reply(error_reply(Errc::not_found, "host '" + r->host + "' is not enrolled"));
  if (!proto::check_mac(*r, (*host)->report_key)) {
    log_.warn("coordinator.request.bad_mac", {{"host", r->host}, {"type", r->type}});
    return reply(error_reply(Errc::crypto, "request of '" + r->host +
                                               "' is not authenticated by its report key; "
                                               "enroll again"));
  }
  auto body = proto::parse_body(r->body);
  if (!body.ok()) return reply(proto::encode_error_reply(body.error()));

  if (r->type == proto::kPlanPull) {
    const std::string service = body->value("service", "");
    auto bundle = store_.plan_for(service, r->host);
    if (!bundle.ok()) return reply(proto::encode_error_reply(bundle.error()));
    if (!*bundle) return reply(proto::encode_reply("no_plan", {{"service", service}}));
    return reply(proto::encode_reply("plan", {{"bundle", **bundle}}));
  }
  if (r->type == proto::kManifestPull) {
    auto id = ContentId::parse(body->value("artifact", ""));
    if (!id.ok()) return reply(proto::encode_error_reply(id.error()));
    auto bytes_of = manifests_ ? manifests_(*id)
                               : Result<std::string>(make_error(Errc::not_found, "no artifacts"));
    if (!bytes_of.ok()) return reply(proto::encode_error_reply(bytes_of.error()));
    return reply(proto::encode_reply(
        "manifest", {{"artifact", id->str()}, {"bytes", canon::base64_encode(*bytes_of)}}));
  }
  if (r->type == proto::kReport) {
    auto report = proto::report_body(*body);
    if (!report.ok()) return reply(proto::encode_error_reply(report.error()));
    // Acknowledged once durable, together with whatever else is waiting.
    {
      std::lock_guard lock(queue_mu_);
      queue_.push_back({std::move(**host), std::move(*report), std::move(reply)});
    }
    queue_cv_.notify_one();
    return;
  }
  reply(error_reply(Errc::unsupported, "unknown request type '" + r->type + "'"));
}

Result<std::optional<HostRecord>> AgentGateway::enrolled(const std::string& name) {
  const std::uint64_t version = store_.hosts_version();
  {
    std::shared_lock lock(cache_mu_);
    auto it = host_cache_.find(name);
    if (it != host_cache_.end() && it->second.first == version) {
      return std::optional<HostRecord>(it->second.second);
    }
  }
  DROVER_ASSIGN(auto h, store_.host(name));
  if (!h) return h;  // not cached: an enrollment adds it
  std::unique_lock lock(cache_mu_);
  if (host_cache_.size() > 1'000'000) host_cache_.clear();
  host_cache_[name] = {version, *h};
  return h;
}

void AgentGateway::commit_reports() {
  std::vector<PendingReport> batch;
  for (;;) {
    {
      std::unique_lock lock(queue_mu_);
      queue_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      batch.swap(queue_);
    }
    std::vector<std::pair<std::string, const proto::ReportBody*>> items;
    items.reserve(batch.size());
    for (const auto& p : batch) items.emplace_back(p.host.host, &p.body);
    auto results = store_.ingest_reports(items, unix_seconds(clock_.now()));
    for (std::size_t i = 0; i < batch.size(); ++i) {
      PendingReport& p = batch[i];
      if (!results.ok()) {
        p.reply(proto::encode_error_reply(results.error()));
        continue;
      }
      const Result<bool>& fresh = (*results)[i];
      if (!fresh.ok()) {
        p.reply(proto::encode_error_reply(fresh.error()));
        continue;
      }
      if (*fresh && reports_) reports_(p.host, p.body);
      p.reply(proto::encode_reply("ack", {{"seq", p.body.seq}}));
    }
    batches_.fetch_add(1, std::memory_order_relaxed);
    batch.clear();
  }
}

}  // namespace drover::coordinator
