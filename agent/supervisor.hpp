// Keeps one service process running: starts it in a process group of its
// own, restarts it when it exits with exponential backoff, calls it a crash
// loop when it keeps dying, and stops it (drain command, SIGTERM to the
// group, SIGKILL after the timeout).
//
// The process outlives the agent: the pid file records its pid, its kernel
// start time and its release, so a restarted agent adopts a process that
// still runs the release it expects instead of starting a second one
// (systemd's KillMode=process keeps it alive across agent restarts). An
// adopted process is watched through /proc instead of waitpid.
//
// Threads: one monitor thread per supervisor; public methods from any thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/step/record.hpp"
#include "core/base/result.hpp"
#include "core/log/log.hpp"
#include "core/world/filesystem.hpp"

namespace drover::agent {

struct ProcessSpec {
  std::vector<std::string> argv;
  fs::path cwd;
  std::map<std::string, std::string> env;  // added to the agent's environment
  fs::path log_file;                       // stdout and stderr, appended
};

struct SupervisorOptions {
  std::chrono::milliseconds first_backoff{250};
  std::chrono::milliseconds max_backoff{std::chrono::seconds(30)};
  // This many exits within the window is a crash loop.
  int crash_loop_exits = 5;
  std::chrono::milliseconds crash_loop_window{std::chrono::seconds(60)};
  // A run this long resets the backoff.
  std::chrono::milliseconds stable_after{std::chrono::seconds(30)};
  std::chrono::milliseconds poll{100};  // how soon an exit is noticed
};

class Supervisor {
 public:
  // on_change is called (on the monitor thread) with the new state and a
  // word on why: "exited with status 3", "adopted pid 123".
  using OnChange = std::function<void(RunState, const std::string&)>;
  Supervisor(std::string name, fs::path pid_file, SupervisorOptions options, Logger& log,
             OnChange on_change);
  ~Supervisor();  // stops watching; the process keeps running (see stop())

  // Adopts the process of the pid file if it still runs `release`; otherwise
  // starts spec. Then keeps it running until stop().
  Status run(const ProcessSpec& spec, const std::string& release);
  // Runs the drain command (bounded by timeout), then SIGTERM to the group,
  // SIGKILL once timeout passes. Removes the pid file.
  void stop(const std::vector<std::string>& drain, std::chrono::milliseconds timeout);

  RunState state() const;
  pid_t pid() const;
  std::string release() const;
  int exits() const;  // unexpected exits since run()

 private:
  void monitor();
  Status spawn_locked();
  bool alive_locked();
  void write_pid_file_locked();

  std::string name_;
  fs::path pid_file_;
  SupervisorOptions options_;
  Logger& log_;
  OnChange on_change_;

  mutable std::mutex mu_;  // guards every field below
  std::condition_variable cv_;
  ProcessSpec spec_;
  std::string release_;
  RunState state_ = RunState::stopped;
  pid_t pid_ = -1;
  bool adopted_ = false;  // not our child: watched through /proc
  unsigned long long start_ticks_ = 0;
  std::chrono::steady_clock::time_point started_at_, next_start_;
  std::deque<std::chrono::steady_clock::time_point> recent_exits_;
  int consecutive_ = 0;
  int exits_ = 0;
  bool quit_ = false;
  std::thread thread_;
};

// Runs argv to completion with a timeout (killing its group past it).
// Returns the exit status, or an error naming the command and what happened.
Result<int> run_command(const std::vector<std::string>& argv, const fs::path& cwd,
                        std::chrono::milliseconds timeout, const fs::path& log_file);

// The kernel's start time of a process (clock ticks since boot), 0 if gone.
unsigned long long process_start_ticks(pid_t pid);

}  // namespace drover::agent
