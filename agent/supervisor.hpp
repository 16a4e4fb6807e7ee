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
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/privileges.hpp"
#include "agent/step/record.hpp"
#include "core/base/result.hpp"
#include "core/log/log.hpp"
#include "core/world/filesystem.hpp"

namespace drover::agent {

// A service's process, or one of its hooks. It starts in a session of its
// own, as run_as (setgroups, setresgid, setresuid when run_as.switch_ids),
// with PR_SET_NO_NEW_PRIVS, in cwd (entered as that user), its environment
// the allow-list of service_environment plus env, descriptors beyond 0-2
// closed, output appended to log_file (opened by the agent).
struct ProcessSpec {
  std::vector<std::string> argv;  // a program without '/' is found in kServicePath
  fs::path cwd;
  std::map<std::string, std::string> env;  // the DROVER_* variables
  fs::path log_file;                       // stdout and stderr, appended
  RunAs run_as;                            // default: the agent's own ids, nothing switched
};

struct SupervisorOptions {
  std::chrono::milliseconds first_backoff{250};
  std::chrono::milliseconds max_backoff{std::chrono::seconds(30)};
  // This many exits within the window is a crash loop.
  int crash_loop_exits = 5;
  std::chrono::milliseconds crash_loop_window{std::chrono::seconds(60)};
  // A run this long resets the backoff.
  std::chrono::milliseconds stable_after{std::chrono::seconds(30)};
  // How soon an exit is noticed where the kernel gives no pidfd (before
  // Linux 5.3); elsewhere an exit wakes the monitor at once.
  std::chrono::milliseconds poll{100};
};

// One supervised service process (a slot): the agent's seam to child
// processes. Supervisor below is the real one.
class ServiceProcess {
 public:
  // on_change is called (on the implementation's thread) with the new state
  // and a word on why: "exited with status 3", "adopted pid 123".
  using OnChange = std::function<void(RunState, const std::string&)>;
  virtual ~ServiceProcess() = default;  // stops watching; the process keeps running

  // Adopts the process an earlier agent left if it still runs `release`;
  // otherwise starts spec. Then keeps it running until stop().
  virtual Status run(const ProcessSpec& spec, const std::string& release) = 0;
  // Runs the drain command (bounded by timeout), then SIGTERM to the group,
  // SIGKILL once timeout passes.
  virtual void stop(const std::vector<std::string>& drain, std::chrono::milliseconds timeout) = 0;

  virtual RunState state() const = 0;
  virtual pid_t pid() const = 0;
  virtual std::string release() const = 0;
  virtual int exits() const = 0;  // unexpected exits since run()
};

// Makes the agent's service processes.
class ProcessHost {
 public:
  virtual ~ProcessHost() = default;
  virtual std::unique_ptr<ServiceProcess> make(std::string name, fs::path pid_file,
                                               ServiceProcess::OnChange on_change) = 0;
};

class Supervisor final : public ServiceProcess {
 public:
  // The pid file is written and read through fs.
  Supervisor(std::string name, fs::path pid_file, SupervisorOptions options, Filesystem& fs,
             Logger& log, OnChange on_change);
  ~Supervisor() override;

  Status run(const ProcessSpec& spec, const std::string& release) override;
  // Also removes the pid file.
  void stop(const std::vector<std::string>& drain, std::chrono::milliseconds timeout) override;

  RunState state() const override;
  pid_t pid() const override;
  std::string release() const override;
  int exits() const override;

 private:
  void monitor();
  void wake();
  Status spawn_locked();
  bool alive_locked();
  void write_pid_file_locked();

  std::string name_;
  fs::path pid_file_;
  SupervisorOptions options_;
  Filesystem& fs_;
  Logger& log_;
  OnChange on_change_;

  mutable std::mutex mu_;  // guards every field below
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
  // The monitor sleeps in poll(2) on wake_fd_ (an eventfd run() and stop()
  // write) and on a pidfd of the process it watches; no timer while idle.
  int wake_fd_ = -1;
  std::thread thread_;
};

// Real processes: a Supervisor each.
class PosixProcessHost final : public ProcessHost {
 public:
  PosixProcessHost(Filesystem& fs, Logger& log, SupervisorOptions options = {})
      : fs_(fs), log_(log), options_(options) {}
  std::unique_ptr<ServiceProcess> make(std::string name, fs::path pid_file,
                                       ServiceProcess::OnChange on_change) override;

 private:
  Filesystem& fs_;
  Logger& log_;
  SupervisorOptions options_;
};

// Runs a hook (spec.argv, as spec says) to completion with a timeout
// (killing its group past it). Returns the exit status, or an error naming
// the command and what happened.
Result<int> run_command(const ProcessSpec& spec, std::chrono::milliseconds timeout);

// The kernel's start time of a process (clock ticks since boot), 0 if gone.
unsigned long long process_start_ticks(pid_t pid);

}  // namespace drover::agent
