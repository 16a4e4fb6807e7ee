// Judging a batch's health against a baseline (docs/COORDINATOR.md,
// "Health"). Pure: the orchestrator feeds samples and asks for a verdict.
//
// Two modes:
// - threshold: each canary sample is checked against the baseline's medians
//   with per-metric deltas (error rate +20% relative with an absolute floor,
//   p99 +50 ms, saturation +0.2); a check failing for K consecutive samples
//   fails the batch;
// - mann_whitney: canary against control per metric with a one-sided
//   Mann-Whitney U test (normal approximation, tie-corrected), after removing
//   outliers outside the IQR fence; a metric fails when it is significantly
//   worse (p < 1 - confidence) and its median is worse by more than the
//   metric's delta (an effect-size gate), as Kayenta does.
// In both modes a batch cannot pass on fewer than min_samples canary samples:
// a silent canary does not pass.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace drover::coordinator {

struct HealthThresholds {
  double error_rate_relative = 0.20;  // canary may be 20% worse than baseline...
  double error_rate_floor = 0.01;     // ...or this much worse in absolute terms
  double p99_delta_ms = 50;
  double saturation_delta = 0.20;
  int consecutive = 3;  // K failing samples in a row fail the batch
  int min_samples = 5;  // canary samples a batch needs to pass
  enum class Judge { threshold, mann_whitney } judge = Judge::threshold;
  double confidence = 0.98;  // Mann-Whitney
};

struct Sample {
  double error_rate = 0, p99_ms = 0, saturation = 0;
  bool ok = true;  // false: the host said unhealthy (crash loop, endpoint down)
};

struct Verdict {
  enum class Kind { pass, fail, pending } kind = Kind::pending;
  std::string reason;  // fail: which metric, the values, the threshold
  // fail for want of samples alone (too few reached the coordinator), not
  // for a metric: the caller may wait for them a while instead.
  bool starved = false;
};

class BatchJudge {
 public:
  explicit BatchJudge(HealthThresholds t) : t_(t) {}

  // Baseline: the pre-deploy window and the hosts not yet updated.
  void add_baseline(const Sample& s) {
    baseline_.push_back(s);
    medians_valid_ = false;
  }
  // A sample of the batch's hosts, in arrival order.
  void add_canary(const Sample& s);

  // At any time: fail as soon as K consecutive samples failed (threshold
  // mode). At the end of the bake (bake_over): pass, or fail with the reason
  // (too few samples, or the statistical judge).
  Verdict verdict(bool bake_over) const;

  std::size_t canary_samples() const { return canary_.size(); }

 private:
  // Why this sample fails the thresholds against the baseline ("" if it does not).
  std::string check(const Sample& s) const;

  HealthThresholds t_;
  std::vector<Sample> baseline_, canary_;
  // The baseline's medians, computed once per change of the baseline rather
  // than for every canary sample.
  mutable bool medians_valid_ = false;
  mutable double base_err_ = 0, base_p99_ = 0, base_sat_ = 0;
  int run_ = 0;                // consecutive failing samples so far
  std::string first_failure_;  // the reason of the run's first sample
  bool tripped_ = false;
  std::string tripped_reason_;
};

// One-sided Mann-Whitney U: the probability of seeing canary values this
// much larger than control by chance (normal approximation with continuity
// and tie correction). 1.0 when either side is empty.
double mann_whitney_p_greater(const std::vector<double>& canary,
                              const std::vector<double>& control);
// Drops values outside [Q1 - 1.5 IQR, Q3 + 1.5 IQR].
std::vector<double> without_outliers(std::vector<double> values);
double median(std::vector<double> values);

}  // namespace drover::coordinator
