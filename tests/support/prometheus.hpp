// A real Prometheus for tests (Debian's package, which tools/setup.sh
// installs): its own storage in a temporary directory, listening on a free
// loopback port, scraping the targets it is given every second. Killed when
// destroyed.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/daemon_process.hpp"
#include "tests/support/test_support.hpp"

namespace drover::testing {

struct ScrapeTarget {
  std::string address;                        // "127.0.0.1:PORT"
  std::map<std::string, std::string> labels;  // e.g. {"host": "a1"}
};

class PrometheusProcess {
 public:
  // Starts Prometheus in dir (created) scraping targets; waits until it is
  // ready. Check ok() before use.
  PrometheusProcess(const fs::path& dir, const std::vector<ScrapeTarget>& targets);
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  // Replaces what it scrapes (its file-based discovery rereads the file).
  void set_targets(const std::vector<ScrapeTarget>& targets);
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // The value of an instant query ("" when it has none yet).
  std::string query(const std::string& promql) const;
  // Stops it (SIGKILL): an unreachable Prometheus from then on.
  void kill() { process_.reset(); }
  std::string log() const { return process_ ? process_->stderr_tail(8000) : ""; }

 private:
  fs::path dir_;
  std::uint16_t port_ = 0;
  std::unique_ptr<DaemonProcess> process_;
  std::string error_;
};

}  // namespace drover::testing
