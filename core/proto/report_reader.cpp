// The fast reader of a report body: the JSON parser's events (SAX) go
// straight into a ReportBody, without a tree. Every report a coordinator
// ingests is read here, and building the tree, then reading it field by
// field, cost more than everything else the coordinator does with a
// report. The parser still reads the text (its strings unescaped and
// checked as UTF-8, its numbers converted); this reader only places the
// values. Anything it does not expect (an unknown, repeated or null field,
// a value of another kind, a bound broken) makes it give up, and
// parse_body and report_body read the text again, answering as they always
// have; the differential test in core/tests/proto_test.cpp and the
// agent_messages fuzz family hold the two to the same answers.
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/base/name.hpp"
#include "core/proto/messages.hpp"

namespace drover::proto {
namespace {

using nlohmann::json;

constexpr std::int64_t kMaxAtMs = static_cast<std::int64_t>(kMaxSeq);

// One item's fields as read, each at most once.
struct RawItem {
  std::optional<std::string> kind, service, release, slot, error, state, event, detail, proof;
  std::optional<std::int64_t> at, traffic;
  std::optional<std::uint64_t> seq;
  std::optional<bool> ok, preview, other;
  std::optional<double> error_rate, p99_ms, saturation;
  bool has_custom = false;
  std::map<std::string, double> custom;
};

// A number as Fields reads it: integers as themselves, unsigned ones as
// such (so a bound check sees the full value).
struct Number {
  enum class Kind { integer, unsigned_integer, floating } kind = Kind::integer;
  std::int64_t i = 0;
  std::uint64_t u = 0;
  double f = 0;
  double as_double() const {
    return kind == Kind::floating           ? f
           : kind == Kind::unsigned_integer ? static_cast<double>(u)
                                            : static_cast<double>(i);
  }
};

class ReportSax {
 public:
  std::optional<ReportBody> finish() {
    if (gave_up_ || depth_ != 0 || !done_) return std::nullopt;
    if (!seq_ || !sent_at_ || !has_items_ || body_.items.empty()) return std::nullopt;
    body_.seq = *seq_;
    body_.sent_at_ms = *sent_at_;
    return std::move(body_);
  }

  bool null() { return give_up(); }
  bool boolean(bool v) {
    if (depth_ != 2 || in_custom_) return give_up();
    if (key_ == "ok") return set(item_.ok, v);
    if (key_ == "preview") return set(item_.preview, v);
    if (key_ == "other") return set(item_.other, v);
    return give_up();
  }
  bool number_integer(json::number_integer_t v) {
    Number n;
    n.i = v;
    return number(n);
  }
  bool number_unsigned(json::number_unsigned_t v) {
    Number n;
    n.kind = Number::Kind::unsigned_integer;
    n.u = v;
    return number(n);
  }
  bool number_float(json::number_float_t v, const json::string_t&) {
    Number n;
    n.kind = Number::Kind::floating;
    n.f = v;
    return number(n);
  }
  bool string(json::string_t& v) {
    if (depth_ == 1) {
      // The body's own nonce only: not an element of items (whose key_ is
      // still the last one read inside an item).
      if (!in_items_ && key_ == "nonce" && !has_nonce_) return has_nonce_ = true;  // not kept
      return give_up();
    }
    if (depth_ != 2 || in_custom_) return give_up();
    if (key_ == "kind") return set(item_.kind, std::move(v));
    if (key_ == "service") return set(item_.service, std::move(v));
    if (key_ == "release") return set(item_.release, std::move(v));
    if (key_ == "slot") return set(item_.slot, std::move(v));
    if (key_ == "error") return set(item_.error, std::move(v));
    if (key_ == "state") return set(item_.state, std::move(v));
    if (key_ == "event") return set(item_.event, std::move(v));
    if (key_ == "detail") return set(item_.detail, std::move(v));
    if (key_ == "proof") return set(item_.proof, std::move(v));
    return give_up();
  }
  bool binary(json::binary_t&) { return give_up(); }
  bool start_object(std::size_t) {
    if (depth_ == 0 && !done_) {
      depth_ = 1;
      return true;
    }
    if (depth_ == 1 && in_items_) {  // an item
      item_ = RawItem{};
      depth_ = 2;
      return true;
    }
    if (depth_ == 2 && !in_custom_ && key_ == "custom" && !item_.has_custom) {
      item_.has_custom = in_custom_ = true;
      return true;
    }
    return give_up();
  }
  bool key(json::string_t& k) {
    key_ = std::move(k);
    if (in_custom_) {
      // A metric's name: bounded, and each at most once.
      return key_.size() <= kMaxMetricNameBytes && item_.custom.count(key_) == 0 &&
                     item_.custom.size() < kMaxCustomMetrics
                 ? true
                 : give_up();
    }
    return true;
  }
  bool end_object() {
    key_.clear();  // a value after this object has no key of its own
    if (in_custom_) {
      in_custom_ = false;
      return true;
    }
    if (depth_ == 2) {
      depth_ = 1;
      return take_item();
    }
    if (depth_ == 1 && !in_items_) {
      depth_ = 0;
      done_ = true;
      return true;
    }
    return give_up();
  }
  bool start_array(std::size_t) {
    if (depth_ != 1 || in_items_ || has_items_ || key_ != "items") return give_up();
    in_items_ = has_items_ = true;
    return true;
  }
  bool end_array() {
    if (depth_ != 1 || !in_items_) return give_up();
    in_items_ = false;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    return give_up();
  }

 private:
  bool give_up() {
    gave_up_ = true;
    return false;
  }
  template <class T, class V>
  bool set(std::optional<T>& field, V&& v) {
    if (field) return give_up();  // repeated
    field = std::forward<V>(v);
    return true;
  }

  bool number(const Number& n) {
    if (depth_ == 1 && !in_items_) {
      if (key_ == "seq") return whole(n, kMaxSeq, seq_);
      if (key_ == "sent_at") return whole_signed(n, 0, kMaxAtMs, sent_at_);
      return give_up();
    }
    if (depth_ != 2) return give_up();
    if (in_custom_) {
      const double d = n.as_double();
      if (!std::isfinite(d)) return give_up();
      item_.custom[key_] = d;
      return true;
    }
    if (key_ == "at") return whole_signed(n, 0, kMaxAtMs, item_.at);
    if (key_ == "traffic") return whole_signed(n, 0, 1000, item_.traffic);
    if (key_ == "seq") return whole(n, kMaxSeq, item_.seq);
    if (key_ == "error_rate") return finite(n, item_.error_rate);
    if (key_ == "p99_ms") return finite(n, item_.p99_ms);
    if (key_ == "saturation") return finite(n, item_.saturation);
    return give_up();
  }
  // As Fields::u64: a whole number from 0 to max.
  bool whole(const Number& n, std::uint64_t max, std::optional<std::uint64_t>& out) {
    if (n.kind == Number::Kind::unsigned_integer && n.u <= max) return set(out, n.u);
    if (n.kind == Number::Kind::integer && n.i >= 0 && static_cast<std::uint64_t>(n.i) <= max) {
      return set(out, static_cast<std::uint64_t>(n.i));
    }
    return give_up();
  }
  // As Fields::integer: a whole number from min to max.
  bool whole_signed(const Number& n, std::int64_t min, std::int64_t max,
                    std::optional<std::int64_t>& out) {
    if (n.kind == Number::Kind::unsigned_integer) {
      if (n.u > static_cast<std::uint64_t>(max)) return give_up();
      const auto v = static_cast<std::int64_t>(n.u);
      return v >= min ? set(out, v) : give_up();
    }
    if (n.kind == Number::Kind::integer && n.i >= min && n.i <= max) return set(out, n.i);
    return give_up();
  }
  // As Fields::num: any finite number.
  bool finite(const Number& n, std::optional<double>& out) {
    const double d = n.as_double();
    return std::isfinite(d) ? set(out, d) : give_up();
  }

  static bool bounded(const std::optional<std::string>& s, std::size_t max) {
    return s && s->size() <= max;
  }
  static bool a_name(const std::optional<std::string>& s) {
    return bounded(s, kMaxNameBytes) && validate_name(*s, "service").ok();
  }

  // The item just read, checked as health_item and event_item check theirs.
  bool take_item() {
    if (body_.items.size() >= kMaxReportItems || !item_.kind) return give_up();
    RawItem& i = item_;
    ReportItem out;
    if (*i.kind == "health") {
      if (i.event || i.detail || i.proof || i.seq) return give_up();  // the other kind's
      if (!a_name(i.service) || !bounded(i.release, kMaxIdBytes) || !bounded(i.slot, kMaxIdBytes) ||
          !i.at || !bounded(i.error, kMaxTextBytes) || !bounded(i.state, kMaxIdBytes) || !i.ok ||
          !i.error_rate || !i.p99_ms || !i.saturation || !i.has_custom) {
        return give_up();
      }
      if (i.other.value_or(false) && !i.traffic) return give_up();  // other needs traffic
      HealthItem h;
      h.service = std::move(*i.service);
      h.release = std::move(*i.release);
      h.slot = std::move(*i.slot);
      h.at_ms = *i.at;
      h.error = std::move(*i.error);
      h.state = std::move(*i.state);
      h.ok = *i.ok;
      h.error_rate = *i.error_rate;
      h.p99_ms = *i.p99_ms;
      h.saturation = *i.saturation;
      h.custom = std::move(i.custom);
      if (i.traffic) h.traffic = static_cast<int>(*i.traffic);
      h.preview = i.preview.value_or(false);
      h.other = i.other.value_or(false);
      out.health = std::move(h);
    } else if (*i.kind == "event") {
      if (i.release || i.slot || i.error || i.state || i.ok || i.error_rate || i.p99_ms ||
          i.saturation || i.has_custom || i.traffic || i.preview || i.other) {
        return give_up();  // the other kind's
      }
      if (!a_name(i.service) || !i.at || !bounded(i.event, kMaxIdBytes) || !i.seq ||
          !bounded(i.detail, kMaxTextBytes) || (i.proof && i.proof->size() > kMaxProofBytes)) {
        return give_up();
      }
      EventItem e;
      e.service = std::move(*i.service);
      e.at_ms = *i.at;
      e.event = std::move(*i.event);
      e.seq = *i.seq;
      e.detail = std::move(*i.detail);
      if (i.proof) e.proof = std::move(*i.proof);
      out.event = std::move(e);
    } else {
      return give_up();
    }
    body_.items.push_back(std::move(out));
    return true;
  }

  ReportBody body_;
  RawItem item_;
  std::string key_;
  std::optional<std::uint64_t> seq_;
  std::optional<std::int64_t> sent_at_;
  int depth_ = 0;  // 1: the body, 2: an item (custom is in_custom_)
  bool in_items_ = false, has_items_ = false, in_custom_ = false, has_nonce_ = false;
  bool done_ = false, gave_up_ = false;
};

}  // namespace

std::optional<ReportBody> read_report_fast(std::string_view body) {
  // parse_body's bounds: the size, then the count of values.
  if (body.size() > kMaxRequestBytes || detail::count_json_values(body) > kMaxMessageValues) {
    return std::nullopt;
  }
  ReportSax sax;
  if (!json::sax_parse(body.begin(), body.end(), &sax)) return std::nullopt;
  return sax.finish();
}

}  // namespace drover::proto
