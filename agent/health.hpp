// Reading a service's health endpoint (docs/FORMATS.md, "Service hooks"): a
// 200 answer with a JSON object of error_rate, p99_ms, saturation and any
// further numbers. Anything else is an unhealthy sample that says why; a
// hostile endpoint cannot make the agent read more than 64 KiB.
#pragma once

#include <chrono>
#include <string>

#include "core/proto/messages.hpp"

namespace drover::agent {

// Asks a service's health endpoint. HttpHealthProbe is the real one.
class HealthProbe {
 public:
  virtual ~HealthProbe() = default;
  // Samples url once. Fills the metrics, ok and error of a health item.
  virtual proto::HealthItem sample(const std::string& url, std::chrono::milliseconds timeout) = 0;
};

class HttpHealthProbe final : public HealthProbe {
 public:
  proto::HealthItem sample(const std::string& url, std::chrono::milliseconds timeout) override;
};

// Samples url once over HTTP. Fills the metrics, ok and error of a health item (the
// caller sets service, release, slot, state, at).
proto::HealthItem sample_health(const std::string& url, std::chrono::milliseconds timeout);

// Parses an endpoint's answer body; exposed for tests.
proto::HealthItem parse_health(int status, const std::string& body);

}  // namespace drover::agent
