#include "agent/reporting.hpp"

#include <nlohmann/json.hpp>
#include "core/canon/json_text.hpp"

namespace drover::agent {
namespace {

constexpr std::size_t kMaxReportItemsPerMessage = 256;

}  // namespace

void sample_service(AgentContext& ctx, const ServiceRunner& service) {
  const std::string& name = service.config().name;
  ServiceState s;
  s.spec = {name, service.config().blue_green, ctx.config.keep_releases};
  std::string url[2];
  {
    std::lock_guard lock(ctx.view_mu);
    const ServiceView& v = ctx.views[name];
    s.record = v.record;
    url[0] = v.health_url[0];
    url[1] = v.health_url[1];
  }
  const auto timeout = std::min(ctx.config.health_interval, std::chrono::milliseconds(2000));
  auto sample = [&](int slot) {
    ServiceProcess& sup = *service.slot(slot);
    const SlotView view{sup.state(), sup.release(), sup.exits()};
    std::optional<proto::HealthItem> probed;
    if (view.state == RunState::running && !url[slot].empty()) {
      probed = ctx.world.probe.sample(url[slot], timeout);
    }
    return std::pair{view, probed};
  };
  const int slot = serving_slot(s);
  if (s.spec.blue_green && s.record.preview) service.drive_preview();
  auto [serving, probed] = sample(slot);
  auto h = health_item(s, serving, probed, ctx.now_unix_ms());
  if (!h) return;  // nothing serves yet
  if (s.spec.blue_green) {
    h->traffic = s.record.traffic;
    h->preview = s.record.preview;
  }
  ctx.outbox.push({*h, std::nullopt});
  if (ctx.on_sample) ctx.on_sample(name, h->ok);
  const int other = 1 - slot;
  if (s.spec.blue_green && s.record.traffic < kTrafficAll &&
      s.record.slots.count(kSlotNames[other])) {
    // The other slot shares the host's traffic: its health is the control
    // the new release is judged against, on the same host in the same minute.
    auto [view, answer] = sample(other);
    if (auto c = health_item(s, view, answer, ctx.now_unix_ms())) {
      c->slot = kSlotNames[other];
      c->traffic = kTrafficAll - s.record.traffic;
      c->other = true;
      ctx.outbox.push({*c, std::nullopt});
    }
  }
  bool changed = false;
  {
    std::lock_guard lock(ctx.view_mu);
    ServiceView& v = ctx.views[name];
    changed = !v.last_health || v.last_health->ok != h->ok;
    v.last_health = *h;
  }
  if (changed) {
    ctx.emit(json_text(nlohmann::json{{"event", "health"},
                                      {"service", name},
                                      {"ok", h->ok},
                                      {"state", h->state},
                                      {"error", h->error}}));
  }
}

std::chrono::milliseconds push_reports(AgentContext& ctx, std::chrono::milliseconds last_wait) {
  using std::chrono::milliseconds;
  {
    std::lock_guard lock(ctx.view_mu);
    if (!ctx.enrolled) return milliseconds(200);
  }
  auto report = ctx.outbox.take(kMaxReportItemsPerMessage, ctx.next_report_seq);
  if (!report) return kNothingToReport;
  report->sent_at_ms = ctx.now_unix_ms();
  Status st = ctx.link->send_report(*report);
  if (st.ok()) {
    ctx.outbox.acknowledged(report->seq);
    return milliseconds(20);  // more may be waiting
  }
  const milliseconds next =
      std::min(milliseconds(30'000), std::max(milliseconds(500), last_wait * 2));
  // The first failures are routine (a coordinator restarting); from the
  // third in a row on, each is a warning naming why.
  ctx.log.log(last_wait >= milliseconds(1000) ? LogLevel::warn : LogLevel::debug,
              "agent.report.failed",
              {{"seq", report->seq}, {"error", st.error().message}, {"retry_ms", next.count()}});
  return next;
}

}  // namespace drover::agent
