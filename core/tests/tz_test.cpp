// Time zones from TZif files (core/tz): known facts of Debian's tzdata, the
// C library's answers for the same files and TZ strings, and hostile names
// and files. The C library is asked through setenv("TZ") + tzset() +
// localtime_r, which is process-wide state: fine here only because each test
// runs single-threaded (core/tz itself never touches it).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/tz/tz.hpp"

namespace drover {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kHour = 3600;
constexpr std::int64_t k2100 = 4102444800;  // 2100-01-01 00:00 UTC

// The C library's offset for a TZ value; puts the old TZ back when done.
class LibcZone {
 public:
  explicit LibcZone(const std::string& tz) {
    if (const char* old = std::getenv("TZ")) saved_ = old;
    setenv("TZ", tz.c_str(), 1);
    tzset();  // localtime_r need not read TZ again by itself
  }
  ~LibcZone() {
    if (saved_) {
      setenv("TZ", saved_->c_str(), 1);
    } else {
      unsetenv("TZ");
    }
    tzset();
  }
  LibcZone(const LibcZone&) = delete;
  LibcZone& operator=(const LibcZone&) = delete;

  std::int64_t offset_s(std::int64_t unix_s) const {
    const std::time_t t = static_cast<std::time_t>(unix_s);
    std::tm out{};
    if (localtime_r(&t, &out) == nullptr) {
      ADD_FAILURE() << "localtime_r failed at " << unix_s;
      return 0;
    }
    return out.tm_gmtoff;
  }

 private:
  std::optional<std::string> saved_;
};

// A fresh directory under the system's temporary directory, removed at the end.
class ScratchDir {
 public:
  ScratchDir() {
    std::random_device seed;
    path_ = fs::temp_directory_path() /
            ("drover-tz-test-" + std::to_string(getpid()) + "-" + std::to_string(seed()));
    fs::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const fs::path& path() const { return path_; }

  void write(const std::string& name, const std::string& bytes) const {
    const fs::path file = path_ / name;
    fs::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(out.good()) << file;
  }

 private:
  fs::path path_;
};

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// A TZif file as RFC 8536 lays it out, built from its parts (version 0 is
// version 1: no second header, no footer).
struct TzifSpec {
  struct Type {
    std::int32_t utoff = 0;
    bool dst = false;
  };
  char version = '2';
  std::vector<std::int64_t> times;
  std::vector<std::uint8_t> indexes;
  std::vector<Type> types = {{0, false}};
  std::uint32_t leapcnt = 0;  // records written as zeros
  std::string footer = "UTC0";
};

void put32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}

void put64(std::string& out, std::uint64_t v) {
  put32(out, static_cast<std::uint32_t>(v >> 32));
  put32(out, static_cast<std::uint32_t>(v));
}

void put_block(std::string& out, const TzifSpec& spec, int time_bytes) {
  out += "TZif";
  out.push_back(spec.version);
  out.append(15, '\0');
  put32(out, 0);  // isutcnt
  put32(out, 0);  // isstdcnt
  put32(out, spec.leapcnt);
  put32(out, static_cast<std::uint32_t>(spec.times.size()));
  put32(out, static_cast<std::uint32_t>(spec.types.size()));
  put32(out, 4);  // charcnt: "ABC\0", which every type names
  for (std::int64_t t : spec.times) {
    if (time_bytes == 4) {
      put32(out, static_cast<std::uint32_t>(static_cast<std::int32_t>(t)));
    } else {
      put64(out, static_cast<std::uint64_t>(t));
    }
  }
  for (std::uint8_t i : spec.indexes) out.push_back(static_cast<char>(i));
  for (const auto& type : spec.types) {
    put32(out, static_cast<std::uint32_t>(type.utoff));
    out.push_back(type.dst ? 1 : 0);
    out.push_back(0);
  }
  out += std::string("ABC\0", 4);
  out.append(std::size_t{spec.leapcnt} * (time_bytes + 4), '\0');
}

std::string tzif(const TzifSpec& spec) {
  std::string out;
  put_block(out, spec, 4);
  if (spec.version == 0) return out;
  put_block(out, spec, 8);
  return out + "\n" + spec.footer + "\n";
}

// The header's count at `field` (0 isutcnt .. 5 charcnt) of the header at `at`.
void set_count(std::string& bytes, std::size_t at, int field, std::uint32_t value) {
  std::string v;
  put32(v, value);
  bytes.replace(at + 20 + 4 * static_cast<std::size_t>(field), 4, v);
}

constexpr int kTimecnt = 3;
constexpr int kTypecnt = 4;
constexpr int kCharcnt = 5;

testing::AssertionResult refused(const Result<tz::Zone>& zone, Errc code,
                                 const std::string& needle) {
  if (zone.ok()) return testing::AssertionFailure() << "loaded";
  if (zone.error().code != code) {
    return testing::AssertionFailure()
           << "error " << errc_name(zone.error().code) << ": " << zone.error().message;
  }
  if (zone.error().message.find(needle) == std::string::npos) {
    return testing::AssertionFailure()
           << "message without '" << needle << "': " << zone.error().message;
  }
  return testing::AssertionSuccess();
}

TEST(TimeZone, BerlinIsOneHourAheadInWinterAndTwoInSummerAndSwitchesOnTheSecond) {
  auto berlin = tz::Zone::load("Europe/Berlin");
  ASSERT_TRUE(berlin.ok()) << berlin.error().message;
  EXPECT_EQ(berlin->name(), "Europe/Berlin");
  EXPECT_EQ(berlin->offset_s(1768478400), kHour);      // 2026-01-15 12:00 UTC
  EXPECT_EQ(berlin->offset_s(1784116800), 2 * kHour);  // 2026-07-15 12:00 UTC
  EXPECT_EQ(berlin->local_s(1784116800), 1784116800 + 2 * kHour);

  const std::int64_t spring = 1774746000;  // 2026-03-29 01:00 UTC: 02:00 CET -> 03:00 CEST
  EXPECT_EQ(berlin->offset_s(spring - 1), kHour);
  EXPECT_EQ(berlin->offset_s(spring), 2 * kHour);
  EXPECT_EQ(berlin->offset_s(spring + 1), 2 * kHour);
  const std::int64_t autumn = 1792890000;  // 2026-10-25 01:00 UTC: 03:00 CEST -> 02:00 CET
  EXPECT_EQ(berlin->offset_s(autumn - 1), 2 * kHour);
  EXPECT_EQ(berlin->offset_s(autumn), kHour);
  EXPECT_EQ(berlin->offset_s(autumn + 1), kHour);
}

// Debian's files list transitions up to 2037; 2050 comes from the footer's
// POSIX TZ string.
TEST(TimeZone, YearsPastTheFilesTransitionsFollowTheFootersRule) {
  auto berlin = tz::Zone::load("Europe/Berlin");
  auto new_york = tz::Zone::load("America/New_York");
  auto sydney = tz::Zone::load("Australia/Sydney");
  ASSERT_TRUE(berlin.ok() && new_york.ok() && sydney.ok());
  const std::int64_t january = 2525860800;  // 2050-01-15 12:00 UTC
  const std::int64_t july = 2541499200;     // 2050-07-15 12:00 UTC
  EXPECT_EQ(berlin->offset_s(january), kHour);
  EXPECT_EQ(berlin->offset_s(july), 2 * kHour);
  EXPECT_EQ(new_york->offset_s(january), -5 * kHour);
  EXPECT_EQ(new_york->offset_s(july), -4 * kHour);
  EXPECT_EQ(sydney->offset_s(january), 11 * kHour);  // southern summer
  EXPECT_EQ(sydney->offset_s(july), 10 * kHour);

  const std::int64_t berlin_spring = 2531955600;  // 2050-03-27 01:00 UTC (last Sunday)
  EXPECT_EQ(berlin->offset_s(berlin_spring - 1), kHour);
  EXPECT_EQ(berlin->offset_s(berlin_spring), 2 * kHour);
  const std::int64_t new_york_spring = 2530767600;  // 2050-03-13 07:00 UTC (second Sunday)
  EXPECT_EQ(new_york->offset_s(new_york_spring - 1), -5 * kHour);
  EXPECT_EQ(new_york->offset_s(new_york_spring), -4 * kHour);
  const std::int64_t sydney_spring = 2548252800;  // 2050-10-01 16:00 UTC = Oct 2 02:00 AEST
  EXPECT_EQ(sydney->offset_s(sydney_spring - 1), 10 * kHour);
  EXPECT_EQ(sydney->offset_s(sydney_spring), 11 * kHour);
}

TEST(TimeZone, FixedOffsetsAndUtc) {
  auto kolkata = tz::Zone::load("Asia/Kolkata");
  ASSERT_TRUE(kolkata.ok()) << kolkata.error().message;
  for (std::int64_t t :
       {std::int64_t{315532800}, std::int64_t{1768478400}, std::int64_t{2541499200}})
    EXPECT_EQ(kolkata->offset_s(t), 5 * kHour + 30 * 60) << t;

  // "UTC" is built in: it loads from a directory without any zone.
  ScratchDir empty;
  auto utc = tz::Zone::load("UTC", empty.path());
  ASSERT_TRUE(utc.ok()) << utc.error().message;
  EXPECT_EQ(utc->name(), "UTC");
  EXPECT_EQ(utc->offset_s(1784116800), 0);
  EXPECT_EQ(utc->local_s(1784116800), 1784116800);
  auto etc_utc = tz::Zone::load("Etc/UTC");
  ASSERT_TRUE(etc_utc.ok()) << etc_utc.error().message;
  EXPECT_EQ(etc_utc->offset_s(1784116800), 0);
  auto gmt_plus_5 = tz::Zone::load("Etc/GMT+5");  // POSIX's sign: west of Greenwich
  ASSERT_TRUE(gmt_plus_5.ok()) << gmt_plus_5.error().message;
  EXPECT_EQ(gmt_plus_5->offset_s(1784116800), -5 * kHour);
}

TEST(TimeZone, LocalTimeSaturatesInsteadOfOverflowing) {
  auto tokyo = tz::Zone::load("Asia/Tokyo");
  auto new_york = tz::Zone::load("America/New_York");
  ASSERT_TRUE(tokyo.ok() && new_york.ok());
  EXPECT_EQ(tokyo->local_s(INT64_MAX), INT64_MAX);
  EXPECT_EQ(new_york->local_s(INT64_MIN), INT64_MIN);
  EXPECT_EQ(tokyo->offset_s(INT64_MAX), 9 * kHour);  // the footer, far ahead
}

// The calendar repeats every 400 years, weekdays included, so a rule's answer
// at the ends of int64 is its answer at the same point of a cycle near now
// (and computing it must not overflow: the sanitizer build checks).
TEST(TimeZone, RulesAnswerAtTheEndsOfInt64) {
  constexpr std::int64_t kCycle = std::int64_t{146097} * 86400;
  const std::int64_t max_in_cycle = INT64_MAX % kCycle;
  const std::int64_t min_in_cycle = INT64_MIN % kCycle + kCycle;
  auto berlin = tz::Zone::load("Europe/Berlin");
  ASSERT_TRUE(berlin.ok());
  {
    const LibcZone libc(":/usr/share/zoneinfo/Europe/Berlin");
    EXPECT_EQ(berlin->offset_s(INT64_MAX), libc.offset_s(max_in_cycle));
  }
  ScratchDir dir;
  for (const char* footer : {"CET-1CEST,M3.5.0,M10.5.0/3", "AEST-10AEDT,M10.1.0,M4.1.0/3"}) {
    TzifSpec spec;
    spec.footer = footer;
    dir.write("Rule", tzif(spec));
    auto zone = tz::Zone::load("Rule", dir.path());
    ASSERT_TRUE(zone.ok()) << zone.error().message;
    const LibcZone libc(footer);
    EXPECT_EQ(zone->offset_s(INT64_MAX), libc.offset_s(max_in_cycle)) << footer;
    EXPECT_EQ(zone->offset_s(INT64_MIN), libc.offset_s(min_in_cycle)) << footer;
    EXPECT_EQ(zone->local_s(INT64_MAX), INT64_MAX) << footer;
    EXPECT_EQ(zone->local_s(INT64_MIN), INT64_MIN + zone->offset_s(INT64_MIN)) << footer;
  }
}

TEST(TimeZone, MinuteOfWeekCountsFromMondayMidnightLocal) {
  auto berlin = tz::Zone::load("Europe/Berlin");
  ASSERT_TRUE(berlin.ok());
  // Friday 2026-12-04 16:00 in Berlin is 15:00 UTC.
  EXPECT_EQ(tz::minute_of_week(berlin->local_s(1796396400)), 4 * 1440 + 16 * 60);
  EXPECT_EQ(tz::minute_of_week(berlin->local_s(1796396400 - 60)), 4 * 1440 + 16 * 60 - 1);
  EXPECT_EQ(tz::minute_of_week(0), 3 * 1440);                  // Thursday 1970-01-01 00:00
  EXPECT_EQ(tz::minute_of_week(4 * 86400), 0);                 // Monday 1970-01-05 00:00
  EXPECT_EQ(tz::minute_of_week(4 * 86400 - 1), 7 * 1440 - 1);  // Sunday 23:59:59
  EXPECT_EQ(tz::minute_of_week(-3 * 86400), 0);                // Monday 1969-12-29
  EXPECT_EQ(tz::minute_of_week(-3 * 86400 - 60), 7 * 1440 - 1);
  EXPECT_EQ(tz::minute_of_week(1796342400), 4 * 1440);  // Friday 2026-12-04 00:00
  for (std::int64_t t : {INT64_MIN, INT64_MAX, std::int64_t{-1}}) {
    const int m = tz::minute_of_week(t);
    EXPECT_TRUE(m >= 0 && m < 7 * 1440) << t << " -> " << m;
  }
}

// Zones with every kind of oddity: southern summers, half-hour and 45-minute
// offsets, half-hour DST, negative DST (Dublin), DST by enumerated dates
// (Casablanca), rules that changed often (Santiago, Apia, Tehran).
const char* const kOddZones[] = {
    "Europe/Berlin",     "America/New_York",    "Australia/Sydney", "Asia/Kolkata",
    "Europe/Dublin",     "Australia/Lord_Howe", "Pacific/Chatham",  "America/St_Johns",
    "Africa/Casablanca", "America/Sao_Paulo",   "Asia/Tehran",      "Pacific/Apia",
    "America/Santiago",  "Europe/London",       "America/Nuuk",     "Antarctica/Troll",
};

TEST(TimeZone, AgreesWithTheCLibraryAtRandomInstantsAndAroundEveryHour) {
  std::mt19937_64 rng(20261204);
  std::uniform_int_distribution<std::int64_t> instant(0, k2100);
  for (const char* name : kOddZones) {
    auto zone = tz::Zone::load(name);
    ASSERT_TRUE(zone.ok()) << zone.error().message;
    const LibcZone libc(":/usr/share/zoneinfo/" + std::string(name));
    int mismatches = 0;
    auto check = [&](std::int64_t t) {
      if (zone->offset_s(t) != libc.offset_s(t) && ++mismatches <= 5) {
        ADD_FAILURE() << name << " at " << t << ": " << zone->offset_s(t) << " vs the C library's "
                      << libc.offset_s(t);
      }
    };
    for (int i = 0; i < 2000; ++i) check(instant(rng));
    // Every hour and the second before it from 2036 to 2040: the end of the
    // files' transitions and the start of the footer's rule, each switch on
    // both sides.
    for (std::int64_t t = 2082758400; t < 2208988800; t += kHour) {
      check(t);
      check(t - 1);
    }
    EXPECT_EQ(mismatches, 0) << name;
  }
}

// Every zone Debian installs (but the "right/" ones, refused below), at
// instants from 1900 to 2100.
TEST(TimeZone, EveryZoneOfTzdataLoadsAndAgreesWithTheCLibrary) {
  const fs::path root = "/usr/share/zoneinfo";
  int zones = 0;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    const std::string name = fs::relative(it->path(), root).string();
    if (name == "right") {
      it.disable_recursion_pending();
      continue;
    }
    if (!fs::is_regular_file(it->status())) continue;
    if (read_file(it->path()).substr(0, 4) != "TZif") continue;
    auto zone = tz::Zone::load(name);
    ASSERT_TRUE(zone.ok()) << zone.error().message;
    const LibcZone libc(":" + it->path().string());
    ++zones;
    for (std::int64_t t = -2208988800; t < k2100; t += 86400 * 1000 + 4 * kHour + 17) {
      ASSERT_EQ(zone->offset_s(t), libc.offset_s(t)) << name << " at " << t;
    }
  }
  EXPECT_GT(zones, 400);
  auto right = tz::Zone::load("right/Europe/Berlin");
  EXPECT_TRUE(refused(right, Errc::unsupported, "leap-second"));
}

// Footers of every form RFC 8536 allows, each alone in a file (no
// transitions: the footer holds throughout), against the C library reading
// the same TZ string.
TEST(TimeZone, FooterRulesOfEveryFormAgreeWithTheCLibrary) {
  const char* const strings[] = {
      "CET-1CEST,M3.5.0,M10.5.0/3",
      "<+0330>-3:30",
      "EST5EDT,M3.2.0,M11.1.0",
      "AEST-10AEDT,M10.1.0,M4.1.0/3",
      "NZST-12NZDT,M9.5.0,M4.1.0/3",
      "<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45",
      "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",
      "IST-1GMT0,M10.5.0,M3.5.0/1",       // negative DST: "standard" in summer
      "<-02>2<-01>,M3.5.0/-1,M10.5.0/0",  // negative transition time
      "EST5EDT,M3.2.0/-1,M11.1.0/167",    // hours up to 167
      "XXX3YYY,J60/0,J300/0",             // Jn: Feb 29 never counted
      "XXX3YYY,59/0,299/0",               // n: counted from 0, Feb 29 too
      "AAA3:15:30BBB2,J2/0:30:15,J364/23:59:59",
      "AAA+5BBB+4:00:00,M1.1.1/+2,M12.5.6/-02:30",
      "<-03>3<-02>,M3.5.0/-2,M10.5.0/-1",
      "<+0545>-5:45",
  };
  ScratchDir dir;
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<std::int64_t> instant(0, k2100);
  int n = 0;
  for (const char* s : strings) {
    TzifSpec spec;
    spec.version = '3';
    spec.footer = s;
    const std::string name = "Test/Zone" + std::to_string(n++);
    dir.write(name, tzif(spec));
    auto zone = tz::Zone::load(name, dir.path());
    ASSERT_TRUE(zone.ok()) << s << ": " << zone.error().message;
    const LibcZone libc(s);
    int mismatches = 0;
    for (int i = 0; i < 3000; ++i) {
      const std::int64_t t = instant(rng);
      if (zone->offset_s(t) != libc.offset_s(t) && ++mismatches <= 5) {
        ADD_FAILURE() << s << " at " << t << ": " << zone->offset_s(t) << " vs the C library's "
                      << libc.offset_s(t);
      }
    }
    for (std::int64_t t = 1767225600; t < 1830297600; t += 1800) {  // 2026 and 2027 by halves
      for (std::int64_t u : {t - 1, t, t + 15 * 60}) {
        if (zone->offset_s(u) != libc.offset_s(u) && ++mismatches <= 5) {
          ADD_FAILURE() << s << " at " << u << ": " << zone->offset_s(u) << " vs the C library's "
                        << libc.offset_s(u);
        }
      }
    }
    EXPECT_EQ(mismatches, 0) << s;
  }
}

// RFC 8536 3.3.1: "EST5EDT,0/0,J365/25" is daylight saving time all year.
// (glibc leaves the first hours of each UTC year in EST, so this one is
// checked against the RFC rather than the C library.)
TEST(TimeZone, DaylightSavingTimeAllYear) {
  ScratchDir dir;
  TzifSpec spec;
  spec.version = '3';
  spec.footer = "EST5EDT,0/0,J365/25";
  dir.write("Test/AllYear", tzif(spec));
  auto zone = tz::Zone::load("Test/AllYear", dir.path());
  ASSERT_TRUE(zone.ok()) << zone.error().message;
  for (std::int64_t t : {std::int64_t{1767225600}, std::int64_t{1767225600 + 3 * kHour},
                         std::int64_t{1767225600 + 5 * kHour}, std::int64_t{1784116800},
                         std::int64_t{1798761599}, std::int64_t{2541499200}}) {
    EXPECT_EQ(zone->offset_s(t), -4 * kHour) << t;
  }
}

// Signed hours can move a year's change into the year before or after it;
// the change still counts (as tzcode reads it; glibc looks only at the
// changes of the instant's own UTC year). XXX is UTC-3, YYY UTC-2.
TEST(TimeZone, ChangesThatFallInAnotherYearStillCount) {
  ScratchDir dir;
  TzifSpec spec;
  spec.version = '3';
  // DST from Jan 1 minus 100 hours (Dec 27 23:00 UTC of the year before)
  // to Oct 27.
  spec.footer = "XXX3YYY,0/-100,J300/0";
  dir.write("Test/Early", tzif(spec));
  auto early = tz::Zone::load("Test/Early", dir.path());
  ASSERT_TRUE(early.ok()) << early.error().message;
  EXPECT_EQ(early->offset_s(1793066400 - 1), -2 * kHour);  // 2026-10-27 02:00 UTC
  EXPECT_EQ(early->offset_s(1793066400), -3 * kHour);
  EXPECT_EQ(early->offset_s(1798412400 - 1), -3 * kHour);  // 2026-12-27 23:00 UTC
  EXPECT_EQ(early->offset_s(1798412400), -2 * kHour);
  EXPECT_EQ(early->offset_s(1798632000), -2 * kHour);  // 2026-12-30 12:00 UTC
  EXPECT_EQ(early->offset_s(1801440000), -2 * kHour);  // 2027-02-01

  // Standard time only from Jan 4 06:00 UTC to Jan 7 02:00 UTC, both
  // changes of the year before: on Jan 2 the last change was two years' old.
  spec.footer = "XXX3YYY,J365/167,J365/100";
  dir.write("Test/Late", tzif(spec));
  auto late = tz::Zone::load("Test/Late", dir.path());
  ASSERT_TRUE(late.ok()) << late.error().message;
  EXPECT_EQ(late->offset_s(1798891200), -2 * kHour);  // 2027-01-02 12:00 UTC
  EXPECT_EQ(late->offset_s(1799042400 - 1), -2 * kHour);
  EXPECT_EQ(late->offset_s(1799042400), -3 * kHour);  // 2027-01-04 06:00 UTC
  EXPECT_EQ(late->offset_s(1799107200), -3 * kHour);
  EXPECT_EQ(late->offset_s(1799287200 - 1), -3 * kHour);
  EXPECT_EQ(late->offset_s(1799287200), -2 * kHour);  // 2027-01-07 02:00 UTC
  EXPECT_EQ(late->offset_s(1814400000), -2 * kHour);  // 2027-07-01
}

TEST(TimeZone, TransitionsAndTypesOfEveryVersion) {
  ScratchDir dir;
  // Type 0 is DST: before the first transition the first standard type holds.
  TzifSpec spec;
  spec.times = {1000000, 2000000};
  spec.indexes = {0, 1};
  spec.types = {{7200, true}, {3600, false}};
  for (char version : {'\0', '2', '3', '4'}) {
    spec.version = version;
    spec.footer = "";  // after the last transition: its type
    const std::string name = "V" + std::to_string(static_cast<int>(version));
    dir.write(name, tzif(spec));
    auto zone = tz::Zone::load(name, dir.path());
    ASSERT_TRUE(zone.ok()) << name << ": " << zone.error().message;
    EXPECT_EQ(zone->offset_s(-5000000000), 3600) << name;
    EXPECT_EQ(zone->offset_s(999999), 3600) << name;
    EXPECT_EQ(zone->offset_s(1000000), 7200) << name;
    EXPECT_EQ(zone->offset_s(1999999), 7200) << name;
    EXPECT_EQ(zone->offset_s(2000000), 3600) << name;
    EXPECT_EQ(zone->offset_s(5000000000), 3600) << name;
  }
  // A footer takes over at the last transition.
  spec.version = '2';
  spec.footer = "<+05>-5";
  dir.write("WithFooter", tzif(spec));
  auto zone = tz::Zone::load("WithFooter", dir.path());
  ASSERT_TRUE(zone.ok()) << zone.error().message;
  EXPECT_EQ(zone->offset_s(1999999), 7200);
  EXPECT_EQ(zone->offset_s(2000000), 5 * kHour);
  // Times beyond 32 bits come from the 64-bit data.
  spec.times = {1000000, 5000000000};
  spec.footer = "";
  dir.write("Wide", tzif(spec));
  auto wide = tz::Zone::load("Wide", dir.path());
  ASSERT_TRUE(wide.ok()) << wide.error().message;
  EXPECT_EQ(wide->offset_s(4999999999), 7200);
  EXPECT_EQ(wide->offset_s(5000000000), 3600);
}

TEST(TimeZone, RefusesNamesThatAreNotIanaNames) {
  for (const std::string& name :
       {std::string(), std::string(".."), std::string("../etc/passwd"), std::string("/etc/passwd"),
        std::string("Europe/../../etc/passwd"), std::string("Europe//Berlin"),
        std::string("Europe/Berlin/"), std::string("Europe/Berlin\n"), std::string("Europe Berlin"),
        std::string("Europe/Berlin.txt"), std::string("Europe\\Berlin"), std::string("./UTC"),
        std::string(65, 'A'), std::string("Europe/Berlin\0x", 15)}) {
    auto zone = tz::Zone::load(name);
    EXPECT_TRUE(refused(zone, Errc::invalid_argument, "time zone name '")) << name;
  }
  auto zone = tz::Zone::load("../etc/passwd");
  EXPECT_TRUE(refused(zone, Errc::invalid_argument, "'../etc/passwd'"));
  // At the limit and with every allowed character.
  ScratchDir dir;
  dir.write(std::string(64, 'A'), tzif({}));
  EXPECT_TRUE(tz::Zone::load(std::string(64, 'A'), dir.path()).ok());
  dir.write("a/Z_z-0+9", tzif({}));
  EXPECT_TRUE(tz::Zone::load("a/Z_z-0+9", dir.path()).ok());
}

TEST(TimeZone, AnUnknownZoneIsNotFound) {
  auto zone = tz::Zone::load("Europe/Atlantis");
  EXPECT_TRUE(refused(zone, Errc::not_found, "unknown time zone 'Europe/Atlantis'"));
  EXPECT_TRUE(refused(tz::Zone::load("Europe"), Errc::not_found, "unknown time zone 'Europe'"));
  EXPECT_TRUE(refused(tz::Zone::load("Europe/Berlin/Mitte"), Errc::not_found, "unknown"));
  EXPECT_TRUE(refused(tz::Zone::load("Europe/Berlin", "/nonexistent-zoneinfo"), Errc::not_found,
                      "unknown time zone 'Europe/Berlin'"));
  // A FIFO is no zone, and opening it must not wait for a writer.
  ScratchDir dir;
  ASSERT_EQ(mkfifo((dir.path() / "Pipe").c_str(), 0600), 0);
  EXPECT_TRUE(refused(tz::Zone::load("Pipe", dir.path()), Errc::not_found, "unknown"));
}

TEST(TimeZone, RefusesMalformedFiles) {
  ScratchDir dir;
  TzifSpec spec;
  spec.times = {1000000, 2000000};
  spec.indexes = {1, 0};
  spec.types = {{3600, false}, {7200, true}};
  spec.footer = "CET-1CEST,M3.5.0,M10.5.0/3";
  const std::string good = tzif(spec);
  const std::size_t v1_size = tzif({0, spec.times, spec.indexes, spec.types, 0, ""}).size();
  int n = 0;
  auto load = [&](const std::string& bytes) {
    const std::string name = "Bad" + std::to_string(n++);
    dir.write(name, bytes);
    return tz::Zone::load(name, dir.path());
  };
  ASSERT_TRUE(load(good).ok());

  std::string bytes = good;
  bytes[3] = 'F';
  EXPECT_TRUE(refused(load(bytes), Errc::corrupt, "not a TZif file"));
  EXPECT_TRUE(refused(load("hello, world\n"), Errc::corrupt, "TZif header"));
  EXPECT_TRUE(refused(load(""), Errc::corrupt, "cut short"));
  bytes = good;
  bytes[4] = '5';
  EXPECT_TRUE(refused(load(bytes), Errc::unsupported, "TZif version '5'"));
  bytes[4] = '1';
  EXPECT_TRUE(refused(load(bytes), Errc::unsupported, "TZif version '1'"));

  // Counts larger than the file, in either header.
  for (std::size_t header : {std::size_t{0}, v1_size}) {
    for (int field : {kTimecnt, kTypecnt, kCharcnt}) {
      bytes = good;
      set_count(bytes, header, field, 0xFFFFFFFF);
      EXPECT_TRUE(refused(load(bytes), Errc::corrupt, "")) << header << " " << field;
      set_count(bytes, header, field, 1000);
      EXPECT_TRUE(refused(load(bytes), Errc::corrupt, "")) << header << " " << field;
    }
  }
  bytes = good;
  set_count(bytes, v1_size, kTimecnt, 0xFFFFFFFF);
  EXPECT_TRUE(refused(load(bytes), Errc::corrupt, "bytes of data"));
  bytes = good;
  set_count(bytes, v1_size, kTypecnt, 0);
  EXPECT_TRUE(refused(load(bytes), Errc::corrupt, "local time types"));
  bytes = good;
  set_count(bytes, v1_size, kCharcnt, 0);
  EXPECT_TRUE(refused(load(bytes), Errc::corrupt, "designations"));
  bytes = good;
  set_count(bytes, v1_size, 0, 1);  // isutcnt 1 of 2 types
  EXPECT_TRUE(refused(load(bytes), Errc::corrupt, "indicator"));

  // Bad contents.
  TzifSpec bad = spec;
  bad.indexes = {1, 2};
  EXPECT_TRUE(refused(load(tzif(bad)), Errc::corrupt, "names local time type 2"));
  bad = spec;
  bad.times = {2000000, 1000000};
  EXPECT_TRUE(refused(load(tzif(bad)), Errc::corrupt, "not later"));
  bad = spec;
  bad.times = {1000000, 1000000};
  EXPECT_TRUE(refused(load(tzif(bad)), Errc::corrupt, "not later"));
  bad = spec;
  bad.types[1].utoff = 100000;
  EXPECT_TRUE(refused(load(tzif(bad)), Errc::corrupt, "offset of 100000"));
  bad = spec;
  bad.types[0].utoff = INT32_MIN;
  EXPECT_TRUE(refused(load(tzif(bad)), Errc::corrupt, "offset"));
  bad = spec;
  bad.leapcnt = 1;
  EXPECT_TRUE(refused(load(tzif(bad)), Errc::unsupported, "leap-second"));
  bad = spec;
  bad.version = '\0';
  EXPECT_TRUE(refused(load(tzif(bad) + "x"), Errc::corrupt, "follow the version 1 data"));
  bytes = good;
  bytes[v1_size + 44 + 2 * 8 + 2 + 6 + 4] = 2;  // isdst of type 1
  EXPECT_TRUE(refused(load(bytes), Errc::corrupt, "isdst"));
  bytes = good;
  bytes[v1_size + 44 + 2 * 8 + 2 + 6 + 5] = 4;  // designation index of type 1
  EXPECT_TRUE(refused(load(bytes), Errc::corrupt, "designation"));

  // Footers.
  EXPECT_TRUE(refused(load(good.substr(0, good.size() - 1)), Errc::corrupt, "closing newline"));
  EXPECT_TRUE(refused(load(good + "x"), Errc::corrupt, "follow the footer"));
  EXPECT_TRUE(refused(load(good + "\n"), Errc::corrupt, "follow the footer"));
  const std::size_t footer_at = good.size() - spec.footer.size() - 2;
  EXPECT_TRUE(refused(load(good.substr(0, footer_at)), Errc::corrupt, "footer is missing"));
  for (const std::string& footer : {std::string("garbage\x01"),
                                    std::string("CET"),
                                    std::string("CET-1CEST"),
                                    std::string("-1"),
                                    std::string("CET-25"),
                                    std::string("CET-1:60"),
                                    std::string("CET-1CEST,M3.5.0"),
                                    std::string("CET-1CEST,M13.5.0,M10.5.0"),
                                    std::string("CET-1CEST,M3.6.0,M10.5.0"),
                                    std::string("CET-1CEST,M3.0.0,M10.5.0"),
                                    std::string("CET-1CEST,M3.5.7,M10.5.0"),
                                    std::string("CET-1CEST,M3.5.0/168,M10.5.0"),
                                    std::string("CET-1CEST,M3.5.0,M10.5.0/3,"),
                                    std::string("CET-1CEST,J0,J100"),
                                    std::string("CET-1CEST,J366,J100"),
                                    std::string("CET-1CEST,366,100"),
                                    std::string("<+03"),
                                    std::string("<>3"),
                                    std::string("<+0 3>-3"),
                                    std::string("CET-1 "),
                                    std::string("CET-1CEST-25,M3.5.0,M10.5.0"),
                                    std::string("CET-1CEST,M3.5.0/1:2:3:4,J1"),
                                    std::string(200, 'A'),
                                    std::string("CET\0-1", 6)}) {
    TzifSpec with = spec;
    with.footer = footer;
    EXPECT_TRUE(refused(load(tzif(with)), Errc::corrupt, "TZ string")) << footer;
  }

  // Over 1 MiB: refused before it is read.
  EXPECT_TRUE(refused(load(good + std::string(tz::kMaxFileBytes, '\0')), Errc::corrupt,
                      "larger than 1048576 bytes"));
}

// Every prefix of a real file, and of a built one, is an error; never a
// crash or a read past the end (the sanitizer build runs this too).
TEST(TimeZone, EveryTruncationIsRefused) {
  ScratchDir dir;
  TzifSpec spec;
  spec.times = {1000000, 2000000};
  spec.indexes = {1, 0};
  spec.types = {{3600, false}, {7200, true}};
  for (const std::string& whole : {read_file("/usr/share/zoneinfo/Europe/Berlin"), tzif(spec)}) {
    ASSERT_GT(whole.size(), 100u);
    for (std::size_t size = 0; size < whole.size(); ++size) {
      dir.write("Cut", whole.substr(0, size));
      auto zone = tz::Zone::load("Cut", dir.path());
      ASSERT_FALSE(zone.ok()) << size;
      ASSERT_EQ(zone.error().code, Errc::corrupt) << size << ": " << zone.error().message;
    }
  }
}

// Random damage to a real file: loaded or refused, never a crash; what
// loads answers at any instant.
TEST(TimeZone, RandomlyDamagedFilesAreLoadedOrRefusedNeverCrash) {
  ScratchDir dir;
  const std::string whole = read_file("/usr/share/zoneinfo/America/New_York");
  ASSERT_GT(whole.size(), 1000u);
  std::mt19937_64 rng(7);
  int loaded = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string bytes = whole;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      // Half the damage in the headers, where the counts are.
      const std::size_t at = rng() % 2 == 0 ? rng() % 44 : rng() % bytes.size();
      bytes[at] = static_cast<char>(rng());
    }
    dir.write("Damaged", bytes);
    auto zone = tz::Zone::load("Damaged", dir.path());
    if (!zone.ok()) {
      EXPECT_NE(zone.error().message, "");
      continue;
    }
    ++loaded;
    for (std::int64_t t : {INT64_MIN, std::int64_t{-1}, std::int64_t{0}, std::int64_t{1784116800},
                           std::int64_t{k2100}, INT64_MAX}) {
      const std::int64_t offset = zone->offset_s(t);
      EXPECT_TRUE(offset >= -89999 && offset <= 93599) << offset;
    }
  }
  EXPECT_GT(loaded, 0);  // some damage (to unread bytes) is harmless
}

}  // namespace
}  // namespace drover
