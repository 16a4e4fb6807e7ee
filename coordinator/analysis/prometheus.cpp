#include "coordinator/analysis/prometheus.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "core/http/http.hpp"

namespace drover::coordinator {
namespace {

using nlohmann::json;

Error bad(const std::string& what) {
  return make_error(Errc::corrupt, "Prometheus " + what);
}

// A sample's value: Prometheus writes numbers as strings ("0.5", "NaN", "+Inf").
Result<double> sample_value(const json& pair) {
  if (!pair.is_array() || pair.size() != 2 || !pair[1].is_string()) {
    return bad("answered a sample that is not [time, \"value\"]");
  }
  const std::string text = pair[1].get<std::string>();
  if (text.empty() || text.size() > 64) return bad("answered a value of no number");
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return bad("answered '" + text + "', not a number");
  if (std::isnan(v)) return make_error(Errc::not_found, "the query's value is NaN");
  // An infinite value bounds nothing (a histogram's quantile in its +Inf
  // bucket, say): it passes or fails no check.
  if (std::isinf(v)) return make_error(Errc::not_found, "the query's value is " + text);
  return v;
}

std::string seconds_text(std::int64_t ms) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%lld.%03lld", static_cast<long long>(ms / 1000),
                static_cast<long long>(ms % 1000));
  return buf;
}

}  // namespace

Result<double> parse_prometheus_answer(int http_status, const std::string& body) {
  const json doc = json::parse(body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return bad("answered HTTP " + std::to_string(http_status) + " with no JSON document");
  }
  const json* status = doc.contains("status") ? &doc["status"] : nullptr;
  if (status == nullptr || !status->is_string() || *status != "success") {
    std::string why = "an error";
    if (auto e = doc.find("error"); e != doc.end() && e->is_string()) {
      why = e->get<std::string>().substr(0, 300);
    }
    return make_error(Errc::refused, "Prometheus answered HTTP " + std::to_string(http_status) +
                                         ": " + printable(why));
  }
  const auto data = doc.find("data");
  if (data == doc.end() || !data->is_object()) return bad("answered no data object");
  const auto type = data->find("resultType");
  const auto result = data->find("result");
  if (type == data->end() || !type->is_string() || result == data->end()) {
    return bad("answered no resultType and result");
  }
  if (*type == "scalar") return sample_value(*result);
  if (*type != "vector") {
    return bad("answered a " + printable(type->get<std::string>(), 32) +
               "; the query must give an instant vector or a scalar");
  }
  if (!result->is_array()) return bad("answered a vector that is not an array");
  if (result->empty()) return make_error(Errc::not_found, "the query returned no data");
  std::optional<double> worst;
  std::optional<Error> unusable;  // why a series had no usable value
  for (const auto& series : *result) {
    if (!series.is_object() || !series.contains("value")) {
      return bad("answered a series without a value");
    }
    auto v = sample_value(series["value"]);
    if (!v.ok()) {
      // One series without a number (NaN) hides no other's: the worst of
      // those that have one counts.
      if (v.error().code != Errc::not_found) return v.error();
      unusable = v.error();
      continue;
    }
    worst = worst ? std::max(*worst, *v) : *v;
  }
  if (!worst) return *unusable;
  return *worst;
}

Result<double> prometheus_instant(const std::string& url, const std::string& query,
                                  std::int64_t time_ms, const PrometheusOptions& options) {
  std::string base = url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  http::ClientOptions o;
  o.timeout = options.timeout;
  o.content_type = "application/x-www-form-urlencoded";
  o.max_body_bytes = options.max_body_bytes;
  o.ca_file = options.ca_file;
  const std::string body =
      "query=" + http::percent_encode(query) + "&time=" + seconds_text(time_ms);
  auto r = http::request("POST", base + "/api/v1/query", body, o);
  if (!r.ok()) return make_error(r.error().code, "Prometheus at " + url + ": " + r.error().message);
  return parse_prometheus_answer(r->status, r->body);
}

std::vector<Measurement> measure(const PromCheck& check, const AnalysisRound& round,
                                 const PrometheusOptions& options, const InstantQuery& ask,
                                 std::map<std::string, double>* baselines) {
  const bool allowed =
      std::find(options.allow.begin(), options.allow.end(), check.url) != options.allow.end();
  // One query's measurement; an early return with only a detail is
  // inconclusive (the outcome's default).
  auto measure_one = [&](const PromQuery& q) {
    Measurement m;
    m.query = q.name;
    m.at_ms = round.now_ms;
    if (!allowed) {
      m.detail = printable("the coordinator's prometheus.allow does not list " + check.url);
      return m;
    }
    auto canary = ask(check.url, expand_query(q.query, round.canary), round.now_ms);
    if (!canary.ok()) {
      m.detail = printable("canary: " + canary.error().message);
      return m;
    }
    m.canary = *canary;
    if (q.max_increase) {
      // The baseline is a past instant: asked once, then kept.
      if (baselines != nullptr && baselines->count(q.name)) {
        m.baseline = baselines->at(q.name);
      } else if (round.baseline.release.empty()) {
        m.detail = "baseline: the environment ran no release before this run";
        return m;
      } else {
        auto base = ask(check.url, expand_query(q.query, round.baseline), round.baseline_ms);
        if (!base.ok()) {
          m.detail = printable("baseline: " + base.error().message);
          return m;
        }
        m.baseline = *base;
        if (baselines != nullptr) (*baselines)[q.name] = *base;
      }
    }
    m.outcome = judge_values(q, m.canary, m.baseline, &m.detail);
    return m;
  };
  std::vector<Measurement> out;
  for (const auto& q : check.queries) out.push_back(measure_one(q));
  return out;
}

}  // namespace drover::coordinator
