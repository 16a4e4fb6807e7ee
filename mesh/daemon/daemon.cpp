#include "mesh/daemon/daemon.hpp"

#include "core/world/clock.hpp"
#include "core/world/filesystem.hpp"

namespace drover::mesh {

void run_until_stopped(MeshNode& node, std::chrono::milliseconds every,
                       const std::string& token_file) {
  using clock = std::chrono::steady_clock;
  constexpr auto kTokenEvery = std::chrono::seconds(10);
  const auto never = clock::time_point::max();
  auto next_report = every.count() > 0 ? clock::now() + every : never;
  auto next_token = token_file.empty() ? never : clock::now() + kTokenEvery;
  while (!daemon::wait_for_stop(std::min(next_report, next_token))) {
    const auto now = clock::now();
    if (now >= next_report) {
      daemon::emit_line({{"event", "counters"},
                         {"unix_ms", unix_ms(std::chrono::system_clock::now())},
                         {"counters", counters_json(node.counters())}});
      next_report += every;
    }
    if (now >= next_token) {
      // A file being replaced or unreadable keeps the token the node holds.
      if (auto token = read_token_file(token_file); token.ok()) node.set_token(*token);
      next_token = now + kTokenEvery;
    }
  }
}

Result<std::string> read_token_file(const std::string& path) {
  PosixFilesystem fsys;
  DROVER_ASSIGN(auto file, fsys.open_read(path));
  DROVER_ASSIGN(FileInfo info, file->info());
  if (info.mode & 077) {
    return make_error(Errc::refused,
                      "mesh token file " + path + " may be read by group or others; chmod 600 it");
  }
  std::string text;
  char buf[1024];
  for (;;) {
    DROVER_ASSIGN(std::size_t n, file->read(buf, sizeof buf));
    if (n == 0) break;
    text.append(buf, n);
    if (text.size() > 4096) break;
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (text.empty() || text.size() > 512 || text.find_first_of(" \t\n") != std::string::npos) {
    return make_error(Errc::invalid_argument,
                      "mesh token file " + path + " must hold one token (dmt1.…) on one line");
  }
  return text;
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
          {"layers_completed", c.layers_completed},
          {"peers_blocked", c.peers_blocked},
          {"vouched", c.vouched_addresses},
          {"up_again", c.up_again},
          {"repeats_refused", c.repeats_refused}};
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
