// Where the chaos fleet's processes live and the faults on their links
// (docs/CHAOS.md, "The network").
//
// As root: a "core" network namespace routes between one bridge per subnet
// (subnet 0 for the control plane: coordinator and origin; one per region:
// its seed and hosts), and every node has a namespace of its own joined to
// its subnet's bridge by a veth pair, with an address of its own and a
// default route through the core. Faults are rules in the core's nftables
// table (partitions, random loss) and qdiscs on the core's end of a node's
// link (bandwidth). Nothing is added to the namespace drover-chaos runs in;
// it reaches a node by running a thread inside that node's namespace.
//
// Without root: every node is a process on loopback, 127.0.0.1, and the
// link faults are unavailable (the scenarios that need them are skipped).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "chaos/fleet/relay.hpp"

namespace drover::chaos {

class Network {
 public:
  // Every node on loopback.
  static std::unique_ptr<Network> loopback();
  // A core namespace and subnets 0..subnets; nullptr and why when this
  // machine cannot (not root, no ip(8), no free address block).
  static std::unique_ptr<Network> namespaces(int subnets, std::string* why);
  ~Network();  // removes every namespace (and so every link) it made
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  bool isolated() const { return block_ != 0; }

  // Adds a node on a subnet (a namespace, a link, an address); "" or why not.
  std::string add_node(const std::string& name, int subnet);
  // The node's address (127.0.0.1 on loopback).
  std::string address(const std::string& name) const;
  // 10.B.S.0/24.
  std::string subnet_cidr(int subnet) const;
  // argv run inside the node's namespace (argv itself on loopback).
  std::vector<std::string> in(const std::string& name, std::vector<std::string> argv) const;
  // Runs fn on a thread inside the node's namespace and waits for it (on
  // loopback, on this thread). Returns false when the namespace could not be
  // entered.
  bool run_in(const std::string& name, const std::function<void()>& fn) const;
  // An open descriptor of the node's namespace (-1 on loopback), for
  // threads that stay inside it (setns(fd, CLONE_NEWNET)).
  int ns_fd(const std::string& name) const;

  // Faults, each a named set of nftables statements in the core's forward
  // chain, replaced as a whole; an empty set removes it. Each statement is
  // one rule ("ip saddr 10.1.1.0/24 ip daddr 10.1.0.2 drop"). "" or why not.
  std::string set_rules(const std::string& fault, const std::vector<std::string>& rules);
  // Holds every TCP flow from `from` (a CIDR) to `to`:port (each port of
  // ports) for delay each way, through a Relay in the core; a delay of 0
  // removes it. "" or why not. The relay, for its measurements: relay(fault).
  std::string delay(const std::string& fault, const std::string& from, const std::string& to,
                    const std::vector<std::uint16_t>& ports, std::chrono::milliseconds delay);
  const Relay* relay(const std::string& fault) const;
  // Shapes the traffic toward a node to rate (tbf, e.g. "8mbit"); "" clears.
  std::string shape(const std::string& name, const std::string& rate);
  // The nftables statements that cut a from b both ways (addresses or CIDRs).
  static std::vector<std::string> cut(const std::string& a, const std::string& b);
  // ... and that drop percent% of packets between a and b, both ways.
  static std::vector<std::string> lossy(const std::string& a, const std::string& b, int percent);

 private:
  Network() = default;
  std::string ip(std::vector<std::string> args) const;  // "" or the error
  std::string nft(const std::string& script) const;
  // Rules by fault, in the order nft gets them.
  using Rules = std::map<std::string, std::vector<std::string>>;
  // The forward chain's script: every fault's rules, after a flush.
  static std::string forward_script(const Rules& rules);
  std::string core() const;

  std::string ip_;
  int block_ = 0;  // B of 10.B.0.0/16; 0 on loopback
  struct Node {
    std::string ns, address, link;  // link: the core's end of its veth pair
    int subnet = 0, fd = -1;
  };
  std::map<std::string, Node> nodes_;
  std::map<int, int> next_host_;  // per subnet, the next host number
  Rules rules_;
  Rules redirects_;  // the nat chain's
  std::map<std::string, std::unique_ptr<Relay>> relays_;
  std::vector<std::unique_ptr<Relay>> retired_;  // replaced, still carrying their flows
  int core_fd_ = -1;
};

}  // namespace drover::chaos
