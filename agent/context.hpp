// What the agent's parts share (agent/agent.cpp assembles it): the world it
// was handed, its durable state, the coordinator link, the layers, the report
// outbox, the view the status endpoint shows, and the stop flag.
//
// Threads: the cycle thread applies plans; the health, report and
// announcement threads and the status endpoint read views under view_mu.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "agent/config.hpp"
#include "agent/health.hpp"
#include "agent/layers.hpp"
#include "agent/state.hpp"
#include "agent/step/outbox.hpp"
#include "agent/step/service_step.hpp"
#include "agent/supervisor.hpp"
#include "core/agent_link/agent_link.hpp"
#include "core/log/log.hpp"
#include "core/sign/keys.hpp"
#include "core/sign/root.hpp"
#include "core/world/clock.hpp"
#include "core/world/filesystem.hpp"
#include "core/world/random.hpp"

namespace drover::agent {

using proto::AgentLink;
using proto::CoordinatorLink;

// The outside world, passed in: nothing in the agent reaches for a clock, a
// filesystem, randomness, a health endpoint or a child process of its own.
struct AgentWorld {
  const Clock& clock;
  Filesystem& fs;
  Random& random;
  HealthProbe& probe;
  ProcessHost& processes;
};

// A line for whoever supervises the agent (docs/FORMATS.md, "Agent events"):
// one JSON object, without the newline.
using EventSink = std::function<void(const std::string&)>;

// What the status endpoint shows of a service.
struct ServiceView {
  ServiceRecord record;
  std::string phase = "idle";  // idle, fetching, unpacking, switching
  std::uint64_t fetch_layers = 0, fetch_layers_held = 0, fetch_bytes = 0, fetch_bytes_held = 0;
  std::optional<proto::HealthItem> last_health;
  std::string last_error;
  std::string health_url[2];  // of what each slot runs
};

struct AgentContext {
  AgentContext(const AgentConfig& c, AgentWorld w, Logger& l, EventSink e)
      : config(c), world(w), log(l), events(std::move(e)), outbox(c.report_buffer_items) {
    outbox.on_push([this] { reports_arrived(); });
  }

  const AgentConfig& config;
  AgentWorld world;
  Logger& log;
  EventSink events;
  std::unique_ptr<AgentState> state;
  std::optional<sign::KeyPair> key;
  // The trusted root: the pinned one (version 1) until root documents move
  // it on. Guarded by trust_mu once threads run; read it through trust().
  sign::PublicKey root;
  std::uint64_t root_version = 1;
  mutable std::mutex trust_mu;
  std::string report_key;
  std::unique_ptr<AgentLink> link;
  std::unique_ptr<LayerFetcher> layers;
  Outbox outbox;
  // Keeps what every service still needs, removes the rest (the agent's).
  std::function<void()> collect_garbage;
  // Report sequence numbers, reserved durably in blocks (the report thread's).
  std::function<std::uint64_t()> next_report_seq;
  // Every health sample taken: service, healthy (the agent's metrics).
  std::function<void(const std::string&, bool)> on_sample;

  mutable std::mutex view_mu;  // guards views, reachable, last_contact_ms, enrolled
  std::map<std::string, ServiceView> views;
  bool reachable = false;
  std::int64_t last_contact_ms = 0;
  bool enrolled = false;

  std::mutex stop_mu;  // guards stopping and reports_pushed
  std::condition_variable stop_cv;
  bool stopping = false;
  // The report thread's wake: an item pushed to the outbox (or a stop).
  std::condition_variable reports_cv;
  bool reports_pushed = false;

  fs::path dir(const char* sub) const { return config.state_dir / sub; }
  // What a certificate must chain to now: the root and the trust floor.
  sign::TrustRoot trust() {
    auto floor = state->min_cert_version();
    std::lock_guard lock(trust_mu);
    return {root, floor.ok() ? *floor : 1};
  }
  sign::Root current_root() {
    std::lock_guard lock(trust_mu);
    return {root, root_version};
  }
  void set_root(const sign::Root& r) {
    std::lock_guard lock(trust_mu);
    root = r.key;
    root_version = r.version;
  }
  bool is_stopping() {
    std::lock_guard lock(stop_mu);
    return stopping;
  }
  // Waits until the deadline on the world's clock or a stop; true when stopping.
  bool wait_until(SteadyTime deadline) {
    std::unique_lock lock(stop_mu);
    stop_cv.wait_until(lock, deadline, [this] { return stopping; });
    return stopping;
  }
  // Waits until the deadline, a stop, or an item pushed to the outbox since
  // the last wait; true when stopping.
  bool wait_for_reports(SteadyTime deadline) {
    std::unique_lock lock(stop_mu);
    reports_cv.wait_until(lock, deadline, [this] { return stopping || reports_pushed; });
    reports_pushed = false;
    return stopping;
  }
  void reports_arrived() {
    {
      std::lock_guard lock(stop_mu);
      reports_pushed = true;
    }
    reports_cv.notify_one();
  }
  void emit(const std::string& line) {
    if (events) events(line);
  }
  void update_view(const std::string& service, const std::function<void(ServiceView&)>& fn) {
    std::lock_guard lock(view_mu);
    fn(views[service]);
  }
  std::int64_t now_unix_ms() const { return unix_ms(world.clock.now()); }
  std::int64_t now_mono_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               world.clock.steady().time_since_epoch())
        .count();
  }
};

}  // namespace drover::agent
