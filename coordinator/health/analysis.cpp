#include "coordinator/health/analysis.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <map>

namespace drover::coordinator {
namespace {

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

constexpr const char* kPlaceholders[] = {"hosts", "release", "service", "env", "region"};

}  // namespace

const char* outcome_name(Measurement::Outcome o) {
  switch (o) {
    case Measurement::Outcome::pass: return "pass";
    case Measurement::Outcome::fail: return "fail";
    case Measurement::Outcome::inconclusive: return "inconclusive";
  }
  return "inconclusive";
}

Measurement::Outcome judge_values(const PromQuery& q, const std::optional<double>& canary,
                                  const std::optional<double>& baseline, std::string* detail) {
  if (!canary) return Measurement::Outcome::inconclusive;  // detail: the caller's why
  if (q.max && *canary > *q.max) {
    *detail = number(*canary) + " is above max " + number(*q.max);
    return Measurement::Outcome::fail;
  }
  if (q.max_increase) {
    if (!baseline) return Measurement::Outcome::inconclusive;
    if (*canary > *baseline + *q.max_increase) {
      *detail = number(*canary) + " is above the baseline's " + number(*baseline) +
                " by more than " + number(*q.max_increase);
      return Measurement::Outcome::fail;
    }
  }
  return Measurement::Outcome::pass;
}

void BatchAnalysis::add(const Measurement& m) {
  auto it = std::find_if(queries.begin(), queries.end(),
                         [&](const QueryTally& t) { return t.query == m.query; });
  if (it == queries.end()) {
    QueryTally fresh;
    fresh.query = m.query;
    queries.push_back(std::move(fresh));
    it = std::prev(queries.end());
  }
  switch (m.outcome) {
    case Measurement::Outcome::pass: ++it->pass; break;
    case Measurement::Outcome::fail:
      ++it->fail;
      it->last_fail = m.detail;
      break;
    case Measurement::Outcome::inconclusive:
      ++it->inconclusive;
      it->last_inconclusive = m.detail;
      break;
  }
  it->newest = m;
}

Verdict analysis_verdict(const PromCheck& check, const BatchAnalysis* taken, bool over) {
  const QueryTally none;
  auto tally_of = [&](const std::string& name) -> const QueryTally& {
    if (taken == nullptr) return none;
    for (const auto& t : taken->queries) {
      if (t.query == name) return t;
    }
    return none;
  };
  // The check's order: the first query named in the pipeline reports first.
  for (const auto& q : check.queries) {
    const QueryTally& c = tally_of(q.name);
    if (c.fail >= check.failure_limit) {
      return {Verdict::Kind::fail,
              "Prometheus query '" + q.name + "': " + c.last_fail + " (" + std::to_string(c.fail) +
                  " failed measurement" + (c.fail == 1 ? "" : "s") + ", failure_limit " +
                  std::to_string(check.failure_limit) + ")",
              false};
    }
    if (c.inconclusive > check.inconclusive_limit) {
      return {Verdict::Kind::fail,
              "Prometheus query '" + q.name + "' was inconclusive " +
                  std::to_string(c.inconclusive) + " times (inconclusive_limit " +
                  std::to_string(check.inconclusive_limit) + "): " + c.last_inconclusive,
              false};
    }
  }
  if (!over) return {Verdict::Kind::pending, "", false};
  for (const auto& q : check.queries) {
    const QueryTally& c = tally_of(q.name);
    if (c.pass == 0) {
      return {Verdict::Kind::fail,
              "Prometheus query '" + q.name + "' has no passing measurement" +
                  (c.inconclusive > 0 ? " (last: " + c.last_inconclusive + ")" : ""),
              true};
    }
  }
  return {Verdict::Kind::pass, "", false};
}

std::string printable(std::string_view text, std::size_t max) {
  std::string out;
  for (char ch : text.substr(0, max)) {
    const auto u = static_cast<unsigned char>(ch);
    out += u >= 0x20 && u < 0x7f ? ch : '?';
  }
  return out;
}

std::string expand_query(const std::string& query, const QueryScope& scope) {
  std::string hosts;
  for (const auto& h : scope.hosts) {
    if (!hosts.empty()) hosts += '|';
    for (char ch : h) {
      const bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                         (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
      // In a PromQL double-quoted string "\\." is the regex's "\.".
      if (!plain) hosts += "\\\\";
      hosts += ch;
    }
  }
  const std::map<std::string, const std::string*> values = {{"hosts", &hosts},
                                                            {"release", &scope.release},
                                                            {"service", &scope.service},
                                                            {"env", &scope.env},
                                                            {"region", &scope.region}};
  std::string out;
  std::size_t pos = 0;
  while (pos < query.size()) {
    const std::size_t open = query.find("{{", pos);
    if (open == std::string::npos) break;
    const std::size_t close = query.find("}}", open + 2);
    if (close == std::string::npos) break;
    auto it = values.find(query.substr(open + 2, close - open - 2));
    out += query.substr(pos, open - pos);
    out += it == values.end() ? query.substr(open, close + 2 - open) : *it->second;
    pos = close + 2;
  }
  return out + query.substr(pos);
}

Status check_query_template(const std::string& query, const std::string& field) {
  std::size_t pos = 0;
  while ((pos = query.find("{{", pos)) != std::string::npos) {
    const std::size_t close = query.find("}}", pos + 2);
    if (close == std::string::npos) {
      return make_error(Errc::invalid_argument,
                        field + " opens a placeholder '{{' it never closes");
    }
    const std::string name = query.substr(pos + 2, close - pos - 2);
    bool known = false;
    for (const char* p : kPlaceholders) known = known || name == p;
    if (!known) {
      return make_error(Errc::invalid_argument,
                        field + " names an unknown placeholder '{{" + name +
                            "}}' (known: {{hosts}}, {{release}}, {{service}}, {{env}}, "
                            "{{region}})");
    }
    pos = close + 2;
  }
  return Ok{};
}

}  // namespace drover::coordinator
