#include "tests/support/test_support.hpp"

#include <mutex>

#include <netinet/in.h>
#include <pty.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>

namespace drover::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/drover-test-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  // Make every directory writable first: tests create read-only ones.
  for (auto it = fs::recursive_directory_iterator(path_, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) {
      fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
    }
  }
  fs::remove_all(path_, ec);
}

void write_file(const fs::path& path, const std::string& content, unsigned mode) {
  fs::create_directories(path.parent_path());
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!out) throw std::runtime_error("write failed: " + path.string());
  }
  if (::chmod(path.c_str(), mode) != 0) throw std::runtime_error("chmod failed: " + path.string());
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::map<std::string, TreeEntry> snapshot(const fs::path& root) {
  std::map<std::string, TreeEntry> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) throw std::runtime_error("lstat failed");
    TreeEntry e;
    e.mode = st.st_mode & 07777;
    if (S_ISREG(st.st_mode)) {
      e.type = 'f';
      e.content = read_file(it->path());
    } else if (S_ISDIR(st.st_mode)) {
      e.type = 'd';
    } else if (S_ISLNK(st.st_mode)) {
      e.type = 'l';
      e.mode = 0;
      e.content = fs::read_symlink(it->path()).string();
    }
    out[it->path().lexically_relative(root).string()] = e;
  }
  return out;
}

std::string diff(const std::map<std::string, TreeEntry>& a,
                 const std::map<std::string, TreeEntry>& b) {
  std::string out;
  for (const auto& [path, e] : a) {
    auto it = b.find(path);
    if (it == b.end()) {
      out += "only in first: " + path + "\n";
    } else if (!(it->second == e)) {
      char buf[128];
      std::snprintf(buf, sizeof buf, " (type %c/%c mode %o/%o, %zu/%zu bytes)", e.type,
                    it->second.type, e.mode, it->second.mode, e.content.size(),
                    it->second.content.size());
      out += "differs: " + path + buf + "\n";
    }
  }
  for (const auto& [path, e] : b) {
    if (!a.contains(path)) out += "only in second: " + path + "\n";
  }
  return out;
}

bool privileged_tests_required() {
  const char* v = std::getenv("DROVER_PRIVILEGED_TESTS");
  return v != nullptr && std::string_view(v) == "required";
}

fs::path binary(const std::string& name) {
  const char* dir = std::getenv("DROVER_BIN_DIR");
  if (dir == nullptr)
    throw std::runtime_error("DROVER_BIN_DIR is not set (run tests through ctest)");
  return fs::path(dir) / name;
}

namespace {

struct Child {
  pid_t pid;
  int out_fd;
  int err_fd;
  std::chrono::steady_clock::time_point started;
};

Child spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env) {
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    ::execv(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  return {pid, out_pipe[0], err_pipe[0], std::chrono::steady_clock::now()};
}

// Reads both pipes until they close or the deadline passes; then reaps.
ProcessResult collect(Child c, std::chrono::steady_clock::time_point deadline) {
  ProcessResult r;
  pollfd fds[2] = {{c.out_fd, POLLIN, 0}, {c.err_fd, POLLIN, 0}};
  int open = 2;
  bool killed = false;
  char buf[65536];
  while (open > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 && !killed) {
      ::kill(c.pid, SIGKILL);
      killed = true;
    }
    int n = ::poll(fds, 2, killed ? 1000 : static_cast<int>(std::min<long>(left.count(), 1000)));
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        (i == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(got));
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open;
      }
    }
  }
  int status = 0;
  struct rusage usage {};
  while (::wait4(c.pid, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  r.cpu_seconds = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                  static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  r.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - c.started).count();
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  return r;
}

}  // namespace

ProcessResult run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                  const std::map<std::string, std::string>& env) {
  return collect(spawn(argv, env), std::chrono::steady_clock::now() + timeout);
}

ProcessResult run_on_terminal(const std::vector<std::string>& argv,
                              std::chrono::milliseconds timeout,
                              const std::map<std::string, std::string>& env,
                              unsigned short columns) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // The environment is built before the fork: the child of a threaded
  // process may only exec.
  std::map<std::string, std::string> vars;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string kv = *e;
    const auto eq = kv.find('=');
    if (eq != std::string::npos) vars[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  vars["TERM"] = "xterm";
  for (const auto& [k, v] : env) vars[k] = v;
  std::vector<std::string> flat;
  for (const auto& [k, v] : vars) flat.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& kv : flat) envp.push_back(kv.data());
  envp.push_back(nullptr);
  winsize ws{};
  ws.ws_col = columns;
  ws.ws_row = 40;
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, &ws);
  if (pid < 0) throw std::runtime_error("forkpty failed");
  if (pid == 0) {
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  ProcessResult r;
  const auto started = std::chrono::steady_clock::now();
  const auto deadline = started + timeout;
  char buf[4096];
  bool killed = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 && !killed) {
      ::kill(pid, SIGKILL);
      killed = true;
    }
    pollfd p{master, POLLIN, 0};
    const int ready =
        ::poll(&p, 1, killed ? 1000 : static_cast<int>(std::min<long>(left.count(), 200)));
    if (ready > 0) {
      const ssize_t n = ::read(master, buf, sizeof buf);
      if (n <= 0) break;  // EIO once the child and its terminal are gone
      r.out.append(buf, static_cast<std::size_t>(n));
    } else if (ready < 0 && errno != EINTR) {
      break;
    } else if (killed) {
      break;
    }
  }
  ::close(master);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  r.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return r;
}

ProcessResult run_and_kill(const std::vector<std::string>& argv, std::chrono::microseconds after) {
  // The deadline is the fault being injected, not a wait for a condition.
  return collect(spawn(argv, {}), std::chrono::steady_clock::now() + after);
}

bool claim_port(std::uint16_t port) {
  static const char* dir = "/tmp/drover-test-ports";
  if (::mkdir(dir, 01777) == 0) ::chmod(dir, 01777);  // for every user, past the umask
  const std::string path = std::string(dir) + "/" + std::to_string(port);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) return true;  // no claims possible here: the bind check alone
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return false;
  }
  return true;  // fd stays open: the claim lasts as long as the process
}

std::uint16_t free_port() {
  // A port below the kernel's ephemeral range: bind(port 0) in every other
  // socket of the test run (NNG, libtorrent, HTTP servers, outgoing
  // connections) draws from that range, so a port handed out here cannot be
  // taken by one of those between now and the moment its user binds it.
  // Other test processes drawing from the same range are kept off it by
  // claim_port.
  unsigned low = 32768;
  if (std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range"); range) range >> low;
  const unsigned first = 10000, last = low > first + 1000 ? low - 1 : 30000;
  static std::mutex mu;
  static std::mt19937 pick(std::random_device{}() ^ static_cast<unsigned>(::getpid()));
  for (int attempt = 0; attempt < 1000; ++attempt) {
    std::uint16_t port;
    {
      std::lock_guard lock(mu);
      port = static_cast<std::uint16_t>(first + pick() % (last - first + 1));
    }
    int sock = ::socket(AF_INET, SOCK_STREAM, 0);
    if (sock < 0) throw std::runtime_error("socket failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    const bool ok = ::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(sock);
    if (ok && claim_port(port)) return port;
  }
  throw std::runtime_error("no free port on 127.0.0.1");
}

double process_cpu_seconds(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  if (line.empty()) return 0;
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 13; ++i) rest >> field;  // state .. cmajflt
  rest >> utime >> stime;
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

}  // namespace drover::testing
