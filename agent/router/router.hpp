// The router seam (docs/AGENT.md, "Routers"): what steers a blue/green
// service's live traffic between its two slots on this host, and the preview
// route that reaches the idle slot alone. Two routers: the file (the
// drover.router.v1 file a service's own router reads) and nginx (a drop-in
// the agent renders, checks with `nginx -t`, reloads and confirms by the
// generation it rendered; docs/FORMATS.md, "The nginx router's drop-in").
//
// apply() returns once the router serves the routes, or fails with the
// routes before it still serving: a failed render, check or reload never
// leaves a half-written configuration behind.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/base/result.hpp"
#include "core/log/log.hpp"
#include "core/world/clock.hpp"
#include "core/world/filesystem.hpp"

namespace drover::agent {

inline constexpr int kWeightTotal = 1000;  // weights are per mille of live traffic

// What the router should do for one service.
struct Routes {
  std::string service;
  std::uint16_t ports[2] = {0, 0};     // blue, green
  int weights[2] = {kWeightTotal, 0};  // per mille, adding up to kWeightTotal
  std::optional<int> preview;          // the slot the preview route reaches, if any
  std::string release;                 // the release of the slot with the most traffic
};
// Whether routes can be applied (ports set, weights in range adding up).
Status check_routes(const Routes& r);
// The slot with the most live traffic (blue on a tie).
int primary_slot(const Routes& r);

class Router {
 public:
  virtual ~Router() = default;
  virtual Status apply(const Routes& routes) = 0;
  // The routes last applied (none before the first apply).
  virtual std::optional<Routes> current() const = 0;
};

// Writes the drover.router.v1 file (the primary slot, its port and release)
// atomically. Weights between the slots need the nginx router.
std::unique_ptr<Router> make_file_router(Filesystem& fs, fs::path file);

struct NginxRouterConfig {
  fs::path conf_file;          // the drop-in the agent owns
  std::string listen;          // "127.0.0.1:8080": live traffic
  std::string preview_listen;  // "127.0.0.1:8089": the previewed slot ("" for none)
  std::string access_log;      // "" for none
  // The nginx command, to which "-t" or "-s reload" is appended (its -p/-c
  // when the host's nginx is not the default one).
  std::vector<std::string> command = {"nginx"};
  // Where nginx's own output ("nginx-<service>.log") and the last confirmed
  // drop-in ("nginx-<service>.confirmed.conf", what a failure puts back) are kept.
  fs::path work_dir;
  std::chrono::milliseconds command_timeout{10'000};
  std::chrono::milliseconds confirm_timeout{10'000};
  std::function<bool()> stopping;  // the agent is stopping: give up waiting
};

// The drop-in's text for routes at generation.
std::string render_nginx(const NginxRouterConfig& config, const Routes& routes,
                         const std::string& generation);

std::unique_ptr<Router> make_nginx_router(Filesystem& fs, NginxRouterConfig config,
                                          const Clock& clock, Logger& log);

}  // namespace drover::agent
