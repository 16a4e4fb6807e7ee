// Serving a registry: GET /metrics answers the text format (rebuilt at
// most once a second); every other method is 405 and every other path 404. A daemon runs it on a
// listener of its own (docs/METRICS.md), which is read-only by construction.
#pragma once

#include <memory>
#include <string>

#include "core/base/result.hpp"
#include "core/http/http.hpp"
#include "core/metrics/metrics.hpp"

namespace drover::metrics {

// Answers one request as the metrics listener does.
http::Response answer(Registry& registry, const http::Request& request);

// Parses "HOST:PORT" ("127.0.0.1:9464", "[::1]:0", "0.0.0.0:9464") and
// starts a metrics listener there; small limits (no request body, 8 KiB of
// headers, 64 connections).
Result<std::unique_ptr<http::Server>> serve(const std::string& listen, Registry& registry,
                                            Logger& log);

}  // namespace drover::metrics
