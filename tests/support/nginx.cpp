#include "tests/support/nginx.hpp"

#include <fstream>

namespace drover::testing {

NginxProcess::NginxProcess(const fs::path& dir, int workers) : dir_(dir) {
  for (const char* d : {"conf.d", "tmp", "logs"}) fs::create_directories(dir_ / d);
  std::string nginx;
  for (const char* candidate : {"/usr/sbin/nginx", "/usr/bin/nginx"}) {
    if (fs::exists(candidate)) nginx = candidate;
  }
  if (nginx.empty()) {
    error_ = "nginx is not installed (tools/setup.sh installs it)";
    return;
  }
  const std::string p = dir_.string();
  std::ofstream(dir_ / "nginx.conf") << "worker_processes " << workers << ";\n"
                                     << "pid " << p << "/nginx.pid;\n"
                                     << "error_log " << p << "/logs/error.log;\n"
                                     << "events { worker_connections 1024; }\n"
                                     << "http {\n  access_log off;\n"
                                     << "  client_body_temp_path " << p << "/tmp/body;\n"
                                     << "  proxy_temp_path " << p << "/tmp/proxy;\n"
                                     << "  fastcgi_temp_path " << p << "/tmp/fastcgi;\n"
                                     << "  uwsgi_temp_path " << p << "/tmp/uwsgi;\n"
                                     << "  scgi_temp_path " << p << "/tmp/scgi;\n"
                                     << "  include " << p << "/conf.d/*.conf;\n}\n";
  command_ = {nginx, "-p", p, "-c", p + "/nginx.conf", "-e", p + "/logs/error.log"};
  auto started = run(command_);
  if (started.exit_code != 0) {
    error_ = "nginx did not start: " + started.err;
    return;
  }
  if (!eventually([&] { return fs::exists(dir_ / "nginx.pid"); })) {
    error_ = "nginx wrote no pid file";
  }
}

NginxProcess::~NginxProcess() {
  if (command_.empty()) return;
  auto stop = command_;
  stop.insert(stop.end(), {"-s", "stop"});
  (void)run(stop);
  // The master removes its pid file as it exits.
  (void)eventually([&] { return !fs::exists(dir_ / "nginx.pid"); });
}

}  // namespace drover::testing
