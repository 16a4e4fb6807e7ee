#include "core/metrics/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <variant>

namespace drover::metrics {
namespace {

bool name_char(char c, bool first, bool colon) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
  if (colon && c == ':') return true;
  return !first && c >= '0' && c <= '9';
}

// A value as the text format writes it: integers without a fraction.
std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  // The shortest text that reads back as the same double.
  for (int digits = 6; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

std::string escape_help(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

[[noreturn]] void misuse(const std::string& what) {
  std::fprintf(stderr, "drover metrics: %s\n", what.c_str());
  std::abort();
}

void atomic_add(std::atomic<double>& a, double by) {
  double cur = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(cur, cur + by, std::memory_order_relaxed)) {
  }
}

}  // namespace

bool valid_metric_name(std::string_view name) {
  if (name.empty() || name.size() > 200) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!name_char(name[i], i == 0, true)) return false;
  }
  return true;
}

bool valid_label_name(std::string_view name) {
  if (name.empty() || name.size() > 100 || name.starts_with("__")) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!name_char(name[i], i == 0, false)) return false;
  }
  return true;
}

bool valid_label_value(std::string_view value) {
  if (value.empty() || value.size() > 128) return false;
  for (char c : value) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-' || c == ':' || c == '/';
    if (!ok) return false;
  }
  return true;
}

void Counter::inc(double by) {
  if (!(by >= 0)) return;  // a counter never goes down (NaN neither)
  atomic_add(value_, by);
}

void Counter::catch_up(double total) {
  double cur = value_.load(std::memory_order_relaxed);
  while (total > cur && !value_.compare_exchange_weak(cur, total, std::memory_order_relaxed)) {
  }
}

void Gauge::add(double by) {
  atomic_add(value_, by);
}

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)) {
  std::sort(bounds_.begin(), bounds_.end());
  bounds_.erase(std::unique(bounds_.begin(), bounds_.end()), bounds_.end());
  while (!bounds_.empty() && std::isinf(bounds_.back())) bounds_.pop_back();
  counts_.assign(bounds_.size() + 1, 0);
}

void Histogram::observe(double v) {
  if (std::isnan(v)) return;
  const auto i = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) -
                                          bounds_.begin());
  std::lock_guard lock(mu_);
  ++counts_[i];
  sum_ += v;
  ++count_;
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  std::lock_guard lock(mu_);
  std::uint64_t running = 0;
  for (std::uint64_t c : counts_) {
    running += c;
    s.cumulative.push_back(running);
  }
  s.sum = sum_;
  s.count = count_;
  return s;
}

std::vector<double> duration_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
}

struct Registry::Series {
  std::vector<std::string> values;
  std::variant<Counter, Gauge, std::unique_ptr<Histogram>> metric;
};

struct Registry::Family {
  std::string help;
  Type type = Type::counter;
  std::vector<std::string> label_names;
  std::vector<double> bounds;
  std::map<std::vector<std::string>, std::unique_ptr<Series>> series;
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Series& Registry::series(const std::string& name, const std::string& help, Type type,
                                   const std::vector<std::string>& label_names,
                                   const std::vector<std::string>& label_values,
                                   const std::vector<double>* bounds) {
  if (label_values.size() != label_names.size()) {
    misuse(name + ": " + std::to_string(label_values.size()) + " label values for " +
           std::to_string(label_names.size()) + " label names");
  }
  std::lock_guard lock(mu_);
  auto& slot = families_[name];
  if (!slot) {
    if (!valid_metric_name(name)) misuse("not a metric name: " + name);
    for (const auto& l : label_names) {
      if (!valid_label_name(l) || (type == Type::histogram && l == "le")) {
        misuse(name + ": not a label name: " + l);
      }
    }
    slot = std::make_unique<Family>();
    slot->help = help;
    slot->type = type;
    slot->label_names = label_names;
    if (bounds != nullptr) slot->bounds = *bounds;
  } else if (slot->type != type || slot->label_names != label_names) {
    misuse(name + ": used with another type or other label names");
  }
  Family& f = *slot;
  std::vector<std::string> values = label_values;
  for (auto& v : values) {
    if (!valid_label_value(v)) v = "other";
  }
  auto it = f.series.find(values);
  if (it == f.series.end() && f.series.size() >= kMaxSeries) {
    for (auto& v : values) v = "other";
    it = f.series.find(values);
  }
  if (it == f.series.end()) {
    auto s = std::make_unique<Series>();
    s->values = values;
    switch (type) {
      case Type::counter: s->metric.emplace<Counter>(); break;
      case Type::gauge: s->metric.emplace<Gauge>(); break;
      case Type::histogram:
        s->metric.emplace<std::unique_ptr<Histogram>>(std::make_unique<Histogram>(f.bounds));
        break;
    }
    it = f.series.emplace(values, std::move(s)).first;
  }
  return *it->second;
}

Counter& Registry::counter(const std::string& name, const std::string& help,
                           const std::vector<std::string>& label_names,
                           const std::vector<std::string>& label_values) {
  return std::get<Counter>(
      series(name, help, Type::counter, label_names, label_values, nullptr).metric);
}

Gauge& Registry::gauge(const std::string& name, const std::string& help,
                       const std::vector<std::string>& label_names,
                       const std::vector<std::string>& label_values) {
  return std::get<Gauge>(
      series(name, help, Type::gauge, label_names, label_values, nullptr).metric);
}

Histogram& Registry::histogram(const std::string& name, const std::string& help,
                               const std::vector<double>& upper_bounds,
                               const std::vector<std::string>& label_names,
                               const std::vector<std::string>& label_values) {
  return *std::get<std::unique_ptr<Histogram>>(
      series(name, help, Type::histogram, label_names, label_values, &upper_bounds).metric);
}

void Registry::declare(const std::string& name, const std::string& help, Type type,
                       const std::vector<std::string>& label_names) {
  std::lock_guard lock(mu_);
  auto& slot = families_[name];
  if (slot) return;
  if (!valid_metric_name(name)) misuse("not a metric name: " + name);
  slot = std::make_unique<Family>();
  slot->help = help;
  slot->type = type;
  slot->label_names = label_names;
  if (type == Type::histogram) slot->bounds = duration_buckets();
}

void Registry::on_collect(std::function<void(Registry&)> collector) {
  std::lock_guard lock(collect_mu_);
  collectors_.push_back(std::move(collector));
}

namespace {

std::string labels_text(const std::vector<std::string>& names,
                        const std::vector<std::string>& values, const std::string& le = "") {
  if (names.empty() && le.empty()) return "";
  std::string out = "{";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ",";
    out += names[i] + "=\"" + values[i] + "\"";  // values are names: nothing to escape
  }
  if (!le.empty()) {
    if (!names.empty()) out += ",";
    out += "le=\"" + le + "\"";
  }
  return out + "}";
}

const char* type_name(Type t) {
  switch (t) {
    case Type::counter: return "counter";
    case Type::gauge: return "gauge";
    case Type::histogram: return "histogram";
  }
  return "untyped";
}

}  // namespace

std::string Registry::expose_cached(std::chrono::milliseconds max_age) {
  std::lock_guard lock(cache_mu_);
  const auto now = std::chrono::steady_clock::now();
  if (cached_.empty() || now - cached_at_ >= max_age) {
    cached_ = expose();
    cached_at_ = now;
  }
  return cached_;
}

std::string Registry::expose() {
  {
    std::lock_guard lock(collect_mu_);
    for (auto& c : collectors_) c(*this);
  }
  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& [name, f] : families_) {
    out += "# HELP " + name + " " + escape_help(f->help) + "\n";
    out += "# TYPE " + name + " " + type_name(f->type) + "\n";
    for (const auto& [values, s] : f->series) {
      if (const auto* c = std::get_if<Counter>(&s->metric)) {
        out += name + labels_text(f->label_names, values) + " " + number(c->value()) + "\n";
      } else if (const auto* g = std::get_if<Gauge>(&s->metric)) {
        out += name + labels_text(f->label_names, values) + " " + number(g->value()) + "\n";
      } else {
        const auto snap = std::get<std::unique_ptr<Histogram>>(s->metric)->snapshot();
        for (std::size_t i = 0; i < snap.cumulative.size(); ++i) {
          const std::string le = i < snap.bounds.size() ? number(snap.bounds[i]) : "+Inf";
          out += name + "_bucket" + labels_text(f->label_names, values, le) + " " +
                 number(static_cast<double>(snap.cumulative[i])) + "\n";
        }
        out += name + "_sum" + labels_text(f->label_names, values) + " " + number(snap.sum) + "\n";
        out += name + "_count" + labels_text(f->label_names, values) + " " +
               number(static_cast<double>(snap.count)) + "\n";
      }
    }
  }
  return out;
}

void build_info(Registry& registry, const std::string& component) {
  registry
      .gauge("drover_build_info", "Always 1: the daemon's component and drover's version.",
             {"component", "version"}, {component, DROVER_VERSION})
      .set(1);
}

}  // namespace drover::metrics
