#include "tests/support/daemon_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace drover::testing {

DaemonProcess::DaemonProcess(const std::vector<std::string>& argv, const std::string& stderr_path,
                             const std::map<std::string, std::string>& env)
    : stderr_path_(stderr_path) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // The child's environment, built before fork (the child only execs).
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    if (!env.count(entry.substr(0, entry.find('=')))) env_strings.push_back(entry);
  }
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    // Dies with its parent: a test or benchmark that is killed (or exits
    // without running destructors) must not leave daemons behind.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::dup2(out[1], 1);
    int err = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    if (err >= 0) ::dup2(err, 2);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::execve(args[0], args.data(), envp.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(out[1]);
  out_fd_ = out[0];
  reader_ = std::thread([this] { read_loop(); });
}

DaemonProcess::~DaemonProcess() {
  if (!status_) kill();
  if (reader_.joinable()) reader_.join();
  if (out_fd_ >= 0) ::close(out_fd_);
}

void DaemonProcess::read_loop() {
  std::string buffer;
  char chunk[8192];
  for (;;) {
    ssize_t n = ::read(out_fd_, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buffer.append(chunk, static_cast<std::size_t>(n));
    std::size_t nl;
    while ((nl = buffer.find('\n')) != std::string::npos) {
      std::string line = buffer.substr(0, nl);
      buffer.erase(0, nl + 1);
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded()) j = nlohmann::json{{"event", "unparsed"}, {"text", line}};
      std::lock_guard lock(mu_);
      lines_.push_back(std::move(j));
      cv_.notify_all();
    }
  }
  std::lock_guard lock(mu_);
  eof_ = true;
  cv_.notify_all();
}

std::optional<nlohmann::json> DaemonProcess::wait_for(
    const std::function<bool(const nlohmann::json&)>& match, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  std::size_t seen = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    for (; seen < lines_.size(); ++seen) {
      if (match(lines_[seen])) return lines_[seen];
    }
    if (eof_) return std::nullopt;
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && seen == lines_.size()) {
      return std::nullopt;
    }
  }
}

std::optional<nlohmann::json> DaemonProcess::wait_for_event(const std::string& event,
                                                            std::chrono::milliseconds timeout) {
  return wait_for([&](const nlohmann::json& j) { return j.value("event", "") == event; }, timeout);
}

std::vector<nlohmann::json> DaemonProcess::lines() {
  std::lock_guard lock(mu_);
  return lines_;
}

std::optional<int> DaemonProcess::reap(bool block) {
  if (status_) return status_;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r != pid_) return std::nullopt;
  status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  return status_;
}

std::optional<int> DaemonProcess::wait_exit(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // The reader thread sees end of file when the process exits (it holds the
  // only write end of the pipe)...
  {
    std::unique_lock lock(mu_);
    cv_.wait_until(lock, deadline, [this] { return eof_; });
  }
  // ...and the exit status follows a moment later: poll for it until the deadline.
  for (;;) {
    if (auto code = reap(false)) return code;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

int DaemonProcess::stop(std::chrono::milliseconds timeout) {
  if (status_) return *status_;
  ::kill(pid_, SIGTERM);
  if (auto code = wait_exit(timeout)) return *code;
  kill();
  return status_.value_or(-SIGKILL);
}

void DaemonProcess::kill() {
  if (status_) return;
  ::kill(pid_, SIGKILL);
  reap(true);
}

std::string DaemonProcess::stderr_tail(std::size_t bytes) const {
  std::ifstream in(stderr_path_);
  std::stringstream s;
  s << in.rdbuf();
  std::string all = s.str();
  return all.size() > bytes ? all.substr(all.size() - bytes) : all;
}

}  // namespace drover::testing
