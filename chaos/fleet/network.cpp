#include "chaos/fleet/network.hpp"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <thread>

#include "tests/support/test_support.hpp"

namespace drover::chaos {

using testing::ProcessResult;
using namespace std::chrono_literals;

namespace {

std::string ip_binary() {
  for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "";
}

std::string failed(const std::vector<std::string>& argv, const ProcessResult& r) {
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  std::string err = r.err.empty() ? r.out : r.err;
  while (!err.empty() && err.back() == '\n') err.pop_back();
  return cmd + ": " + (err.empty() ? "exit " + std::to_string(r.exit_code) : err);
}

}  // namespace

std::unique_ptr<Network> Network::loopback() {
  return std::unique_ptr<Network>(new Network());
}

std::unique_ptr<Network> Network::namespaces(int subnets, std::string* why) {
  if (::geteuid() != 0) {
    *why = "not root: network namespaces need root";
    return nullptr;
  }
  std::unique_ptr<Network> n(new Network());
  n->ip_ = ip_binary();
  if (n->ip_.empty()) {
    *why = "no ip(8) (Debian package iproute2)";
    return nullptr;
  }
  if (::access("/usr/sbin/nft", X_OK) != 0) {
    *why = "no nft(8) (Debian package nftables)";
    return nullptr;
  }
  // The core namespace's name holds the address block: creating it claims
  // the block, so runs at the same time never share one.
  const int first = static_cast<int>(::getpid() % 100);
  for (int i = 0; i < 100 && n->block_ == 0; ++i) {
    const int b = 100 + (first + i) % 100;
    ProcessResult r = testing::run({n->ip_, "netns", "add", "drover-chaos-" + std::to_string(b)});
    if (r.exit_code == 0) {
      n->block_ = b;
    } else if (r.err.find("exist") == std::string::npos) {
      *why = "cannot create a network namespace: " + r.err;
      return nullptr;
    }
  }
  if (n->block_ == 0) {
    *why = "no free 10.B.0.0/16 block (B 100-199)";
    return nullptr;
  }
  const std::string c = n->core();
  std::vector<std::vector<std::string>> steps = {
      {"-n", c, "link", "set", "lo", "up"},
      {"netns", "exec", c, "/usr/sbin/sysctl", "-qw", "net.ipv4.ip_forward=1"}};
  for (int s = 0; s <= subnets; ++s) {
    const std::string br = "br" + std::to_string(s);
    steps.push_back({"-n", c, "link", "add", br, "type", "bridge"});
    steps.push_back({"-n", c, "addr", "add",
                     "10." + std::to_string(n->block_) + "." + std::to_string(s) + ".1/24", "dev",
                     br});
    steps.push_back({"-n", c, "link", "set", br, "up"});
  }
  for (const auto& step : steps) {
    if (std::string e = n->ip(step); !e.empty()) {
      *why = e;
      return nullptr;
    }
  }
  if (std::string e = n->nft("add table inet chaos\n"
                             "add chain inet chaos forward { type filter hook forward priority 0; "
                             "policy accept; }\n"
                             "add table ip chaosnat\n"
                             "add chain ip chaosnat prerouting { type nat hook prerouting "
                             "priority -100; }\n");
      !e.empty()) {
    *why = e;
    return nullptr;
  }
  n->core_fd_ = ::open(("/run/netns/" + c).c_str(), O_RDONLY | O_CLOEXEC);
  if (n->core_fd_ < 0) {
    *why = "cannot open /run/netns/" + c;
    return nullptr;
  }
  return n;
}

Network::~Network() {
  relays_.clear();
  if (core_fd_ >= 0) ::close(core_fd_);
  for (auto& [name, node] : nodes_) {
    if (node.fd >= 0) ::close(node.fd);
    if (isolated()) testing::run({ip_, "netns", "del", node.ns}, 20s);
  }
  if (isolated()) testing::run({ip_, "netns", "del", core()}, 20s);
}

std::string Network::core() const {
  return "drover-chaos-" + std::to_string(block_);
}

std::string Network::ip(std::vector<std::string> args) const {
  args.insert(args.begin(), ip_);
  ProcessResult r = testing::run(args, 20s);
  return r.exit_code == 0 ? "" : failed(args, r);
}

std::string Network::nft(const std::string& script) const {
  // nft -f reads a file; each statement on its own line.
  char path[] = "/tmp/drover-chaos-nft-XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) return "cannot write an nft script";
  const bool wrote =
      ::write(fd, script.data(), script.size()) == static_cast<ssize_t>(script.size());
  ::close(fd);
  std::string e = wrote ? ip({"netns", "exec", core(), "/usr/sbin/nft", "-f", path})
                        : "cannot write an nft script";
  ::unlink(path);
  return e.empty() ? "" : e + "\n" + script;
}

std::string Network::subnet_cidr(int subnet) const {
  return "10." + std::to_string(block_) + "." + std::to_string(subnet) + ".0/24";
}

std::string Network::add_node(const std::string& name, int subnet) {
  if (nodes_.count(name)) return "node " + name + " exists";
  Node node;
  node.subnet = subnet;
  if (!isolated()) {
    node.address = "127.0.0.1";
    nodes_[name] = node;
    return "";
  }
  const int host = next_host_.count(subnet) ? next_host_[subnet] : 2;
  next_host_[subnet] = host + 1;
  node.ns = core() + "-" + name;
  node.link = "n" + std::to_string(subnet) + "h" + std::to_string(host);
  node.address =
      "10." + std::to_string(block_) + "." + std::to_string(subnet) + "." + std::to_string(host);
  if (std::string e = ip({"netns", "add", node.ns}); !e.empty()) return e;
  nodes_[name] = node;  // removed on destruction from here on
  const std::string c = core();
  for (const auto& step : std::vector<std::vector<std::string>>{
           {"-n", c, "link", "add", node.link, "type", "veth", "peer", "name", "eth0", "netns",
            node.ns},
           {"-n", c, "link", "set", node.link, "master", "br" + std::to_string(subnet)},
           {"-n", c, "link", "set", node.link, "up"},
           {"-n", node.ns, "addr", "add", node.address + "/24", "dev", "eth0"},
           {"-n", node.ns, "link", "set", "eth0", "up"},
           {"-n", node.ns, "link", "set", "lo", "up"},
           {"-n", node.ns, "route", "add", "default", "via",
            "10." + std::to_string(block_) + "." + std::to_string(subnet) + ".1"}}) {
    if (std::string e = ip(step); !e.empty()) return e;
  }
  nodes_[name].fd = ::open(("/run/netns/" + node.ns).c_str(), O_RDONLY | O_CLOEXEC);
  if (nodes_[name].fd < 0) return "cannot open /run/netns/" + node.ns;
  return "";
}

std::string Network::address(const std::string& name) const {
  return nodes_.at(name).address;
}

int Network::ns_fd(const std::string& name) const {
  return nodes_.at(name).fd;
}

std::vector<std::string> Network::in(const std::string& name, std::vector<std::string> argv) const {
  if (!isolated()) return argv;
  argv.insert(argv.begin(), {ip_, "netns", "exec", nodes_.at(name).ns});
  return argv;
}

bool Network::run_in(const std::string& name, const std::function<void()>& fn) const {
  if (!isolated()) {
    fn();
    return true;
  }
  const int fd = ns_fd(name);
  bool entered = false;
  // A thread's network namespace is its own: entering it moves only this
  // thread (and the threads it starts).
  std::thread t([&] {
    if (::setns(fd, CLONE_NEWNET) != 0) return;
    entered = true;
    fn();
  });
  t.join();
  return entered;
}

std::string Network::set_rules(const std::string& fault, const std::vector<std::string>& rules) {
  if (!isolated()) return "link faults need network namespaces (root)";
  Rules next = rules_;  // kept only once nft took it
  if (rules.empty()) {
    next.erase(fault);
  } else {
    next[fault] = rules;
  }
  if (std::string e = nft(forward_script(next)); !e.empty()) return e;
  rules_ = std::move(next);
  return "";
}

std::string Network::forward_script(const Rules& rules) {
  std::string script = "flush chain inet chaos forward\n";
  for (const auto& [name, set] : rules) {
    for (const auto& r : set) script += "add rule inet chaos forward " + r + "\n";
  }
  return script;
}

std::string Network::delay(const std::string& fault, const std::string& from, const std::string& to,
                           const std::vector<std::uint16_t>& ports,
                           std::chrono::milliseconds delay) {
  if (!isolated()) return "link faults need network namespaces (root)";
  // The new state is built aside and kept only once nft took it.
  auto redirects = redirects_;
  auto rules = rules_;
  std::unique_ptr<Relay> relay;
  if (delay.count() <= 0) {
    redirects.erase(fault);
    rules.erase(fault + "/direct");
  } else {
    Relay::Options o;
    o.delay = delay;
    o.netns_fd = core_fd_;
    std::string why;
    relay = Relay::start(o, &why);
    if (!relay) return "relay: " + why;
    auto& redirect = redirects[fault];
    auto& resets = rules[fault + "/direct"];
    redirect.clear();
    resets.clear();
    for (auto p : ports) {
      const std::string flow =
          "ip saddr " + from + " ip daddr " + to + " tcp dport " + std::to_string(p);
      redirect.push_back(flow + " redirect to :" + std::to_string(relay->port()));
      // Flows open before the redirect never pass through it (NAT is decided
      // at a flow's first packet): reset them, so they come back through the
      // relay. Relayed flows never reach the forward chain.
      resets.push_back(flow + " reject with tcp reset");
    }
  }
  // The resets and the redirects in one script: nft applies a file as one
  // transaction, so no flow starts between them.
  std::string script = forward_script(rules) + "flush chain ip chaosnat prerouting\n";
  for (const auto& [name, set] : redirects) {
    for (const auto& r : set) script += "add rule ip chaosnat prerouting " + r + "\n";
  }
  if (std::string e = nft(script); !e.empty()) return e;
  redirects_ = std::move(redirects);
  rules_ = std::move(rules);
  if (relay) {
    // A relay outlives its rule: flows it holds finish through it.
    if (auto old = relays_.find(fault); old != relays_.end()) {
      retired_.push_back(std::move(old->second));
    }
    relays_[fault] = std::move(relay);
  }
  return "";
}

const Relay* Network::relay(const std::string& fault) const {
  auto found = relays_.find(fault);
  return found == relays_.end() ? nullptr : found->second.get();
}

std::string Network::shape(const std::string& name, const std::string& rate) {
  if (!isolated()) return "link faults need network namespaces (root)";
  const std::string link = nodes_.at(name).link;
  if (rate.empty())
    return ip({"netns", "exec", core(), "/usr/sbin/tc", "qdisc", "del", "dev", link, "root"});
  return ip({"netns", "exec", core(), "/usr/sbin/tc", "qdisc", "replace", "dev", link, "root",
             "tbf", "rate", rate, "burst", "64kb", "latency", "500ms"});
}

std::vector<std::string> Network::cut(const std::string& a, const std::string& b) {
  return {"ip saddr " + a + " ip daddr " + b + " drop",
          "ip saddr " + b + " ip daddr " + a + " drop"};
}

std::vector<std::string> Network::lossy(const std::string& a, const std::string& b, int percent) {
  const std::string p = std::to_string(percent);
  return {"ip saddr " + a + " ip daddr " + b + " numgen random mod 100 < " + p + " drop",
          "ip saddr " + b + " ip daddr " + a + " numgen random mod 100 < " + p + " drop"};
}

}  // namespace drover::chaos
