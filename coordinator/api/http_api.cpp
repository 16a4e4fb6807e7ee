#include "coordinator/api/http_api.hpp"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>

#include "coordinator/api/codec.hpp"
#include "coordinator/service/coordinator.hpp"
#include "core/base/name.hpp"
#include "core/canon/json_text.hpp"
#include "core/metrics/metrics.hpp"

namespace drover::coordinator {
namespace {

using nlohmann::json;

int status_of(Errc code) {
  switch (code) {
    case Errc::invalid_argument: return 400;
    case Errc::unsupported: return 400;
    case Errc::corrupt: return 502;  // what an upstream (the origin) served is bad
    case Errc::not_found: return 404;
    case Errc::already_exists: return 409;
    case Errc::refused: return 409;
    case Errc::crypto: return 401;
    case Errc::timeout: return 504;
    case Errc::exhausted: return 503;
    case Errc::io: return 502;
    case Errc::internal: return 500;
  }
  return 500;
}

http::Response answer(int status, const json& body) {
  http::Response r;
  r.status = status;
  r.body = json_text(body);
  return r;
}

http::Response error(int status, const std::string& message) {
  return answer(status, {{"error", message}});
}

http::Response fail(const Error& e) {
  return error(status_of(e.code), e.message);
}

// An operation's answer rendered, or its error.
template <class T, class Render>
http::Response from(const Result<T>& r, Render render, int ok_status = 200) {
  if (!r.ok()) return fail(r.error());
  return answer(ok_status, render(*r));
}

http::Response from(const Status& st, const json& body) {
  if (!st.ok()) return fail(st.error());
  return answer(200, body);
}

// Splits "/a/b/c" into {"a","b","c"}.
std::vector<std::string> segments(const std::string& path) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    const std::size_t j = path.find('/', i);
    out.push_back(path.substr(i, j == std::string::npos ? std::string::npos : j - i));
    if (j == std::string::npos) break;
    i = j;
  }
  return out;
}

Result<std::size_t> limit_param(const http::Request& req, std::size_t fallback) {
  const std::string* v = req.param("limit");
  if (v == nullptr) return fallback;
  char* end = nullptr;
  const long n = std::strtol(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || n < 1 || n > 1000) {
    return make_error(Errc::invalid_argument, "limit must be a whole number from 1 to 1000");
  }
  return static_cast<std::size_t>(n);
}

Result<std::int64_t> time_param(const http::Request& req, const char* name, std::int64_t fallback) {
  const std::string* v = req.param(name);
  if (v == nullptr) return fallback;
  auto t = parse_time_ms(*v);
  if (!t.ok())
    return make_error(Errc::invalid_argument, std::string(name) + ": " + t.error().message);
  return *t;
}

// The optional env of a query: "" when absent, else a name by the rule.
// An optional name parameter ("env", "host"): "" when absent.
Result<std::string> name_param(const http::Request& req, const char* name) {
  const std::string* v = req.param(name);
  if (v == nullptr || v->empty()) return std::string();
  DROVER_TRY(validate_name(*v, name));
  return *v;
}

Result<std::string> env_param(const http::Request& req) {
  return name_param(req, "env");
}

}  // namespace

constexpr const char* kWebhookHeaders =
    "the health webhook needs X-Drover-Timestamp (unix seconds), X-Drover-Delivery (a unique "
    "id) and X-Drover-Signature: sha256=<hex HMAC-SHA256 of \"drover-webhook-v2\" LF timestamp "
    "LF delivery LF body>";

bool is_loopback_address(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

Result<std::int64_t> parse_time_ms(const std::string& text) {
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos &&
      text.size() <= 15) {
    return static_cast<std::int64_t>(std::stoll(text));
  }
  std::tm tm{};
  const char* rest = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr) {
    return make_error(Errc::invalid_argument, "'" + text.substr(0, 64) +
                                                  "' is neither unix milliseconds nor an RFC "
                                                  "3339 time like 2026-11-27T10:00:00Z");
  }
  std::int64_t ms = 0;
  if (*rest == '.') {
    ++rest;
    int digits = 0;
    while (*rest >= '0' && *rest <= '9') {
      if (digits < 3) ms = ms * 10 + (*rest - '0');
      ++digits;
      ++rest;
    }
    for (; digits < 3; ++digits) ms *= 10;
  }
  std::int64_t offset_s = 0;
  if (*rest == 'Z' || *rest == 'z') {
    ++rest;
  } else if ((*rest == '+' || *rest == '-') && std::strlen(rest) == 6 && rest[3] == ':') {
    const int sign = *rest == '-' ? -1 : 1;
    offset_s = sign * ((rest[1] - '0') * 36000 + (rest[2] - '0') * 3600 + (rest[4] - '0') * 600 +
                       (rest[5] - '0') * 60);
    rest += 6;
  } else {
    return make_error(Errc::invalid_argument,
                      "'" + text.substr(0, 64) + "' needs a time zone: Z or +HH:MM");
  }
  if (*rest != '\0') {
    return make_error(Errc::invalid_argument, "'" + text.substr(0, 64) + "' has trailing text");
  }
  return (static_cast<std::int64_t>(::timegm(&tm)) - offset_s) * 1000 + ms;
}

HttpApi::HttpApi(Coordinator& coordinator, const ApiOptions& options, Logger& log)
    : coordinator_(coordinator), options_(options), log_(log) {}

HttpApi::~HttpApi() {
  server_.reset();  // no new requests
  registrations_.reset();
  webhooks_.reset();
  scm_hooks_.reset();
  pool_.reset();  // finishes those in progress
}

Result<std::unique_ptr<HttpApi>> HttpApi::start(Coordinator& coordinator, const ApiOptions& options,
                                                Logger& log) {
  std::unique_ptr<HttpApi> api(new HttpApi(coordinator, options, log));
  DROVER_ASSIGN(auto listen, http::parse_listen(options.listen));
  http::ServerOptions so;
  so.bind = listen.first;
  so.port = listen.second;
  so.max_body_bytes = options.max_body_bytes;
  const bool tls = !options.tls_cert_file.empty() || !options.tls_key_file.empty();
  if (tls && (options.tls_cert_file.empty() || options.tls_key_file.empty())) {
    return make_error(Errc::invalid_argument, "api TLS needs both a certificate and a key file");
  }
  if (!tls && !is_loopback_address(so.bind)) {
    return make_error(Errc::refused, "api listen '" + options.listen +
                                         "' is not a loopback address: plain HTTP is served "
                                         "only on loopback; give a TLS certificate and key");
  }
  so.tls_cert_file = options.tls_cert_file;
  so.tls_key_file = options.tls_key_file;
  if (const fs::path& dir = coordinator.data_dir(); !dir.empty()) {
    std::error_code ec;
    const fs::path resolved = fs::weakly_canonical(dir, ec);
    for (const fs::path& p : {dir, ec ? dir : resolved}) {
      std::string text = p.string();
      while (text.size() > 1 && text.back() == '/') text.pop_back();
      if (text.size() <= 1) continue;  // "/" is in every path: nothing to hide
      const std::string escaped = json_text(text);
      for (const std::string& spelling : {text, escaped.substr(1, escaped.size() - 2)}) {
        auto& all = api->data_dir_spellings_;
        if (std::find(all.begin(), all.end(), spelling) == all.end()) all.push_back(spelling);
      }
    }
  }
  api->pool_ = std::make_unique<WorkerPool>(options.workers);
  api->registrations_ = std::make_unique<WorkerPool>(1);
  api->webhooks_ = std::make_unique<WorkerPool>(1);
  api->scm_hooks_ = std::make_unique<WorkerPool>(1);
  HttpApi* raw = api.get();
  so.max_connections = options.max_connections;
  so.max_connections_per_client = options.max_connections_per_client;
  so.check_headers = [raw](const http::Request& head) { return raw->check_headers(head); };
  DROVER_ASSIGN(
      api->server_,
      http::Server::start(
          so,
          [raw](const http::Request& req, http::Responder respond) {
            const auto seg = segments(req.path);
            if (seg == std::vector<std::string>{"webhooks", "health"}) {
              return raw->enqueue(*raw->webhooks_, raw->queued_webhooks_,
                                  raw->options_.max_queued_webhooks, req, std::move(respond));
            }
            // Each webhook on a worker of its own: a flood of unsigned
            // pushes never delays an approval, a rollback or the health checker.
            if (seg == std::vector<std::string>{"webhooks", "scm"}) {
              return raw->enqueue(*raw->scm_hooks_, raw->queued_scm_,
                                  raw->options_.max_queued_webhooks, req, std::move(respond));
            }
            if (req.method == "POST" && seg == std::vector<std::string>{"artifacts"}) {
              return raw->enqueue(*raw->registrations_, raw->queued_registrations_,
                                  raw->options_.max_queued_registrations, req, std::move(respond));
            }
            raw->enqueue(*raw->pool_, raw->queued_, raw->options_.max_queued, req,
                         std::move(respond));
          },
          log));
  const std::string host = so.bind.find(':') != std::string::npos ? "[" + so.bind + "]" : so.bind;
  api->url_ =
      std::string(tls ? "https://" : "http://") + host + ":" + std::to_string(api->server_->port());
  return api;
}

void HttpApi::enqueue(WorkerPool& pool, std::atomic<std::size_t>& queued, std::size_t limit,
                      const http::Request& req, http::Responder respond) {
  if (queued.fetch_add(1) >= limit) {
    queued.fetch_sub(1);
    return respond(error(503, "the coordinator is busy: too many requests wait; try again"));
  }
  pool.submit([this, &queued, req, respond = std::move(respond)]() mutable {
    queued.fetch_sub(1);
    try {
      respond(handle(req));
    } catch (const std::exception& e) {
      // A bug must still answer, and say so, not hang the client.
      log_.error("coordinator.api.exception", {{"error", e.what()}});
      respond(error(500, "internal error"));
    }
  });
}

std::optional<http::Response> HttpApi::check_headers(const http::Request& head) {
  const std::vector<std::string> seg = segments(head.path);
  // Unauthenticated: liveness; the webhook proves itself by its HMAC, so it
  // must at least say it has one.
  if (seg == std::vector<std::string>{"ready"}) return std::nullopt;
  if (seg == std::vector<std::string>{"webhooks", "health"}) {
    auto header = [&head](const char* name) {
      auto it = head.headers.find(name);
      return it == head.headers.end() ? std::string() : it->second;
    };
    const Coordinator::WebhookDelivery d{header("x-drover-signature"), header("x-drover-timestamp"),
                                         header("x-drover-delivery")};
    if (d.signature.empty() || d.timestamp.empty() || d.delivery.empty()) {
      return error(401, kWebhookHeaders);
    }
    if (auto st = coordinator_.check_webhook_headers(d); !st.ok()) {
      return error(st.error().code == Errc::refused ? 409 : 401, st.error().message);
    }
    return std::nullopt;
  }
  if (seg == std::vector<std::string>{"webhooks", "scm"}) {
    // Proved by its signature; a push without one is refused before its body.
    auto event = head.headers.find("x-github-event");
    if (event == head.headers.end()) return error(401, "X-GitHub-Event is missing");
    if (event->second == "push" && !head.headers.count("x-hub-signature-256")) {
      return error(401, "X-Hub-Signature-256 is missing");
    }
    return std::nullopt;
  }
  auto auth = head.headers.find("authorization");
  if (auth == head.headers.end() || auth->second.rfind("Bearer ", 0) != 0) {
    return error(401, "missing bearer token: send Authorization: Bearer <token>");
  }
  auto caller = coordinator_.tokens().authenticate(std::string_view(auth->second).substr(7));
  if (!caller.ok()) return error(401, "unknown or revoked token");
  return std::nullopt;  // the role is checked with the route, once the body is in
}

std::uint16_t HttpApi::port() const {
  return server_->port();
}

std::string HttpApi::url() const {
  return url_;
}

http::Response HttpApi::handle(const http::Request& req) {
  http::Response out = dispatch(req);
  if (out.status < 500) return out;
  // Which 5xx answers are the coordinator's own failure, answered generically
  // (docs/COORDINATOR.md, "Access"): a bug (500); a 502 where no upstream
  // was asked (the store's io or corrupt errors: only POST /artifacts asks
  // the origin); any whose message names the data directory. The decision
  // never depends on text the request sent, which no 5xx message echoes.
  const bool upstream =
      req.method == "POST" && segments(req.path) == std::vector<std::string>{"artifacts"};
  bool own = out.status == 500 || (out.status == 502 && !upstream);
  for (const auto& spelling : data_dir_spellings_) {
    own = own || out.body.find(spelling) != std::string::npos;
  }
  return own ? conceal(req, out) : out;
}

http::Response HttpApi::conceal(const http::Request& req, const http::Response& out) {
  const std::uint64_t ref = ++failures_;
  const json body = json::parse(out.body, nullptr, false);
  const std::string detail = body.is_object() && body.contains("error") && body["error"].is_string()
                                 ? body["error"].get<std::string>()
                                 : out.body;
  log_.error("coordinator.api.failed", {{"ref", ref},
                                        {"method", req.method},
                                        {"path", req.path.substr(0, 200)},
                                        {"status", out.status},
                                        {"error", detail}});
  const std::string where =
      "; the detail is in the coordinator's log (coordinator.api.failed ref=" +
      std::to_string(ref) + ")";
  if (out.status == 503) {
    return error(503,
                 "the coordinator cannot do this now: one of its own limits was reached" + where);
  }
  return error(500, "the coordinator failed to do this, through no fault of the request" + where);
}

http::Response HttpApi::dispatch(const http::Request& req) {
  const std::vector<std::string> seg = segments(req.path);
  const std::string& m = req.method;
  auto is = [&](std::initializer_list<const char*> pattern) {
    if (pattern.size() != seg.size()) return false;
    std::size_t i = 0;
    for (const char* p : pattern) {
      if (std::strcmp(p, "*") != 0 && seg[i] != p) return false;
      ++i;
    }
    return true;
  };

  // Unauthenticated: liveness, and the webhook (authenticated by its HMAC).
  Coordinator& c = coordinator_;
  if (is({"ready"})) {
    if (m != "GET") return error(405, "GET /ready only");
    return answer(200, {{"ok", true}});
  }
  if (is({"webhooks", "health"})) {
    if (m != "POST") return error(405, "POST /webhooks/health only");
    auto header = [&req](const char* name) {
      auto it = req.headers.find(name);
      return it == req.headers.end() ? std::string() : it->second;
    };
    const Coordinator::WebhookDelivery delivery{
        header("x-drover-signature"), header("x-drover-timestamp"), header("x-drover-delivery")};
    if (delivery.signature.empty() || delivery.timestamp.empty() || delivery.delivery.empty()) {
      return error(401, kWebhookHeaders);
    }
    if (auto st = c.check_webhook(req.body, delivery); !st.ok()) return fail(st.error());
    auto hook =
        api::decode_health_webhook(json::parse(req.body, nullptr, false), c.now_ms(),
                                   [&c](const std::string& host) { return c.host_enrolled(host); });
    if (!hook.ok()) return fail(hook.error());
    return from(c.add_health_samples(hook->service, hook->samples, delivery.delivery),
                [](std::size_t n) {
                  return json{{"accepted", n}};
                });
  }

  if (is({"webhooks", "scm"})) {
    if (m != "POST") return error(405, "POST /webhooks/scm only");
    auto header = [&req](const char* name) {
      auto it = req.headers.find(name);
      return it == req.headers.end() ? std::string() : it->second;
    };
    const Coordinator::ScmDelivery d{header("x-github-event"), header("x-github-delivery"),
                                     header("x-hub-signature-256")};
    auto out = c.scm_push(req.body, d);
    if (!out.ok()) return fail(out.error());
    if (out->kind == "pong") return answer(200, {{"pong", true}});
    if (out->kind == "ignored") return answer(202, {{"ignored", d.event}});
    if (out->kind == "duplicate_delivery") return answer(200, {{"duplicate", "delivery"}});
    if (out->kind == "duplicate_commit") return answer(200, {{"duplicate", "commit"}});
    json triggers = json::array();
    for (const auto& t : out->triggers) {
      json one = {{"pipeline_id", t.pipeline_id}, {"state", t.state}};
      if (!t.deploy_id.empty()) one["deploy_id"] = t.deploy_id;
      if (!t.artifacts.empty()) one["artifacts"] = t.artifacts;
      triggers.push_back(std::move(one));
    }
    return answer(202, {{"delivery", d.delivery}, {"triggers", triggers}});
  }

  // Which role each endpoint needs; unknown paths are 404 before any auth.
  struct Route {
    Role role;
    std::function<http::Response(const Caller&, const json&)> run;
  };
  std::optional<Route> route;
  std::string allowed;  // methods of a known path, for 405
  auto on = [&](const char* method, Role role,
                std::function<http::Response(const Caller&, const json&)> run) {
    allowed += allowed.empty() ? method : std::string(", ") + method;
    if (m == method) route = Route{role, std::move(run)};
  };
  if (is({"metrics"}) && options_.metrics) {
    // Prometheus' text format, for a scraper holding a viewer token
    // (docs/METRICS.md, "Where each daemon serves").
    on("GET", Role::viewer, [&](const Caller&, const json&) {
      http::Response r;
      r.content_type = metrics::kContentType;
      r.body = c.metrics().expose_cached();
      return r;
    });
  } else if (is({"pipelines"})) {
    on("GET", Role::viewer,
       [&](const Caller&, const json&) { return from(c.pipelines(), api::render_pipelines); });
    on("POST", Role::deployer, [&](const Caller& who, const json& body) {
      auto p = api::decode_pipeline(body);
      if (!p.ok()) return fail(p.error());
      auto need = c.role_to_put_pipeline(*p);
      if (!need.ok()) return fail(need.error());
      if (!allows(who.role, need->role)) return error(403, role_refusal(*need, who));
      auto saved = c.put_pipeline(std::move(*p), who);
      if (!saved.ok()) return fail(saved.error());
      return answer(saved->created ? 201 : 200, api::render_pipeline(saved->pipeline));
    });
  } else if (is({"pipelines", "*"})) {
    on("GET", Role::viewer,
       [&](const Caller&, const json&) { return from(c.pipeline(seg[1]), api::render_pipeline); });
  } else if (is({"pipelines", "*", "runs"})) {
    on("GET", Role::viewer, [&](const Caller&, const json&) {
      auto limit = limit_param(req, 20);
      if (!limit.ok()) return error(400, limit.error().message);
      return from(c.runs(seg[1], *limit), [&](const std::vector<DeployRecord>& runs) {
        return api::render_runs(seg[1], runs);
      });
    });
  } else if (is({"deploys"})) {
    on("GET", Role::viewer, [&](const Caller&, const json&) {
      auto limit = limit_param(req, 50);
      if (!limit.ok()) return error(400, limit.error().message);
      const std::string* service = req.param("service");
      return from(c.deploys(service ? *service : "", *limit), api::render_deploys);
    });
    on("POST", Role::deployer, [&](const Caller& who, const json& body) {
      auto start = api::decode_deploy_start(body);
      if (!start.ok()) return fail(start.error());
      auto need = c.role_to_start(*start);
      if (!need.ok()) return fail(need.error());
      if (!allows(who.role, need->role)) return error(403, role_refusal(*need, who));
      return from(c.start_deploy(*start, who), api::render_deploy_started, 201);
    });
  } else if (is({"deploys", "*"})) {
    on("GET", Role::viewer, [&](const Caller&, const json&) {
      // now_ms: the coordinator's clock, so a watcher counts bakes and
      // deadlines down on the clock that ends them.
      return from(c.deploy_view(seg[1]), [&c](const DeployView& v) {
        json out = api::render_deploy_view(v);
        out["now_ms"] = c.now_ms();
        return out;
      });
    });
  } else if (is({"deploys", "*", "snapshot"})) {
    on("GET", Role::viewer, [&](const Caller&, const json&) {
      auto bytes = c.snapshot(seg[1]);
      if (!bytes.ok()) return fail(bytes.error());
      // The exact bytes the run was started with: their SHA-256 is the
      // config_hash of its deploy.created audit record.
      http::Response r;
      r.body = *bytes;
      r.headers.emplace_back("X-Drover-Config-Hash", ContentId::of(*bytes).str());
      return r;
    });
  } else if (is({"deploys", "*", "audit"})) {
    on("GET", Role::viewer,
       [&](const Caller&, const json&) { return from(c.history(seg[1]), api::render_history); });
  } else if (is({"deploys", "*", "redeploy"})) {
    on("POST", Role::deployer, [&](const Caller& who, const json& body) {
      auto env = api::decode_redeploy(body);
      if (!env.ok()) return fail(env.error());
      return from(c.redeploy(seg[1], *env, who), api::render_deploy_started, 201);
    });
  } else if (is({"deploys", "*", "approve"})) {
    on("POST", Role::approver, [&](const Caller& who, const json& body) {
      auto text = api::decode_gate_text(body, "comment", false);
      if (!text.ok()) return fail(text.error());
      return from(c.approve(seg[1], *text, who), api::render_deploy_summary);
    });
  } else if (is({"deploys", "*", "reject"})) {
    on("POST", Role::approver, [&](const Caller& who, const json& body) {
      auto text = api::decode_gate_text(body, "reason", true);
      if (!text.ok()) return fail(text.error());
      return from(c.reject(seg[1], *text, who), api::render_deploy_summary);
    });
  } else if (is({"deploys", "*", "override-freeze"})) {
    on("POST", Role::approver, [&](const Caller& who, const json& body) {
      auto text = api::decode_gate_text(body, "reason", true);
      if (!text.ok()) return fail(text.error());
      return from(c.override_freeze(seg[1], *text, who), api::render_deploy_summary);
    });
  } else if (is({"deploys", "*", "pause"})) {
    on("POST", Role::deployer, [&](const Caller& who, const json&) {
      return from(c.pause(seg[1], who), api::render_deploy_summary);
    });
  } else if (is({"deploys", "*", "resume"})) {
    on("POST", Role::deployer, [&](const Caller& who, const json&) {
      return from(c.resume(seg[1], who), api::render_deploy_summary);
    });
  } else if (is({"releases"})) {
    on("GET", Role::viewer, [&](const Caller&, const json&) {
      auto limit = limit_param(req, 20);
      if (!limit.ok()) return error(400, limit.error().message);
      return from(c.releases(*limit), api::render_releases);
    });
    on("POST", Role::deployer, [&](const Caller& who, const json& body) {
      auto start = api::decode_release_start(body);
      if (!start.ok()) return fail(start.error());
      return from(c.create_release(*start, who), api::render_release, 201);
    });
  } else if (is({"releases", "*"})) {
    on("GET", Role::viewer,
       [&](const Caller&, const json&) { return from(c.release(seg[1]), api::render_release); });
  } else if (is({"releases", "*", "approve"})) {
    on("POST", Role::approver, [&](const Caller& who, const json& body) {
      auto text = api::decode_gate_text(body, "comment", false);
      if (!text.ok()) return fail(text.error());
      return from(c.approve_release(seg[1], *text, who), api::render_release);
    });
  } else if (is({"releases", "*", "reject"})) {
    on("POST", Role::approver, [&](const Caller& who, const json& body) {
      auto text = api::decode_gate_text(body, "reason", true);
      if (!text.ok()) return fail(text.error());
      return from(c.reject_release(seg[1], *text, who), api::render_release);
    });
  } else if (is({"services", "*", "flags"})) {
    on("GET", Role::viewer, [&](const Caller&, const json&) {
      return from(c.flags(seg[1]), [&](const std::vector<FlagSetRecord>& all) {
        return api::render_flagsets(seg[1], all);
      });
    });
  } else if (is({"services", "*", "flags", "*"})) {
    on("POST", Role::deployer, [&](const Caller& who, const json& body) {
      auto change = api::decode_flag_set(body);
      if (!change.ok()) return fail(change.error());
      auto done = c.set_flag(seg[1], change->env, seg[3], change->value, change->now, who);
      if (!done.ok()) return fail(done.error());
      if (done->ramp) {
        // A ramp run: followed like a deploy (GET /deploys/:id).
        json j = api::render_deploy_summary(*done->ramp);
        j["ramp"] = {{"flag", seg[3]}, {"percent", done->ramp->flag_percent}};
        return answer(201, j);
      }
      return answer(200, api::render_flagset(*done->set));
    });
  } else if (is({"services", "*", "flags", "*", "kill"})) {
    on("POST", Role::deployer, [&](const Caller& who, const json& body) {
      auto env = api::decode_flag_kill(body);
      if (!env.ok()) return fail(env.error());
      return from(c.kill_flag(seg[1], *env, seg[3], who), api::render_flagset);
    });
  } else if (is({"rollback"})) {
    on("POST", Role::deployer, [&](const Caller& who, const json& body) {
      auto r = api::decode_rollback(body);
      if (!r.ok()) return fail(r.error());
      return from(c.rollback(r->deploy_id, r->reason, who), api::render_deploy_summary);
    });
  } else if (is({"artifacts"})) {
    on("GET", Role::viewer, [&](const Caller&, const json&) {
      const std::string* service = req.param("service");
      return from(c.artifacts(service ? *service : ""), api::render_artifacts);
    });
    on("POST", Role::deployer, [&](const Caller& who, const json& body) {
      auto id = api::decode_artifact_registration(body);
      if (!id.ok()) return fail(id.error());
      return from(c.register_artifact(*id, who), api::render_artifact, 201);
    });
  } else if (is({"artifacts", "*"})) {
    on("GET", Role::viewer,
       [&](const Caller&, const json&) { return from(c.artifact(seg[1]), api::render_artifact); });
  } else if (is({"hosts"})) {
    on("GET", Role::viewer,
       [&](const Caller&, const json&) { return from(c.hosts(), api::render_hosts); });
  } else if (is({"hosts", "*", "reset"})) {
    on("POST", Role::admin, [&](const Caller& who, const json&) {
      return from(c.reset_host(seg[1], who), json{{"host", seg[1]}, {"reset", true}});
    });
  } else if (is({"audit"})) {
    on("GET", Role::viewer, [&](const Caller&, const json&) {
      auto since = time_param(req, "since", 0);
      auto until = time_param(req, "until", std::numeric_limits<std::int64_t>::max());
      auto limit = limit_param(req, 100);
      if (!since.ok()) return error(400, since.error().message);
      if (!until.ok()) return error(400, until.error().message);
      if (!limit.ok()) return error(400, limit.error().message);
      auto env = env_param(req);
      if (!env.ok()) return error(400, env.error().message);
      const std::string* service = req.param("service");
      const std::string* order = req.param("order");
      if (order && *order != "oldest" && *order != "newest") {
        return error(400, "order must be oldest or newest");
      }
      return from(c.audit({service ? *service : "", *env, *since, *until, *limit,
                           order && *order == "newest"}),
                  api::render_audit);
    });
  } else if (is({"audit", "verify"})) {
    on("GET", Role::viewer,
       [&](const Caller&, const json&) { return from(c.audit_verify(), api::render_audit_check); });
  } else if (is({"audit", "running"})) {
    on("GET", Role::viewer, [&](const Caller&, const json&) {
      const std::string* service = req.param("service");
      if (service == nullptr || service->empty()) return error(400, "service is required");
      auto at = time_param(req, "at", std::numeric_limits<std::int64_t>::max());
      if (!at.ok()) return error(400, at.error().message);
      auto env = env_param(req);
      if (!env.ok()) return error(400, env.error().message);
      auto host = name_param(req, "host");
      if (!host.ok()) return error(400, host.error().message);
      if (!host->empty()) {
        if (!env->empty()) return error(400, "give env or host, not both");
        return from(c.host_running_at(*service, *host, *at),
                    [&](const CoordinatorStore::HostRelease& r) {
                      return api::render_host_running_at(*service, *host, *at, r);
                    });
      }
      return from(c.running_at(*service, *env, *at),
                  [&](const AuditRecord& r) { return api::render_running_at(*service, *at, r); });
    });
  } else if (is({"hosts", "*", "releases"})) {
    on("GET", Role::viewer, [&](const Caller&, const json&) {
      const std::string* service = req.param("service");
      if (service == nullptr || service->empty()) return error(400, "service is required");
      auto since = time_param(req, "since", 0);
      if (!since.ok()) return error(400, since.error().message);
      return from(c.host_releases(*service, seg[1], *since),
                  [&](const std::vector<CoordinatorStore::HostRelease>& r) {
                    return api::render_host_releases(*service, seg[1], r);
                  });
    });
  } else if (is({"scm", "sources"})) {
    on("GET", Role::admin, [&](const Caller&, const json&) {
      return from(c.scm_sources(), [](const std::vector<Coordinator::ScmSource>& all) {
        json out = json::array();
        for (const auto& s : all) {
          out.push_back({{"repository", s.repository},
                         {"created_ms", s.created_ms},
                         {"created_by", s.created_by}});
        }
        return json{{"sources", out}};
      });
    });
    on("POST", Role::admin, [&](const Caller& who, const json& body) {
      auto src = api::decode_scm_source(body);
      if (!src.ok()) return fail(src.error());
      return from(c.put_scm_source(src->first, src->second, who), json{{"repository", src->first}});
    });
  } else if (is({"notifications", "allow"})) {
    on("GET", Role::admin, [&](const Caller&, const json&) {
      return from(c.notify_allow(), [](const Coordinator::NotifyAllow& a) {
        return json{{"allow", a.allow}, {"set_by", a.set_by}, {"set_ms", a.set_ms}};
      });
    });
    on("PUT", Role::admin, [&](const Caller& who, const json& body) {
      auto allow = api::decode_notify_allow(body);
      if (!allow.ok()) return fail(allow.error());
      return from(c.put_notify_allow(*allow, who), json{{"allow", *allow}});
    });
  } else if (is({"notifications", "outbox"})) {
    on("GET", Role::admin,
       [&](const Caller&, const json&) { return from(c.notify_outbox(), api::render_outbox); });
  } else if (is({"pipelines", "*", "notifications"})) {
    on("GET", Role::viewer, [&](const Caller&, const json&) {
      return from(c.destinations(seg[1]), api::render_destinations);
    });
    on("POST", Role::deployer, [&](const Caller& who, const json& body) {
      auto d = api::decode_destination(body, seg[1]);
      if (!d.ok()) return fail(d.error());
      auto saved = c.put_destination(*d, who);
      if (!saved.ok()) return fail(saved.error());
      return answer(saved->created ? 201 : 200, api::render_destination(saved->destination));
    });
  } else if (is({"pipelines", "*", "notifications", "*"})) {
    on("DELETE", Role::deployer, [&](const Caller& who, const json&) {
      return from(c.remove_destination(seg[1], seg[3], who),
                  json{{"name", seg[3]}, {"removed", true}});
    });
  } else if (is({"scm", "logins"})) {
    on("POST", Role::admin, [&](const Caller& who, const json& body) {
      auto login = api::decode_scm_login(body);
      if (!login.ok()) return fail(login.error());
      return from(c.put_scm_login(login->first, login->second, who),
                  json{{"login", login->first}, {"person", login->second}});
    });
  } else if (is({"tokens"})) {
    on("GET", Role::admin,
       [&](const Caller&, const json&) { return from(c.list_tokens(), api::render_tokens); });
    on("POST", Role::admin, [&](const Caller& who, const json& body) {
      auto t = api::decode_token_request(body);
      if (!t.ok()) return fail(t.error());
      return from(c.create_token(t->name, t->role, t->person, who), api::render_created_token, 201);
    });
  } else if (is({"tokens", "*"})) {
    on("DELETE", Role::admin, [&](const Caller& who, const json&) {
      return from(c.revoke_token(seg[1], who), json{{"name", seg[1]}, {"revoked", true}});
    });
  } else if (is({"join-tokens"})) {
    on("GET", Role::admin,
       [&](const Caller&, const json&) { return from(c.join_tokens(), api::render_join_tokens); });
    on("POST", Role::admin, [&](const Caller& who, const json& body) {
      auto spec = api::decode_join_token_request(body);
      if (!spec.ok()) return fail(spec.error());
      return from(c.create_join_token(*spec, who), api::render_join_token, 201);
    });
  } else if (is({"join-tokens", "revoke"})) {
    on("POST", Role::admin, [&](const Caller& who, const json& body) {
      auto token = api::decode_join_token_revocation(body);
      if (!token.ok()) return fail(token.error());
      return from(c.revoke_join_token(*token, who), json{{"revoked", true}});
    });
  } else if (is({"join-tokens", "*"})) {
    on("DELETE", Role::admin, [&](const Caller& who, const json&) {
      return from(c.revoke_join_token_id(seg[1], who), json{{"id", seg[1]}, {"revoked", true}});
    });
  } else {
    return error(404, "no such endpoint: " + m + " " + req.path.substr(0, 200));
  }
  if (!route) return error(405, req.path.substr(0, 200) + " takes " + allowed);

  // Who is asking, and may they?
  auto auth = req.headers.find("authorization");
  if (auth == req.headers.end() || auth->second.rfind("Bearer ", 0) != 0) {
    return error(401, "missing bearer token: send Authorization: Bearer <token>");
  }
  auto caller = c.tokens().authenticate(std::string_view(auth->second).substr(7));
  if (!caller.ok()) return error(401, "unknown or revoked token");
  if (!allows(caller->role, route->role))
    return error(403, role_refusal({route->role, ""}, *caller));
  json body = json::object();
  if ((m == "POST" || m == "PUT") && !req.body.empty()) {
    body = json::parse(req.body, nullptr, false);
    if (body.is_discarded()) return error(400, "the body is not valid JSON");
  }
  http::Response out = route->run(*caller, body);
  if (m != "GET") {
    log_.info("coordinator.api", {{"method", m},
                                  {"path", req.path.substr(0, 200)},
                                  {"who", caller->name},
                                  {"status", out.status}});
  }
  return out;
}

}  // namespace drover::coordinator
