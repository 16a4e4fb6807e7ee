#include "coordinator/notify/notifier.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <future>
#include <map>

#include <nlohmann/json.hpp>

#include "core/canon/canonical_json.hpp"
#include "core/http/http.hpp"

namespace drover::coordinator::notify {
namespace {

using json = nlohmann::json;

std::string seq_hex(std::uint64_t seq) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, seq);
  return buf;
}

// A pending delivery's record.
struct Entry {
  std::string event_id, kind, body, last_error;
  std::uint32_t attempts = 0;
  std::int64_t enqueued_ms = 0, next_ms = 0;
};

std::string encode_entry(const Entry& e) {
  const json j = {{"event_id", e.event_id},       {"kind", e.kind},         {"body", e.body},
                  {"enqueued_ms", e.enqueued_ms}, {"attempts", e.attempts}, {"next_ms", e.next_ms},
                  {"last_error", e.last_error}};
  return *canon::encode(j);
}

Result<Entry> decode_entry(std::string_view bytes) {
  const json j = json::parse(bytes, nullptr, false);
  try {
    Entry e;
    e.event_id = j.at("event_id").get<std::string>();
    e.kind = j.at("kind").get<std::string>();
    e.body = j.at("body").get<std::string>();
    e.enqueued_ms = j.at("enqueued_ms").get<std::int64_t>();
    e.attempts = j.at("attempts").get<std::uint32_t>();
    e.next_ms = j.at("next_ms").get<std::int64_t>();
    e.last_error = j.at("last_error").get<std::string>();
    return e;
  } catch (const json::exception& ex) {
    return make_error(Errc::corrupt, std::string("pending notification: ") + ex.what());
  }
}

// "<pipeline>/<name>/<seq>" after the prefix: the destination's two parts.
bool split_out_key(std::string_view key, std::string& pipeline, std::string& name) {
  key.remove_prefix(kOutPrefix.size());
  const std::size_t a = key.find('/');
  if (a == std::string_view::npos) return false;
  const std::size_t b = key.find('/', a + 1);
  if (b == std::string_view::npos) return false;
  pipeline = std::string(key.substr(0, a));
  name = std::string(key.substr(a + 1, b - a - 1));
  return true;
}

Pending pending_of(const std::string& pipeline, const std::string& name, const Entry& e) {
  return Pending{pipeline,     name,       e.event_id,    e.kind,
                 e.last_error, e.attempts, e.enqueued_ms, e.next_ms};
}

}  // namespace

std::string dest_key(const std::string& pipeline, const std::string& name) {
  return std::string(kDestPrefix) + pipeline + "/" + name;
}

std::string out_prefix(const std::string& pipeline, const std::string& name) {
  return std::string(kOutPrefix) + pipeline + "/" + name + "/";
}

Send http_send(std::chrono::milliseconds timeout, const std::string& ca_file) {
  return [timeout, ca_file](const std::string& url, const std::string& body,
                            const Headers& headers) -> Result<int> {
    http::ClientOptions o;
    o.timeout = timeout;
    o.max_body_bytes = 64 << 10;
    o.headers = headers;
    o.ca_file = ca_file;
    auto r = http::request("POST", url, body, o);
    if (r.ok()) return r->status;
    // The client's message names the URL, whose path may be a credential
    // (a Slack URL is one): only its origin goes into the outbox, the log
    // and the audit log.
    std::string why = r.error().message;
    const std::string origin = origin_of(url);
    for (const std::string& leak : {url.substr(0, 200), url}) {
      for (std::size_t at = why.find(leak); !leak.empty() && at != std::string::npos;
           at = why.find(leak, at + origin.size())) {
        why.replace(at, leak.size(), origin);
      }
    }
    return make_error(r.error().code, why);
  };
}

Result<std::vector<AllowEntry>> read_allow(CoordinatorStore& store) {
  std::vector<AllowEntry> out;
  DROVER_ASSIGN(auto bytes, store.setting(std::string(kAllowKey)));
  if (!bytes) return out;
  const json j = json::parse(*bytes, nullptr, false);
  if (!j.is_object() || !j.contains("allow") || !j["allow"].is_array()) {
    return make_error(Errc::corrupt, "the notification allow-list is unreadable");
  }
  for (const auto& e : j["allow"]) {
    if (!e.is_string())
      return make_error(Errc::corrupt, "the notification allow-list is unreadable");
    DROVER_ASSIGN(AllowEntry a, parse_allow_entry(e.get<std::string>()));
    out.push_back(std::move(a));
  }
  return out;
}

Result<std::vector<Destination>> read_destinations(CoordinatorStore& store,
                                                   const std::string& pipeline) {
  const std::string prefix = std::string(kDestPrefix) + (pipeline.empty() ? "" : pipeline + "/");
  DROVER_ASSIGN(auto all, store.settings_under(prefix));
  std::vector<Destination> out;
  for (const auto& [key, value] : all) {
    const std::string rest = key.substr(kDestPrefix.size());
    const std::size_t slash = rest.find('/');
    if (slash == std::string::npos) continue;
    DROVER_ASSIGN(Destination d,
                  decode_destination(value, rest.substr(0, slash), rest.substr(slash + 1)));
    out.push_back(std::move(d));
  }
  return out;
}

Result<std::vector<Pending>> read_outbox(CoordinatorStore& store, std::size_t limit) {
  DROVER_ASSIGN(auto all, store.settings_under(std::string(kOutPrefix)));
  std::vector<Pending> out;
  for (const auto& [key, value] : all) {
    if (out.size() >= limit) break;
    std::string pipeline, name;
    if (!split_out_key(key, pipeline, name)) continue;
    auto e = decode_entry(value);
    if (!e.ok()) continue;
    out.push_back(pending_of(pipeline, name, *e));
  }
  return out;
}

Notifier::Notifier(CoordinatorStore& store, Resolve resolve, Send send, const Clock& clock,
                   Logger& log, NotifierOptions options)
    : store_(store),
      resolve_(std::move(resolve)),
      send_(std::move(send)),
      clock_(clock),
      log_(log),
      options_(options) {}

std::int64_t Notifier::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now().time_since_epoch())
      .count();
}

Result<std::size_t> Notifier::collect() {
  DROVER_ASSIGN(auto cursor_bytes, store_.setting(std::string(kCursorKey)));
  if (!cursor_bytes) {
    // A state that never had a notifier: history is not sent.
    DROVER_ASSIGN(std::uint64_t head, store_.audit_head_seq());
    DROVER_TRY(store_.put_setting(std::string(kCursorKey), std::to_string(head)));
    return std::size_t{0};
  }
  std::uint64_t cursor = 0;
  try {
    cursor = std::stoull(*cursor_bytes);
  } catch (const std::exception&) {
    return make_error(Errc::corrupt, "the notification cursor is unreadable");
  }
  DROVER_ASSIGN(auto records, store_.audit_after(cursor, options_.records_per_pass));
  caught_up_ = records.size() < options_.records_per_pass;
  if (records.empty()) return std::size_t{0};

  DROVER_ASSIGN(auto destinations, read_destinations(store_));
  std::map<std::string, std::vector<const Destination*>> by_pipeline;
  for (const auto& d : destinations) by_pipeline[d.pipeline].push_back(&d);
  std::map<std::string, std::size_t> pending;  // by out_prefix, read when first needed

  std::vector<std::pair<std::string, std::string>> writes;
  std::vector<std::pair<Pending, std::string>> overflow;
  const std::int64_t now = now_ms();
  for (const auto& r : records) {
    cursor = r.seq;
    if (!notifiable(r.what) || by_pipeline.empty()) continue;
    auto context = resolve_(r);
    if (!context.ok()) {
      log_.warn("notify.unresolved", {{"seq", r.seq}, {"error", context.error().message}});
      continue;
    }
    if (!*context) continue;
    auto it = by_pipeline.find((*context)->pipeline);
    if (it == by_pipeline.end()) continue;
    for (const Destination* d : it->second) {
      // A destination hears what happens after it was added.
      if (!d->wants(r.what) || r.at_ms < d->created_ms) continue;
      const std::string prefix = out_prefix(d->pipeline, d->name);
      if (!pending.contains(prefix)) {
        DROVER_ASSIGN(auto held, store_.settings_under(prefix));
        pending[prefix] = held.size();
      }
      Entry e;
      e.event_id = event_id(r);
      e.kind = r.what;
      e.enqueued_ms = now;
      e.next_ms = now;
      if (pending[prefix] >= kMaxPendingPerDestination) {
        overflow.emplace_back(pending_of(d->pipeline, d->name, e), "outbox full");
        continue;
      }
      e.body = render(r, **context, d->format);
      writes.emplace_back(prefix + seq_hex(r.seq), encode_entry(e));
      ++pending[prefix];
    }
  }
  writes.emplace_back(std::string(kCursorKey), std::to_string(cursor));
  std::vector<AuditRecord> audits;
  for (const auto& [p, why] : overflow) audits.push_back(dropped(p, why));
  DROVER_TRY(store_.write_settings(writes, {}, audits));
  if (writes.size() > 1) next_due_ms_ = std::min(next_due_ms_, now);
  return writes.size() - 1;
}

AuditRecord Notifier::dropped(const Pending& p, const std::string& why) const {
  log_.warn("notify.dropped",
            {{"pipeline", p.pipeline}, {"name", p.name}, {"event_id", p.event_id}, {"why", why}});
  AuditRecord r;
  r.at_ms = now_ms();
  r.who = "drover";
  r.what = "notify.dropped";
  r.detail = *canon::encode(json{{"pipeline", p.pipeline},
                                 {"name", p.name},
                                 {"event_id", p.event_id},
                                 {"kind", p.kind},
                                 {"attempts", p.attempts},
                                 {"last_error", p.last_error},
                                 {"why", why}});
  return r;
}

Status Notifier::drop(const std::string& key, const Pending& p, const std::string& why) {
  // The erasure and its record in one transaction: no drop goes unaudited.
  return store_.write_settings({}, {key}, {dropped(p, why)});
}

Result<std::size_t> Notifier::deliver() {
  if (now_ms() < next_due_ms_) return std::size_t{0};  // nothing due: the outbox is not read
  DROVER_ASSIGN(auto destinations, read_destinations(store_));
  DROVER_ASSIGN(auto allow, read_allow(store_));
  std::map<std::string, const Destination*> by_prefix;
  for (const auto& d : destinations) by_prefix[out_prefix(d.pipeline, d.name)] = &d;

  // Each destination's oldest pending delivery (keys sort by audit seq).
  DROVER_ASSIGN(auto all, store_.settings_under(std::string(kOutPrefix)));
  std::vector<std::pair<std::string, std::string>> heads;
  std::string last_prefix;
  for (const auto& [key, value] : all) {
    const std::string prefix = key.substr(0, key.rfind('/') + 1);
    if (prefix == last_prefix) continue;
    last_prefix = prefix;
    heads.emplace_back(key, value);
  }
  all.clear();

  std::size_t delivered = 0;
  std::int64_t next_due = INT64_MAX;
  struct Attempt {
    std::string key;
    Entry entry;
    const Destination* destination = nullptr;
    Headers headers;
    std::future<Result<int>> answer;
  };
  std::vector<Attempt> due;
  for (const auto& [key, value] : heads) {
    std::string pipeline, name;
    if (!split_out_key(key, pipeline, name)) {
      DROVER_TRY(store_.write_settings({}, {key}));
      continue;
    }
    auto entry = decode_entry(value);
    if (!entry.ok()) {
      DROVER_TRY(drop(key, Pending{pipeline, name}, entry.error().message));
      continue;
    }
    Entry e = std::move(*entry);
    const Pending p = pending_of(pipeline, name, e);
    const auto dest = by_prefix.find(key.substr(0, key.rfind('/') + 1));
    if (dest == by_prefix.end()) {
      DROVER_TRY(drop(key, p, "the destination was removed"));
      continue;
    }
    const Destination& d = *dest->second;
    const std::int64_t now = now_ms();
    if (!allowed(d.url, allow)) {
      DROVER_TRY(drop(key, p, "the destination is not on the allow-list"));
      continue;
    }
    if (now - e.enqueued_ms >= options_.give_up_ms) {
      DROVER_TRY(drop(key, p, "not delivered in time"));
      continue;
    }
    if (e.next_ms > now) {
      next_due = std::min(next_due, e.next_ms);
      continue;
    }
    const std::string timestamp = std::to_string(now / 1000);
    Headers headers = {{"User-Agent", "drover-coordinator"},
                       {"X-Drover-Event", e.kind},
                       {"X-Drover-Delivery", e.event_id},
                       {"X-Drover-Timestamp", timestamp}};
    if (!d.secret.empty()) {
      headers.emplace_back("X-Drover-Signature",
                           signature(d.secret, timestamp, e.event_id, e.body));
    }
    due.push_back(Attempt{key, std::move(e), &d, std::move(headers), {}});
  }
  // Destinations are sent to at once, kMaxParallelSends at a time: one that
  // never answers costs a pass its timeout, not the timeout per destination.
  for (std::size_t from = 0; from < due.size(); from += kMaxParallelSends) {
    const std::size_t to = std::min(due.size(), from + kMaxParallelSends);
    for (std::size_t i = from; i < to; ++i) {
      Attempt& a = due[i];
      a.answer = std::async(std::launch::async, [this, &a] {
        return send_(a.destination->url, a.entry.body, a.headers);
      });
    }
    for (std::size_t i = from; i < to; ++i) {
      Attempt& a = due[i];
      Result<int> answer = a.answer.get();
      const std::int64_t now = now_ms();
      if (answer.ok() && *answer >= 200 && *answer < 300) {
        DROVER_TRY(store_.write_settings({}, {a.key}));
        ++delivered;
        next_due = std::min(next_due, now);  // the destination's next one is due
        continue;
      }
      Entry& e = a.entry;
      ++e.attempts;
      e.last_error = answer.ok() ? "answered " + std::to_string(*answer) : answer.error().message;
      e.next_ms = now + retry_after_ms(e.attempts);
      next_due = std::min(next_due, e.next_ms);
      log_.info("notify.retry", {{"pipeline", a.destination->pipeline},
                                 {"name", a.destination->name},
                                 {"event_id", e.event_id},
                                 {"attempts", e.attempts},
                                 {"error", e.last_error}});
      // Only while it is still pending: a destination removed meanwhile
      // took its deliveries with it, and must not get one back.
      DROVER_TRY(store_.replace_setting(a.key, encode_entry(e)));
    }
  }
  next_due_ms_ = next_due;
  return delivered;
}

}  // namespace drover::coordinator::notify
