// Notifications (docs/API.md, "Notifications"; docs/FORMATS.md,
// "Notifications"): which audit records people hear about, the destinations a
// pipeline names and the admin's allow-list they must match, the body and
// signature of one delivery, and the retry schedule. Pure: the notifier
// (notifier.hpp) keeps the outbox and sends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/audit/audit_log.hpp"
#include "core/base/result.hpp"

namespace drover::coordinator::notify {

inline constexpr std::string_view kBodyFormat = "drover.notification.v1";
inline constexpr std::size_t kMaxDestinationsPerPipeline = 8;
inline constexpr std::size_t kMaxAllowEntries = 64;
inline constexpr std::size_t kMaxUrlBytes = 2048;
inline constexpr std::size_t kMaxPendingPerDestination = 1000;
inline constexpr std::int64_t kFirstRetryMs = 1000;
inline constexpr std::int64_t kMaxRetryMs = 10 * 60 * 1000;

// The audit record kinds a destination may ask for, in the docs' order.
const std::vector<std::string>& kinds();
bool notifiable(std::string_view what);

// One allow-list entry: http[s]://HOST[:PORT][/PATH].
struct AllowEntry {
  bool tls = false;
  std::string host;  // lowercased
  std::uint16_t port = 0;
  std::string path;  // "" for any path
  std::string text;  // as written
};
Result<AllowEntry> parse_allow_entry(std::string_view text);
// Whether url (already checked by check_url) matches one of the entries.
bool allowed(std::string_view url, const std::vector<AllowEntry>& allow);

// A destination URL's form: http[s], a host, no user part, no fragment, at
// most kMaxUrlBytes. Errors name what is wrong.
Status check_url(std::string_view url);
// "https://hooks.example.com" (with the port when not the scheme's).
std::string origin_of(std::string_view url);

struct Destination {
  std::string pipeline, name, url, secret;
  std::string format = "drover";  // drover | slack
  std::vector<std::string> events;
  std::int64_t created_ms = 0;
  std::string created_by;

  bool wants(std::string_view kind) const;
};
// Checks a destination as a deployer gave it (name, url form, secret, format,
// events); the allow-list is checked apart.
Status check_destination(const Destination& d);
std::string encode_destination(const Destination& d);  // the stored record
Result<Destination> decode_destination(std::string_view bytes, const std::string& pipeline,
                                       const std::string& name);

// What the coordinator adds to a record for its notification.
struct EventContext {
  std::string pipeline;
  std::optional<std::vector<std::string>> may_approve;  // gate.waiting only
};

// The record's hash: the event id, the same on every attempt and destination.
std::string event_id(const AuditRecord& r);
// One line for people.
std::string text_of(const AuditRecord& r, const EventContext& c);
// The body of a delivery in format ("drover" or "slack").
std::string render(const AuditRecord& r, const EventContext& c, std::string_view format);
// X-Drover-Signature's value: "sha256=" + hex HMAC-SHA256 under secret of
// "drover-notification-v1" LF timestamp LF event id LF body.
std::string signature(std::string_view secret, std::string_view timestamp,
                      std::string_view event_id, std::string_view body);
// How long to wait after the attempts-th failed attempt (1, 2, 4 s … 10 min).
std::int64_t retry_after_ms(std::uint32_t attempts);

}  // namespace drover::coordinator::notify
