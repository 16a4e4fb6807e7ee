#include "coordinator/health/judge.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace drover::coordinator {
namespace {

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

double quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const auto hi = static_cast<std::size_t>(std::ceil(pos));
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

struct Metric {
  const char* name;
  double Sample::*field;
};
constexpr Metric kMetrics[] = {{"error_rate", &Sample::error_rate},
                               {"p99_ms", &Sample::p99_ms},
                               {"saturation", &Sample::saturation}};

}  // namespace

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return quantile(values, 0.5);
}

std::vector<double> without_outliers(std::vector<double> values) {
  if (values.size() < 4) return values;
  std::sort(values.begin(), values.end());
  const double q1 = quantile(values, 0.25), q3 = quantile(values, 0.75);
  const double fence = 1.5 * (q3 - q1);
  std::vector<double> out;
  for (double v : values) {
    if (v >= q1 - fence && v <= q3 + fence) out.push_back(v);
  }
  return out;
}

double mann_whitney_p_greater(const std::vector<double>& canary,
                              const std::vector<double>& control) {
  const double n1 = static_cast<double>(canary.size());
  const double n2 = static_cast<double>(control.size());
  if (canary.empty() || control.empty()) return 1.0;
  // Rank everything together, ties getting their average rank.
  std::vector<std::pair<double, int>> all;
  for (double v : canary) all.push_back({v, 0});
  for (double v : control) all.push_back({v, 1});
  std::sort(all.begin(), all.end());
  double rank_sum_canary = 0, tie_term = 0;
  for (std::size_t i = 0; i < all.size();) {
    std::size_t j = i;
    while (j < all.size() && all[j].first == all[i].first) ++j;
    const double avg_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    const double t = static_cast<double>(j - i);
    tie_term += t * t * t - t;
    for (std::size_t k = i; k < j; ++k) {
      if (all[k].second == 0) rank_sum_canary += avg_rank;
    }
    i = j;
  }
  const double u = rank_sum_canary - n1 * (n1 + 1) / 2.0;  // canary's U
  const double mean = n1 * n2 / 2.0;
  const double n = n1 + n2;
  const double variance = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1)));
  if (variance <= 0) return u > mean ? 0.0 : 1.0;  // every value equal
  const double z = (u - mean - 0.5) / std::sqrt(variance);
  return 0.5 * std::erfc(z / std::sqrt(2.0));
}

std::string BatchJudge::check(const Sample& s) const {
  if (!s.ok) return "a host reported itself unhealthy";
  if (baseline_.empty()) return "";
  if (!medians_valid_) {
    std::vector<double> err, p99, sat;
    for (const auto& b : baseline_) {
      err.push_back(b.error_rate);
      p99.push_back(b.p99_ms);
      sat.push_back(b.saturation);
    }
    base_err_ = median(err);
    base_p99_ = median(p99);
    base_sat_ = median(sat);
    medians_valid_ = true;
  }
  const double base_err = base_err_, base_p99 = base_p99_, base_sat = base_sat_;
  const double err_limit =
      std::max(base_err * (1 + t_.error_rate_relative), base_err + t_.error_rate_floor);
  if (s.error_rate > err_limit) {
    return "error_rate " + fmt(s.error_rate) + " above " + fmt(err_limit) + " (baseline " +
           fmt(base_err) + ")";
  }
  if (s.p99_ms > base_p99 + t_.p99_delta_ms) {
    return "p99_ms " + fmt(s.p99_ms) + " above " + fmt(base_p99 + t_.p99_delta_ms) + " (baseline " +
           fmt(base_p99) + ")";
  }
  if (s.saturation > base_sat + t_.saturation_delta) {
    return "saturation " + fmt(s.saturation) + " above " + fmt(base_sat + t_.saturation_delta) +
           " (baseline " + fmt(base_sat) + ")";
  }
  return "";
}

void BatchJudge::add_canary(const Sample& s) {
  canary_.push_back(s);
  if (tripped_) return;
  const std::string why = t_.judge == HealthThresholds::Judge::threshold || !s.ok ? check(s) : "";
  if (why.empty()) {
    run_ = 0;
    return;
  }
  if (run_++ == 0) first_failure_ = why;
  if (run_ >= t_.consecutive) {
    tripped_ = true;
    tripped_reason_ = std::to_string(run_) +
                      " consecutive failing samples; first: " + first_failure_ + "; last: " + why;
  }
}

Verdict BatchJudge::verdict(bool bake_over) const {
  if (tripped_) return {Verdict::Kind::fail, tripped_reason_};
  if (!bake_over) return {Verdict::Kind::pending, ""};
  if (static_cast<int>(canary_.size()) < t_.min_samples) {
    return {Verdict::Kind::fail,
            "only " + std::to_string(canary_.size()) +
                " health samples from the batch during the bake; " +
                std::to_string(t_.min_samples) + " needed to pass",
            true};
  }
  if (t_.judge == HealthThresholds::Judge::mann_whitney) {
    if (static_cast<int>(baseline_.size()) < t_.min_samples) {
      return {Verdict::Kind::fail,
              "only " + std::to_string(baseline_.size()) +
                  " control samples; the statistical judge needs " + std::to_string(t_.min_samples),
              true};
    }
    const double deltas[] = {0, t_.p99_delta_ms, t_.saturation_delta};
    for (std::size_t m = 0; m < 3; ++m) {
      std::vector<double> c, b;
      for (const auto& s : canary_) c.push_back(s.*kMetrics[m].field);
      for (const auto& s : baseline_) b.push_back(s.*kMetrics[m].field);
      c = without_outliers(c);
      b = without_outliers(b);
      const double p = mann_whitney_p_greater(c, b);
      const double mc = median(c), mb = median(b);
      double delta = deltas[m];
      if (m == 0) delta = std::max(mb * t_.error_rate_relative, t_.error_rate_floor);
      if (p < 1 - t_.confidence && mc - mb > delta) {
        return {Verdict::Kind::fail, std::string(kMetrics[m].name) +
                                         " worse than control: median " + fmt(mc) + " vs " +
                                         fmt(mb) + ", p = " + fmt(p)};
      }
    }
  }
  return {Verdict::Kind::pass, ""};
}

}  // namespace drover::coordinator
