#include "coordinator/promotion/promotion.hpp"

#include <array>
#include <cstdio>
#include <ctime>
#include <map>
#include <set>

#include "core/base/name.hpp"
#include "core/canon/json_fields.hpp"
#include "core/tz/tz.hpp"

namespace drover::coordinator {
namespace {

using canon::Fields;
using nlohmann::json;

constexpr std::int64_t kYearMs = 366LL * 24 * 3600 * 1000;
constexpr std::array<const char*, 7> kDays = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};

Error invalid(const std::string& what) {
  return make_error(Errc::invalid_argument, what);
}

Status name_of(const std::string& value, const std::string& field) {
  if (auto st = validate_name(value, field); !st.ok()) return st.error();
  return Ok{};
}

// "Fri 16:00" -> minutes since Monday 00:00.
Result<int> minute_of_week(const std::string& text, const std::string& field) {
  auto bad = [&] {
    return invalid(field + " must be a day and a time, like \"Fri 16:00\" (got \"" + text + "\")");
  };
  if (text.size() != 9 || text[3] != ' ' || text[6] != ':') return bad();
  int day = -1;
  for (int d = 0; d < 7; ++d) {
    if (text.compare(0, 3, kDays[static_cast<std::size_t>(d)]) == 0) day = d;
  }
  auto digit = [&](std::size_t i) { return text[i] >= '0' && text[i] <= '9'; };
  if (day < 0 || !digit(4) || !digit(5) || !digit(7) || !digit(8)) return bad();
  const int hour = (text[4] - '0') * 10 + (text[5] - '0');
  const int minute = (text[7] - '0') * 10 + (text[8] - '0');
  if (hour > 23 || minute > 59) return bad();
  return day * 24 * 60 + hour * 60 + minute;
}

// IANA zone names: "Europe/Berlin", "America/Argentina/Buenos_Aires", "UTC".
Status zone_name(const std::string& z, const std::string& field) {
  bool ok = !z.empty() && z.size() <= 64 && z.front() != '/' && z.back() != '/' &&
            z.find("..") == std::string::npos;
  for (char c : z) {
    ok = ok && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '/' || c == '_' || c == '-' || c == '+');
  }
  if (!ok) return invalid(field + " is not a time zone name like \"Europe/Berlin\"");
  return Ok{};
}

// RFC 3339 with a zone, to unix milliseconds ("2026-12-24T00:00:00Z",
// "+01:00"): every digit where the layout puts one, nothing else.
Result<std::int64_t> instant(const std::string& t, const std::string& field) {
  auto bad = [&] {
    return invalid(field + " must be an RFC 3339 time like \"2026-12-24T00:00:00Z\"");
  };
  constexpr std::string_view kLayout = "dddd-dd-ddTdd:dd:dd";
  const std::string zone = t.size() >= kLayout.size() ? t.substr(kLayout.size()) : "";
  if (t.size() < kLayout.size() + 1) return bad();
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  for (std::size_t i = 0; i < kLayout.size(); ++i) {
    if (kLayout[i] == 'd' ? !digit(t[i]) : t[i] != kLayout[i]) return bad();
  }
  auto num = [&](std::size_t at, std::size_t n) { return std::stoi(t.substr(at, n)); };
  const int y = num(0, 4), mo = num(5, 2), d = num(8, 2), h = num(11, 2), mi = num(14, 2),
            s = num(17, 2);
  int offset_min = 0;
  if (zone == "Z") {
  } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && digit(zone[1]) &&
             digit(zone[2]) && zone[3] == ':' && digit(zone[4]) && digit(zone[5])) {
    offset_min = std::stoi(zone.substr(1, 2)) * 60 + std::stoi(zone.substr(4, 2));
    if (offset_min > 24 * 60) return bad();
    if (zone[0] == '-') offset_min = -offset_min;
  } else {
    return bad();
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return bad();
  // Days from civil (proleptic Gregorian).
  const int yy = y - (mo <= 2);
  const int era = (yy >= 0 ? yy : yy - 399) / 400;
  const int yoe = yy - era * 400;
  const int doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const std::int64_t days = static_cast<std::int64_t>(era) * 146097 + doe - 719468;
  return ((days * 86400 + h * 3600 + mi * 60 + s) - offset_min * 60LL) * 1000;
}

// Unix milliseconds as RFC 3339 in UTC, to the second.
std::string rfc3339(std::int64_t ms) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Result<FreezeWindow> freeze_from(const Fields& f) {
  DROVER_TRY(f.only({"from", "to", "weekly", "time_zone"}));
  FreezeWindow w;
  DROVER_ASSIGN(auto weekly, f.opt_object("weekly"));
  if (weekly) {
    if (f.has("from") || f.has("to")) {
      return invalid(f.path("weekly") + " and " + f.path("from") + "/" + f.path("to") +
                     " exclude each other");
    }
    DROVER_TRY(weekly->only({"from", "to"}));
    DROVER_ASSIGN(std::string from, weekly->str("from", 16));
    DROVER_ASSIGN(std::string to, weekly->str("to", 16));
    DROVER_ASSIGN(w.weekly_from_min, minute_of_week(from, weekly->path("from")));
    DROVER_ASSIGN(w.weekly_to_min, minute_of_week(to, weekly->path("to")));
    if (w.weekly_from_min == w.weekly_to_min) {
      return invalid(f.path("weekly") + " starts and ends at the same minute");
    }
    DROVER_ASSIGN(w.time_zone, f.str("time_zone", 64));
    DROVER_TRY(zone_name(w.time_zone, f.path("time_zone")));
    return w;
  }
  if (f.has("time_zone")) return invalid(f.path("time_zone") + " is for weekly windows only");
  DROVER_ASSIGN(std::string from, f.str("from", 32));
  DROVER_ASSIGN(std::string to, f.str("to", 32));
  DROVER_ASSIGN(w.from_ms, instant(from, f.path("from")));
  DROVER_ASSIGN(w.to_ms, instant(to, f.path("to")));
  if (w.to_ms <= w.from_ms) return invalid(f.path("to") + " must be after " + f.path("from"));
  if (w.to_ms - w.from_ms > kYearMs) return invalid(f.path("to") + " is more than a year on");
  return w;
}

Result<Wave> wave_from(const Fields& f) {
  DROVER_TRY(f.only({"name", "regions", "bake_s"}));
  Wave w;
  DROVER_ASSIGN(w.name, f.str("name", kMaxNameBytes));
  DROVER_TRY(name_of(w.name, f.path("name")));
  DROVER_ASSIGN(auto regions, f.str_list("regions", 256, 2 * kMaxNameBytes + 1));
  if (regions.empty()) return invalid(f.path("regions") + " must name 1 to 256 regions");
  for (std::size_t i = 0; i < regions.size(); ++i) {
    const std::string field = f.path("regions") + "[" + std::to_string(i) + "]";
    const std::string& r = regions[i];
    if (r == "*") {
      if (regions.size() != 1) return invalid(field + ": \"*\" stands alone in a wave");
      w.rest = true;
      continue;
    }
    const auto slash = r.find('/');
    RegionRef ref{r.substr(0, slash), slash == std::string::npos ? "" : r.substr(slash + 1)};
    DROVER_TRY(name_of(ref.region, field + " (region)"));
    if (slash != std::string::npos) DROVER_TRY(name_of(ref.cluster, field + " (cluster)"));
    w.regions.push_back(std::move(ref));
  }
  DROVER_ASSIGN(auto bake, f.opt_int("bake_s", 0, 7 * 86400));
  if (bake) w.bake_ms = *bake * 1000;
  return w;
}

}  // namespace

Result<std::vector<Environment>> environments_from_json(const json& list,
                                                        std::int64_t gate_deadline_ms) {
  const json wrapped = {{"environments", list}};  // Fields refers to it: it must outlive them
  const Fields top(wrapped, "", canon::Nulls::refused);
  DROVER_ASSIGN(auto items, top.objects("environments", 16));
  if (items.empty()) return invalid("environments must list 1 to 16 environments");
  std::vector<Environment> out;
  std::set<std::string> env_names;
  // Where each region (whole) and each region's clusters were named.
  std::map<std::string, std::string> whole_regions;
  std::map<std::string, std::map<std::string, std::string>> clusters;
  bool rest_seen = false;
  std::size_t named_regions = 0;
  for (const Fields& f : items) {
    DROVER_TRY(f.only(
        {"name", "waves", "gate", "freeze", "watch_s", "strategy", "health_checks", "timeouts"}));
    Environment e;
    DROVER_ASSIGN(e.name, f.str("name", kMaxNameBytes));
    DROVER_TRY(name_of(e.name, f.path("name")));
    if (!env_names.insert(e.name).second) {
      return invalid(f.path("name") + ": environment '" + e.name + "' is listed twice");
    }
    DROVER_ASSIGN(auto waves, f.objects("waves", 16));
    if (waves.empty()) return invalid(f.path("waves") + " must list 1 to 16 waves");
    std::set<std::string> wave_names;
    for (const Fields& wf : waves) {
      DROVER_ASSIGN(Wave w, wave_from(wf));
      if (!wave_names.insert(w.name).second) {
        return invalid(wf.path("name") + ": wave '" + w.name + "' is listed twice in '" + e.name +
                       "'");
      }
      if (w.rest) {
        if (rest_seen)
          return invalid(wf.path("regions") + ": only one wave of a pipeline is \"*\"");
        rest_seen = true;
      }
      for (std::size_t i = 0; i < w.regions.size(); ++i) {
        const RegionRef& r = w.regions[i];
        const std::string field = wf.path("regions") + "[" + std::to_string(i) + "]";
        // Every tick walks them: a bound on the whole pipeline, not only per wave.
        if (++named_regions > kMaxPipelineRegions) {
          return invalid(field + ": a pipeline names at most " +
                         std::to_string(kMaxPipelineRegions) + " regions and clusters in all");
        }
        // A region is named once in a pipeline: whole, or cluster by cluster.
        std::string earlier;
        if (auto whole = whole_regions.find(r.region); whole != whole_regions.end()) {
          earlier = whole->second;
        } else if (auto c = clusters.find(r.region); c != clusters.end()) {
          if (r.cluster.empty()) {
            earlier = c->second.begin()->second;
          } else if (auto same = c->second.find(r.cluster); same != c->second.end()) {
            earlier = same->second;
          }
        }
        if (!earlier.empty()) {
          return invalid(field + ": '" + r.region + (r.cluster.empty() ? "" : "/" + r.cluster) +
                         "' overlaps " + earlier + " (a region is named once in a pipeline)");
        }
        if (r.cluster.empty()) {
          whole_regions[r.region] = field;
        } else {
          clusters[r.region][r.cluster] = field;
        }
      }
      e.waves.push_back(std::move(w));
    }
    DROVER_ASSIGN(auto gate, f.opt_object("gate"));
    if (gate) {
      DROVER_TRY(gate->only({"approvals", "deadline_s"}));
      Gate g;
      DROVER_ASSIGN(auto approvals, gate->opt_int("approvals", 1, 5));
      DROVER_ASSIGN(auto deadline, gate->opt_int("deadline_s", 60, 30 * 86400));
      g.approvals = static_cast<int>(approvals.value_or(1));
      g.deadline_ms = deadline ? *deadline * 1000 : gate_deadline_ms;
      e.gate = g;
    }
    if (f.has("freeze")) {
      DROVER_ASSIGN(auto windows, f.objects("freeze", 32));
      for (const Fields& wf : windows) {
        DROVER_ASSIGN(FreezeWindow w, freeze_from(wf));
        e.freeze.push_back(std::move(w));
      }
    }
    DROVER_ASSIGN(auto watch, f.opt_int("watch_s", 0, 7 * 86400));
    if (watch) e.watch_ms = *watch * 1000;
    for (const char* key : {"strategy", "health_checks", "timeouts"}) {
      if (const json* v = f.raw(key)) {
        if (!v->is_object()) return invalid(f.path(key) + " must be an object");
        (std::string(key) == "strategy"        ? e.strategy
         : std::string(key) == "health_checks" ? e.health_checks
                                               : e.timeouts) = *v;
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

json environments_to_json(const std::vector<Environment>& envs) {
  json out = json::array();
  for (const Environment& e : envs) {
    json waves = json::array();
    for (const Wave& w : e.waves) {
      json regions = json::array();
      if (w.rest) regions.push_back("*");
      for (const RegionRef& r : w.regions) {
        regions.push_back(r.cluster.empty() ? r.region : r.region + "/" + r.cluster);
      }
      json jw = {{"name", w.name}, {"regions", regions}};
      if (w.bake_ms) jw["bake_s"] = *w.bake_ms / 1000;
      waves.push_back(std::move(jw));
    }
    json je = {{"name", e.name}, {"waves", waves}};
    if (e.gate) {
      je["gate"] = {{"approvals", e.gate->approvals}, {"deadline_s", e.gate->deadline_ms / 1000}};
    }
    if (!e.freeze.empty()) {
      json windows = json::array();
      for (const FreezeWindow& w : e.freeze) {
        auto day_time = [](int minute) {
          char buf[16];
          std::snprintf(buf, sizeof buf, "%s %02d:%02d",
                        kDays[static_cast<std::size_t>(minute / 1440)], minute % 1440 / 60,
                        minute % 60);
          return std::string(buf);
        };
        if (w.weekly()) {
          windows.push_back(
              {{"weekly",
                {{"from", day_time(w.weekly_from_min)}, {"to", day_time(w.weekly_to_min)}}},
               {"time_zone", w.time_zone}});
        } else {
          windows.push_back({{"from", rfc3339(w.from_ms)}, {"to", rfc3339(w.to_ms)}});
        }
      }
      je["freeze"] = std::move(windows);
    }
    if (e.watch_ms) je["watch_s"] = *e.watch_ms / 1000;
    if (e.strategy) je["strategy"] = *e.strategy;
    if (e.health_checks) je["health_checks"] = *e.health_checks;
    if (e.timeouts) je["timeouts"] = *e.timeouts;
    out.push_back(std::move(je));
  }
  return out;
}

Result<FreezeCheck> freeze_check(const std::vector<FreezeWindow>& windows,
                                 const std::string& where) {
  struct Loaded {
    FreezeWindow window;
    std::optional<tz::Zone> zone;
  };
  std::vector<Loaded> loaded;
  for (std::size_t i = 0; i < windows.size(); ++i) {
    Loaded l{windows[i], std::nullopt};
    if (l.window.weekly()) {
      auto zone = tz::Zone::load(l.window.time_zone);
      if (!zone.ok()) {
        return invalid(where + "[" + std::to_string(i) + "].time_zone: " + zone.error().message);
      }
      l.zone = std::move(*zone);
    }
    loaded.push_back(std::move(l));
  }
  if (loaded.empty()) return FreezeCheck{};
  return FreezeCheck([loaded = std::move(loaded)](std::int64_t now_ms) -> std::string {
    for (const Loaded& l : loaded) {
      const FreezeWindow& w = l.window;
      if (!w.weekly()) {
        if (now_ms >= w.from_ms && now_ms < w.to_ms) {
          return "from " + rfc3339(w.from_ms) + " to " + rfc3339(w.to_ms);
        }
        continue;
      }
      const std::int64_t local = l.zone->local_s(now_ms / 1000);
      const int m = tz::minute_of_week(local);
      const bool inside = w.weekly_from_min <= w.weekly_to_min
                              ? m >= w.weekly_from_min && m < w.weekly_to_min
                              : m >= w.weekly_from_min || m < w.weekly_to_min;
      if (inside) {
        auto day_time = [](int minute) {
          char buf[16];
          std::snprintf(buf, sizeof buf, "%s %02d:%02d",
                        kDays[static_cast<std::size_t>(minute / 1440)], minute % 1440 / 60,
                        minute % 60);
          return std::string(buf);
        };
        return "weekly from " + day_time(w.weekly_from_min) + " to " + day_time(w.weekly_to_min) +
               " " + w.time_zone;
      }
    }
    return "";
  });
}

}  // namespace drover::coordinator
