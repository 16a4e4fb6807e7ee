#include "agent/enrollment.hpp"

#include <nlohmann/json.hpp>
#include "core/canon/json_text.hpp"

namespace drover::agent {
namespace {

// The certificate under the trusted root; when it does not chain to it, the
// root may have rotated while this host was away: walk the root documents
// the coordinator serves, then try once more.
Result<sign::KeyCert> verify_cert(AgentContext& ctx, const sign::Envelope& cert,
                                  std::int64_t now_s) {
  auto verified = sign::verify_cert(cert, ctx.trust(), now_s);
  if (verified.ok() || verified.error().code != Errc::crypto) return verified;
  if (!catch_up_roots(ctx, now_s)) return verified;
  return sign::verify_cert(cert, ctx.trust(), now_s);
}

}  // namespace

bool catch_up_roots(AgentContext& ctx, std::int64_t now_s) {
  sign::Root current = ctx.current_root();
  auto docs = ctx.link->pull_roots(current.version);
  if (!docs.ok()) {
    ctx.log.debug("agent.trust.roots_unreachable", {{"error", docs.error().message}});
    return false;
  }
  bool moved = false;
  for (std::size_t i = 0; i < docs->size(); ++i) {
    const sign::Envelope& doc = (*docs)[i];
    auto next = sign::next_root(doc, current, now_s, i + 1 == docs->size());
    if (!next.ok()) {
      // A link skipped, a signature missing: the walk stops where trust ends.
      ctx.log.error("agent.trust.root_refused",
                    {{"version", current.version}, {"error", next.error().message}});
      break;
    }
    if (auto st = ctx.state->set_root(*next); !st.ok()) {  // durable before it is used
      ctx.log.error("agent.trust.root_not_kept", {{"error", st.error().message}});
      break;
    }
    ctx.set_root(*next);
    current = *next;
    moved = true;
    ctx.log.info("agent.trust.root_rotated",
                 {{"version", next->version}, {"key", next->key.key_id().substr(0, 12)}});
    ctx.emit(json_text(nlohmann::json{{"event", "root_rotated"}, {"version", next->version}}));
  }
  return moved;
}

bool try_enroll(AgentContext& ctx, std::int64_t now_s) {
  {
    std::lock_guard lock(ctx.view_mu);
    if (ctx.enrolled) return true;
  }
  // The floor rises on the certificate enrollment sees, too.
  const std::optional<sign::PublicKey> online = refresh_trust(ctx, now_s);
  if (!online) return false;
  const AgentConfig& config = ctx.config;
  proto::EnrollBody body;
  body.host = config.host;
  body.region = config.region;
  body.cluster = config.cluster;
  for (const auto& s : config.services) body.services.push_back(s.name);
  body.public_key = ctx.key->public_key();
  // Where peers reach this host's mesh node: the listen address, or the
  // host's name when it listens on every address.
  std::string where = config.mesh_listen.substr(0, config.mesh_listen.rfind(':'));
  if (where == "0.0.0.0" || where == "[::]" || where.empty()) where = config.host;
  const std::uint16_t port = ctx.layers->port();
  body.mesh_peer = port ? where + ":" + std::to_string(port) : "";
  body.join_token = config.join_token;
  body.at = now_s;
  Status st = ctx.link->enroll(body, *ctx.key, *online, ctx.report_key);
  if (!st.ok()) {
    ctx.log.error("agent.enroll.refused", {{"error", st.error().message}});
    ctx.emit(json_text(nlohmann::json{{"event", "enroll_failed"}, {"error", st.error().message}}));
    return false;
  }
  ctx.log.info("agent.enrolled", {{"host", config.host}});
  ctx.emit(json_text(nlohmann::json{{"event", "enrolled"}, {"host", config.host}}));
  std::lock_guard lock(ctx.view_mu);
  ctx.enrolled = true;
  return true;
}

std::optional<sign::PublicKey> refresh_trust(AgentContext& ctx, std::int64_t now_s) {
  auto cert = ctx.link->pull_cert();
  if (!cert.ok()) {
    ctx.log.debug("agent.trust.unreachable", {{"error", cert.error().message}});
    return std::nullopt;
  }
  auto verified = verify_cert(ctx, *cert, now_s);
  if (!verified.ok()) {
    ctx.log.error("agent.trust.cert", {{"error", verified.error().message}});
    return std::nullopt;
  }
  if (verified->version > ctx.trust().min_cert_version) {
    if (auto st = ctx.state->raise_min_cert_version(verified->version); !st.ok()) {
      ctx.log.error("agent.trust.floor", {{"error", st.error().message}});
      return std::nullopt;
    }
    ctx.log.info("agent.trust.rotated", {{"min_cert_version", verified->version}});
  }
  ctx.link->trust_online_key(verified->subject);
  return verified->subject;
}

}  // namespace drover::agent
