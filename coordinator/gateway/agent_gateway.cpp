#include "coordinator/gateway/agent_gateway.hpp"

#include <algorithm>
#include <future>
#include <set>
#include <utility>

#include "core/base/name.hpp"
#include "core/canon/base64.hpp"
#include "core/canon/json_fields.hpp"
#include "core/proto/plan.hpp"
#include "core/sign/root.hpp"
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
  if (options.requests.empty() || options.announcements.empty()) {
    return make_error(Errc::invalid_argument, "agents: requests and announcements need a URL each");
  }
  for (const auto* urls : {&options.requests, &options.legacy_requests, &options.announcements}) {
    for (const std::string& url : *urls) {
      DROVER_TRY(nng::check_transport(url, options.allow_plaintext));
    }
  }
  std::unique_ptr<AgentGateway> g(
      new AgentGateway(store, keys, std::move(manifests), std::move(reports), clock, log));
  if (options.metrics == nullptr) g->own_metrics_ = std::make_unique<metrics::Registry>();
  g->meters_.resolve(options.metrics ? *options.metrics : *g->own_metrics_);
  g->max_skew_ms_ = options.max_clock_skew_ms;
  for (const std::string& doc : options.root_chain) {
    DROVER_ASSIGN(auto envelope, sign::decode_envelope(doc));
    DROVER_ASSIGN(std::uint64_t version, sign::claimed_root_version(envelope));
    g->root_chain_.emplace_back(version, doc);
  }
  g->mesh_token_ = options.mesh_token;
  g->flags_ = options.flags;
  g->legacy_endpoints_ = options.legacy_requests.size();
  DROVER_ASSIGN(g->publisher_, nng::Publisher::listen(options.announcements, options.tls));
  g->committer_ = std::thread([raw = g.get()] { raw->commit_reports(); });
  // Legacy listeners first: a request's endpoint index tells which it is.
  std::vector<nng::Server::Endpoint> endpoints;
  for (const std::string& url : options.legacy_requests) {
    endpoints.push_back({url, proto::kMaxRequestBytes});
  }
  for (const std::string& url : options.requests) {
    endpoints.push_back({url, proto::kMaxRequestBytesV2});
  }
  DROVER_ASSIGN(
      g->server_,
      nng::Server::listen_endpoints(
          endpoints,
          [raw = g.get()](std::string_view req, std::size_t endpoint, nng::Server::Reply reply) {
            raw->handle_guarded(req, endpoint < raw->legacy_endpoints_, std::move(reply));
          },
          options.workers,
          {proto::kMaxRequestBytes, options.max_connections, options.max_connections_per_address},
          options.tls));
  return g;
}

std::string AgentGateway::requests_url() const {
  return server_->urls()[legacy_endpoints_];
}

std::string AgentGateway::legacy_requests_url() const {
  return legacy_endpoints_ > 0 ? server_->urls()[0] : std::string();
}

std::string AgentGateway::announcements_url() const {
  return publisher_->url();
}

void AgentGateway::Responder::answer(std::string_view type, nlohmann::json fields) {
  if (!reply) return;  // answered already
  std::string bytes;
  if (v != proto::kProtocolV2) {
    bytes = proto::encode_reply(type, std::move(fields));
  } else if (!mac_key.empty()) {
    bytes = proto::mac_reply(type, fields, host, request_hash, mac_key);
  } else if (budget == nullptr || budget->take(unix_seconds(clock->now()))) {
    bytes = proto::sign_reply(type, fields, host, request_hash, keys->current().key);
  } else {
    bytes = proto::encode_reply(type, std::move(fields));  // unsigned: over the budget
  }
  std::exchange(reply, nullptr)(std::move(bytes));
}

bool AgentGateway::SignBudget::take(std::int64_t now_s) {
  std::lock_guard lock(mu);
  if (now_s != second) {
    second = now_s;
    used = 0;
  }
  return ++used <= kPerSecond;
}

void AgentGateway::Responder::fail(const Error& error) {
  answer("error", {{"code", errc_name(error.code)}, {"message", error.message}});
}

void AgentGateway::announce(const std::string& service, std::uint64_t seq) {
  if (auto st = publisher_->publish(proto::encode_announcement({service, seq})); !st.ok()) {
    log_.warn("coordinator.announce", {{"service", service}, {"error", st.error().message}});
  }
}

void AgentGateway::announce_flags(const std::string& service, std::uint64_t seq) {
  proto::Announcement a{service, seq, true};
  if (auto st = publisher_->publish(proto::encode_announcement(a)); !st.ok()) {
    log_.warn("coordinator.announce", {{"service", service}, {"error", st.error().message}});
  }
}

void AgentGateway::enroll(const proto::Request& r, Responder& out) {
  auto body = proto::parse_body(r.body);
  if (!body.ok()) return out.fail(body.error());
  auto e = proto::enroll_body(*body);
  if (!e.ok()) return out.fail(e.error());
  if (e->host != r.host) {
    return out.fail(Errc::refused, "the enrollment body names host '" + e->host +
                                       "', the request '" + r.host + "'");
  }
  if (!proto::check_enroll_sig(r, e->public_key)) {
    return out.fail(Errc::crypto, "the enrollment is not signed by the key it presents");
  }
  // Dated by the agent and signed: never from the future, and a captured
  // enrollment cannot be played again (the store keeps the last "at" of
  // each host; a new host's must be recent).
  const std::int64_t now = unix_seconds(clock_.now());
  const std::int64_t skew_s = max_skew_ms_ / 1000;
  if (e->at > now + skew_s) {
    return out.fail(Errc::refused, "the enrollment is dated " + std::to_string(e->at - now) +
                                       " s in the future; check the host's clock");
  }
  auto report_key = sign::unseal(keys_.current().key, e->sealed_mac_key);
  if (!report_key.ok()) return out.fail(report_key.error());
  if (report_key->size() != sign::kMacKeySize) {
    return out.fail(Errc::invalid_argument, "the sealed report key is not 32 bytes");
  }
  HostRecord h;
  h.host = e->host;
  h.region = e->region;
  h.cluster = e->cluster;
  h.services = e->services;
  h.key = e->public_key;
  h.report_key = *report_key;
  h.mesh_peer = e->mesh_peer;
  h.enrolled_at = h.last_seen = now;
  h.enroll_at = e->at;
  auto bound = store_.host(h.host);
  const bool rebinding = bound.ok() && *bound && (*bound)->key == h.key;
  if (!rebinding && e->at < now - skew_s) {
    return out.fail(Errc::refused, "the enrollment is dated " + std::to_string(now - e->at) +
                                       " s ago; a new host's must be recent");
  }
  if (auto st = store_.enroll_agent(h, e->join_token, now); !st.ok()) {
    if (log_allowed("coordinator.enroll.refused")) {
      log_.warn("coordinator.enroll.refused", {{"host", h.host}, {"error", st.error().message}});
    }
    return out.fail(st.error());
  }
  log_.info("coordinator.enrolled", {{"host", h.host}, {"key", h.key.key_id().substr(0, 12)}});
  if (r.v != proto::kProtocolV2) return out.answer("enrolled", {{"host", h.host}});
  // Under the report key just sealed: only the online key could open it.
  out.mac_key = h.report_key;
  nlohmann::json fields = {{"host", h.host}, {"cert", sign::encode_envelope(keys_.current().cert)}};
  add_mesh_token(h, fields, r.v);
  out.answer("enrolled", std::move(fields));
}

std::string AgentGateway::handle(std::string_view bytes, bool legacy) {
  std::promise<std::string> answer;
  handle_guarded(bytes, legacy, [&answer](std::string a) { answer.set_value(std::move(a)); });
  return answer.get_future().get();
}

void AgentGateway::handle_guarded(std::string_view bytes, bool legacy, nng::Server::Reply reply) {
  // Whatever a request makes a handler throw is answered and logged; the
  // NNG worker, and the coordinator, carry on. An answer already given
  // stays the answer (a Reply answers once).
  auto once = std::make_shared<std::atomic<bool>>(false);
  nng::Server::Reply answer = [once, reply](std::string a) {
    if (!once->exchange(true)) reply(std::move(a));
  };
  const Status st =
      run_guarded(log_, "coordinator.request.threw", [&] { handle_async(bytes, legacy, answer); });
  if (!st.ok()) answer(error_reply(Errc::internal, "internal error"));
}

void AgentGateway::handle_async(std::string_view bytes, bool legacy, nng::Server::Reply reply) {
  Responder out;
  out.keys = &keys_;
  out.budget = &sign_budget_;
  out.clock = &clock_;
  out.reply = std::move(reply);
  auto r = proto::decode_request(bytes);
  if (!r.ok()) {
    Meters::count(meters_.refused, "malformed");
    out.v = legacy ? proto::claimed_version(bytes) : proto::kProtocolV2;
    if (out.v == proto::kProtocolV2) out.request_hash = proto::request_hash(bytes);
    return out.fail(r.error());
  }
  Meters::count(meters_.requests, r->type);
  out.v = r->v;
  out.host = r->host;
  if (r->v == proto::kProtocolV2) out.request_hash = proto::request_hash(bytes);
  if (r->v != proto::kProtocolV2 && !legacy) {
    Meters::count(meters_.refused, "old_protocol");
    return out.fail(Errc::unsupported,
                    "protocol version 1 is answered only on the coordinator's legacy listener "
                    "(agents.legacy_requests); upgrade this agent");
  }
  if (r->type == proto::kCertPull) {
    return out.answer("cert", {{"cert", sign::encode_envelope(keys_.current().cert)}});
  }
  if (r->type == proto::kEnroll) return enroll(*r, out);
  if (r->type == proto::kRootPull && r->v == proto::kProtocolV2) return pull_roots(*r, out);

  // Everything else speaks for an enrolled host, under its report key.
  auto host = enrolled(r->host);
  if (!host.ok()) return out.fail(host.error());
  if (!*host) {
    Meters::count(meters_.refused, "not_enrolled");
    return out.fail(Errc::not_found, "host '" + r->host + "' is not enrolled");
  }
  if (!proto::check_mac(*r, (*host)->report_key)) {
    Meters::count(meters_.refused, "bad_mac");
    if (log_allowed("coordinator.request.bad_mac")) {
      log_.warn("coordinator.request.bad_mac", {{"host", r->host}, {"type", r->type}});
    }
    return out.fail(Errc::crypto, "request of '" + r->host +
                                      "' is not authenticated by its report key; enroll again");
  }
  out.mac_key = (*host)->report_key;
  if (r->type == proto::kReport) {
    // Most reports have the common shape, read without a JSON tree; any
    // other is read below, and its error named there.
    if (auto fast = proto::read_report_fast(r->body)) {
      return take_report(*host, std::move(*fast), out);
    }
  }
  auto body = proto::parse_body(r->body);
  if (!body.ok()) {
    Meters::count(meters_.refused, "bad_body");
    return out.fail(body.error());
  }

  const canon::Fields fields(*body, "", canon::Nulls::refused);
  if (r->type == proto::kPlanPull) return pull_plan(*r, **host, *body, out);
  if (r->type == proto::kFlagsPull && r->v == proto::kProtocolV2) {
    auto service = fields.str("service", kMaxNameBytes);
    if (!service.ok()) return out.fail(service.error().context("flags_pull"));
    auto have = fields.u64("have_seq", proto::kMaxSeq);
    if (!have.ok()) return out.fail(have.error().context("flags_pull"));
    // A host asks only for its own services' flags.
    const auto& mine = (*host)->services;
    if (std::find(mine.begin(), mine.end(), *service) == mine.end()) {
      return out.fail(Errc::refused,
                      "host '" + r->host + "' does not run service '" + *service + "'");
    }
    auto answer = flags_ ? flags_(**host, *service, *have) : Result<FlagsAnswer>(FlagsAnswer{});
    if (!answer.ok()) return out.fail(answer.error());
    switch (answer->kind) {
      case FlagsAnswer::Kind::none: return out.answer("no_flags", {{"service", *service}});
      case FlagsAnswer::Kind::unchanged:
        return out.answer("unchanged", {{"service", *service}, {"seq", answer->seq}});
      case FlagsAnswer::Kind::bundle: return out.answer("flags", {{"bundle", answer->bundle}});
    }
  }
  if (r->type == proto::kManifestPull) {
    auto artifact = fields.str("artifact", proto::kMaxIdBytes);
    if (!artifact.ok()) return out.fail(artifact.error().context("manifest_pull"));
    auto id = ContentId::parse(*artifact);
    if (!id.ok()) return out.fail(id.error());
    auto bytes_of = manifests_ ? manifests_(*id)
                               : Result<std::string>(make_error(Errc::not_found, "no artifacts"));
    if (!bytes_of.ok()) return out.fail(bytes_of.error());
    return out.answer("manifest",
                      {{"artifact", id->str()}, {"bytes", canon::base64_encode(*bytes_of)}});
  }
  if (r->type == proto::kReport) {
    auto report = proto::report_body(*body);
    if (!report.ok()) return out.fail(report.error());
    return take_report(*host, std::move(*report), out);
  }
  out.fail(Errc::unsupported, "unknown request type '" + r->type + "'");
}

void AgentGateway::take_report(std::shared_ptr<const HostRecord> host, proto::ReportBody report,
                               Responder& out) {
  // A report at or below one acknowledged for this host is a resend (or a
  // copy): acknowledged again at once, neither screened nor committed.
  if (report.seq <= acked_seq(host->host)) {
    Meters::count(meters_.reports, "repeated");
    return out.answer("ack", {{"seq", report.seq}});
  }
  const Screened refused = screen(*host, report);
  if (refused.total() > 0) {
    refused_items_.fetch_add(refused.total(), std::memory_order_relaxed);
    log_.warn("coordinator.report.refused_items", {{"host", host->host},
                                                   {"seq", report.seq},
                                                   {"foreign_service", refused.foreign},
                                                   {"future", refused.future},
                                                   {"unissued_seq", refused.unissued},
                                                   {"bad_proof", refused.unproven},
                                                   {"not_a_release", refused.not_a_release},
                                                   {"first_error", refused.first_error}});
  }
  // Acknowledged once durable, together with whatever else is waiting.
  {
    std::lock_guard lock(queue_mu_);
    queue_.push_back({std::move(host), std::move(report), std::move(out), refused});
    meters_.queued_reports->set(static_cast<double>(queue_.size()));
  }
  queue_cv_.notify_one();
}

void AgentGateway::pull_roots(const proto::Request& r, Responder& out) {
  auto body = proto::parse_body(r.body);
  if (!body.ok()) return out.fail(body.error());
  const canon::Fields fields(*body, "", canon::Nulls::refused);
  auto have = fields.u64("have_version", proto::kMaxSeq);
  if (!have.ok()) return out.fail(have.error().context("root_pull"));
  // Oldest first, at most 16 at a time: an agent further behind asks again.
  nlohmann::json roots = nlohmann::json::array();
  for (const auto& [version, doc] : root_chain_) {
    if (version > *have && roots.size() < 16) roots.push_back(doc);
  }
  out.answer("roots", {{"roots", std::move(roots)}});
}

void AgentGateway::pull_plan(const proto::Request& r, const HostRecord& host,
                             const nlohmann::json& body, Responder& out) {
  const canon::Fields fields(body, "", canon::Nulls::refused);
  auto name = fields.str("service", kMaxNameBytes);
  if (!name.ok()) return out.fail(name.error().context("plan_pull"));
  const std::string& service = *name;
  nlohmann::json answer = {{"service", service}};
  if (r.v == proto::kProtocolV2) {
    // The seq the host holds, from the index alone: no bundle is read or sent
    // when it is the newest naming the host.
    auto have = fields.u64("have_seq", proto::kMaxSeq);
    if (!have.ok()) return out.fail(have.error().context("plan_pull"));
    auto newest = store_.plan_seq_for(service, r.host);
    if (!newest.ok()) return out.fail(newest.error());
    if (*newest != 0 && *newest == *have) {
      answer["seq"] = *newest;
      add_mesh_token(host, answer, r.v);
      Meters::count(meters_.plans, "unchanged");
      return out.answer("unchanged", std::move(answer));
    }
  }
  auto bundle = store_.plan_for(service, r.host);
  if (!bundle.ok()) return out.fail(bundle.error());
  add_mesh_token(host, answer, r.v);
  if (!*bundle) {
    Meters::count(meters_.plans, "no_plan");
    return out.answer("no_plan", std::move(answer));
  }
  Meters::count(meters_.plans, "plan");
  answer.erase("service");
  answer["bundle"] = **bundle;
  out.answer("plan", std::move(answer));
}

void AgentGateway::add_mesh_token(const HostRecord& host, nlohmann::json& fields, int v) {
  if (v != proto::kProtocolV2 || !mesh_token_) return;
  if (auto token = mesh_token_(host)) fields["mesh_token"] = std::move(*token);
}

AgentGateway::Screened AgentGateway::screen(const HostRecord& host, proto::ReportBody& report) {
  Screened out;
  std::set<std::string> proved;  // services whose proof this report already gave
  const std::int64_t now_ms = unix_ms(clock_.now());
  auto own = [&](const std::string& service) {
    return std::find(host.services.begin(), host.services.end(), service) != host.services.end();
  };
  std::vector<proto::ReportItem> kept;
  kept.reserve(report.items.size());
  for (auto& item : report.items) {
    if (item.health) {
      if (!own(item.health->service)) {
        ++out.foreign;
        continue;
      }
      if (item.health->at_ms > now_ms + max_skew_ms_) {
        ++out.future;
        continue;
      }
      // What a host runs is kept and shown: an artifact id or nothing.
      if (!item.health->release.empty() && !ContentId::parse(item.health->release).ok()) {
        ++out.not_a_release;
        continue;
      }
    } else if (item.event) {
      proto::EventItem& e = *item.event;
      if (!own(e.service)) {
        ++out.foreign;
        continue;
      }
      if (e.at_ms > now_ms + max_skew_ms_) {
        ++out.future;
        continue;
      }
      if (e.event == "applied" && !ContentId::parse(e.detail).ok()) {
        ++out.not_a_release;  // an applied event names the artifact it now runs
        continue;
      }
      if (!e.proof.empty() && !proved.insert(e.service).second) {
        ++out.unproven;  // one proof per service per report is all it takes
        e.proof.clear();
      }
      if (!e.proof.empty()) {
        // Rare: a host refusing a plan below the one it holds (a restore
        // from an old backup). Its proof lifts the service's seq.
        auto seq = proven_seq(host.host, e);
        auto issued = seq.ok() ? store_.plan_seq(e.service) : Result<std::uint64_t>(0);
        if (!seq.ok()) {
          ++out.unproven;
          if (out.first_error.empty()) out.first_error = "proof: " + seq.error().message;
        } else if (issued.ok() && *issued >= *seq) {
          // Nothing to lift: no write.
        } else if (auto st = store_.note_reported_seq(e.service, *seq); !st.ok()) {
          log_.warn("coordinator.report.proof_not_kept",
                    {{"host", host.host}, {"error", st.error().message}});
        } else {
          log_.info("coordinator.plan_seq.proven",
                    {{"host", host.host}, {"service", e.service}, {"seq", *seq}});
        }
        e.proof.clear();  // checked; not stored
      }
      if (e.seq > 0) {
        auto issued = store_.plan_seq(e.service);
        if (issued.ok() && e.seq > *issued) {
          ++out.unissued;
          continue;
        }
      }
    }
    kept.push_back(std::move(item));
  }
  report.items = std::move(kept);
  return out;
}

Result<std::uint64_t> AgentGateway::proven_seq(const std::string& host, const proto::EventItem& e) {
  DROVER_ASSIGN(auto bundle, proto::decode_bundle(e.proof));
  DROVER_ASSIGN(std::string payload,
                sign::open(bundle.plan, proto::kPlanType, keys_.current().key.public_key()));
  DROVER_ASSIGN(auto plan, proto::decode_plan(payload));
  if (plan.service != e.service) {
    return make_error(Errc::refused, "the proof is a plan of service '" + plan.service + "'");
  }
  if (!plan.applies_to(host)) {
    return make_error(Errc::refused, "the proof is a plan that does not name this host");
  }
  if (plan.seq > proto::kMaxSeq) return make_error(Errc::refused, "the proof's seq is too high");
  return plan.seq;
}

std::uint64_t AgentGateway::acked_seq(const std::string& host) {
  const std::uint64_t version = store_.hosts_version();
  std::lock_guard lock(acked_mu_);
  auto it = acked_.find(host);
  // An enrollment or a reset since (a new machine numbers from 1): unknown.
  if (it == acked_.end() || it->second.first != version) return 0;
  return it->second.second;
}

void AgentGateway::note_acked(const std::string& host, std::uint64_t seq) {
  const std::uint64_t version = store_.hosts_version();
  std::lock_guard lock(acked_mu_);
  if (acked_.size() > 1'000'000) acked_.clear();
  auto& [v, s] = acked_[host];
  if (v != version) s = 0;
  v = version;
  s = std::max(s, seq);
}

bool AgentGateway::log_allowed(std::string_view event) {
  // At most 20 lines a second of each unauthenticated refusal: a flood of
  // bad requests costs a counter, not the log.
  const std::int64_t second = unix_ms(clock_.now()) / 1000;
  std::lock_guard lock(log_mu_);
  auto& [at, n] = log_budget_[std::string(event)];
  if (at != second) {
    if (n > 20) {
      log_.warn("coordinator.log.suppressed",
                {{"event", event}, {"lines", static_cast<std::int64_t>(n - 20)}});
    }
    at = second;
    n = 0;
  }
  return ++n <= 20;
}

Result<std::shared_ptr<const HostRecord>> AgentGateway::enrolled(const std::string& name) {
  const std::uint64_t version = store_.hosts_version();
  {
    std::shared_lock lock(cache_mu_);
    auto it = host_cache_.find(name);
    if (it != host_cache_.end() && it->second.first == version) return it->second.second;
  }
  DROVER_ASSIGN(auto h, store_.host(name));
  if (!h) return std::shared_ptr<const HostRecord>();  // not cached: an enrollment adds it
  auto record = std::make_shared<const HostRecord>(std::move(*h));
  std::unique_lock lock(cache_mu_);
  if (host_cache_.size() > 1'000'000) host_cache_.clear();
  host_cache_[name] = {version, record};
  return record;
}

void AgentGateway::note_dropped(const std::string& host, const Ingested& done) {
  if (done.unissued > 0) refused_items_.fetch_add(done.unissued, std::memory_order_relaxed);
  Meters::count(meters_.items_refused, "unissued", static_cast<double>(done.unissued));
  Meters::count(meters_.items_refused, "over_budget", static_cast<double>(done.over_budget));
  Meters::count(meters_.items_refused, "storage_full", static_cast<double>(done.storage_full));
  if (done.over_budget == 0 && done.storage_full == 0) return;
  // Named once a minute per host, not once per report.
  const std::int64_t now = unix_ms(clock_.now());
  auto [it, first] = throttle_logged_.try_emplace(host, now);
  if (!first && now - it->second < 60'000) return;
  it->second = now;
  if (throttle_logged_.size() > 100'000) throttle_logged_.clear();
  if (done.over_budget > 0) {
    log_.warn("coordinator.host.throttled",
              {{"host", host}, {"dropped_samples", done.over_budget}, {"why", "storage budget"}});
  } else {
    log_.error("coordinator.storage.full",
               {{"host", host}, {"dropped_samples", done.storage_full}});
  }
}

void AgentGateway::commit_reports() {
  std::vector<PendingReport> batch;
  for (;;) {
    {
      std::unique_lock lock(queue_mu_);
      queue_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      batch.swap(queue_);
      meters_.queued_reports->set(0);
    }
    // A batch that throws (a report handler, the store) is answered with an
    // error, which each agent resends later; the committer goes on.
    const Status st = run_guarded(log_, "coordinator.commit.threw", [&] { commit_batch(batch); });
    if (!st.ok()) {
      for (PendingReport& p : batch) {
        p.reply.fail(Errc::internal, "internal error; send it again");
      }
    }
    batch.clear();
  }
}

void AgentGateway::commit_batch(std::vector<PendingReport>& batch) {
  std::vector<CoordinatorStore::ReportFrom> items;
  items.reserve(batch.size());
  for (const auto& p : batch) items.push_back({p.host->host, &p.body, p.host->key.hex()});
  auto results = store_.ingest_reports(items, unix_seconds(clock_.now()));
  if (results.ok()) batches_.fetch_add(1, std::memory_order_relaxed);  // before any answer
  for (std::size_t i = 0; i < batch.size(); ++i) {
    PendingReport& p = batch[i];
    if (!results.ok()) {
      p.reply.fail(results.error());
      continue;
    }
    const Result<Ingested>& done = (*results)[i];
    if (!done.ok()) {
      Meters::count(meters_.reports, "failed");
      log_.warn("coordinator.report.not_ingested",
                {{"host", p.host->host}, {"error", done.error().message}});
      p.reply.fail(done.error());
      continue;
    }
    note_dropped(p.host->host, *done);
    note_acked(p.host->host, p.body.seq);
    Meters::count(meters_.reports, done->fresh ? "ingested" : "repeated");
    if (done->fresh) {
      count_screened(p.screened);
      meters_.ingested_items->inc(static_cast<double>(p.body.items.size()));
    }
    if (done->fresh && reports_) {
      // Durable already: a handler that throws is logged, the report acknowledged.
      (void)run_guarded(log_, "coordinator.report_handler.threw",
                        [&] { reports_(*p.host, p.body); });
    }
    p.reply.answer("ack", {{"seq", p.body.seq}});
  }
}

void AgentGateway::Meters::resolve(metrics::Registry& r) {
  auto family = [&r](std::map<std::string, metrics::Counter*, std::less<>>& into,
                     const std::string& name, const std::string& help, const std::string& label,
                     std::initializer_list<std::string_view> keys) {
    for (std::string_view k : keys) {
      into[std::string(k)] = &r.counter(name, help, {label}, {std::string(k)});
    }
    into["other"] = &r.counter(name, help, {label}, {"other"});
  };
  family(requests, "drover_coordinator_agent_requests_total",
         "Agent protocol requests that decoded, by type.", "type",
         {proto::kEnroll, proto::kCertPull, proto::kRootPull, proto::kPlanPull, proto::kFlagsPull,
          proto::kManifestPull, proto::kReport});
  family(refused, "drover_coordinator_agent_requests_refused_total",
         "Agent protocol requests refused before their body was used, by reason: malformed, "
         "old_protocol (version 1 on a version-2 listener), not_enrolled, bad_mac (not "
         "authenticated by the host's report key), bad_body.",
         "reason", {"malformed", "old_protocol", "not_enrolled", "bad_mac", "bad_body"});
  family(plans, "drover_coordinator_plan_pulls_total",
         "Plan pulls answered, by answer: plan, unchanged (the agent holds the newest), no_plan.",
         "answer", {"plan", "unchanged", "no_plan"});
  family(reports, "drover_coordinator_reports_total",
         "Agent reports, by outcome: ingested (durable), repeated (a resend, acknowledged "
         "again), failed (not ingested; the agent sends it again).",
         "outcome", {"ingested", "repeated", "failed"});
  family(items_refused, "drover_coordinator_report_items_refused_total",
         "Report items refused or dropped, by reason: foreign (another host's service), future "
         "(dated beyond the skew bound), unissued (a plan seq never issued), unproven (a proof "
         "that does not hold), not_a_release, over_budget (the host's storage budget), "
         "storage_full (the map nearly full).",
         "reason",
         {"foreign", "future", "unissued", "unproven", "not_a_release", "over_budget",
          "storage_full"});
  queued_reports = &r.gauge("drover_coordinator_report_queue_items",
                            "Reports waiting for the next group commit.");
  ingested_items = &r.counter("drover_coordinator_report_items_ingested_total",
                              "Items (health samples and events) of ingested reports, after "
                              "screening.");
}

void AgentGateway::Meters::count(
    const std::map<std::string, metrics::Counter*, std::less<>>& family, std::string_view key,
    double n) {
  if (n <= 0) return;
  auto it = family.find(key);
  if (it == family.end()) it = family.find("other");
  if (it != family.end()) it->second->inc(n);
}

void AgentGateway::count_screened(const Screened& s) {
  Meters::count(meters_.items_refused, "foreign", static_cast<double>(s.foreign));
  Meters::count(meters_.items_refused, "future", static_cast<double>(s.future));
  Meters::count(meters_.items_refused, "unissued", static_cast<double>(s.unissued));
  Meters::count(meters_.items_refused, "unproven", static_cast<double>(s.unproven));
  Meters::count(meters_.items_refused, "not_a_release", static_cast<double>(s.not_a_release));
}

}  // namespace drover::coordinator
