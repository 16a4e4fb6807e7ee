// Prometheus as a health source (docs/COORDINATOR.md, "Prometheus
// analysis"; docs/FORMATS.md, "Prometheus health checks"). Pure: the
// coordinator measures each query of a pipeline's check for a baking
// batch's hosts (the canary scope) and, where a query compares, for the
// same region before the run changed it (the baseline scope); this file
// turns those measurements into a verdict that joins the agents' samples.
//
// A measurement is inconclusive when Prometheus could not answer with a
// number (unreachable, an error, no data, NaN): it never passes a batch.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/health/judge.hpp"
#include "core/base/result.hpp"

namespace drover::coordinator {

struct PromQuery {
  std::string name;   // the name rule; unique in its check
  std::string query;  // PromQL with placeholders ({{hosts}}, {{release}}, ...)
  // What the canary's value must stay within: at most `max`, and at most
  // the baseline's value plus `max_increase` (at least one is set).
  std::optional<double> max, max_increase;
};

struct PromCheck {
  std::string url;  // the Prometheus server (http[s]://host:port[/prefix])
  std::int64_t interval_ms = 30'000;
  int failure_limit = 1;       // failed measurements of one query that fail the batch
  int inconclusive_limit = 3;  // inconclusive ones tolerated; one more fails it
  std::vector<PromQuery> queries;
};

struct Measurement {
  enum class Outcome { pass, fail, inconclusive };
  std::string query;  // the query's name
  std::int64_t at_ms = 0;
  Outcome outcome = Outcome::inconclusive;
  std::optional<double> canary, baseline;
  std::string detail;  // inconclusive: what Prometheus failed to give; fail: why
};

const char* outcome_name(Measurement::Outcome o);

// One query's measurements of one bake, counted (a bake of any length keeps
// a few bytes per query).
struct QueryTally {
  std::string query;
  int pass = 0, fail = 0, inconclusive = 0;
  std::string last_fail, last_inconclusive;  // their details
  Measurement newest;
};

// The measurements of one bake of one batch: its environment, its region
// ("REGION[/CLUSTER]", "" for a version-1 run), its index there and the
// instant its judging began (the record's judge_from_ms: a bake resumed
// after a restart or a pause counts afresh).
struct BatchAnalysis {
  std::string env, region;
  std::size_t batch = 0;
  std::int64_t from_ms = 0;
  std::vector<QueryTally> queries;  // in the order first measured

  void add(const Measurement& m);
};

// The outcome of one query from the values Prometheus answered (nullopt: no
// number, `why` saying what there was instead).
Measurement::Outcome judge_values(const PromQuery& q, const std::optional<double>& canary,
                                  const std::optional<double>& baseline, std::string* detail);

// The verdict of a batch's measurements so far (those of its bake; null:
// none yet): fail when one query's failures reach failure_limit or its
// inconclusive measurements exceed inconclusive_limit; at the bake's end
// (over), pass only when every query has a passing measurement, else fail
// with `starved` set (no conclusive answer yet: the caller may wait a
// while). Before the end: pending.
Verdict analysis_verdict(const PromCheck& check, const BatchAnalysis* taken, bool over);

// Text from elsewhere (Prometheus's error messages) made safe for records:
// printable ASCII only, at most max bytes.
std::string printable(std::string_view text, std::size_t max = 300);

// What a query's placeholders expand to for one scope.
struct QueryScope {
  std::vector<std::string> hosts;  // {{hosts}}: a regex matching exactly these names
  std::string release;             // {{release}}: the artifact the scope runs
  std::string service, env, region;
};

// The query with its placeholders replaced. {{hosts}} becomes an
// alternation of the names with regex metacharacters escaped for a PromQL
// double-quoted string, meant for `host=~"{{hosts}}"`.
std::string expand_query(const std::string& query, const QueryScope& scope);

// Refuses a query naming a placeholder other than {{hosts}}, {{release}},
// {{service}}, {{env}} and {{region}}, or an unclosed one.
Status check_query_template(const std::string& query, const std::string& field);

}  // namespace drover::coordinator
