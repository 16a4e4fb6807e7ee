#include "core/tz/tz.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <iterator>
#include <limits>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

namespace drover::tz {
namespace detail {

// A day of the year that a POSIX TZ rule names, and the local time of the
// change on it.
struct RuleDate {
  enum class Kind { julian_no_leap, zero_based, month_week_day };
  Kind kind = Kind::month_week_day;
  int day = 0;                 // Jn: 1-365, Feb 29 never counted; n: 0-365
  int month = 0;               // Mm.w.d: 1-12
  int week = 0;                // 1-5, 5 = the last in the month
  int weekday = 0;             // 0 = Sunday
  std::int64_t time_s = 7200;  // -167h to 167h (RFC 8536 3.3.1)
};

// The footer's POSIX TZ string: standard time, or standard and daylight
// saving time with the days they begin.
struct PosixRule {
  std::int64_t std_utoff = 0;  // seconds east of UTC
  bool has_dst = false;
  std::int64_t dst_utoff = 0;
  RuleDate start;  // into daylight saving time, in standard local time
  RuleDate end;    // back to standard time, in daylight saving local time
};

struct Transition {
  std::int64_t at = 0;  // Unix seconds
  std::int64_t utoff = 0;
};

struct ZoneData {
  std::vector<Transition> transitions;  // strictly ascending
  std::int64_t initial_utoff = 0;       // before the first transition
  std::optional<PosixRule> footer;      // on and after the last transition
};

}  // namespace detail

namespace {

using detail::PosixRule;
using detail::RuleDate;
using detail::Transition;
using detail::ZoneData;

constexpr std::int64_t kDay = 86400;
// The Gregorian calendar repeats every 400 years, weekdays included
// (146097 days are 20871 weeks).
constexpr std::int64_t kCycle = 146097 * kDay;
// RFC 8536 3.2: offsets of local time types "SHOULD" lie in this range.
constexpr std::int64_t kMinUtoff = -89999;
constexpr std::int64_t kMaxUtoff = 93599;
constexpr std::size_t kHeaderBytes = 44;

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if (a % b != 0 && ((a < 0) != (b < 0))) --q;
  return q;
}

std::int64_t floor_mod(std::int64_t a, std::int64_t b) {
  const std::int64_t r = a % b;  // not a - floor_div(a, b) * b: that overflows near INT64_MIN
  return r != 0 && ((r < 0) != (b < 0)) ? r + b : r;
}

bool is_leap(std::int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
// days_from_civil).
std::int64_t days_from_civil(std::int64_t y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = floor_div(y, 400);
  const std::int64_t yoe = y - era * 400;
  const std::int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// The year of a day counted from 1970-01-01 (civil_from_days).
std::int64_t year_of_days(std::int64_t days) {
  const std::int64_t z = days + 719468;
  const std::int64_t era = floor_div(z, 146097);
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  return yoe + era * 400 + (mp >= 10 ? 1 : 0);
}

int weekday_of_days(std::int64_t days) {  // 0 = Sunday; 1970-01-01 was a Thursday
  return static_cast<int>(floor_mod(days + 4, 7));
}

// The local date a rule names in year y, as days since 1970-01-01.
std::int64_t rule_day(const RuleDate& r, std::int64_t y) {
  const std::int64_t jan1 = days_from_civil(y, 1, 1);
  switch (r.kind) {
    case RuleDate::Kind::julian_no_leap:
      return jan1 + r.day - 1 + (is_leap(y) && r.day >= 60 ? 1 : 0);
    case RuleDate::Kind::zero_based: return jan1 + r.day;
    case RuleDate::Kind::month_week_day: {
      const std::int64_t first = days_from_civil(y, r.month, 1);
      const std::int64_t next =
          r.month == 12 ? days_from_civil(y + 1, 1, 1) : days_from_civil(y, r.month + 1, 1);
      std::int64_t day = first + (r.weekday - weekday_of_days(first) + 7) % 7 + 7 * (r.week - 1);
      while (day >= next) day -= 7;  // week 5: the last such weekday
      return day;
    }
  }
  return jan1;
}

std::int64_t rule_offset(const PosixRule& rule, std::int64_t unix_s) {
  if (!rule.has_dst) return rule.std_utoff;
  // The same instant of the calendar in a fixed 400-year span: the same
  // answer, and no overflow near the ends of int64.
  const std::int64_t t = floor_mod(unix_s, kCycle) + kCycle;
  const std::int64_t year = year_of_days(floor_div(t, kDay));
  // A change lies at most 9 days outside its own year (day 365 of a common
  // year is Jan 1 of the next, hours reach 167, offsets 26), so the last
  // change at or before t is one of the years year-2 .. year+1, whichever
  // hemisphere and however the rule's days fall.
  struct Change {
    std::int64_t at = 0;
    bool dst = false;
  };
  std::array<Change, 8> changes;
  for (int i = 0; i < 4; ++i) {
    const std::int64_t y = year - 2 + i;
    changes[2 * i] = {rule_day(rule.start, y) * kDay + rule.start.time_s - rule.std_utoff, true};
    changes[2 * i + 1] = {rule_day(rule.end, y) * kDay + rule.end.time_s - rule.dst_utoff, false};
  }
  // At equal instants the start of daylight saving time wins, so that
  // "EST5EDT,0/0,J365/25" is daylight saving time all year (RFC 8536 3.3.1).
  std::sort(changes.begin(), changes.end(), [](const Change& a, const Change& b) {
    return a.at != b.at ? a.at < b.at : a.dst < b.dst;
  });
  bool dst = false;
  for (const Change& c : changes) {
    if (c.at <= t) dst = c.dst;
  }
  return dst ? rule.dst_utoff : rule.std_utoff;
}

// Untrusted text as it may appear in a message: printable ASCII, clipped.
std::string quoted(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, 64)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (text.size() > 64) out += "...";
  return "'" + out + "'";
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// The POSIX TZ string of a footer, as RFC 8536 3.3 extends it.
class TzStringReader {
 public:
  explicit TzStringReader(std::string_view text) : s_(text) {}

  // "" when the whole string is read, or what is wrong with it.
  std::string read(PosixRule& rule) {
    if (!name()) return "the standard time's name is missing or malformed";
    std::int64_t offset = 0;
    if (!hms(24, offset)) return "the standard time's offset is missing or malformed";
    rule.std_utoff = -offset;  // POSIX counts west of UTC
    if (s_.empty()) return "";
    if (!name()) return "the daylight saving time's name is malformed";
    rule.has_dst = true;
    rule.dst_utoff = rule.std_utoff + 3600;
    if (!s_.empty() && s_[0] != ',') {
      if (!hms(24, offset)) return "the daylight saving time's offset is malformed";
      rule.dst_utoff = -offset;
    }
    if (s_.empty()) return "daylight saving time without a rule for when it starts and ends";
    if (!take(',') || !date(rule.start)) return "the start of daylight saving time is malformed";
    if (!take(',') || !date(rule.end)) return "the end of daylight saving time is malformed";
    if (!s_.empty()) return "it goes on after the end of daylight saving time";
    return "";
  }

 private:
  bool take(char c) {
    if (s_.empty() || s_[0] != c) return false;
    s_.remove_prefix(1);
    return true;
  }

  // Up to max_digits digits, at least one.
  bool number(std::size_t max_digits, std::int64_t& out) {
    std::size_t i = 0;
    out = 0;
    while (i < s_.size() && i < max_digits && is_digit(s_[i])) out = out * 10 + (s_[i++] - '0');
    s_.remove_prefix(i);
    return i > 0;
  }

  // An abbreviation: letters, or <letters, digits, '+' and '-'>.
  bool name() {
    std::size_t i = 0;
    if (take('<')) {
      while (i < s_.size() && (is_alpha(s_[i]) || is_digit(s_[i]) || s_[i] == '+' || s_[i] == '-'))
        ++i;
      if (i == 0 || i == s_.size() || s_[i] != '>') return false;
      s_.remove_prefix(i + 1);
      return true;
    }
    while (i < s_.size() && is_alpha(s_[i])) ++i;
    s_.remove_prefix(i);
    return i > 0;
  }

  // [+-]hh[:mm[:ss]] in seconds, hh at most max_hours.
  bool hms(std::int64_t max_hours, std::int64_t& out) {
    const bool negative = take('-');
    if (!negative) take('+');
    std::int64_t h = 0;
    std::int64_t m = 0;
    std::int64_t sec = 0;
    if (!number(3, h) || h > max_hours) return false;
    if (take(':')) {
      if (!number(2, m) || m > 59) return false;
      if (take(':') && (!number(2, sec) || sec > 59)) return false;
    }
    out = (negative ? -1 : 1) * (h * 3600 + m * 60 + sec);
    return true;
  }

  // Jn, n or Mm.w.d, then an optional /time.
  bool date(RuleDate& d) {
    std::int64_t n = 0;
    if (take('J')) {
      if (!number(3, n) || n < 1 || n > 365) return false;
      d.kind = RuleDate::Kind::julian_no_leap;
      d.day = static_cast<int>(n);
    } else if (take('M')) {
      std::int64_t w = 0;
      std::int64_t wd = 0;
      if (!number(2, n) || n < 1 || n > 12 || !take('.') || !number(1, w) || w < 1 || w > 5 ||
          !take('.') || !number(1, wd) || wd > 6)
        return false;
      d.kind = RuleDate::Kind::month_week_day;
      d.month = static_cast<int>(n);
      d.week = static_cast<int>(w);
      d.weekday = static_cast<int>(wd);
    } else {
      if (!number(3, n) || n > 365) return false;
      d.kind = RuleDate::Kind::zero_based;
      d.day = static_cast<int>(n);
    }
    if (take('/')) return hms(167, d.time_s);
    return true;
  }

  std::string_view s_;
};

Result<PosixRule> parse_footer(std::string_view text) {
  PosixRule rule;
  const std::string why = TzStringReader(text).read(rule);
  if (!why.empty()) {
    return make_error(Errc::corrupt,
                      "the footer's TZ string " + quoted(text) + " is malformed: " + why);
  }
  return rule;
}

std::uint32_t be32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

std::int64_t be32_signed(const unsigned char* p) {
  return static_cast<std::int32_t>(be32(p));
}

std::int64_t be64_signed(const unsigned char* p) {
  return static_cast<std::int64_t>((std::uint64_t{be32(p)} << 32) | be32(p + 4));
}

struct Header {
  char version = 0;  // 0 for version 1, else '2', '3' or '4'
  std::uint32_t isutcnt = 0;
  std::uint32_t isstdcnt = 0;
  std::uint32_t leapcnt = 0;
  std::uint32_t timecnt = 0;
  std::uint32_t typecnt = 0;
  std::uint32_t charcnt = 0;
};

Error corrupt(std::string what) {
  return make_error(Errc::corrupt, std::move(what));
}

Result<Header> read_header(std::string_view bytes, std::size_t pos) {
  if (bytes.size() - pos < kHeaderBytes) {
    return corrupt("a TZif header at byte " + std::to_string(pos) + " is cut short");
  }
  if (bytes.substr(pos, 4) != "TZif") {
    return corrupt("no TZif header at byte " + std::to_string(pos) + " (not a TZif file)");
  }
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + pos);
  Header h;
  h.version = static_cast<char>(p[4]);
  if (h.version != 0 && (h.version < '2' || h.version > '4')) {
    return make_error(Errc::unsupported, "TZif version " + quoted(bytes.substr(pos + 4, 1)) +
                                             " is not one this build reads (1 to 4)");
  }
  h.isutcnt = be32(p + 20);
  h.isstdcnt = be32(p + 24);
  h.leapcnt = be32(p + 28);
  h.timecnt = be32(p + 32);
  h.typecnt = be32(p + 36);
  h.charcnt = be32(p + 40);
  return h;
}

std::uint64_t block_bytes(const Header& h, std::uint64_t time_bytes) {
  return std::uint64_t{h.timecnt} * (time_bytes + 1) + std::uint64_t{h.typecnt} * 6 + h.charcnt +
         std::uint64_t{h.leapcnt} * (time_bytes + 4) + h.isstdcnt + h.isutcnt;
}

// The data block after header h at pos, with times of time_bytes (4 or 8);
// advances pos past it.
Result<ZoneData> read_block(std::string_view bytes, std::size_t& pos, const Header& h,
                            std::size_t time_bytes) {
  if (h.typecnt == 0 || h.typecnt > 256) {
    return corrupt(std::to_string(h.typecnt) + " local time types (1 to 256 are possible)");
  }
  if (h.charcnt == 0) return corrupt("no time zone designations");
  if ((h.isutcnt != 0 && h.isutcnt != h.typecnt) || (h.isstdcnt != 0 && h.isstdcnt != h.typecnt)) {
    return corrupt("UT/standard indicator counts differ from the count of local time types");
  }
  const std::uint64_t need = block_bytes(h, time_bytes);
  if (need > bytes.size() - pos) {
    return corrupt("the header's counts need " + std::to_string(need) + " bytes of data, " +
                   std::to_string(bytes.size() - pos) + " are left");
  }
  if (h.leapcnt != 0) {
    return make_error(Errc::unsupported,
                      "it has leap-second records (a \"right/\" zone), which Unix time does not "
                      "count; use the zone of the same name outside \"right/\"");
  }
  const auto* times = reinterpret_cast<const unsigned char*>(bytes.data() + pos);
  const unsigned char* indexes = times + std::size_t{h.timecnt} * time_bytes;
  const unsigned char* types = indexes + h.timecnt;
  const unsigned char* indicators = types + std::size_t{h.typecnt} * 6 + h.charcnt;

  std::vector<std::int64_t> utoffs(h.typecnt);
  std::optional<std::int64_t> first_standard;
  for (std::size_t i = 0; i < h.typecnt; ++i) {
    const unsigned char* t = types + i * 6;
    const std::int64_t utoff = be32_signed(t);
    if (utoff < kMinUtoff || utoff > kMaxUtoff) {
      return corrupt("local time type " + std::to_string(i) + " has an offset of " +
                     std::to_string(utoff) + " s (" + std::to_string(kMinUtoff) + " to " +
                     std::to_string(kMaxUtoff) + " are possible)");
    }
    if (t[4] > 1) return corrupt("local time type " + std::to_string(i) + " has a bad isdst");
    if (t[5] >= h.charcnt) {
      return corrupt("local time type " + std::to_string(i) + " names a designation past the end");
    }
    utoffs[i] = utoff;
    if (t[4] == 0 && !first_standard) first_standard = utoff;
  }
  for (std::size_t i = 0; i < std::size_t{h.isstdcnt} + h.isutcnt; ++i) {
    if (indicators[i] > 1) return corrupt("a UT/standard indicator is neither 0 nor 1");
  }

  ZoneData data;
  data.initial_utoff = first_standard.value_or(utoffs[0]);
  data.transitions.reserve(h.timecnt);
  for (std::size_t i = 0; i < h.timecnt; ++i) {
    const unsigned char* p = times + i * time_bytes;
    const std::int64_t at = time_bytes == 4 ? be32_signed(p) : be64_signed(p);
    if (i > 0 && at <= data.transitions.back().at) {
      return corrupt("transition " + std::to_string(i) + " is not later than the one before");
    }
    if (indexes[i] >= h.typecnt) {
      return corrupt("transition " + std::to_string(i) + " names local time type " +
                     std::to_string(indexes[i]) + " of " + std::to_string(h.typecnt));
    }
    data.transitions.push_back({at, utoffs[indexes[i]]});
  }
  pos += need;
  return data;
}

// RFC 8536: header, data (32-bit times); for version 2 and later a second
// header, data (64-bit times) and the footer "\n<TZ string>\n".
Result<ZoneData> parse_tzif(std::string_view bytes) {
  std::size_t pos = 0;
  DROVER_ASSIGN(const Header first, read_header(bytes, pos));
  pos += kHeaderBytes;
  if (first.version == 0) {
    DROVER_ASSIGN(ZoneData data, read_block(bytes, pos, first, 4));
    if (pos != bytes.size()) {
      return corrupt(std::to_string(bytes.size() - pos) + " bytes follow the version 1 data");
    }
    return data;
  }
  // The version 1 data of a later version is only skipped (RFC 8536 4).
  const std::uint64_t skip = block_bytes(first, 4);
  if (skip > bytes.size() - pos) {
    return corrupt("the header's counts need " + std::to_string(skip) +
                   " bytes of version 1 data, " + std::to_string(bytes.size() - pos) + " are left");
  }
  pos += skip;
  DROVER_ASSIGN(const Header second, read_header(bytes, pos));
  pos += kHeaderBytes;
  DROVER_ASSIGN(ZoneData data, read_block(bytes, pos, second, 8));
  if (pos == bytes.size() || bytes[pos] != '\n') return corrupt("the footer is missing");
  const std::size_t end = bytes.find('\n', pos + 1);
  if (end == std::string_view::npos) return corrupt("the footer has no closing newline");
  if (end + 1 != bytes.size()) {
    return corrupt(std::to_string(bytes.size() - end - 1) + " bytes follow the footer");
  }
  const std::string_view footer = bytes.substr(pos + 1, end - pos - 1);
  if (!footer.empty()) {
    DROVER_ASSIGN(data.footer, parse_footer(footer));
  }
  return data;
}

Status check_name(std::string_view name) {
  std::string why;
  if (name.empty()) {
    why = "it is empty";
  } else if (name.size() > kMaxNameBytes) {
    why = "it is longer than " + std::to_string(kMaxNameBytes) + " characters";
  } else {
    std::size_t start = 0;
    while (why.empty()) {
      const std::size_t slash = std::min(name.find('/', start), name.size());
      const std::string_view segment = name.substr(start, slash - start);
      if (segment.empty()) {
        why = "it has an empty segment (a leading, trailing or doubled '/')";
      } else if (segment == "..") {
        why = "it has a \"..\" segment";
      } else {
        for (char c : segment) {
          if (!is_alpha(c) && !is_digit(c) && c != '_' && c != '-' && c != '+') {
            why = "it has a character other than letters, digits, '_', '-', '+' and '/'";
            break;
          }
        }
      }
      if (slash == name.size()) break;
      start = slash + 1;
    }
  }
  if (why.empty()) return Ok{};
  return make_error(Errc::invalid_argument,
                    "time zone name " + quoted(name) + " is not an IANA zone name: " + why);
}

class Descriptor {
 public:
  explicit Descriptor(int fd) : fd_(fd) {}
  ~Descriptor() { ::close(fd_); }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string system_message(int error) {
  return std::error_code(error, std::generic_category()).message();
}

Result<std::string> read_zone_file(std::string_view name, const std::filesystem::path& path) {
  const std::string unknown = "unknown time zone " + quoted(name) + " (no file " + path.string() +
                              "; is the tzdata package installed?)";
  // O_NONBLOCK: opening a FIFO put in the directory must not hang.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT || error == ENOTDIR) return make_error(Errc::not_found, unknown);
    return make_error(Errc::io, "time zone " + quoted(name) + ": cannot open " + path.string() +
                                    ": " + system_message(error));
  }
  const Descriptor file(fd);
  struct stat st {};
  if (::fstat(file.get(), &st) != 0) {
    return make_error(Errc::io, "time zone " + quoted(name) + ": cannot stat " + path.string() +
                                    ": " + system_message(errno));
  }
  // A directory ("Europe") or a device names no zone.
  if (!S_ISREG(st.st_mode)) return make_error(Errc::not_found, unknown);
  const std::string too_big = "time zone " + quoted(name) + ": " + path.string() +
                              " is larger than " + std::to_string(kMaxFileBytes) +
                              " bytes, which no TZif file needs";
  if (static_cast<std::uint64_t>(st.st_size) > kMaxFileBytes) return corrupt(too_big);
  std::string bytes;
  char chunk[16384];
  for (;;) {
    const ssize_t n = ::read(file.get(), chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return make_error(Errc::io, "time zone " + quoted(name) + ": cannot read " + path.string() +
                                      ": " + system_message(errno));
    }
    if (n == 0) break;
    bytes.append(chunk, static_cast<std::size_t>(n));
    if (bytes.size() > kMaxFileBytes) return corrupt(too_big);  // it grew since fstat
  }
  return bytes;
}

}  // namespace

Zone::Zone(std::string name, std::shared_ptr<const detail::ZoneData> data)
    : name_(std::move(name)), data_(std::move(data)) {}

Result<Zone> Zone::load(std::string_view name, const std::filesystem::path& dir) {
  DROVER_TRY(check_name(name));
  if (name == "UTC") return Zone("UTC", std::make_shared<const ZoneData>());
  const std::filesystem::path path = dir / std::string(name);
  DROVER_ASSIGN(const std::string bytes, read_zone_file(name, path));
  auto data = parse_tzif(bytes);
  if (!data.ok()) {
    return std::move(data).error().context("time zone " + quoted(name) + " (" + path.string() +
                                           ")");
  }
  return Zone(std::string(name), std::make_shared<const ZoneData>(std::move(data).value()));
}

std::int64_t Zone::offset_s(std::int64_t unix_s) const {
  const ZoneData& d = *data_;
  const std::vector<Transition>& tr = d.transitions;
  // RFC 8536 3.2: without transitions the footer, if any, holds throughout.
  if (tr.empty()) return d.footer ? rule_offset(*d.footer, unix_s) : d.initial_utoff;
  if (unix_s < tr.front().at) return d.initial_utoff;
  if (unix_s >= tr.back().at && d.footer) return rule_offset(*d.footer, unix_s);
  const auto after = std::upper_bound(tr.begin(), tr.end(), unix_s,
                                      [](std::int64_t t, const Transition& x) { return t < x.at; });
  return std::prev(after)->utoff;
}

std::int64_t Zone::local_s(std::int64_t unix_s) const {
  const std::int64_t offset = offset_s(unix_s);
  std::int64_t local = 0;
  if (__builtin_add_overflow(unix_s, offset, &local)) {
    return offset > 0 ? std::numeric_limits<std::int64_t>::max()
                      : std::numeric_limits<std::int64_t>::min();
  }
  return local;
}

int minute_of_week(std::int64_t local_s) {
  const std::int64_t days = floor_div(local_s, kDay);
  const std::int64_t monday_based = floor_mod(days + 3, 7);  // 1970-01-01: Thursday = 3
  return static_cast<int>(monday_based * 1440 + floor_mod(local_s, kDay) / 60);
}

}  // namespace drover::tz
