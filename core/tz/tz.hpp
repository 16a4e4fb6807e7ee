// The UTC offset of an IANA time zone at an instant, read from the zone's
// TZif file (RFC 8536) without the C library's process-wide TZ state (no
// setenv, tzset or localtime), so any thread may ask about any zone. Weekly
// freeze windows of pipelines ("Fri 16:00 to Mon 08:00 in Europe/Berlin")
// are decided with it.
//
// A Zone is immutable once loaded: its const methods may be called from any
// thread, and copies share the parsed data. Loading reads one file below
// `dir` (Debian's tzdata by default) and keeps nothing open.
//
// What is read: TZif versions 1 to 4, the 64-bit data of version 2 and
// later, the transitions and local time types, and the POSIX TZ string of
// the footer, which gives the offset after the last transition (RFC 8536's
// extensions included: transition hours from -167 to 167). Before the first
// transition the first standard-time type holds (as glibc does). Files with
// leap-second records (tzdata's "right/" zones) are refused: their times do
// not count like Unix time. Every count is checked against the file's size,
// and a file over kMaxFileBytes is refused unread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "core/base/result.hpp"

namespace drover::tz {

inline constexpr std::size_t kMaxFileBytes = 1 << 20;
inline constexpr std::size_t kMaxNameBytes = 64;

namespace detail {
struct ZoneData;  // transitions, types and the footer's rule (tz.cpp)
}

class Zone {
 public:
  // Loads the zone `name` from dir/name. "UTC" is built in and needs no file.
  // Errors: invalid_argument when name is not IANA-like (segments of letters,
  // digits, '_', '-' and '+' joined by '/', at most kMaxNameBytes: no "..",
  // no leading '/', no empty segment); not_found for a zone without a file;
  // corrupt for a malformed file or one over kMaxFileBytes; unsupported for
  // an unknown TZif version or leap-second records; io when the file cannot
  // be read.
  static Result<Zone> load(std::string_view name,
                           const std::filesystem::path& dir = "/usr/share/zoneinfo");

  // Seconds east of UTC in effect at unix_s (seconds since 1970-01-01 UTC).
  std::int64_t offset_s(std::int64_t unix_s) const;
  // unix_s + offset_s(unix_s): the local wall clock, counted like Unix time
  // (saturates at the limits of int64).
  std::int64_t local_s(std::int64_t unix_s) const;

  const std::string& name() const { return name_; }

 private:
  Zone(std::string name, std::shared_ptr<const detail::ZoneData> data);

  std::string name_;
  std::shared_ptr<const detail::ZoneData> data_;
};

// Minutes since Monday 00:00 of the week containing local_s (a local time as
// local_s gives it): 0 to 10079. 1970-01-01 was a Thursday.
int minute_of_week(std::int64_t local_s);

}  // namespace drover::tz
