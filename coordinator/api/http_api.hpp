// The coordinator's HTTP API (docs/API.md): routes, bearer-token
// authentication and roles, body limits and JSON errors that name the field,
// over core/http. Each request runs on a worker thread, never on the
// server's I/O thread, so a slow LMDB write does not stall other clients.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "core/base/worker_pool.hpp"
#include "core/http/http.hpp"

namespace drover::coordinator {

class Coordinator;

struct ApiOptions {
  std::string listen = "127.0.0.1:0";
  // Both or neither: with them the API speaks only HTTPS. Without them it
  // binds only to a loopback address.
  std::string tls_cert_file, tls_key_file;
  std::size_t max_body_bytes = 1 << 20;
  unsigned workers = 2;
  // Requests waiting for a worker; one more is answered 503 at once.
  std::size_t max_queued = 256;
  // Registering an artifact asks the origin (seconds, when it is slow): it
  // runs on a worker of its own, never holding the API's, with its own queue.
  std::size_t max_queued_registrations = 16;
  // The health webhook (anyone who can reach the API may post to it before
  // its HMAC is checked) runs on its own worker and queue too.
  std::size_t max_queued_webhooks = 64;
  // Connections open at once, in total and per client address.
  std::size_t max_connections = 1024;
  std::size_t max_connections_per_client = 64;
  // GET /metrics with a viewer token (docs/METRICS.md); the config's
  // metrics.api turns it off where only the metrics listener should serve.
  bool metrics = true;
};

class HttpApi {
 public:
  static Result<std::unique_ptr<HttpApi>> start(Coordinator& coordinator, const ApiOptions& options,
                                                Logger& log);
  ~HttpApi();
  std::uint16_t port() const;
  std::string url() const;  // "http://127.0.0.1:PORT" or "https://…"

  // One request, answered at once (what the server's workers run). The
  // coordinator's own failures are answered with a generic message and a
  // reference, their detail logged (docs/COORDINATOR.md, "Access").
  http::Response handle(const http::Request& request);

 private:
  HttpApi(Coordinator& coordinator, const ApiOptions& options, Logger& log);
  // The answer the operation gave, before handle() hides its own failures.
  http::Response dispatch(const http::Request& request);
  // The 5xx answer of a failure the request did not cause, made generic.
  http::Response conceal(const http::Request& request, const http::Response& out);
  Coordinator& coordinator_;
  ApiOptions options_;
  Logger& log_;
  // The data directory as its messages may spell it (as given, absolute;
  // links resolved; each also JSON-escaped), never in an answer.
  std::vector<std::string> data_dir_spellings_;
  std::atomic<std::uint64_t> failures_{0};  // the log reference of the last one concealed
  std::string url_;
  // Hands a request to pool (503 when `queued` already holds `limit`).
  void enqueue(WorkerPool& pool, std::atomic<std::size_t>& queued, std::size_t limit,
               const http::Request& req, http::Responder respond);
  // Before the body is read: 401 for a request that needs a token and has
  // no valid one (docs/COORDINATOR.md, "Access").
  std::optional<http::Response> check_headers(const http::Request& head);
  std::atomic<std::size_t> queued_{0}, queued_registrations_{0}, queued_webhooks_{0},
      queued_scm_{0};
  std::unique_ptr<WorkerPool> pool_;
  std::unique_ptr<WorkerPool> registrations_;
  std::unique_ptr<WorkerPool> webhooks_;
  std::unique_ptr<WorkerPool> scm_hooks_;  // POST /webhooks/scm, unauthenticated until its HMAC
  std::unique_ptr<http::Server> server_;
};

// Is this bind address a loopback one (127.0.0.0/8, ::1, localhost)?
bool is_loopback_address(const std::string& host);
// "1733000000000" (unix ms) or "2026-11-27T10:00:00Z" (RFC 3339, UTC or offset).
Result<std::int64_t> parse_time_ms(const std::string& text);

}  // namespace drover::coordinator
