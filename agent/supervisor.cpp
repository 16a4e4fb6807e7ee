#include "agent/supervisor.hpp"
#include "core/base/thread_name.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

extern char** environ;

namespace drover::agent {
namespace {

using Clock = std::chrono::steady_clock;

// Where a step of starting a child failed, reported through a pipe.
enum class StartStage : int { setgroups = 1, setresgid, setresuid, no_new_privs, chdir, exec };

const char* stage_name(int stage) {
  switch (static_cast<StartStage>(stage)) {
    case StartStage::setgroups: return "setgroups";
    case StartStage::setresgid: return "setresgid";
    case StartStage::setresuid: return "setresuid";
    case StartStage::no_new_privs: return "prctl(PR_SET_NO_NEW_PRIVS)";
    case StartStage::chdir: return "chdir";
    case StartStage::exec: return "exec";
  }
  return "start";
}

// The program to exec: a name without '/' is looked up in the services' own
// PATH (never the agent's), here, before fork.
std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  std::string_view path = kServicePath;
  while (!path.empty()) {
    const auto colon = path.find(':');
    const std::string dir(path.substr(0, colon));
    path = colon == std::string_view::npos ? std::string_view() : path.substr(colon + 1);
    const std::string candidate = dir + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111)) {
      return candidate;
    }
  }
  return name;  // exec fails with ENOENT, named
}

// Starts spec in a new session (its own process group), as spec.run_as.
// posix_spawn cannot switch users, so this forks: everything the child needs
// is made before fork, and between fork and exec the child makes only
// async-signal-safe calls (raw system calls for the ids, so no library
// broadcasts them to threads that the child does not have).
Result<pid_t> spawn(const ProcessSpec& spec) {
  if (spec.argv.empty()) return make_error(Errc::invalid_argument, "empty command");
  const std::string program = find_program(spec.argv[0]);
  std::vector<std::string> envs = service_environment(spec.run_as, spec.env, environ);
  std::vector<std::string> argv_copy = spec.argv;
  std::vector<char*> envp, args;
  for (auto& e : envs) envp.push_back(e.data());
  envp.push_back(nullptr);
  for (auto& a : argv_copy) args.push_back(a.data());
  args.push_back(nullptr);
  const std::string log = spec.log_file.empty() ? std::string("/dev/null") : spec.log_file.string();
  const std::string cwd = spec.cwd.string();
  const std::vector<gid_t> groups(spec.run_as.groups.begin(), spec.run_as.groups.end());
  const bool switch_ids = spec.run_as.switch_ids;
  const uid_t uid = spec.run_as.uid;
  const gid_t gid = spec.run_as.gid;
  // Where descriptors can end: the fallback below marks each one when the
  // kernel lacks close_range (before 5.11) or a filter refuses it.
  struct rlimit files {};
  const int max_fd = ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY
                         ? static_cast<int>(std::min<rlim_t>(files.rlim_cur, 1 << 20))
                         : 1 << 16;

  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return errno_error("pipe for", program, errno);
  // The child starts with every signal blocked, so no handler of the agent's
  // runs in it before the dispositions are reset.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  const pid_t pid = ::fork();
  if (pid == 0) {
    auto fail = [&](StartStage stage) {
      const int what[2] = {static_cast<int>(stage), errno};
      (void)!::write(report[1], what, sizeof what);
      ::_exit(127);
    };
    ::setsid();
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int sig = 1; sig < NSIG; ++sig) (void)::sigaction(sig, &dfl, nullptr);
    const int in = ::open("/dev/null", O_RDONLY);
    if (in >= 0 && in != 0) ::dup2(in, 0);
    const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0640);
    if (out >= 0 && out != 1) ::dup2(out, 1);
    ::dup2(1, 2);
    // Nothing of the agent's passes: not an LMDB file, not a socket.
    if (::syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) != 0) {
      for (int fd = 3; fd < max_fd; ++fd) {
        if (fd != report[1]) (void)::fcntl(fd, F_SETFD, FD_CLOEXEC);
      }
    }
    if (switch_ids) {
      if (::syscall(SYS_setgroups, groups.size(), groups.data()) != 0) fail(StartStage::setgroups);
      if (::syscall(SYS_setresgid, gid, gid, gid) != 0) fail(StartStage::setresgid);
      if (::syscall(SYS_setresuid, uid, uid, uid) != 0) fail(StartStage::setresuid);
    }
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail(StartStage::no_new_privs);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) fail(StartStage::chdir);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(program.c_str(), args.data(), envp.data());
    fail(StartStage::exec);
  }
  const int fork_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::close(report[1]);
  if (pid < 0) {
    ::close(report[0]);
    return make_error(Errc::io,
                      "cannot start '" + spec.argv[0] + "': fork: " + std::strerror(fork_errno));
  }
  int what[2] = {0, 0};
  ssize_t n;
  do {
    n = ::read(report[0], what, sizeof what);
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (n == static_cast<ssize_t>(sizeof what)) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    const std::string as = spec.run_as.user.empty() ? "uid " + std::to_string(spec.run_as.uid)
                                                    : "user " + spec.run_as.user;
    return make_error(Errc::io, "cannot start '" + spec.argv[0] + "' in " + cwd + " as " + as +
                                    ": " + stage_name(what[0]) + ": " + std::strerror(what[1]));
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

Result<int> run_command(const ProcessSpec& spec, std::chrono::milliseconds timeout) {
  const std::vector<std::string>& argv = spec.argv;
  DROVER_ASSIGN(pid_t pid, spawn(spec));
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
  // Without an eventfd (never on Linux since 2.6.27) the monitor wakes
  // every options_.poll instead.
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  thread_ = std::thread([this] {
    name_this_thread("svc:" + name_);
    monitor();
  });
}

Supervisor::~Supervisor() {
  {
    std::lock_guard lock(mu_);
    quit_ = true;
  }
  wake();
  thread_.join();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void Supervisor::wake() {
  if (wake_fd_ < 0) return;
  const std::uint64_t one = 1;
  // Nonblocking: a counter already at its maximum wakes the monitor anyway.
  (void)!::write(wake_fd_, &one, sizeof one);
}

void Supervisor::write_pid_file_locked() {
  nlohmann::json j = {{"pid", pid_}, {"start_ticks", start_ticks_}, {"release", release_}};
  auto st = fs_.write_owned(pid_file_, j.dump() + "\n", 0644);
  if (!st.ok()) log_.warn("agent.pid_file", {{"service", name_}, {"error", st.error().message}});
}

Status Supervisor::spawn_locked() {
  auto pid = spawn(spec_);
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
        wake();
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
  wake();
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
  int watch_fd = -1;  // a pidfd of watched_pid
  pid_t watched_pid = -1;
  bool exit_signalled = false;  // watch_fd became readable
  std::unique_lock lock(mu_);
  while (!quit_) {
    // The process to watch, opened before alive_locked() looks at it: a
    // pidfd opened on a pid that alive_locked() then finds alive (and, when
    // adopted, started at the recorded time) names that very process.
    const pid_t watch = state_ == RunState::running ? pid_ : -1;
    if (watch != watched_pid || exit_signalled) {
      if (watch_fd >= 0) ::close(watch_fd);
      // A process its pidfd said had exited but that still looks alive (an
      // adopted zombie its parent has not reaped yet) is looked at every
      // options_.poll rather than woken on at once, forever.
      watch_fd = watch > 0 && watch != watched_pid
                     ? static_cast<int>(::syscall(SYS_pidfd_open, watch, 0))
                     : -1;
      watched_pid = watch;
      exit_signalled = false;
    }
    auto now = Clock::now();
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
      } else {
        state_ = RunState::running;
        const pid_t pid = pid_;
        lock.unlock();
        if (on_change_) on_change_(RunState::running, "restarted as pid " + std::to_string(pid));
        lock.lock();
        continue;  // watch the new process's pidfd before sleeping
      }
    } else if (state_ == RunState::running && !recent_exits_.empty() &&
               now - started_at_ >= options_.stable_after) {
      recent_exits_.clear();
      consecutive_ = 0;
    }
    if (quit_) break;
    now = Clock::now();  // the callbacks above may have taken a while
    // Asleep until the process exits, run() or stop() wakes it, or the next
    // thing due: a restart after its backoff, or the backoff's reset once a
    // run has been stable.
    std::optional<Clock::time_point> due;
    if (state_ == RunState::backoff) due = next_start_;
    if (state_ == RunState::running && !recent_exits_.empty()) {
      due = started_at_ + options_.stable_after;
    }
    if (wake_fd_ < 0 || (state_ == RunState::running && watch_fd < 0)) {
      due = std::min(due.value_or(Clock::time_point::max()), now + options_.poll);
    }
    int timeout = -1;
    if (due) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(*due - now).count();
      timeout = static_cast<int>(std::clamp<long long>(left, 0, 60'000));
    }
    lock.unlock();
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {watch_fd, POLLIN, 0}};
    (void)::poll(fds, 2, timeout);  // a negative fd is ignored
    if (fds[0].revents & POLLIN) {
      std::uint64_t count = 0;
      (void)!::read(wake_fd_, &count, sizeof count);
    }
    exit_signalled = (fds[1].revents & POLLIN) != 0;
    lock.lock();
  }
  lock.unlock();
  if (watch_fd >= 0) ::close(watch_fd);
}

void Supervisor::stop(const std::vector<std::string>& drain, std::chrono::milliseconds timeout) {
  pid_t pid;
  bool adopted;
  unsigned long long start_ticks;
  ProcessSpec hook;  // the drain command runs as the service does
  {
    std::lock_guard lock(mu_);
    pid = pid_;
    adopted = adopted_;
    start_ticks = start_ticks_;
    hook = spec_;
    hook.argv = drain;
    state_ = RunState::stopped;  // the monitor leaves a stopped process alone
    pid_ = -1;
  }
  wake();
  const auto deadline = Clock::now() + timeout;
  if (pid > 0 && !drain.empty()) {
    auto r = run_command(hook, timeout);
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
