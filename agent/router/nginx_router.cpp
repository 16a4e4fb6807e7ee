#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdio>
#include <random>
#include <thread>

#include "agent/router/router.hpp"
#include "agent/supervisor.hpp"
#include "core/http/http.hpp"

namespace drover::agent {
namespace {

// HOST and PORT of a listen address the config check let through.
std::pair<std::string, std::string> split_listen(const std::string& listen) {
  const std::size_t colon = listen.rfind(':');
  return {listen.substr(0, colon), listen.substr(colon + 1)};
}

// The address to ask on: a wildcard listen is asked on loopback.
std::string ask_address(const std::string& listen) {
  auto [host, port] = split_listen(listen);
  if (host.empty() || host == "*" || host == "0.0.0.0") host = "127.0.0.1";
  if (host == "[::]") host = "[::1]";
  return host + ":" + port;
}

// Who may ask for the generation: loopback, and the listen address itself
// (an agent asking a specific address connects from it).
std::string generation_allow(const std::string& listen) {
  std::string out = "allow 127.0.0.1; allow ::1; ";
  auto [host, port] = split_listen(listen);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  if (!host.empty() && host != "*" && host != "0.0.0.0" && host != "::" && host != "127.0.0.1" &&
      host != "::1") {
    out += "allow " + host + "; ";
  }
  return out + "deny all;";
}

void render_server(std::string& out, const std::string& listen, const std::string& upstream,
                   const std::string& access_log, const std::string& format,
                   const std::string& generation) {
  out += "server {\n";
  out += "    listen " + listen + ";\n";
  if (!access_log.empty()) out += "    access_log " + access_log + " " + format + ";\n";
  out += "    location = /_drover/generation { " + generation_allow(listen) + " return 200 \"" +
         generation + "\\n\"; }\n";
  out += "    location / {\n";
  out += "        proxy_pass http://" + upstream + ";\n";
  out += "        proxy_next_upstream off;\n";
  // What the service would see without nginx in front: the client's Host,
  // where the request came from, HTTP/1.1 with keep-alive to the slot.
  out += "        proxy_http_version 1.1;\n";
  out += "        proxy_set_header Connection \"\";\n";
  out += "        proxy_set_header Host $http_host;\n";
  out += "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n";
  out += "        proxy_set_header X-Forwarded-Proto $scheme;\n";
  out += "        add_header X-Drover-Generation \"" + generation + "\" always;\n";
  out += "    }\n";
  out += "}\n";
}

// Holds an exclusive flock(2) on path while alive: the services of one host
// that share an nginx apply one at a time.
class FileLock {
 public:
  explicit FileLock(const fs::path& path)
      : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the lock
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_;
};

class NginxRouter final : public Router {
 public:
  NginxRouter(Filesystem& fs, NginxRouterConfig config, const Clock& clock, Logger& log)
      : fs_(fs), config_(std::move(config)), clock_(clock), log_(log) {
    if (config_.work_dir.empty()) config_.work_dir = config_.conf_file.parent_path();
  }

  Status apply(const Routes& r) override {
    DROVER_TRY(check_routes(r));
    // An unguessable generation: a local process that answers on the listen
    // port first cannot echo it back (the drop-in is the agent's, 0600).
    std::random_device entropy;
    char nonce[17];
    std::snprintf(nonce, sizeof nonce, "%08x%08x", entropy(), entropy());
    const std::string generation =
        std::to_string(
            std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now().time_since_epoch())
                .count()) +
        "-" + std::to_string(++renders_) + "-" + nonce;
    DROVER_TRY(fs_.make_dirs(config_.conf_file.parent_path()));
    DROVER_TRY(fs_.make_dirs(config_.work_dir));
    FileLock lock(config_.conf_file.parent_path() / ".drover-nginx.lock");
    // What a failure puts back: the last drop-in nginx confirmed, else what
    // the file held before (nothing: it is removed). A file that cannot be
    // read is never overwritten.
    const fs::path confirmed = config_.work_dir / ("nginx-" + r.service + ".confirmed.conf");
    std::optional<std::string> before;
    for (const fs::path& source : {confirmed, config_.conf_file}) {
      auto held = fs_.read_file(source, 1 << 20);
      if (held.ok()) {
        before = *held;
        break;
      }
      if (held.error().code != Errc::not_found) {
        return held.error().context("the nginx router cannot read " + source.string());
      }
    }
    const std::string text = render_nginx(config_, r, generation);
    DROVER_TRY(fs_.write_owned(config_.conf_file, text, 0600));
    // From here on, any failure puts the file back as it was: nginx goes on
    // serving what it served (it never loaded the new file, or loads the old
    // one again).
    auto undo = [&](Error why, bool reload) -> Status {
      Status restored = before ? fs_.write_owned(config_.conf_file, *before, 0600)
                               : fs_.remove(config_.conf_file);
      if (!restored.ok()) {
        why.message +=
            "; and putting the previous drop-in back failed: " + restored.error().message + " (" +
            config_.conf_file.string() + " holds an unconfirmed drop-in)";
      } else if (reload) {
        if (auto again = nginx(r.service, {"-s", "reload"}); !again.ok()) {
          why.message += "; and reloading the previous drop-in failed: " + again.error().message;
        }
      }
      log_.warn("agent.router.refused",
                {{"service", r.service}, {"generation", generation}, {"error", why.message}});
      return why;
    };
    if (auto t = nginx(r.service, {"-t"}); !t.ok()) {
      return undo(t.error().context("nginx -t refused the drop-in"), false);
    }
    if (auto reload = nginx(r.service, {"-s", "reload"}); !reload.ok()) {
      return undo(reload.error().context("nginx -s reload"), false);
    }
    if (auto confirmed_now = confirm(generation); !confirmed_now.ok()) {
      return undo(confirmed_now.error(), true);
    }
    if (auto kept = fs_.write_owned(confirmed, text, 0600); !kept.ok()) {
      // nginx serves it; only a later failure's restore would be older.
      log_.warn("agent.router.confirmed_copy",
                {{"service", r.service}, {"error", kept.error().message}});
    }
    current_ = r;
    log_.info("agent.router.applied", {{"service", r.service},
                                       {"generation", generation},
                                       {"blue", r.weights[0]},
                                       {"green", r.weights[1]}});
    return Ok{};
  }
  std::optional<Routes> current() const override { return current_; }

 private:
  // Runs the nginx command with args; its output is kept in work_dir.
  Status nginx(const std::string& service, const std::vector<std::string>& args) {
    ProcessSpec spec;
    spec.argv = config_.command;
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.cwd = config_.work_dir;
    const fs::path log_file = spec.cwd / ("nginx-" + service + ".log");
    (void)fs_.remove(log_file);
    spec.log_file = log_file;
    DROVER_ASSIGN(int code, run_command(spec, config_.command_timeout));
    if (code == 0) return Ok{};
    // nginx says what is wrong on its output: the [emerg] line names it.
    auto said = fs_.read_file(log_file, 1 << 16);
    std::string why = said.ok() ? *said : "";
    if (const std::size_t at = why.find("[emerg]"); at != std::string::npos) why = why.substr(at);
    if (const std::size_t nl = why.find('\n'); nl != std::string::npos) why.resize(nl);
    return make_error(Errc::refused,
                      "exit " + std::to_string(code) + (why.empty() ? "" : ": " + why));
  }

  // Asks the running nginx for the generation it serves until it is this one,
  // on kConfirmRun fresh connections in a row: right after a reload the old
  // generation's workers may still accept a connection for a moment (seen
  // under AddressSanitizer: a flip confirmed by one new worker while an old
  // one still sent a request to the old slot).
  static constexpr int kConfirmRun = 8;
  Status confirm(const std::string& generation) {
    const std::string url = "http://" + ask_address(config_.listen) + "/_drover/generation";
    const auto deadline = std::chrono::steady_clock::now() + config_.confirm_timeout;
    std::string last = "no answer";
    int run = 0;
    while (true) {
      auto answer = http::request("GET", url, "", std::chrono::milliseconds(1000));
      if (answer.ok() && answer->status == 200) {
        std::string body = answer->body.substr(0, 200);
        while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
        if (body == generation) {
          if (++run >= kConfirmRun) return Ok{};
          continue;  // the next fresh connection, at once
        }
        run = 0;
        last = "it answers \"" + body + "\"";
      } else if (answer.ok()) {
        run = 0;
        last = "it answers status " + std::to_string(answer->status) +
               " (is the listen port another server's too?)";
      } else {
        run = 0;
        last = answer.error().message;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return make_error(Errc::timeout, "nginx did not take generation " + generation +
                                             " within " +
                                             std::to_string(config_.confirm_timeout.count()) +
                                             " ms (" + last + ")");
      }
      if (config_.stopping && config_.stopping()) {
        return make_error(Errc::timeout, "the agent is stopping: generation " + generation +
                                             " not confirmed (" + last + ")");
      }
      // A poll with a deadline: nginx's new workers start within milliseconds.
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  Filesystem& fs_;
  NginxRouterConfig config_;
  const Clock& clock_;
  Logger& log_;
  std::uint64_t renders_ = 0;
  std::optional<Routes> current_;
};

}  // namespace

std::string render_nginx(const NginxRouterConfig& config, const Routes& r,
                         const std::string& generation) {
  const std::string live = "drover_" + r.service + "_live";
  const std::string preview = "drover_" + r.service + "_preview";
  const std::string format = "drover_" + r.service;
  std::string out = "# drover.nginx-router.v1: written by drover-agent for service " + r.service +
                    "; do not edit.\n# generation " + generation + "\n";
  if (!config.access_log.empty()) {
    out += "log_format " + format + " '$msec $status $upstream_addr $request_time \"$request\"';\n";
  }
  out += "upstream " + live + " {\n";
  for (int slot = 0; slot < 2; ++slot) {
    if (r.weights[slot] == 0) continue;  // nginx has no weight 0
    out += "    server 127.0.0.1:" + std::to_string(r.ports[slot]) +
           " weight=" + std::to_string(r.weights[slot]) + " max_fails=0;\n";
  }
  out += "}\n";
  const bool previewing = r.preview.has_value() && !config.preview_listen.empty();
  if (previewing) {
    out += "upstream " + preview +
           " {\n    server 127.0.0.1:" + std::to_string(r.ports[*r.preview]) + " max_fails=0;\n}\n";
  }
  render_server(out, config.listen, live, config.access_log, format, generation);
  if (previewing) {
    render_server(out, config.preview_listen, preview, config.access_log, format, generation);
  }
  return out;
}

std::unique_ptr<Router> make_nginx_router(Filesystem& fs, NginxRouterConfig config,
                                          const Clock& clock, Logger& log) {
  return std::make_unique<NginxRouter>(fs, std::move(config), clock, log);
}

}  // namespace drover::agent
