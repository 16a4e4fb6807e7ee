#include "core/daemon/daemon.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>

namespace drover::daemon {
namespace {
volatile std::sig_atomic_t g_stop = 0;
// The self-pipe: the handler writes a byte (async-signal-safe), so a waiter
// blocks in poll() instead of waking to look at the flag.
int g_pipe[2] = {-1, -1};
extern "C" void on_stop_signal(int) {
  g_stop = 1;
  if (g_pipe[1] >= 0) {
    const int saved = errno;
    const char byte = 1;
    (void)!::write(g_pipe[1], &byte, 1);
    errno = saved;
  }
}
}  // namespace

void install_stop_signals() {
  if (g_pipe[0] < 0 && ::pipe2(g_pipe, O_CLOEXEC | O_NONBLOCK) != 0) g_pipe[0] = g_pipe[1] = -1;
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
  while (!stop_requested()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    if (g_pipe[0] < 0) {  // no pipe (install_stop_signals not called, or it failed): look often
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    // Asleep until a signal writes to the pipe or the deadline (at most a
    // minute a turn, so a far deadline needs no overflow care).
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    const int timeout = static_cast<int>(std::min<std::int64_t>(left.count() + 1, 60'000));
    struct pollfd p {
      g_pipe[0], POLLIN, 0
    };
    (void)::poll(&p, 1, timeout);
    // The byte stays in the pipe: every waiter (there may be several
    // threads) sees it readable, and the flag is what they return on.
  }
  return true;
}

void emit_line(const nlohmann::json& line) {
  std::string out = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  out += '\n';
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
}

}  // namespace drover::daemon
