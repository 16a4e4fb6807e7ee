#include "mesh/daemon/daemon.hpp"

#include "core/world/clock.hpp"

namespace drover::mesh {

void run_until_stopped(const MeshNode& node, std::chrono::milliseconds every) {
  if (every.count() <= 0) {
    daemon::wait_for_stop(std::chrono::steady_clock::time_point::max());
    return;
  }
  auto next = std::chrono::steady_clock::now() + every;
  while (!daemon::wait_for_stop(next)) {
    daemon::emit_line({{"event", "counters"},
                       {"unix_ms", unix_ms(std::chrono::system_clock::now())},
                       {"counters", counters_json(node.counters())}});
    next += every;
  }
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
