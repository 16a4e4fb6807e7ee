#include "agent/supervisor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

extern char** environ;

namespace drover::agent {
namespace {

using Clock = std::chrono::steady_clock;

// Starts argv in a new session (its own process group), in cwd, with env
// added, output appended to log_file.
Result<pid_t> spawn(const std::vector<std::string>& argv, const fs::path& cwd,
                    const std::map<std::string, std::string>& env, const fs::path& log_file) {
  if (argv.empty()) return make_error(Errc::invalid_argument, "empty command");
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  const std::string log = log_file.empty() ? std::string("/dev/null") : log_file.string();
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0640);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());

  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string_view::npos && env.count(std::string(kv.substr(0, eq)))) continue;
    envs.emplace_back(kv);
  }
  for (const auto& [k, v] : env) envs.push_back(k + "=" + v);
  std::vector<char*> envp, args;
  for (auto& e : envs) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (auto& a : argv_copy) args.push_back(a.data());
  args.push_back(nullptr);

  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return make_error(
        Errc::io, "cannot start '" + argv[0] + "' in " + cwd.string() + ": " + std::strerror(rc));
  }
  return pid;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "stopped";
}

}  // namespace

unsigned long long process_start_ticks(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return 0;
  // The command name (field 2) may hold spaces: fields resume after its ')'.
  auto close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  char state = '?';
  rest >> state;
  if (state == 'Z' || state == 'X') return 0;  // exited, not yet reaped
  // Fields 4..21, then starttime (22).
  for (int i = 4; i <= 21; ++i) rest >> field;
  unsigned long long ticks = 0;
  rest >> ticks;
  return ticks;
}

namespace {

// Waits until the process is gone or the deadline passes, on the kernel's
// exit notification (a pidfd), not by sleeping. Our own child (ticks == 0) is
// reaped; another's process (adopted, ticks = its start time) is gone once
// it exits or its pid names a process started at another time.
bool wait_gone(pid_t pid, unsigned long long ticks, Clock::time_point deadline,
               int* status = nullptr) {
  int ignored = 0;
  if (!status) status = &ignored;
  auto gone = [&] {
    if (ticks != 0) return process_start_ticks(pid) != ticks;
    const pid_t r = ::waitpid(pid, status, WNOHANG);
    return r == pid || (r < 0 && errno == ECHILD);
  };
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  for (;;) {
    if (gone()) break;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      if (fd >= 0) ::close(fd);
      return false;
    }
    if (fd >= 0) {
      pollfd p{fd, POLLIN, 0};
      (void)::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    } else {
      // No pidfd (a kernel before 5.3): look again in 10 ms.
      (void)::poll(nullptr, 0, static_cast<int>(std::min<long long>(left, 10)));
    }
  }
  if (fd >= 0) ::close(fd);
  return true;
}

}  // namespace

Result<int> run_command(const std::vector<std::string>& argv, const fs::path& cwd,
                        std::chrono::milliseconds timeout, const fs::path& log_file) {
  DROVER_ASSIGN(pid_t pid, spawn(argv, cwd, {}, log_file));
  int status = 0;
  if (!wait_gone(pid, 0, Clock::now() + timeout, &status)) {
    ::kill(-pid, SIGKILL);
    wait_gone(pid, 0, Clock::now() + std::chrono::seconds(5), &status);
    return make_error(Errc::timeout, "'" + argv[0] + "' did not finish within " +
                                         std::to_string(timeout.count()) + " ms and was killed");
  }
  if (!WIFEXITED(status)) {
    return make_error(Errc::io, "'" + argv[0] + "' " + describe_status(status));
  }
  return WEXITSTATUS(status);
}

Supervisor::Supervisor(std::string name, fs::path pid_file, SupervisorOptions options,
                       Filesystem& fs, Logger& log, OnChange on_change)
    : name_(std::move(name)),
      pid_file_(std::move(pid_file)),
      options_(options),
      fs_(fs),
      log_(log),
      on_change_(std::move(on_change)) {
  thread_ = std::thread([this] { monitor(); });
}

Supervisor::~Supervisor() {
  {
    std::lock_guard lock(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Supervisor::write_pid_file_locked() {
  nlohmann::json j = {{"pid", pid_}, {"start_ticks", start_ticks_}, {"release", release_}};
  auto st = fs_.write_owned(pid_file_, j.dump() + "\n", 0644);
  if (!st.ok()) log_.warn("agent.pid_file", {{"service", name_}, {"error", st.error().message}});
}

Status Supervisor::spawn_locked() {
  auto pid = spawn(spec_.argv, spec_.cwd, spec_.env, spec_.log_file);
  if (!pid.ok()) return pid.error();
  pid_ = *pid;
  adopted_ = false;
  start_ticks_ = process_start_ticks(pid_);
  started_at_ = Clock::now();
  write_pid_file_locked();
  return Ok{};
}

Status Supervisor::run(const ProcessSpec& spec, const std::string& release) {
  std::unique_lock lock(mu_);
  spec_ = spec;
  release_ = release;
  exits_ = 0;
  consecutive_ = 0;
  recent_exits_.clear();
  // Adopt a process left running by an earlier agent, if it is the one we want.
  auto text = fs_.read_file(pid_file_, 4096);
  if (text.ok()) {
    auto j = nlohmann::json::parse(*text, nullptr, false);
    const pid_t pid = j.is_object() ? j.value("pid", -1) : -1;
    const auto ticks = j.is_object() ? j.value("start_ticks", 0ull) : 0ull;
    const bool alive = pid > 0 && ticks != 0 && process_start_ticks(pid) == ticks;
    if (alive && j.value("release", "") != release) {
      // Left by an agent that stopped mid-switch: it runs the wrong release
      // and holds the port. Its group goes before the right one starts.
      log_.warn("agent.service.stale", {{"service", name_}, {"pid", pid}});
      ::kill(-pid, SIGTERM);
      const auto deadline = Clock::now() + std::chrono::seconds(10);
      if (!wait_gone(pid, ticks, deadline)) {
        ::kill(-pid, SIGKILL);
        wait_gone(pid, ticks, deadline + std::chrono::seconds(5));
      }
    } else if (alive) {
      {
        pid_ = pid;
        start_ticks_ = ticks;
        adopted_ = true;
        started_at_ = Clock::now();
        state_ = RunState::running;
        lock.unlock();
        cv_.notify_all();
        log_.info("agent.service.adopted", {{"service", name_}, {"pid", pid}});
        if (on_change_) on_change_(RunState::running, "adopted pid " + std::to_string(pid));
        return Ok{};
      }
    }
  }
  Status st = spawn_locked();
  if (!st.ok()) {
    state_ = RunState::stopped;
    return st;
  }
  state_ = RunState::running;
  const pid_t pid = pid_;
  lock.unlock();
  cv_.notify_all();
  if (on_change_) on_change_(RunState::running, "started pid " + std::to_string(pid));
  return Ok{};
}

bool Supervisor::alive_locked() {
  if (pid_ <= 0) return false;
  if (adopted_) return process_start_ticks(pid_) == start_ticks_;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  return r == 0;
}

void Supervisor::monitor() {
  std::unique_lock lock(mu_);
  while (!quit_) {
    cv_.wait_for(lock, options_.poll);
    if (quit_) break;
    const auto now = Clock::now();
    if (state_ == RunState::running && !alive_locked()) {
      ++exits_;
      const bool stable = now - started_at_ >= options_.stable_after;
      consecutive_ = stable ? 1 : consecutive_ + 1;
      recent_exits_.push_back(now);
      while (!recent_exits_.empty() && now - recent_exits_.front() > options_.crash_loop_window) {
        recent_exits_.pop_front();
      }
      auto backoff = options_.first_backoff * (1LL << std::min(consecutive_ - 1, 16));
      if (backoff > options_.max_backoff) backoff = options_.max_backoff;
      next_start_ = now + backoff;
      // Reported once, when the exits in the window reach the threshold.
      const bool became_loop = static_cast<int>(recent_exits_.size()) == options_.crash_loop_exits;
      const RunState next = became_loop ? RunState::crash_loop : RunState::backoff;
      state_ = RunState::backoff;
      const std::string why = "pid " + std::to_string(pid_) + " exited; restart in " +
                              std::to_string(backoff.count()) + " ms";
      pid_ = -1;
      lock.unlock();
      log_.warn("agent.service.exited", {{"service", name_}, {"detail", why}});
      if (on_change_) on_change_(next, became_loop ? "crash loop: " + why : why);
      lock.lock();
    } else if (state_ == RunState::backoff && now >= next_start_) {
      Status st = spawn_locked();
      if (!st.ok()) {
        next_start_ = now + options_.max_backoff;
        log_.error("agent.service.start_failed",
                   {{"service", name_}, {"error", st.error().message}});
        continue;
      }
      state_ = RunState::running;
      const pid_t pid = pid_;
      lock.unlock();
      if (on_change_) on_change_(RunState::running, "restarted as pid " + std::to_string(pid));
      lock.lock();
    } else if (state_ == RunState::running && !recent_exits_.empty() &&
               now - started_at_ >= options_.stable_after) {
      recent_exits_.clear();
      consecutive_ = 0;
    }
  }
}

void Supervisor::stop(const std::vector<std::string>& drain, std::chrono::milliseconds timeout) {
  pid_t pid;
  bool adopted;
  unsigned long long start_ticks;
  fs::path cwd, log_file;
  {
    std::lock_guard lock(mu_);
    pid = pid_;
    adopted = adopted_;
    start_ticks = start_ticks_;
    cwd = spec_.cwd;
    log_file = spec_.log_file;
    state_ = RunState::stopped;  // the monitor leaves a stopped process alone
    pid_ = -1;
  }
  cv_.notify_all();
  const auto deadline = Clock::now() + timeout;
  if (pid > 0 && !drain.empty()) {
    auto r = run_command(drain, cwd, timeout, log_file);
    if (!r.ok() || *r != 0) {
      log_.warn("agent.service.drain_failed",
                {{"service", name_},
                 {"error", r.ok() ? "exit status " + std::to_string(*r) : r.error().message}});
    }
  }
  if (pid > 0) {
    ::kill(-pid, SIGTERM);
    ::kill(pid, SIGTERM);
    int status = 0;
    bool gone = false;
    if (adopted) {
      gone = wait_gone(pid, start_ticks, deadline);
    } else {
      gone = wait_gone(pid, 0, deadline, &status);
    }
    if (!gone) {
      log_.warn("agent.service.kill", {{"service", name_}, {"pid", pid}});
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      if (!adopted) wait_gone(pid, 0, Clock::now() + std::chrono::seconds(10), &status);
    }
    // The rest of the group goes too.
    ::kill(-pid, SIGKILL);
  }
  std::error_code ec;
  fs::remove(pid_file_, ec);
  if (on_change_) on_change_(RunState::stopped, "stopped");
}

RunState Supervisor::state() const {
  std::lock_guard lock(mu_);
  // A process that keeps dying is a crash loop even while it happens to run.
  if (state_ != RunState::stopped &&
      static_cast<int>(recent_exits_.size()) >= options_.crash_loop_exits) {
    return RunState::crash_loop;
  }
  return state_;
}
pid_t Supervisor::pid() const {
  std::lock_guard lock(mu_);
  return pid_;
}
std::string Supervisor::release() const {
  std::lock_guard lock(mu_);
  return release_;
}
int Supervisor::exits() const {
  std::lock_guard lock(mu_);
  return exits_;
}

}  // namespace drover::agent

namespace drover::agent {

std::unique_ptr<ServiceProcess> PosixProcessHost::make(std::string name, fs::path pid_file,
                                                       ServiceProcess::OnChange on_change) {
  return std::make_unique<Supervisor>(std::move(name), std::move(pid_file), options_, fs_, log_,
                                      std::move(on_change));
}

}  // namespace drover::agent
