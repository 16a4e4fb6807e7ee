// A long-running child process (a drover daemon) that reports JSON lines on
// stdout. A reader thread collects the lines; tests wait for a line matching a
// predicate, with a deadline, instead of sleeping.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace drover::testing {

class DaemonProcess {
 public:
  // Starts argv with env added to this process's environment; stderr goes
  // to stderr_path (for the test's failure messages).
  DaemonProcess(const std::vector<std::string>& argv, const std::string& stderr_path,
                const std::map<std::string, std::string>& env = {});
  ~DaemonProcess();  // SIGKILLs the process if it still runs
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  // The first line (already seen or still to come) for which match is true.
  std::optional<nlohmann::json> wait_for(const std::function<bool(const nlohmann::json&)>& match,
                                         std::chrono::milliseconds timeout);
  std::optional<nlohmann::json> wait_for_event(const std::string& event,
                                               std::chrono::milliseconds timeout);
  std::vector<nlohmann::json> lines();

  // SIGTERM, then waits for exit (SIGKILL after the timeout). Returns the exit code, or -signal.
  int stop(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // SIGKILL and reap: a crash.
  void kill();
  // Waits for the process to exit by itself.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  std::string stderr_tail(std::size_t bytes = 4000) const;
  pid_t pid() const { return pid_; }

 private:
  void read_loop();
  std::optional<int> reap(bool block);

  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string stderr_path_;
  std::thread reader_;
  std::mutex mu_;  // guards lines_, eof_, status_
  std::condition_variable cv_;
  std::vector<nlohmann::json> lines_;
  bool eof_ = false;
  std::optional<int> status_;
};

}  // namespace drover::testing
