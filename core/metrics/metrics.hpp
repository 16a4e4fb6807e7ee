// Prometheus metrics for drover's daemons: counters, gauges and histograms
// kept in a registry, written in Prometheus' text exposition format
// (version 0.0.4) when scraped. docs/METRICS.md lists every metric.
//
// Names follow Prometheus' conventions (drover_<part>_<what>_<unit>, counters
// ending in _total, durations in seconds); label names are fixed per family;
// label values must be names (1-128 of A-Z a-z 0-9 . _ - : /), and a family
// holds at most kMaxSeries label sets, so no input can grow a scrape without
// bound: values past the cap are counted under the label value "other".
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace drover::metrics {

inline constexpr std::size_t kMaxSeries = 1000;

// Whether text may be a metric name, a label name, a label value.
bool valid_metric_name(std::string_view name);
bool valid_label_name(std::string_view name);
bool valid_label_value(std::string_view value);

class Counter {
 public:
  void inc(double by = 1.0);
  // For a total kept elsewhere (a component's own counters, read at each
  // scrape): raises the counter to total; a lower total changes nothing.
  void catch_up(double total);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double by);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v);
  // Cumulative counts per bound (the last is +Inf), the sum and the count.
  struct Snapshot {
    std::vector<double> bounds;
    std::vector<std::uint64_t> cumulative;
    double sum = 0;
    std::uint64_t count = 0;
  };
  Snapshot snapshot() const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<std::uint64_t> counts_;  // per bucket, +Inf last
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

// Bucket bounds for durations in seconds, 5 ms to 10 minutes.
std::vector<double> duration_buckets();

enum class Type { counter, gauge, histogram };

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The series of family `name` with these label values (in the order of
  // the family's label names). The family is created on first use with its
  // help text and label names; a later call must agree on type and label
  // names (a programming error otherwise: it aborts). A label value that is
  // not a name, or one past the family's cap, is recorded as "other".
  // References stay valid for the registry's life.
  Counter& counter(const std::string& name, const std::string& help,
                   const std::vector<std::string>& label_names = {},
                   const std::vector<std::string>& label_values = {});
  Gauge& gauge(const std::string& name, const std::string& help,
               const std::vector<std::string>& label_names = {},
               const std::vector<std::string>& label_values = {});
  Histogram& histogram(const std::string& name, const std::string& help,
                       const std::vector<double>& upper_bounds,
                       const std::vector<std::string>& label_names = {},
                       const std::vector<std::string>& label_values = {});

  // Declares a family with no series yet, so a scrape shows its HELP and
  // TYPE before anything happened.
  void declare(const std::string& name, const std::string& help, Type type,
               const std::vector<std::string>& label_names = {});

  // Called at the start of every scrape, before the text is written, to set
  // gauges read from elsewhere (queue depths, file sizes). A collector must
  // not call expose().
  void on_collect(std::function<void(Registry&)> collector);

  // Every family, sorted by name, in the text exposition format.
  std::string expose();
  // The same, reused for max_age: what a listener serves, so a flood of
  // requests runs the collectors (store reads, libtorrent calls) at most
  // once per max_age however many arrive.
  std::string expose_cached(std::chrono::milliseconds max_age = std::chrono::seconds(1));

 private:
  struct Family;
  struct Series;
  Series& series(const std::string& name, const std::string& help, Type type,
                 const std::vector<std::string>& label_names,
                 const std::vector<std::string>& label_values, const std::vector<double>* bounds);

  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Family>> families_;
  std::mutex collect_mu_;  // one scrape's collectors at a time
  std::vector<std::function<void(Registry&)>> collectors_;
  std::mutex cache_mu_;  // guards cached_, cached_at_
  std::string cached_;
  std::chrono::steady_clock::time_point cached_at_{};
};

// drover_build_info{component="agent",version="0.1.0"} 1: which daemon and
// release a target is (the usual way to join a version onto other series).
void build_info(Registry& registry, const std::string& component);

// The content type of expose()'s text.
inline constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace drover::metrics
