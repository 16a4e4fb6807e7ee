// The notifier (docs/API.md, "Notifications"): follows the audit log, turns
// each record a destination asks for into a pending delivery in a durable
// outbox (written with its position in the log, in one transaction), and
// sends each destination's oldest pending delivery until it answers 2xx,
// with back-off, until the give-up time. At least once: a delivery is erased
// only after its answer, so a coordinator killed in between sends it again,
// under the same event id.
//
// Not thread-safe: one thread calls collect() and deliver() (the
// coordinator's notify thread, or a test in virtual time). The API writes
// destinations and the allow-list through the store meanwhile; the notifier
// reads them again on each pass.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/notify/notify.hpp"
#include "coordinator/store/coordinator_store.hpp"
#include "core/base/result.hpp"
#include "core/log/log.hpp"
#include "core/world/clock.hpp"

namespace drover::coordinator::notify {

// Settings keys (docs/FORMATS.md, "Notifications").
inline constexpr std::string_view kAllowKey = "notify/allow";
inline constexpr std::string_view kDestPrefix = "notify/dest/";
inline constexpr std::string_view kOutPrefix = "notify/out/";
inline constexpr std::string_view kCursorKey = "notify/cursor";

// Deliveries sent at once (to different destinations) in one pass.
inline constexpr std::size_t kMaxParallelSends = 16;

struct NotifierOptions {
  std::int64_t give_up_ms = 24 * 3600 * 1000;
  std::size_t records_per_pass = 256;
};

using Headers = std::vector<std::pair<std::string, std::string>>;
// One attempt: the HTTP status the destination answered, or why there was none.
using Send = std::function<Result<int>(const std::string& url, const std::string& body,
                                       const Headers& headers)>;
// Over HTTP(S), never following a redirect.
Send http_send(std::chrono::milliseconds timeout, const std::string& ca_file);

// The pipeline an audit record is about and what its notification adds
// (nullopt: a record of no pipeline, which no destination hears about).
using Resolve = std::function<Result<std::optional<EventContext>>(const AuditRecord&)>;

// Stored forms, for the API.
Result<std::vector<AllowEntry>> read_allow(CoordinatorStore& store);
Result<std::vector<Destination>> read_destinations(CoordinatorStore& store,
                                                   const std::string& pipeline = "");
std::string dest_key(const std::string& pipeline, const std::string& name);
std::string out_prefix(const std::string& pipeline, const std::string& name);

struct Pending {
  std::string pipeline, name;
  std::string event_id = {}, kind = {}, last_error = {};
  std::uint32_t attempts = 0;
  std::int64_t enqueued_ms = 0, next_ms = 0;
};
Result<std::vector<Pending>> read_outbox(CoordinatorStore& store, std::size_t limit);

class Notifier {
 public:
  Notifier(CoordinatorStore& store, Resolve resolve, Send send, const Clock& clock, Logger& log,
           NotifierOptions options = {});

  // Records appended since the last pass, turned into pending deliveries (at
  // most records_per_pass per call). The first pass of a state without a
  // cursor starts at the log's head. Returns how many deliveries it added.
  Result<std::size_t> collect();
  // Tries each destination's oldest pending delivery that is due (nothing
  // is read before next_due_ms()). Returns how many were answered 2xx.
  Result<std::size_t> deliver();
  // Whether the last collect() read the log to its end (a page short of
  // records_per_pass).
  bool caught_up() const { return caught_up_; }
  // When the next pending delivery is due (unix ms; INT64_MAX: none).
  std::int64_t next_due_ms() const { return next_due_ms_; }

 private:
  std::int64_t now_ms() const;
  // The audit record of a delivery dropped for good.
  AuditRecord dropped(const Pending& p, const std::string& why) const;
  // Drops a pending delivery, and audits it, in one transaction.
  Status drop(const std::string& key, const Pending& p, const std::string& why);

  CoordinatorStore& store_;
  Resolve resolve_;
  Send send_;
  const Clock& clock_;
  Logger& log_;
  NotifierOptions options_;
  // 0: look at the outbox on the first pass (what a stopped coordinator left).
  std::int64_t next_due_ms_ = 0;
  bool caught_up_ = true;
};

}  // namespace drover::coordinator::notify
