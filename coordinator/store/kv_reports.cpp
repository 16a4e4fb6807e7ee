// KvCoordinatorStore: reports ingested once, health samples, what the fleet runs.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "coordinator/store/kv_codec.hpp"
#include "coordinator/store/kv_coordinator_store.hpp"

namespace drover::coordinator {
namespace {

using nlohmann::json;
using namespace store_detail;

// samples/<service>/<at be64>/<host>[/<source>]: time-ordered per service.
// An agent's own samples have no source, or "/other" for its other slot's
// (the control of a traffic split); the webhook's are "/webhook", so a host
// can never take (or overwrite) the key of a checker's sample about it. Returns false, writing
// nothing, when the key is taken: one sample per host, source and millisecond.
// Text dump() writes between quotes exactly as it is: printable ASCII
// without a quote or backslash (every name and release id).
bool plain_json_text(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x20 && u < 0x80 && c != '"' && c != '\\';
  });
}

// A JSON string as dump() writes it. Plain text is copied; anything else
// goes through the JSON library.
void append_string(std::string& out, std::string_view s) {
  if (!plain_json_text(s)) {
    out += json(std::string(s)).dump();
    return;
  }
  out += '"';
  out += s;
  out += '"';
}

// A number in its shortest form that reads back exactly; JSON has no
// infinity or NaN, so those are written as dump() writes them (null).
void append_number(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out += "null";
    return;
  }
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
  out.append(buf, ec == std::errc() ? end : buf);
}

// samples/<service>/<at be64>/<host>[/<source>]: time-ordered per service.
// An agent's own samples have no source, or "/other" for its other slot's
// (the control of a traffic split); the webhook's are "/webhook", so a host
// can never take (or overwrite) the key of a checker's sample about it. Returns false, writing
// nothing, when the key is taken: one sample per host, source and millisecond.
// The value is a JSON object with its keys in order, written without a tree
// (one is written per health item ingested).
Result<bool> put_sample(kv::Txn& txn, kv::Table table, const std::string& service,
                        const KvCoordinatorStore::FleetSample& s, std::string_view source = {}) {
  std::string value = "{\"at\":" + std::to_string(s.at_ms) + ",\"error_rate\":";
  append_number(value, s.error_rate);
  value += ",\"host\":";
  append_string(value, s.host);
  value += s.ok ? ",\"ok\":true" : ",\"ok\":false";
  if (s.other) value += ",\"other\":true";
  value += ",\"p99_ms\":";
  append_number(value, s.p99_ms);
  value += ",\"release\":";
  append_string(value, s.release);
  if (s.requests > 0) {
    value += ",\"requests\":";
    append_number(value, s.requests);
  }
  value += ",\"saturation\":";
  append_number(value, s.saturation);
  value += '}';
  std::string key =
      seq_key(service, static_cast<std::uint64_t>(std::max<std::int64_t>(s.at_ms, 0)));
  key += '/' + s.host;
  if (!source.empty()) key += '/' + std::string(source);
  return txn.put_new(table, key, value);
}

// The time at the end of a host_releases key (8 big-endian bytes).
std::int64_t since_of(std::string_view key) {
  if (key.size() < 8) return 0;
  std::uint64_t n = 0;
  for (char c : key.substr(key.size() - 8)) n = (n << 8) | static_cast<unsigned char>(c);
  return static_cast<std::int64_t>(n);
}

std::string releases_prefix(const std::string& service, const std::string& host) {
  return service + '/' + host + '/';
}

// Keeps a change of the release a host runs (state is its host_state record):
// host_releases/<service>/<host>/<since be64>, the oldest dropped beyond
// kMaxHostReleases. A host stamps the time itself: it speaks only of itself.
Status note_release(kv::Txn& txn, kv::Table host_state, kv::Table host_releases, json& state,
                    const std::string& service, const std::string& host, const std::string& release,
                    std::int64_t at_ms) {
  if (state.value("release", "") == release) return Ok{};  // most reports change nothing
  state["release"] = release;
  const std::string prefix = releases_prefix(service, host);
  const std::string key = seq_key(prefix.substr(0, prefix.size() - 1),
                                  static_cast<std::uint64_t>(std::max<std::int64_t>(at_ms, 0)));
  DROVER_ASSIGN(bool added, txn.put_new(host_releases, key, release));
  if (!added) DROVER_TRY(txn.put(host_releases, key, release));  // two changes in one ms
  // The state counts the host's kept changes, so only the oldest is read
  // when one must go (a record from before the count: counted once).
  std::int64_t kept = state.value("releases_kept", std::int64_t{-1});
  DROVER_ASSIGN(auto cursor, txn.cursor(host_releases));
  if (kept < 0) {
    kept = 0;
    DROVER_ASSIGN(bool more, cursor->seek(prefix));
    while (more && cursor->key().substr(0, prefix.size()) == prefix) {
      ++kept;
      DROVER_ASSIGN(more, cursor->next());
    }
  } else if (added) {
    ++kept;
  }
  while (kept > static_cast<std::int64_t>(CoordinatorStore::kMaxHostReleases)) {
    DROVER_ASSIGN(bool found, cursor->seek(prefix));
    if (!found || cursor->key().substr(0, prefix.size()) != prefix) break;
    const std::string oldest(cursor->key());
    if (auto erased = txn.erase(host_releases, oldest); !erased.ok()) return erased.error();
    --kept;
  }
  state["releases_kept"] = kept;
  DROVER_TRY(txn.put(host_state, service + '/' + host, state.dump()));
  return Ok{};
}

}  // namespace

bool KvCoordinatorStore::samples_fit() {
  // Constant time while the map's high-water mark is below the bound; the
  // free list is read only above it.
  const double bound = limits_.samples_stop_fill;
  auto u = kv_->usage(std::numeric_limits<std::uint64_t>::max());
  if (!u.ok() || u->map_bytes == 0) return true;
  const auto stop = static_cast<std::uint64_t>(bound * static_cast<double>(u->map_bytes));
  if (u->used_bytes < stop) return true;
  u = kv_->usage(stop);
  return u.ok() && u->used_bytes < stop;
}

Result<Ingested> KvCoordinatorStore::ingest_one(kv::Txn& txn, const ReportFrom& from,
                                                std::int64_t now, bool samples) {
  const std::string& host = from.host;
  const proto::ReportBody& report = *from.report;
  DROVER_ASSIGN(auto bytes, txn.get(hosts_, host));
  if (!bytes) return make_error(Errc::not_found, "host '" + host + "' is not enrolled");
  // The record's canonical bytes name its key: a plain search, no decode.
  if (!from.key_hex.empty() && bytes->find("\"" + from.key_hex + "\"") == std::string::npos) {
    return make_error(Errc::refused, "host '" + host +
                                         "' was enrolled again with another key since this "
                                         "report was authenticated");
  }
  DROVER_ASSIGN(auto seen_bytes, txn.get(host_seen_, host));
  Seen seen = parse_seen(seen_bytes);
  if (seen.report_seq == 0 && !seen_bytes) {
    // A record from before host_seen existed keeps its mark in the host record.
    DROVER_ASSIGN(HostRecord h, decode_host(*bytes));
    seen.report_seq = h.report_seq;
  }
  seen.last_seen = now;
  Ingested out;
  out.fresh = report.seq > seen.report_seq;
  if (!out.fresh) {
    DROVER_TRY(txn.put(host_seen_, host, encode_seen(seen)));
    return out;
  }
  seen.report_seq = report.seq;
  // host_state/<service>/<host>: {"failed_seq":N,"release":…}
  auto state_of = [&](const std::string& service) -> Result<json> {
    DROVER_ASSIGN(auto v, txn.get(host_state_, service + '/' + host));
    json j = v ? json::parse(*v, nullptr, false) : json::object();
    if (!j.is_object()) j = json::object();
    return j;
  };
  // Whether the state names this release already, read from its text
  // without a parse: the state is written by dump(), so a plain release
  // (plain_json_text) appears exactly as "release":"<id>", and no other
  // field of the state holds a string. Anything else is parsed.
  auto runs_already = [&](const std::string& service, const std::string& release) -> Result<bool> {
    if (!plain_json_text(release)) return false;
    DROVER_ASSIGN(auto v, txn.get(host_state_, service + '/' + host));
    return v && v->find("\"release\":\"" + release + "\"") != std::string::npos;
  };
  for (const auto& item : report.items) {
    if (item.health) {
      const proto::HealthItem& hi = *item.health;
      if (!samples) {
        ++out.storage_full;
      } else if (seen.stored_samples >= limits_.samples_per_host) {
        ++out.over_budget;
      } else {
        auto requests = hi.custom.find("requests");
        // Requests served in one sample's window: at most a million counted.
        const double served =
            requests == hi.custom.end() ? 0 : std::clamp(requests->second, 0.0, 1e6);
        DROVER_ASSIGN(bool stored, put_sample(txn, samples_, hi.service,
                                              {host, hi.release, hi.at_ms, hi.error_rate, hi.p99_ms,
                                               hi.saturation, hi.ok, served, hi.other},
                                              hi.other ? "other" : ""));
        if (stored) ++seen.stored_samples;  // a second sample of the same millisecond: dropped
      }
      if (hi.other) continue;  // the control: the host runs the other release
      if (hi.traffic) {
        DROVER_ASSIGN(json st, state_of(hi.service));
        if (st.value("traffic", -1) != *hi.traffic || st.value("preview", false) != hi.preview) {
          st["traffic"] = *hi.traffic;
          st["preview"] = hi.preview;
          DROVER_TRY(txn.put(host_state_, hi.service + '/' + host, st.dump()));
        }
      }
      if (!hi.release.empty()) {
        DROVER_ASSIGN(bool same, runs_already(hi.service, hi.release));
        if (same) continue;  // most reports: the release the host already runs
        DROVER_ASSIGN(json st, state_of(hi.service));
        DROVER_TRY(note_release(txn, host_state_, host_releases_, st, hi.service, host, hi.release,
                                hi.at_ms));
      }
    } else if (item.event) {
      const proto::EventItem& e = *item.event;
      if (e.seq > 0) {
        // Only a plan this coordinator issued (or saw proven) can be reported on.
        DROVER_ASSIGN(auto v, txn.get(plan_seqs_, e.service));
        if (e.seq > to_u64(v)) {
          ++out.unissued;
          continue;
        }
      }
      if (e.event == "applied" && !e.detail.empty()) {
        DROVER_ASSIGN(json st, state_of(e.service));
        // The artifact it now runs.
        DROVER_TRY(
            note_release(txn, host_state_, host_releases_, st, e.service, host, e.detail, e.at_ms));
      } else if (e.event == "flags_applied") {
        // {"seq":N}: the flag set the host's flags file now follows.
        const json d = json::parse(e.detail, nullptr, false);
        if (d.is_object() && d.contains("seq") && d["seq"].is_number_unsigned() &&
            d["seq"].get<std::uint64_t>() <= proto::kMaxSeq) {
          DROVER_ASSIGN(json st, state_of(e.service));
          if (d["seq"].get<std::uint64_t>() > st.value("flags_seq", std::uint64_t{0})) {
            st["flags_seq"] = d["seq"].get<std::uint64_t>();
            DROVER_TRY(txn.put(host_state_, e.service + '/' + host, st.dump()));
          }
        }
      } else if (e.event == "apply_failed" || e.event == "plan_refused" ||
                 e.event == "fetch_failed") {
        DROVER_ASSIGN(json st, state_of(e.service));
        if (e.seq > st.value("failed_seq", std::uint64_t{0})) st["failed_seq"] = e.seq;
        DROVER_TRY(txn.put(host_state_, e.service + '/' + host, st.dump()));
      }
    }
  }
  seen.throttled =
      out.over_budget > 0 || (seen.throttled && seen.stored_samples >= limits_.samples_per_host);
  DROVER_TRY(txn.put(host_seen_, host, encode_seen(seen)));
  return out;
}

Result<Ingested> KvCoordinatorStore::ingest_report(const std::string& host,
                                                   const proto::ReportBody& report,
                                                   std::int64_t now) {
  DROVER_ASSIGN(auto all, ingest_reports({{host, &report}}, now));
  return std::move(all.front());
}

Result<std::vector<Result<Ingested>>> KvCoordinatorStore::ingest_reports(
    const std::vector<ReportFrom>& reports, std::int64_t now) {
  auto attempt = [&](bool samples) -> Result<std::vector<Result<Ingested>>> {
    DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
    kv::Txn& txn = *txn_owner;
    std::vector<Result<Ingested>> out;
    out.reserve(reports.size());
    for (const ReportFrom& from : reports) {
      auto r = ingest_one(txn, from, now, samples);
      // A full map spoils the transaction: written again without samples.
      if (!r.ok() && r.error().code == Errc::exhausted) return r.error();
      // Anything else fails that report alone (its seq is not recorded, so
      // the agent sends it again; what it wrote so far is keyed by time and
      // host, and is written over the same the next time).
      out.push_back(std::move(r));
    }
    DROVER_TRY(txn.commit());
    return out;
  };
  const bool fit = samples_fit();
  auto first = attempt(fit);
  if (first.ok() || first.error().code != Errc::exhausted || !fit) return first;
  return attempt(false);
}

Result<KvCoordinatorStore::Fleet> KvCoordinatorStore::fleet(const std::string& service,
                                                            std::int64_t since_ms,
                                                            bool reuse_decoded) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_read());
  kv::Txn& txn = *txn_owner;
  Fleet f;
  {
    DROVER_ASSIGN(auto cursor, txn.cursor(host_state_));
    const std::string prefix = service + '/';
    DROVER_ASSIGN(bool more, cursor->seek(prefix));
    while (more && cursor->key().substr(0, prefix.size()) == prefix) {
      const std::string host(cursor->key().substr(prefix.size()));
      json j = json::parse(cursor->value(), nullptr, false);
      if (j.is_object()) {
        if (j.contains("release")) f.running[host] = j["release"].get<std::string>();
        if (j.contains("failed_seq")) f.failed_seq[host] = j["failed_seq"].get<std::uint64_t>();
        if (j.contains("flags_seq")) f.flags_seq[host] = j["flags_seq"].get<std::uint64_t>();
        if (j.contains("traffic") && j["traffic"].is_number_integer()) {
          f.traffic[host] = j["traffic"].get<int>();
          if (j.value("preview", false)) f.previewed.insert(host);
        }
      }
      DROVER_ASSIGN(more, cursor->next());
    }
  }
  DROVER_ASSIGN(auto cursor, txn.cursor(samples_));
  const std::string prefix = service + '/';
  DROVER_ASSIGN(bool more,
                cursor->seek(seq_key(
                    service, static_cast<std::uint64_t>(std::max<std::int64_t>(since_ms, 0)))));
  while (more && cursor->key().substr(0, prefix.size()) == prefix) {
    const std::string_view key = cursor->key(), bytes = cursor->value();
    // A sample decoded before from the same key and bytes is not parsed
    // again (the lock is held per sample, never for the scan).
    std::optional<FleetSample> known;
    if (reuse_decoded) {
      std::lock_guard lock(decoded_mu_);
      auto s = decoded_.find(service);
      if (s != decoded_.end()) {
        auto hit = s->second.find(key);
        if (hit != s->second.end() && hit->second.bytes == bytes) known = hit->second.sample;
      }
    }
    if (known) {
      f.samples.push_back(std::move(*known));
    } else {
      json j = json::parse(bytes, nullptr, false);
      if (j.is_object()) {
        f.samples.push_back(
            {j.value("host", ""), j.value("release", ""), j.value("at", std::int64_t{0}),
             j.value("error_rate", 0.0), j.value("p99_ms", 0.0), j.value("saturation", 0.0),
             j.value("ok", false), j.value("requests", 0.0), j.value("other", false)});
        if (reuse_decoded) {
          std::lock_guard lock(decoded_mu_);
          decoded_[service].insert_or_assign(std::string(key),
                                             DecodedSample{std::string(bytes), f.samples.back()});
        }
      }
    }
    DROVER_ASSIGN(more, cursor->next());
  }
  if (reuse_decoded) {
    // Bounded: the newest samples stay (keys are in time order).
    std::lock_guard lock(decoded_mu_);
    auto& cached = decoded_[service];
    while (cached.size() > kDecodedPerService) cached.erase(cached.begin());
  }
  return f;
}

Result<std::vector<KvCoordinatorStore::HostRelease>> KvCoordinatorStore::host_releases(
    const std::string& service, const std::string& host, std::int64_t since_ms) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_read());
  DROVER_ASSIGN(auto cursor, txn_owner->cursor(host_releases_));
  const std::string prefix = releases_prefix(service, host);
  std::vector<HostRelease> out;
  DROVER_ASSIGN(bool more, cursor->seek(seq_key(
                               prefix.substr(0, prefix.size() - 1),
                               static_cast<std::uint64_t>(std::max<std::int64_t>(since_ms, 0)))));
  while (more && cursor->key().substr(0, prefix.size()) == prefix) {
    out.push_back({since_of(cursor->key()), std::string(cursor->value())});
    DROVER_ASSIGN(more, cursor->next());
  }
  return out;
}

Result<std::optional<KvCoordinatorStore::HostRelease>> KvCoordinatorStore::host_release_at(
    const std::string& service, const std::string& host, std::int64_t at_ms) {
  if (at_ms < 0) return std::optional<HostRelease>();
  DROVER_ASSIGN(auto txn_owner, kv_->begin_read());
  DROVER_ASSIGN(auto cursor, txn_owner->cursor(host_releases_));
  const std::string prefix = releases_prefix(service, host);
  std::optional<HostRelease> found;
  // At most kMaxHostReleases keys per host and service: read forward.
  DROVER_ASSIGN(bool more, cursor->seek(prefix));
  while (more && cursor->key().substr(0, prefix.size()) == prefix) {
    const std::int64_t since = since_of(cursor->key());
    if (since > at_ms) break;
    found = HostRelease{since, std::string(cursor->value())};
    DROVER_ASSIGN(more, cursor->next());
  }
  return found;
}

Status KvCoordinatorStore::add_samples(const std::string& service,
                                       const std::vector<FleetSample>& samples) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
  kv::Txn& txn = *txn_owner;
  for (const auto& s : samples) DROVER_TRY(put_sample(txn, samples_, service, s, "webhook"));
  return txn.commit();
}

Result<bool> KvCoordinatorStore::add_webhook_samples(const std::string& service,
                                                     const std::vector<FleetSample>& samples,
                                                     const std::string& delivery,
                                                     std::int64_t now_ms,
                                                     std::int64_t forget_before_ms) {
  DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
  kv::Txn& txn = *txn_owner;
  {
    // Forget the oldest deliveries first: the table holds a window's worth.
    std::vector<std::string> old;
    DROVER_ASSIGN(auto cursor, txn.cursor(deliveries_by_time_));
    DROVER_ASSIGN(bool more, cursor->first());
    const std::string bound =
        seq_key("", static_cast<std::uint64_t>(std::max<std::int64_t>(forget_before_ms, 0)));
    while (more && cursor->key() < bound) {
      old.emplace_back(cursor->key());
      DROVER_ASSIGN(more, cursor->next());
    }
    cursor.reset();
    for (const auto& k : old) {
      DROVER_TRY(txn.erase(deliveries_by_time_, k));
      DROVER_TRY(txn.erase(deliveries_, k.substr(bound.size() + 1)));
    }
  }
  DROVER_ASSIGN(bool fresh, txn.put_new(deliveries_, delivery, std::to_string(now_ms)));
  if (!fresh) return false;
  std::string by_time =
      seq_key("", static_cast<std::uint64_t>(std::max<std::int64_t>(now_ms, 0))) + '/' + delivery;
  DROVER_TRY(txn.put(deliveries_by_time_, by_time, delivery));
  for (const auto& s : samples) DROVER_TRY(put_sample(txn, samples_, service, s, "webhook"));
  DROVER_TRY(txn.commit());
  return true;
}

Result<std::size_t> KvCoordinatorStore::prune_samples(std::int64_t before_ms) {
  // Keys are <service>/<at be64>/<host>[/<source>]: each service's old
  // samples are one range from its first key to <service>/<before>, found by
  // seeking, read by key alone (no value is parsed), and deleted at most
  // kChunk per transaction, so the writer lock is never held for long.
  constexpr std::size_t kChunk = 10'000;
  const std::uint64_t before = static_cast<std::uint64_t>(std::max<std::int64_t>(before_ms, 0));
  std::size_t total = 0;
  std::string from;  // where the next chunk's scan starts
  for (;;) {
    DROVER_ASSIGN(auto txn_owner, kv_->begin_write());
    kv::Txn& txn = *txn_owner;
    std::vector<std::string> doomed;
    std::map<std::string, std::uint64_t> per_host;
    bool done = false;
    {
      DROVER_ASSIGN(auto cursor, txn.cursor(samples_));
      DROVER_ASSIGN(bool more, from.empty() ? cursor->first() : cursor->seek(from));
      while (more && doomed.size() < kChunk) {
        const std::string_view key = cursor->key();
        const std::size_t service_end = key.find('/');
        if (service_end == std::string_view::npos || key.size() < service_end + 9) {
          DROVER_ASSIGN(more, cursor->next());  // not a sample key: left alone
          continue;
        }
        const std::string service(key.substr(0, service_end));
        const std::string bound = seq_key(service, before);
        if (key >= bound) {
          // This service is done: on to the next one ('0' follows '/').
          DROVER_ASSIGN(more, cursor->seek(service + '0'));
          continue;
        }
        doomed.emplace_back(key);
        // An agent's own samples are counted in its budget (those of its
        // other slot too); the webhook's are not.
        const std::size_t host_at = service_end + 10;
        if (host_at <= key.size()) {
          const std::string_view rest = key.substr(host_at);
          const std::size_t slash = rest.find('/');
          if (slash == std::string_view::npos || rest.substr(slash + 1) == "other") {
            ++per_host[std::string(rest.substr(0, slash))];
          }
        }
        DROVER_ASSIGN(more, cursor->next());
      }
      done = !more;
      if (more) from = std::string(cursor->key());
    }
    for (const auto& k : doomed) DROVER_TRY(txn.erase(samples_, k));
    for (const auto& [host, n] : per_host) {
      DROVER_ASSIGN(auto v, txn.get(host_seen_, host));
      if (!v) continue;
      Seen seen = parse_seen(v);
      seen.stored_samples = seen.stored_samples > n ? seen.stored_samples - n : 0;
      if (seen.stored_samples < limits_.samples_per_host) seen.throttled = false;
      DROVER_TRY(txn.put(host_seen_, host, encode_seen(seen)));
    }
    DROVER_TRY(txn.commit());
    total += doomed.size();
    if (done || doomed.empty()) break;
  }
  // Pruned samples leave the decoded ones too.
  std::lock_guard lock(decoded_mu_);
  for (auto it = decoded_.begin(); it != decoded_.end();) {
    auto& cached = it->second;
    cached.erase(cached.begin(), cached.lower_bound(seq_key(it->first, before)));
    it = cached.empty() ? decoded_.erase(it) : std::next(it);
  }
  return total;
}

}  // namespace drover::coordinator
