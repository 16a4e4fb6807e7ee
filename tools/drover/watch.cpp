#include "tools/drover/watch.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>

#include "tools/drover/cli.hpp"

namespace drover::cli {
namespace {

using nlohmann::json;

std::string str(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

std::int64_t num(const json& j, const char* key) {
  if (!j.is_object()) return 0;
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<std::int64_t>() : 0;
}

const json& arr(const json& j, const char* key) {
  static const json empty = json::array();
  if (!j.is_object()) return empty;
  auto it = j.find(key);
  return it != j.end() && it->is_array() ? *it : empty;
}

std::string clock_of(std::int64_t ms) {
  const std::time_t t = ms / 1000;
  char buf[16];
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}

std::string seconds(std::int64_t ms) {
  if (ms < 0) ms = 0;
  const std::int64_t s = (ms + 999) / 1000;
  if (s < 120) return std::to_string(s) + " s";
  return std::to_string(s / 60) + " min " + std::to_string(s % 60) + " s";
}

std::string pad(std::string s, std::size_t n) {
  if (s.size() < n) s.append(n - s.size(), ' ');
  return s;
}

// At most width bytes, cut before a character (UTF-8), never inside one.
std::string fit(std::string s, std::size_t width) {
  if (s.size() <= width) return s;
  std::size_t cut = width;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  s.resize(cut);
  return s;
}

std::string percent(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", v * 100);
  return buf;
}

// Mean error rate and p99 of the hosts (of a region) on one release or
// not: the new release's hosts against the rest, the baseline.
struct Health {
  double err = 0, p99 = 0;
  int n = 0, unhealthy = 0;
  void add(const json& h) {
    if (!h.is_object()) return;
    err += h.value("error_rate", 0.0);
    p99 += h.value("p99_ms", 0.0);
    unhealthy += h.value("ok", true) ? 0 : 1;
    ++n;
  }
  std::string text() const {
    if (n == 0) return "-";
    char buf[64];
    std::snprintf(buf, sizeof buf, "err %s p99 %.0f ms", percent(err / n).c_str(), p99 / n);
    return buf + std::string(unhealthy ? " (" + std::to_string(unhealthy) + " unhealthy)" : "");
  }
};

std::string region_name(const json& r) {
  const std::string region = str(r, "region"), cluster = str(r, "cluster");
  return (region.empty() ? "(every host)" : region) + (cluster.empty() ? "" : "/" + cluster);
}

// The region's health: the hosts on the deploy's release against the others.
std::string health_of(const json& view, const json& env, const json& region) {
  Health canary, baseline;
  const std::string artifact = str(view, "artifact_id");
  for (const auto& h : arr(view, "hosts")) {
    if (str(h, "env") != str(env, "name") || str(h, "region") != str(region, "region")) continue;
    if (!h.contains("health")) continue;
    (str(h, "running") == artifact ? canary : baseline).add(h["health"]);
  }
  if (canary.n == 0 && baseline.n == 0) return "";
  std::string out = "health " + canary.text();
  if (baseline.n > 0) out += " vs base " + baseline.text();
  return out;
}

std::vector<std::string> render_gate(const json& view, const json& env, std::int64_t now_ms) {
  std::vector<std::string> out;
  if (!env.contains("gate") || !env["gate"].is_object()) return out;
  const json& g = env["gate"];
  const json& approvals = arr(g, "approvals");
  std::string line = "  gate: " + std::to_string(approvals.size()) + " of " +
                     std::to_string(num(g, "required")) + " approvals";
  for (const auto& a : approvals) line += " [" + str(a, "person") + "]";
  if (g.contains("rejection") && g["rejection"].is_object()) {
    line +=
        "; rejected by " + str(g["rejection"], "person") + ": " + str(g["rejection"], "comment");
  } else if (str(env, "status") == "awaiting_approval") {
    line += "; waiting for an approver other than " + str(view, "started_by") +
            " (drover approve " + str(view, "deploy_id") + ")";
    if (num(g, "deadline_ms") > 0) {
      line += ", " + seconds(num(g, "deadline_ms") - now_ms) + " left";
    }
  }
  out.push_back(line);
  return out;
}

// The region's Prometheus queries for its current batch: the newest value
// (beside the baseline's when compared), its outcome and the counts.
std::vector<std::string> analysis_lines(const json& region) {
  std::vector<std::string> out;
  for (const auto& a : arr(region, "analysis")) {
    if (!a.is_object() || num(a, "batch") != num(region, "batch")) continue;
    auto value = [&](const char* key) {
      const json v = a.value(key, json());
      if (!v.is_number()) return std::string("-");
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.4g", v.get<double>());
      return std::string(buf);
    };
    std::string line = "promql " + str(a, "query") + ": " + value("canary");
    if (a.value("baseline", json()).is_number()) line += " (baseline " + value("baseline") + ")";
    line += " " + str(a, "outcome") + " [" + std::to_string(num(a, "passed")) + " pass, " +
            std::to_string(num(a, "failed")) + " fail, " + std::to_string(num(a, "inconclusive")) +
            " inconclusive]";
    if (str(a, "outcome") != "pass" && !str(a, "detail").empty()) line += " " + str(a, "detail");
    out.push_back(line);
  }
  return out;
}

}  // namespace

int exit_for_state(const std::string& state) {
  if (state == "succeeded") return kExitOk;
  if (state == "rolled_back") return kExitRolledBack;
  if (state == "failed") return kExitDeployFailed;
  if (state == "rejected") return kExitRejected;
  if (state == "expired") return kExitExpired;
  if (state == "superseded" || state == "cancelled") return kExitSuperseded;
  return kExitFailed;
}

std::string short_id(const std::string& id) {
  std::string hex = id.rfind("sha256:", 0) == 0 ? id.substr(7) : id;
  return hex.substr(0, 12);
}

std::string progress_bar(std::size_t done, std::size_t total, std::size_t cells) {
  const std::size_t filled = total == 0 ? 0 : std::min(cells, done * cells / total);
  return "[" + std::string(filled, '#') + std::string(cells - filled, '-') + "]";
}

std::string record_line(const json& a) {
  return clock_of(num(a, "at")) + "  " + record_text(a);
}

std::string record_text(const json& a) {
  const json detail =
      a.contains("detail") && a["detail"].is_object() ? a["detail"] : json::object();
  std::string where = str(a, "env");
  const std::string region = str(detail, "region");
  if (!region.empty()) where += (where.empty() ? "" : "/") + region;
  const std::string what = str(a, "what");
  std::string text;
  if (detail.contains("batch") && detail["batch"].is_number()) {
    text = "batch " + std::to_string(detail["batch"].get<std::int64_t>() + 1) + " ";
    const std::string verb = what.substr(what.find('.') + 1);
    text += verb;
    if (detail.contains("hosts") && detail["hosts"].is_number()) {
      text += " (" + std::to_string(detail["hosts"].get<std::int64_t>()) + " hosts)";
    }
    if (detail.contains("samples") && detail["samples"].is_number()) {
      text += " (" + std::to_string(detail["samples"].get<std::int64_t>()) + " samples)";
    }
  } else {
    text = what;
    for (const char* k : {"wave", "reason", "person", "by", "behind", "ms"}) {
      if (!detail.contains(k)) continue;
      const json& v = detail[k];
      text += std::string(" ") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
    }
  }
  const std::string who = str(a, "who");
  return pad(where.empty() ? "-" : where, 22) + " " + text +
         (who.empty() || who == "system" ? "" : "  by " + who);
}

std::vector<std::string> render_frame(const json& view, const json& records,
                                      const FrameOptions& o) {
  std::vector<std::string> out;
  const std::size_t width = std::max<std::size_t>(o.width, 40);
  std::string head = str(view, "deploy_id") + "  " + str(view, "state");
  if (!str(view, "env").empty()) {
    head += "  " + str(view, "env") + (str(view, "wave").empty() ? "" : "/" + str(view, "wave"));
  }
  head += "  " + short_id(str(view, "artifact_id"));
  if (!str(view, "prior_artifact_id").empty()) {
    head += " (was " + short_id(str(view, "prior_artifact_id")) + ")";
  }
  out.push_back(head);
  if (!str(view, "reason").empty()) out.push_back("  reason: " + str(view, "reason"));
  if (!str(view, "queued_behind").empty()) {
    out.push_back("  queued behind " + str(view, "queued_behind"));
  }
  for (const auto& e : arr(view, "environments")) {
    std::string line = pad(str(e, "name"), 12) + " " + str(e, "status");
    if (!str(e, "frozen").empty()) line += " (frozen: " + str(e, "frozen") + ")";
    if (str(e, "status") == "watching" && num(e, "watch_until_ms") > 0) {
      line += ", watch " + seconds(num(e, "watch_until_ms") - o.now_ms) + " left";
    }
    if (e.contains("rollback") && e["rollback"].is_object() &&
        e["rollback"].value("duration_ms", json()).is_number()) {
      line += ", rolled back in " + std::to_string(num(e["rollback"], "duration_ms")) + " ms";
    }
    out.push_back(line);
    for (auto& g : render_gate(view, e, o.now_ms)) out.push_back(g);
    for (const auto& w : arr(e, "waves")) {
      // A wave not started yet has no regions: named, so the path ahead shows.
      if (arr(w, "regions").empty()) {
        out.push_back(fit("  " + pad(str(w, "name"), 11) + " " + str(w, "status"), width));
      }
      for (const auto& r : arr(w, "regions")) {
        const json& batches = arr(r, "batches");
        std::size_t passed = 0;
        for (const auto& b : batches) passed += str(b, "status") == "passed" ? 1 : 0;
        std::string l = "  " + pad(str(w, "name"), 11) + " " + pad(region_name(r), 16) + " " +
                        progress_bar(passed, batches.size(), 20) + " " + std::to_string(passed) +
                        "/" + std::to_string(batches.size()) + " " + pad(str(r, "status"), 12);
        if (str(r, "status") == "baking" && num(r, "bake_until_ms") > 0) {
          l += " bake " + seconds(num(r, "bake_until_ms") - o.now_ms) + " left";
        } else if (str(r, "status") == "deploying" && !batches.empty()) {
          l += " batch " + std::to_string(num(r, "batch") + 1) + " of " +
               std::to_string(batches.size());
        }
        out.push_back(fit(l, width));
        std::string versions;
        if (r.contains("hosts_by_version") && r["hosts_by_version"].is_object()) {
          for (const auto& [version, n] : r["hosts_by_version"].items()) {
            versions += (versions.empty() ? "" : ", ") + n.dump() + "x " + short_id(version);
          }
        }
        std::string detail = versions;
        const std::string health = health_of(view, e, r);
        if (!health.empty()) detail += (detail.empty() ? "" : "  ") + health;
        if (!str(r, "verdict").empty()) detail += "  verdict: " + str(r, "verdict");
        if (!detail.empty()) out.push_back(fit("              " + detail, width));
        for (const auto& a : analysis_lines(r)) out.push_back(fit("              " + a, width));
      }
    }
  }
  const json& all = records.is_array() ? records : json::array();
  if (!all.empty()) {
    out.push_back("last events:");
    const std::size_t from = all.size() > o.events ? all.size() - o.events : 0;
    for (std::size_t i = from; i < all.size(); ++i) {
      out.push_back("  " + record_line(all[i]));
    }
  }
  // Cut, never wrapped: a wrapped line would throw the redraw's count off.
  for (auto& line : out) line = fit(std::move(line), width);
  return out;
}

}  // namespace drover::cli
