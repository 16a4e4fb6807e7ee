#include "core/metrics/endpoint.hpp"

namespace drover::metrics {

http::Response answer(Registry& registry, const http::Request& request) {
  http::Response r;
  r.content_type = "text/plain; charset=utf-8";
  if (request.path != "/metrics") {
    r.status = 404;
    r.body = "not found: this listener serves only GET /metrics\n";
    return r;
  }
  if (request.method != "GET") {
    r.status = 405;
    r.body = "method " + request.method + " not allowed: /metrics is read-only (GET)\n";
    r.headers.emplace_back("Allow", "GET");
    return r;
  }
  r.content_type = kContentType;
  r.body = registry.expose_cached();
  return r;
}

Result<std::unique_ptr<http::Server>> serve(const std::string& listen, Registry& registry,
                                            Logger& log) {
  DROVER_ASSIGN(auto where, http::parse_listen(listen));
  http::ServerOptions o;
  o.bind = where.first;
  o.port = where.second;
  o.max_body_bytes = 0;
  o.max_header_bytes = 8 << 10;
  o.max_connections = 64;
  o.max_connections_per_client = 16;
  o.idle_timeout = std::chrono::seconds(30);
  return http::Server::start(
      o,
      [&registry](const http::Request& req, http::Responder respond) {
        respond(answer(registry, req));
      },
      log);
}

}  // namespace drover::metrics
