// Asking Prometheus (docs/COORDINATOR.md, "Prometheus analysis"): instant
// queries over its HTTP API, and one round of a pipeline's check for a
// baking batch. The answer is hostile input like any other: a body beyond
// its bound, a malformed document, a string that is no number, NaN or an
// empty result each make the measurement inconclusive, naming why.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/health/analysis.hpp"
#include "core/base/result.hpp"

namespace drover::coordinator {

struct PrometheusOptions {
  // The servers a pipeline may name (its url must be one of these exactly):
  // a pipeline's author cannot point the coordinator at any address.
  std::vector<std::string> allow;
  std::chrono::milliseconds timeout{5000};
  std::string ca_file;  // https: the CAs that may vouch for the server ("": the system's)
  std::uint64_t max_body_bytes = 1 << 20;
};

// One instant query: POST {url}/api/v1/query with query and time. A scalar
// answers its value; a vector its largest sample (several series: the worst
// counts). Fails naming what came back instead of a number.
Result<double> prometheus_instant(const std::string& url, const std::string& query,
                                  std::int64_t time_ms, const PrometheusOptions& options);

// Reads the API's answer (exposed for the tests and the fuzzer).
Result<double> parse_prometheus_answer(int http_status, const std::string& body);

// What one round measures: the canary scope now, the baseline scope at
// baseline_ms (only for queries with max_increase).
struct AnalysisRound {
  QueryScope canary, baseline;
  std::int64_t now_ms = 0, baseline_ms = 0;
};

using InstantQuery = std::function<Result<double>(const std::string& url, const std::string& query,
                                                  std::int64_t time_ms)>;

// One measurement per query of check. A url outside options.allow measures
// nothing but inconclusive results that say so. baselines (optional) keeps
// each query's baseline value once answered (by query name): the baseline is
// a past instant, asked once. A scope whose baseline release is "" (the
// environment ran nothing before) has no baseline: inconclusive.
std::vector<Measurement> measure(const PromCheck& check, const AnalysisRound& round,
                                 const PrometheusOptions& options, const InstantQuery& ask,
                                 std::map<std::string, double>* baselines = nullptr);

}  // namespace drover::coordinator
