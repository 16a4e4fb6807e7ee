#include "mesh/daemon/daemon.hpp"

#include <csignal>
#include <cstdio>
#include <thread>

namespace drover::mesh {
namespace {
volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_stop_signal(int) {
  g_stop = 1;
}
}  // namespace

void install_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

bool stop_requested() {
  return g_stop != 0;
}

bool wait_for_stop(std::chrono::steady_clock::time_point deadline) {
  // A signal handler may only set a flag; poll it at a short interval.
  while (!stop_requested()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

void run_until_stopped(const MeshNode& node, std::chrono::milliseconds every) {
  if (every.count() <= 0) {
    wait_for_stop(std::chrono::steady_clock::time_point::max());
    return;
  }
  auto next = std::chrono::steady_clock::now() + every;
  while (!wait_for_stop(next)) {
    const auto unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now().time_since_epoch());
    emit_line({{"event", "counters"},
               {"unix_ms", unix_ms.count()},
               {"counters", counters_json(node.counters())}});
    next += every;
  }
}

void emit_line(const nlohmann::json& line) {
  std::string out = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  out += '\n';
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
}

nlohmann::json counters_json(const NodeCounters& c) {
  auto bytes = [](const ByteCounts& b) {
    return nlohmann::json{
        {"origin", b.origin}, {"seed", b.seed}, {"peer", b.peer}, {"other", b.other}};
  };
  return {{"down", bytes(c.down)},
          {"up", bytes(c.up)},
          {"hash_failures", c.hash_failures},
          {"rechecks", c.rechecks},
          {"peers_banned", c.peers_banned},
          {"layers_completed", c.layers_completed}};
}

Result<std::uint64_t> parse_rate(const std::string& text) {
  std::size_t i = 0;
  std::uint64_t v = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9' && i < 15) {
    v = v * 10 + static_cast<std::uint64_t>(text[i] - '0');
    ++i;
  }
  const std::string unit = text.substr(i);
  std::uint64_t mult = 0;
  if (unit.empty() || unit == "B")
    mult = 1;
  else if (unit == "K" || unit == "KiB")
    mult = 1ull << 10;
  else if (unit == "M" || unit == "MiB")
    mult = 1ull << 20;
  else if (unit == "G" || unit == "GiB")
    mult = 1ull << 30;
  if (i == 0 || mult == 0) {
    return make_error(
        Errc::invalid_argument,
        "rate '" + text +
            "' must be a number of bytes per second, with an optional KiB, MiB or GiB");
  }
  return v * mult;
}

}  // namespace drover::mesh
