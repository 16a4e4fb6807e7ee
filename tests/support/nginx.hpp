// A real nginx for tests (Debian's package, which tools/setup.sh installs):
// a master of its own under a prefix in a temporary directory, with an empty
// conf.d that the code under test writes drop-ins into. Stopped (and waited
// for) when destroyed.
#pragma once

#include <string>
#include <vector>

#include "tests/support/test_support.hpp"

namespace drover::testing {

class NginxProcess {
 public:
  // Starts nginx with its prefix in dir (created). Check ok() before use.
  explicit NginxProcess(const fs::path& dir, int workers = 2);
  ~NginxProcess();
  NginxProcess(const NginxProcess&) = delete;
  NginxProcess& operator=(const NginxProcess&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  // The command that reaches this nginx: "-t" or "-s reload" go after it.
  const std::vector<std::string>& command() const { return command_; }
  // Where drop-ins go: included inside nginx's http block.
  fs::path conf_d() const { return dir_ / "conf.d"; }
  fs::path logs() const { return dir_ / "logs"; }

 private:
  fs::path dir_;
  std::vector<std::string> command_;
  std::string error_;
};

}  // namespace drover::testing
