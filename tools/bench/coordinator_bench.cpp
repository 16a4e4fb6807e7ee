// drover-bench-coordinator: the coordinator under a fleet of simulated agents
// that speak the real protocol (the agent's own CoordinatorLink: enrollment
// with a signature and a sealed report key, MACed plan pulls and reports,
// plans verified against the root), run in a few processes.
//
// Measures (docs/BENCHMARKS.md, "Coordinator"):
//   - a 10-batch rolling deploy with zero bake: total orchestration time and
//     the agents' plan-pull latency;
//   - a rollback of every host: from the decision until all report the prior
//     version (the coordinator's own record of it);
//   - report ingest: reports acknowledged per second while the load
//     generator floods from the same 2 cores, with the CPU each side used,
//     against two baselines that decode and acknowledge only: one speaking
//     protocol 1 (plain answers), one protocol 2 (the answer sealed under
//     the host's key, so the simulated agents do the same work as against
//     the coordinator; nothing is checked or stored).
// With --layout promotion the rollout goes through 2 environments and 10
// regions (production in 3 waves, canary steps per region) and the rollback
// is production's, newest wave first; --deploys-only skips the ingest part.
//
// With --layout blue_green every simulated host keeps two slots: a
// blue/green release is previewed at no traffic, flipped, then flipped back.
// With --layout concurrent the agents are dealt among --services services
// and every service's deploy starts at once (DESIGN.md's ~100 concurrent
// deploys): deploys a minute, and each batch's wait from its last report
// acknowledged to the coordinator judging it.
//
//   drover-bench-coordinator [--agents 1000] [--procs 2] [--threads 8] [--flood-seconds 5]
//                            [--layout single|promotion|blue_green|concurrent]
//                            [--services 100] [--deploys-only]
//   drover-bench-coordinator sim ...   (a load-generating child; started by the above)
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cxxopts.hpp>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "core/agent_link/agent_link.hpp"
#include "core/base/hex.hpp"
#include "core/nng/nng.hpp"
#include "core/proto/flagset.hpp"
#include "core/proto/plan.hpp"
#include "core/sign/envelope.hpp"
#include "core/sign/keys.hpp"
#include "core/sign/secret_box.hpp"
#include "core/world/clock.hpp"
#include "core/world/random.hpp"
#include "tests/support/fleet.hpp"

namespace {

using namespace drover;
using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

double cpu_seconds(pid_t pid) {
  return testing::process_cpu_seconds(pid);
}

std::int64_t now_ms() {
  return unix_ms(std::chrono::system_clock::now());
}

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

// The simulators' per-seq times merged: the first announcement, the last
// pull and acknowledged report among the agents the seq changed.
using SeqKey = std::pair<std::string, std::uint64_t>;  // service, plan seq

std::map<SeqKey, json> merge_seqs(const std::vector<json>& stats) {
  std::map<SeqKey, json> out;
  for (const auto& st : stats) {
    if (!st.contains("seqs")) continue;
    for (const auto& [key, t] : st["seqs"].items()) {
      const auto slash = key.rfind('/');
      if (slash == std::string::npos) continue;
      json& m = out[{key.substr(0, slash), std::stoull(key.substr(slash + 1))}];
      if (m.is_null()) m = {{"announced_ms", 0}, {"pulled_ms", 0}, {"acked_ms", 0}, {"applied", 0}};
      const std::int64_t a = t.value("announced_ms", std::int64_t{0});
      if (a > 0 && (m["announced_ms"] == 0 || a < m["announced_ms"].get<std::int64_t>())) {
        m["announced_ms"] = a;
      }
      for (const char* k : {"pulled_ms", "acked_ms"}) {
        m[k] = std::max(m[k].get<std::int64_t>(), t.value(k, std::int64_t{0}));
      }
      m["applied"] = m["applied"].get<std::uint64_t>() + t.value("applied", std::uint64_t{0});
    }
  }
  return out;
}

// Where a zero-bake batch's time goes (medians over the rollout's batches,
// ms): the tick's decision (the batch's started_ms) to its plan's
// announcement reaching the simulators; to the last of its hosts' pulls;
// to the last "applied" report acknowledged (durable at the coordinator);
// to the coordinator judging the batch (finished_ms); to the next batch's
// start. The revisions that changed hosts, in seq order, are the batches.
// The revisions of one service that changed hosts, in seq order.
std::vector<json> revisions_of(const std::map<SeqKey, json>& seqs, const std::string& service) {
  std::vector<json> out;
  for (const auto& [key, t] : seqs) {
    if (key.first == service && t["applied"].get<std::uint64_t>() > 0 &&
        t["announced_ms"].get<std::int64_t>() > 0) {
      out.push_back(t);
    }
  }
  return out;
}

void print_batch_breakdown(const json& d, const std::map<SeqKey, json>& seqs) {
  const std::vector<json> revisions = revisions_of(seqs, d["service"]);
  const json& batches = d["batches"];
  if (revisions.size() != batches.size()) {
    std::printf("           (breakdown: %zu revisions applied for %zu batches; not aligned)\n",
                revisions.size(), batches.size());
    return;
  }
  std::vector<double> issue, pull, report, judge, next, whole;
  for (std::size_t i = 0; i < batches.size(); ++i) {
    const auto& b = batches[i];
    const auto& t = revisions[i];
    const auto started = b["started_ms"].get<std::int64_t>();
    const auto finished = b["finished_ms"].get<std::int64_t>();
    issue.push_back(static_cast<double>(t["announced_ms"].get<std::int64_t>() - started));
    pull.push_back(static_cast<double>(t["pulled_ms"].get<std::int64_t>() -
                                       t["announced_ms"].get<std::int64_t>()));
    report.push_back(static_cast<double>(t["acked_ms"].get<std::int64_t>() -
                                         t["pulled_ms"].get<std::int64_t>()));
    judge.push_back(static_cast<double>(finished - t["acked_ms"].get<std::int64_t>()));
    if (i + 1 < batches.size()) {
      const auto following = batches[i + 1]["started_ms"].get<std::int64_t>();
      next.push_back(static_cast<double>(following - finished));
      whole.push_back(static_cast<double>(following - started));
    }
  }
  std::printf(
      "           per batch (median ms): decided->announced %.0f, ->last pull %.0f, ->last "
      "applied acked %.0f, ->judged %.0f, ->next batch %.0f; batch to batch %.0f\n",
      pct(issue, 0.5), pct(pull, 0.5), pct(report, 0.5), pct(judge, 0.5), pct(next, 0.5),
      pct(whole, 0.5));
}

// --pin: every thread of pid (and the threads they start later) on one CPU.
bool pin_process(pid_t pid, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  std::error_code ec;
  bool all = true;
  for (const auto& t :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    const pid_t tid = static_cast<pid_t>(std::stol(t.path().filename().string()));
    all = ::sched_setaffinity(tid, sizeof set, &set) == 0 && all;
  }
  return all && !ec;
}

// The key the protocol-2 baseline seals a host's answers under: both sides
// derive it from the host's name and a secret the parent draws per run.
std::string echo_key(const std::string& secret, const std::string& host) {
  return sign::hmac_sha256(secret, host);
}

// ---------------------------------------------------------------- the child

std::atomic<int> g_flood{0};      // SIGUSR1: flood the coordinator once
std::atomic<int> g_echo{0};       // SIGHUP: flood the echo server once (the baseline)
std::atomic<int> g_echo2{0};      // SIGALRM: the same in protocol 2
std::atomic<int> g_stats{0};      // SIGUSR2: print stats and reset
std::atomic<bool> g_stop{false};  // SIGTERM

struct SimAgent {
  std::string host;
  std::string service = "web";  // --services N: s0 ... sN-1, hosts dealt in turn
  std::unique_ptr<proto::CoordinatorLink> link;
  std::unique_ptr<proto::CoordinatorLink> echo;   // to the baseline server, protocol 1
  std::unique_ptr<proto::CoordinatorLink> echo2;  // the same in protocol 2
  std::uint64_t plan_seq = 0, report_seq = 0;
  std::string running;
  // --split: a host with two slots behind its router (issue 15).
  std::string other;
  int traffic = 1000;
  bool preview = false;
  std::uint64_t flags_seq = 0;  // the flag set applied
  Clock::time_point next_poll, next_health;
};

int run_sim(const cxxopts::ParseResult& r) {
  if (r["cpu"].as<int>() >= 0 && !pin_process(::getpid(), r["cpu"].as<int>())) {
    return std::cerr << "cannot pin to CPU " << r["cpu"].as<int>() << "\n", 1;
  }
  const std::string requests = r["requests"].as<std::string>();
  const std::string announcements = r["announcements"].as<std::string>();
  const int first = r["first"].as<int>(), count = r["count"].as<int>();
  const int threads = r["threads"].as<int>();
  const int regions = r["regions"].as<int>();
  const double flood_s = r["flood-seconds"].as<double>();
  const bool split = r.count("split") > 0;
  const int services = r["services"].as<int>();
  PosixFilesystem fsys;
  auto root = sign::load_public_key(fsys, r["root"].as<std::string>());
  if (!root.ok()) return std::cerr << root.error().message << "\n", 1;
  const std::string join = r["join"].as<std::string>();
  // The protocol version and transport under measure (docs/BENCHMARKS.md).
  proto::LinkOptions link_options;
  link_options.protocol = r["protocol"].as<int>();
  if (r.count("tls-ca") && !r["tls-ca"].as<std::string>().empty()) {
    auto ca = fsys.read_file(r["tls-ca"].as<std::string>(), 1 << 20);
    if (!ca.ok()) return std::cerr << ca.error().message << "\n", 1;
    link_options.tls = nng::TlsClient{*ca, r["server-name"].as<std::string>()};
  }
  ::signal(SIGUSR1, [](int) { g_flood.fetch_add(1); });
  ::signal(SIGHUP, [](int) { g_echo.fetch_add(1); });
  ::signal(SIGALRM, [](int) { g_echo2.fetch_add(1); });
  const std::string echo_url = r.count("echo") ? r["echo"].as<std::string>() : "";
  const std::string echo_secret = r["echo-secret"].as<std::string>();
  ::signal(SIGUSR2, [](int) { g_stats.fetch_add(1); });
  ::signal(SIGTERM, [](int) { g_stop = true; });

  // Enroll every agent (in parallel threads: it is CPU work, signatures).
  std::vector<SimAgent> agents(static_cast<std::size_t>(count));
  const auto t0 = Clock::now();
  std::atomic<int> failed{0};
  {
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&, t] {
        SystemRandom rnd;
        for (int i = t; i < count; i += threads) {
          SimAgent& a = agents[static_cast<std::size_t>(i)];
          a.host = "sim-" + std::to_string(first + i);
          if (services > 1) a.service = "s" + std::to_string((first + i) % services);
          proto::LinkOptions options = link_options;
          options.verify_cert = [&](const sign::Envelope& c) -> Result<sign::PublicKey> {
            DROVER_ASSIGN(auto v, sign::verify_cert(c, {*root, 1}, now_ms() / 1000));
            return v.subject;
          };
          auto link = proto::CoordinatorLink::connect(requests, a.host, 30s, options);
          if (!link.ok()) {
            ++failed;
            continue;
          }
          a.link = std::move(*link);
          const auto key = sign::KeyPair::generate(rnd);
          const std::string report_key = rnd.bytes(32);
          a.link->set_report_key(report_key);
          auto cert = a.link->pull_cert();
          if (!cert.ok()) {
            ++failed;
            continue;
          }
          auto verified = sign::verify_cert(*cert, {*root, 1}, now_ms() / 1000);
          proto::EnrollBody b;
          b.host = a.host;
          // One region ("r1"), or --regions N of them (r0 ... rN-1), hosts dealt in turn.
          b.region = regions <= 1 ? "r1" : "r" + std::to_string((first + i) % regions);
          b.cluster = "c" + std::to_string(i % 10);
          b.services = {a.service};
          b.public_key = key.public_key();
          b.mesh_peer = "127.0.0.1:1";
          b.join_token = join;
          b.at = now_ms() / 1000;
          if (!verified.ok() || !a.link->enroll(b, key, verified->subject, report_key).ok()) {
            ++failed;
          } else {
            a.link->trust_online_key(verified->subject);
          }
          if (!echo_url.empty()) {
            // The baseline authenticates nothing: protocol 1's plain answers.
            proto::LinkOptions plain;
            plain.protocol = proto::kProtocolVersion;
            auto e = proto::CoordinatorLink::connect(echo_url, a.host, 30s, plain);
            if (e.ok()) {
              a.echo = std::move(*e);
              a.echo->set_report_key(report_key);
            }
            // Protocol 2: its answers are sealed under a key both sides
            // derive from the host's name (the echo holds no enrollments).
            proto::LinkOptions sealed;
            sealed.protocol = proto::kProtocolV2;
            auto e2 = proto::CoordinatorLink::connect(echo_url, a.host, 30s, sealed);
            if (e2.ok()) {
              a.echo2 = std::move(*e2);
              a.echo2->set_report_key(echo_key(echo_secret, a.host));
            }
          }
        }
      });
    }
    for (auto& t : ts) t.join();
  }
  if (failed > 0) return std::cerr << failed << " agents failed to enroll\n", 1;
  std::cout
      << json{{"event", "ready"},
              {"agents", count},
              {"enroll_ms",
               std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count()}}
             .dump()
      << std::endl;

  // Announcements make every agent pull at once, as real agents do: its
  // plan, or its flag set.
  std::atomic<std::uint64_t> announced{0}, flags_announced{0};
  // Workers sleep on this until their next poll or health report, or an
  // announcement (as a real agent's announcement thread wakes it at once).
  std::mutex wake_mu;
  std::condition_variable wake_cv;
  // Per plan seq, for the breakdown of a batch (docs/BENCHMARKS.md): when
  // its announcement arrived, and of the agents it changed how many, the
  // last one's pull and the last one's acknowledged "applied" report.
  struct SeqTimes {
    std::int64_t announced_ms = 0, pulled_ms = 0, acked_ms = 0;
    std::uint64_t applied = 0;
  };
  std::mutex seqs_mu;
  std::map<std::pair<std::string, std::uint64_t>, SeqTimes> seqs;  // by service and seq
  // Plan announcements per service (under wake_mu): an agent pulls on one
  // of its own service's, as a real agent does.
  std::map<std::string, std::uint64_t> announced_of;
  auto sub = nng::Subscriber::dial(announcements, proto::kAnnouncePrefix, link_options.tls);
  std::thread listener([&] {
    while (!g_stop) {
      auto m = (*sub)->receive(200ms);
      if (!m.ok() || !*m) continue;
      auto a = proto::decode_announcement(**m);
      const std::int64_t at = now_ms();
      {
        std::lock_guard lock(wake_mu);
        if (a.ok() && a->flags) {
          flags_announced.fetch_add(1);
        } else if (a.ok()) {
          ++announced_of[a->service];
          announced.fetch_add(1);
        }
      }
      wake_cv.notify_all();
      if (a.ok() && !a->flags) {
        std::lock_guard lock(seqs_mu);
        auto& t = seqs[{a->service, a->seq}];
        if (t.announced_ms == 0) t.announced_ms = at;
      }
    }
  });
  // Flag sets applied, by seq: how many agents and the last one's wall time.
  std::mutex flags_mu;
  std::map<std::uint64_t, std::pair<std::uint64_t, std::int64_t>> flags_done;

  std::mutex stats_mu;
  std::vector<double> pull_ms;
  std::uint64_t pulls = 0, applied = 0, reports = 0;
  std::atomic<std::uint64_t> flood_reports{0};
  std::atomic<int> flooding{0};  // the flood number being run (0: none)
  std::atomic<int> flood_echo{0};
  std::atomic<int> idle_workers{0};
  const int flood_threads = r["flood-threads"].as<int>();
  const auto poll_every = std::chrono::milliseconds(r["poll-ms"].as<int>());
  const auto health_every = std::chrono::milliseconds(r["health-ms"].as<int>());

  // to_echo: 0 the coordinator, 1 the protocol-1 baseline, 2 the protocol-2 one.
  auto report = [&](SimAgent& a, std::optional<proto::EventItem> event, int to_echo = 0) {
    proto::ReportBody body;
    body.seq = ++a.report_seq;
    body.sent_at_ms = now_ms();
    if (event) body.items.push_back({std::nullopt, *event});
    proto::HealthItem h;
    h.service = a.service;
    h.release = a.running;
    h.at_ms = body.sent_at_ms;
    h.ok = true;
    h.error_rate = 0.01;
    h.p99_ms = 12;
    h.saturation = 0.2;
    h.state = "running";
    if (split) {
      h.traffic = a.traffic;
      h.preview = a.preview;
      if (a.preview) h.custom["requests"] = 50;
    }
    body.items.push_back({h, std::nullopt});
    if (split && a.traffic < 1000 && !a.other.empty()) {
      h.release = a.other;  // the other slot: the control
      h.traffic = 1000 - a.traffic;
      h.preview = false;
      h.other = true;
      h.custom.clear();
      body.items.push_back({h, std::nullopt});
    }
    return (to_echo == 0 ? a.link : to_echo == 1 ? a.echo : a.echo2)->send_report(body);
  };

  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::vector<double> my_pulls;
      std::uint64_t my_pull_count = 0, my_applied = 0, my_reports = 0, seen_announce = 0;
      std::map<std::string, std::uint64_t> seen_of;  // announcements acted on, per service
      std::uint64_t seen_flags = 0;
      auto flush = [&] {
        std::lock_guard lock(stats_mu);
        pull_ms.insert(pull_ms.end(), my_pulls.begin(), my_pulls.end());
        pulls += my_pull_count;
        applied += my_applied;
        reports += my_reports;
        my_pulls.clear();
        my_pull_count = my_applied = my_reports = 0;
      };
      while (!g_stop) {
        if (flooding.load() != 0) {
          // The flood threads have the links: stand aside until it ends.
          idle_workers.fetch_add(1);
          while (flooding.load() != 0 && !g_stop) std::this_thread::sleep_for(5ms);
          idle_workers.fetch_sub(1);
          continue;
        }
        const auto now = Clock::now();
        const std::uint64_t ann = announced.load();
        const bool pull_all = ann != seen_announce;
        seen_announce = ann;
        std::set<std::string> fresh;  // services announced since the last pass
        if (pull_all) {
          std::lock_guard lock(wake_mu);
          for (const auto& [service, n] : announced_of) {
            if (std::exchange(seen_of[service], n) != n) fresh.insert(service);
          }
        }
        const std::uint64_t fann = flags_announced.load();
        const bool pull_flags = split && fann != seen_flags;
        seen_flags = fann;
        auto soonest = now + 50ms;
        for (int i = t; i < count; i += threads) {
          SimAgent& a = agents[static_cast<std::size_t>(i)];
          if (fresh.count(a.service) || now >= a.next_poll) {
            a.next_poll = now + poll_every;
            const auto s = Clock::now();
            auto got = a.link->pull_plan(a.service, a.plan_seq);
            my_pulls.push_back(std::chrono::duration<double, std::milli>(Clock::now() - s).count());
            ++my_pull_count;
            if (got.ok() && *got) {
              auto opened = proto::open_plan(**got, {*root, 1}, now_ms() / 1000);
              if (opened.ok() && opened->plan.seq > a.plan_seq) {
                a.plan_seq = opened->plan.seq;
                const std::string artifact = opened->plan.artifact.str();
                bool changed = artifact != a.running;
                if (split && changed) a.other = a.running;  // a flip: the old slot stays warm
                if (split) {
                  changed = changed || opened->plan.traffic() != a.traffic ||
                            opened->plan.preview() != a.preview;
                  a.traffic = opened->plan.traffic();
                  a.preview = opened->plan.preview();
                }
                if (changed) {
                  a.running = artifact;  // applied at once: the coordinator is what is measured
                  ++my_applied;
                  const std::int64_t pulled = now_ms();
                  if (report(a,
                             proto::EventItem{a.service, now_ms(), "applied", a.plan_seq, artifact})
                          .ok()) {
                    ++my_reports;
                  }
                  const std::int64_t acked = now_ms();
                  a.next_health = now + health_every;
                  std::lock_guard lock(seqs_mu);
                  auto& st = seqs[{a.service, a.plan_seq}];
                  ++st.applied;
                  st.pulled_ms = std::max(st.pulled_ms, pulled);
                  st.acked_ms = std::max(st.acked_ms, acked);
                }
              }
            }
          }
          if (pull_flags) {
            // The flag set: verified as an agent does, then "written".
            auto got = a.link->pull_flags("web", a.flags_seq);
            if (got.ok() && *got) {
              auto f = proto::open_flagset(**got, {*root, 1}, now_ms() / 1000);
              if (f.ok() && f->seq > a.flags_seq && f->applies_to(a.host)) {
                a.flags_seq = f->seq;
                const std::int64_t at = now_ms();
                {
                  std::lock_guard lock(flags_mu);
                  auto& done = flags_done[f->seq];
                  ++done.first;
                  done.second = std::max(done.second, at);
                }
                const std::string detail = "{\"seq\":" + std::to_string(f->seq) + "}";
                if (report(a, proto::EventItem{"web", at, "flags_applied", 0, detail}).ok()) {
                  ++my_reports;
                }
              }
            }
          }
          if (now >= a.next_health) {
            a.next_health = now + health_every;
            if (report(a, std::nullopt).ok()) ++my_reports;
          }
          soonest = std::min({soonest, a.next_poll, a.next_health});
        }
        flush();
        if (!pull_all && !pull_flags) {
          std::unique_lock lock(wake_mu);
          wake_cv.wait_until(lock, std::max(soonest, Clock::now() + 1ms), [&] {
            return g_stop || announced.load() != seen_announce ||
                   (split && flags_announced.load() != seen_flags);
          });
        }
      }
      flush();
    });
  }

  int floods_done = 0, stats_done = 0, echo_done = 0, echo2_done = 0, flood_number = 0;
  auto flood = [&](int echo) {
    flood_reports = 0;
    flood_echo = echo;
    flooding = ++flood_number;
    while (idle_workers.load() < threads && !g_stop) std::this_thread::sleep_for(1ms);
    const double cpu0 = cpu_seconds(::getpid());
    const auto s = Clock::now();
    const auto end =
        s + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(flood_s));
    std::vector<std::thread> ts;
    for (int t = 0; t < flood_threads; ++t) {
      ts.emplace_back([&, t] {
        // Reports as fast as this thread's agents get them acknowledged.
        std::uint64_t n = 0;
        while (Clock::now() < end && !g_stop) {
          for (int i = t; i < count && Clock::now() < end; i += flood_threads) {
            if (report(agents[static_cast<std::size_t>(i)], std::nullopt, echo).ok()) ++n;
          }
        }
        flood_reports.fetch_add(n);
      });
    }
    for (auto& t : ts) t.join();
    const double secs = std::chrono::duration<double>(Clock::now() - s).count();
    flooding = 0;
    std::cout << json{{"event", echo == 0   ? "flood"
                                : echo == 1 ? "echo_flood"
                                            : "echo2_flood"},
                      {"reports", flood_reports.load()},
                      {"seconds", secs},
                      {"cpu_s", cpu_seconds(::getpid()) - cpu0}}
                     .dump()
              << std::endl;
  };
  while (!g_stop) {
    if (g_flood.load() > floods_done) {
      ++floods_done;
      flood(0);
    }
    if (g_echo.load() > echo_done) {
      ++echo_done;
      flood(1);
    }
    if (g_echo2.load() > echo2_done) {
      ++echo2_done;
      flood(2);
    }
    if (g_stats.load() > stats_done) {
      ++stats_done;
      std::this_thread::sleep_for(100ms);
      std::lock_guard lock(stats_mu);
      json flags = json::object();
      {
        std::lock_guard flock(flags_mu);
        for (const auto& [seq, done] : flags_done) {
          flags[std::to_string(seq)] = {done.first, done.second};
        }
      }
      json by_seq = json::object();
      {
        std::lock_guard slock(seqs_mu);
        for (const auto& [key, t] : seqs) {
          by_seq[key.first + "/" + std::to_string(key.second)] = {
              {"announced_ms", t.announced_ms},
              {"pulled_ms", t.pulled_ms},
              {"acked_ms", t.acked_ms},
              {"applied", t.applied},
          };
        }
        seqs.clear();
      }
      std::cout << json{{"event", "stats"},
                        {"seqs", by_seq},
                        {"flags", flags},
                        {"pulls", pulls},
                        {"pull_p50_ms", pct(pull_ms, 0.5)},
                        {"pull_p99_ms", pct(pull_ms, 0.99)},
                        {"pull_max_ms", pct(pull_ms, 1.0)},
                        {"applied", applied},
                        {"reports", reports}}
                       .dump()
                << std::endl;
      pull_ms.clear();
      pulls = applied = reports = 0;
    }
    std::this_thread::sleep_for(20ms);
  }
  for (auto& w : workers) w.join();
  (*sub)->close();
  listener.join();
  return 0;
}

// The baseline: the agent protocol with nothing behind it. Each report is
// decoded and acknowledged; nothing is checked or stored. A protocol-2
// request is answered as the coordinator answers it, sealed under the
// host's key (derived from its name: echo_key), since an agent accepts no
// other answer; a protocol-1 request gets protocol 1's plain answer.
int run_echo(const cxxopts::ParseResult& r) {
  if (r["cpu"].as<int>() >= 0 && !pin_process(::getpid(), r["cpu"].as<int>())) {
    return std::cerr << "cannot pin to CPU " << r["cpu"].as<int>() << "\n", 1;
  }
  ::signal(SIGTERM, [](int) { g_stop = true; });
  const std::string secret = r["echo-secret"].as<std::string>();
  auto server = nng::Server::listen(
      r["listen"].as<std::string>(),
      [&secret](std::string_view bytes) {
        auto req = proto::decode_request(bytes);
        if (!req.ok()) return proto::encode_error_reply(req.error());
        // Read as the coordinator reads a report: the fast reader first.
        auto report = [&]() -> Result<proto::ReportBody> {
          if (auto fast = proto::read_report_fast(req->body)) return std::move(*fast);
          DROVER_ASSIGN(auto body, proto::parse_body(req->body));
          return proto::report_body(body);
        }();
        if (!report.ok()) return proto::encode_error_reply(report.error());
        if (req->v != proto::kProtocolV2) return proto::encode_reply("ack", {{"seq", report->seq}});
        return proto::mac_reply("ack", {{"seq", report->seq}}, req->host,
                                proto::request_hash(bytes), echo_key(secret, req->host));
      },
      256);
  if (!server.ok()) return std::cerr << server.error().message << "\n", 1;
  std::cout << json{{"event", "ready"}, {"url", (*server)->url()}}.dump() << std::endl;
  while (!g_stop) std::this_thread::sleep_for(100ms);
  return 0;
}

// --------------------------------------------------------------- the parent

struct Sims {
  std::vector<std::unique_ptr<testing::DaemonProcess>> procs;
  void signal_all(int sig) {
    for (auto& p : procs) ::kill(p->pid(), sig);
  }
  // The nth (from 0) line of each child with this event, waiting for it.
  std::vector<json> collect(const std::string& event, std::size_t nth) {
    std::vector<json> out;
    for (auto& p : procs) {
      json found;
      const auto deadline = Clock::now() + 300s;
      while (found.is_null() && Clock::now() < deadline) {
        std::size_t seen = 0;
        for (const auto& l : p->lines()) {
          if (l.value("event", "") == event && seen++ == nth) found = l;
        }
        if (found.is_null()) std::this_thread::sleep_for(20ms);
      }
      out.push_back(found);
    }
    return out;
  }
  double cpu() {
    double s = 0;
    for (auto& p : procs) s += cpu_seconds(p->pid());
    return s;
  }
};

// A failed step names the deploy's state and reason, not its whole record.
int failed(const char* step, const json& d) {
  std::cerr << step << ": deploy " << d.value("deploy_id", "?") << " is " << d.value("state", "?")
            << " " << d.value("reason", "") << "\n";
  return 1;
}

json wait_deploy(testing::TestFleet& f, const std::string& id, const std::string& until) {
  json d;
  const auto deadline = Clock::now() + 3600s;
  while (Clock::now() < deadline) {
    d = f.api("GET", "/deploys/" + id);
    const std::string s = d.value("state", "");
    if (s == until || s == "succeeded" || s == "rolled_back" || s == "failed") return d;
    std::this_thread::sleep_for(50ms);  // a benchmark's poll, not a test's wait
  }
  return d;
}

// The promotion layout: staging is region r0, production r1 ... r9 in three
// waves (a canary region, three regions together, then the rest), canary
// steps in each region, zero bakes, no gate (a gate is a person's wait, not
// orchestration) and no post-release watch. rest_bake_s > 0 gives the last
// wave a bake to roll back from.
constexpr int kRegions = 10;

json promotion_pipeline(int rest_bake_s) {
  json production_waves =
      json::array({{{"name", "canary"}, {"regions", {"r1"}}},
                   {{"name", "continents"}, {"regions", {"r2", "r3", "r4"}}},
                   {{"name", "rest"}, {"regions", {"*"}}, {"bake_s", rest_bake_s}}});
  return {{"format", "drover.pipeline.v2"},
          {"service", "web"},
          {"strategy", {{"kind", "canary"}, {"canary_percents", {1, 10}}, {"batch_percent", 50}}},
          {"health_checks", {{"bake_s", 0}, {"min_samples", 0}}},
          {"timeouts", {{"ready_s", 120}, {"converge_s", 300}, {"rollback_s", 300}}},
          {"watch_s", 0},
          {"artifact_ready", "origin"},
          {"environments",
           {{{"name", "staging"}, {"waves", {{{"name", "all"}, {"regions", {"r0"}}}}}},
            {{"name", "production"}, {"waves", production_waves}}}}};
}

// --layout blue_green: every host keeps two slots. v2 is previewed on all of
// them at no traffic, then flipped in one revision; then flipped back.
int run_blue_green(testing::TestFleet& f, Sims& sims, const std::string& v2, const std::string& v3,
                   int agents, pid_t coordinator_pid) {
  int status = 0;
  f.api("POST", "/pipelines",
        json{{"service", "web"},
             {"strategy",
              {{"kind", "blue_green"},
               {"scope", "region"},
               {"batch_percent", 100},
               {"preview_min_requests", 0}}},
             {"health_checks", {{"bake_s", 0}, {"min_samples", 0}}},
             {"timeouts", {{"ready_s", 120}, {"converge_s", 300}, {"rollback_s", 300}}},
             {"artifact_ready", "origin"}},
        &status);
  if (status != 200) return std::cerr << "pipeline update refused\n", 1;
  double c0 = cpu_seconds(coordinator_pid);
  json d = f.api("POST", "/deploys", {{"pipeline_id", "web"}, {"artifact_id", v2}}, &status);
  if (status != 201) return failed("blue/green deploy", d);
  const std::string id = d["deploy_id"];
  d = wait_deploy(f, id, "succeeded");
  if (d.value("state", "") != "succeeded") return failed("blue/green deploy", d);
  const json& steps = d["environments"][0]["waves"][0]["regions"][0]["batches"];
  auto took = [&](const json& b) {
    return static_cast<double>(b["converged_ms"].get<std::int64_t>() -
                               b["started_ms"].get<std::int64_t>()) /
           1000;
  };
  std::printf("  blue/green: %d hosts, one region, zero bake\n", agents);
  std::printf("           preview (v2 started beside v1 at no traffic): %.2f s to every host\n",
              took(steps[0]));
  std::printf("           flip (one revision, all traffic to v2): %.2f s to every host\n",
              took(steps[1]));
  std::printf("           CPU: coordinator %.2f s\n", cpu_seconds(coordinator_pid) - c0);
  c0 = cpu_seconds(coordinator_pid);
  f.api("POST", "/rollback", {{"deploy_id", id}, {"reason", "benchmark"}}, &status);
  d = wait_deploy(f, id, "rolled_back");
  if (d.value("state", "") != "rolled_back") return failed("flip back", d);
  const double flip_back =
      static_cast<double>(d["rollback"]["duration_ms"].get<std::int64_t>()) / 1000;
  std::printf("  flip back: %d hosts on v1's warm slot %.2f s after the decision\n", agents,
              flip_back);
  std::printf("           CPU: coordinator %.2f s\n", cpu_seconds(coordinator_pid) - c0);
  // The baseline, in the same run: a rolling release of every host at
  // once (v3 moves in place of the serving release), rolled back.
  d = f.api("POST", "/deploys",
            {{"pipeline_id", "web"},
             {"artifact_id", v3},
             {"strategy_override", {{"kind", "rolling"}, {"batch_percent", 100}}}},
            &status);
  if (status != 201) return failed("baseline deploy", d);
  const std::string base = d["deploy_id"];
  d = wait_deploy(f, base, "succeeded");
  if (d.value("state", "") != "succeeded") return failed("baseline deploy", d);
  f.api("POST", "/rollback", {{"deploy_id", base}, {"reason", "benchmark"}}, &status);
  d = wait_deploy(f, base, "rolled_back");
  if (d.value("state", "") != "rolled_back") return failed("baseline rollback", d);
  const double rollback =
      static_cast<double>(d["rollback"]["duration_ms"].get<std::int64_t>()) / 1000;
  std::printf(
      "  baseline: a rolling rollback of the same %d hosts %.2f s; flip back / baseline = %.2f\n",
      agents, rollback, flip_back / rollback);
  // A flag set at once, then killed: from the kill's request until every
  // host has applied the flag set that turns it off.
  const std::string env_name = d.value("env", "production");  // the deploys' environment
  std::size_t stats_seen = 1;  // stats lines already read per simulator
  auto applied_by = [&](std::uint64_t seq) {
    sims.signal_all(SIGUSR2);
    std::uint64_t n = 0;
    std::int64_t last = 0;
    for (const auto& st : sims.collect("stats", stats_seen)) {
      const json done = st["flags"].value(std::to_string(seq), json::array({0, 0}));
      n += done[0].get<std::uint64_t>();
      last = std::max(last, done[1].get<std::int64_t>());
    }
    ++stats_seen;
    return std::pair{n, last};
  };
  for (int round = 0; round < 3; ++round) {
    json set = f.api("POST", "/services/web/flags/checkout",
                     {{"env", env_name}, {"value", 25}, {"now", true}}, &status);
    if (status != 200) return std::cerr << "flag set refused: " << set.dump() << "\n", 1;
    while (applied_by(set["seq"].get<std::uint64_t>()).first < static_cast<std::uint64_t>(agents)) {
      std::this_thread::sleep_for(100ms);
    }
    const std::int64_t t0 = now_ms();
    json kill = f.api("POST", "/services/web/flags/checkout/kill", {{"env", env_name}}, &status);
    if (status != 200) return std::cerr << "flag kill refused: " << kill.dump() << "\n", 1;
    const std::uint64_t seq = kill["seq"].get<std::uint64_t>();
    std::pair<std::uint64_t, std::int64_t> got{0, 0};
    const auto deadline = Clock::now() + 60s;
    while ((got = applied_by(seq)).first < static_cast<std::uint64_t>(agents) &&
           Clock::now() < deadline) {
      std::this_thread::sleep_for(100ms);
    }
    std::printf("  flag kill %d: %llu of %d hosts applied it %.2f s after the request\n", round + 1,
                static_cast<unsigned long long>(got.first), agents,
                static_cast<double>(got.second - t0) / 1000);
  }
  sims.signal_all(SIGTERM);
  return 0;
}

// --layout concurrent: one deploy per service, all started at once (from 8
// threads), each a rolling release of its hosts in batches of 20% with a
// 2 s bake, so that every deploy runs while the others do. What it
// measures, per batch, the delay from a condition being met to the
// coordinator committing the transition it allows: from the last "applied"
// report of its hosts acknowledged (durable) to the batch converged, and
// from the end of its bake to the batch judged (the next batch starts in
// the same commit); per deploy, POST to succeeded; and deploys completed
// per minute over the whole burst.
int run_concurrent(testing::TestFleet& f, Sims& sims,
                   const std::vector<std::pair<std::string, std::string>>& releases, int agents) {
  constexpr int kBakeS = 2;
  const int services = static_cast<int>(releases.size());
  for (int i = 0; i < services; ++i) {
    for (const auto& a : {releases[i].first, releases[i].second}) {
      if (!f.registered(a)) return std::cerr << "artifact not registered\n", 1;
    }
    int status = 0;
    const std::string service = "s" + std::to_string(i);
    f.api("POST", "/pipelines",
          {{"service", service},
           {"strategy", {{"batch_percent", 20}}},
           {"health_checks", {{"bake_s", kBakeS}, {"min_samples", 0}}},
           {"timeouts", {{"ready_s", 120}, {"converge_s", 300}, {"rollback_s", 300}}},
           {"artifact_ready", "origin"}},
          &status);
    if (status != 201) return std::cerr << "pipeline refused\n", 1;
  }
  std::printf(
      "  layout: %d services of %d hosts, one deploy each at once, batches of 20%%, "
      "%d s bakes\n",
      services, agents / services, kBakeS);
  // Starts every service's deploy of the release at once; waits for all.
  auto burst = [&](bool second, std::vector<json>* ended) -> bool {
    std::vector<std::string> ids(static_cast<std::size_t>(services));
    std::atomic<int> refused{0};
    std::vector<std::thread> posters;
    for (int t = 0; t < 8; ++t) {
      posters.emplace_back([&, t] {
        for (int i = t; i < services; i += 8) {
          int status = 0;
          json d = f.api("POST", "/deploys",
                         {{"pipeline_id", "s" + std::to_string(i)},
                          {"artifact_id", second ? releases[i].second : releases[i].first}},
                         &status);
          if (status != 201) {
            std::cerr << "deploy refused: " << d.dump() << "\n";
            ++refused;
            continue;
          }
          ids[static_cast<std::size_t>(i)] = d["deploy_id"];
        }
      });
    }
    for (auto& t : posters) t.join();
    if (refused > 0) return false;
    for (const auto& id : ids) {
      json d = wait_deploy(f, id, "succeeded");
      if (d.value("state", "") != "succeeded") {
        std::cerr << "deploy " << id << " ended " << d.dump() << "\n";
        return false;
      }
      if (ended) ended->push_back(std::move(d));
    }
    return true;
  };
  if (!burst(false, nullptr)) return 1;  // v1 everywhere (not measured)
  sims.signal_all(SIGUSR2);
  sims.collect("stats", 0);
  std::vector<json> done;
  if (!burst(true, &done)) return 1;
  sims.signal_all(SIGUSR2);
  const auto seqs = merge_seqs(sims.collect("stats", 1));
  std::vector<double> converged, judged, announced, per_deploy;
  std::int64_t first_created = INT64_MAX, last_completed = 0;
  std::size_t batches = 0, aligned = 0;
  for (const auto& d : done) {
    first_created = std::min(first_created, d["created_ms"].get<std::int64_t>());
    last_completed = std::max(last_completed, d["completed_ms"].get<std::int64_t>());
    per_deploy.push_back(static_cast<double>(d["completed_ms"].get<std::int64_t>() -
                                             d["created_ms"].get<std::int64_t>()));
    const auto revisions = revisions_of(seqs, d["service"]);
    batches += d["batches"].size();
    if (revisions.size() != d["batches"].size()) continue;
    ++aligned;
    for (std::size_t k = 0; k < revisions.size(); ++k) {
      const auto& b = d["batches"][k];
      const auto converged_ms = b["converged_ms"].get<std::int64_t>();
      converged.push_back(
          static_cast<double>(converged_ms - revisions[k]["acked_ms"].get<std::int64_t>()));
      judged.push_back(static_cast<double>(b["finished_ms"].get<std::int64_t>() -
                                           (converged_ms + kBakeS * 1000)));
      announced.push_back(static_cast<double>(revisions[k]["announced_ms"].get<std::int64_t>() -
                                              b["started_ms"].get<std::int64_t>()));
    }
  }
  const double burst_s = static_cast<double>(last_completed - first_created) / 1000;
  std::printf(
      "  %d deploys (%zu batches) from the first POST to the last succeeded: %.2f s = "
      "%.0f deploys a minute\n",
      services, batches, burst_s, services / burst_s * 60);
  std::printf("           per deploy, POST to succeeded: p50 %.2f s, p99 %.2f s\n",
              pct(per_deploy, 0.5) / 1000, pct(per_deploy, 0.99) / 1000);
  std::printf(
      "           a batch's last report acknowledged -> converged: p50 %.0f ms, p99 %.0f "
      "ms (%zu batches of %zu deploys aligned)\n",
      pct(converged, 0.5), pct(converged, 0.99), converged.size(), aligned);
  std::printf(
      "           its bake over -> judged, the next batch started: p50 %.0f ms, p99 %.0f "
      "ms\n",
      pct(judged, 0.5), pct(judged, 0.99));
  std::printf("           a batch decided -> its plan announced: p50 %.0f ms, p99 %.0f ms\n",
              pct(announced, 0.5), pct(announced, 0.99));
  sims.signal_all(SIGTERM);
  return 0;
}

int run_parent(const cxxopts::ParseResult& r, const std::string& self) {
  const int agents = r["agents"].as<int>(), procs = r["procs"].as<int>();
  const int threads = r["threads"].as<int>();
  const bool promotion = r["layout"].as<std::string>() == "promotion";
  const bool blue_green = r["layout"].as<std::string>() == "blue_green";
  const bool concurrent = r["layout"].as<std::string>() == "concurrent";
  if (!promotion && !blue_green && !concurrent && r["layout"].as<std::string>() != "single") {
    return std::cerr << "--layout is single, promotion, blue_green or concurrent\n", 2;
  }
  const int services = concurrent ? r["services"].as<int>() : 1;
  if (services < 1 || agents < services) {
    return std::cerr << "--services must be 1 to --agents\n", 2;
  }
  const bool deploys_only = r.count("deploys-only") > 0;
  testing::TempDir dir;
  testing::TestFleet f(dir.path());
  const std::string v1 = f.push("v1", {{"error_rate", 0.01}});
  const std::string v2 = f.push("v2", {{"error_rate", 0.01}});
  const std::string v3 = f.push("v3", {{"error_rate", 0.01}});
  // --layout concurrent: v1 and v2 of every service.
  std::vector<std::pair<std::string, std::string>> releases;
  for (int i = 0; concurrent && i < services; ++i) {
    const std::string service = "s" + std::to_string(i);
    releases.emplace_back(f.push(service + "-v1", {{"error_rate", 0.01}}, "0123abcd", service),
                          f.push(service + "-v2", {{"error_rate", 0.01}}, "0123abcd", service));
  }
  f.start_coordinator();
  f.start_origin();
  const pid_t coordinator_pid = f.coordinator().pid();
  auto join =
      testing::run({testing::binary("drover-coordinator").string(), "join-token", "create",
                    "--uses", "1000000", "--data-dir", (dir.path() / "coordinator").string()});
  std::string token = join.out;
  while (!token.empty() && token.back() == '\n') token.pop_back();
  std::ifstream cfg(dir.path() / "coordinator.json");
  json config = json::parse(cfg);
  // TLS: the version-2 listener; plain TCP: the legacy one (both versions).
  const bool tls = r["transport"].as<std::string>() == "tls";
  const int protocol = r["protocol"].as<int>();
  if (!tls && r["transport"].as<std::string>() != "tcp") {
    return std::cerr << "--transport is tls or tcp\n", 2;
  }
  if (tls && protocol != 2)
    return std::cerr << "protocol 1 has no TLS here; use --transport tcp\n", 2;
  const std::string requests_url = tls ? config["agents"]["requests"].get<std::string>()
                                       : config["agents"]["legacy_requests"].get<std::string>();
  const std::string announcements_url = config["agents"]["announcements"][tls ? 0 : 1];

  std::printf(
      "drover-bench-coordinator: %d simulated agents in %d processes (%d polling threads, %d "
      "flood threads each), protocol %d over %s\n",
      agents, procs, threads, r["flood-threads"].as<int>(), protocol, tls ? "TLS" : "plain TCP");
  // --pin: the server under measure (the coordinator, the echo baseline) on
  // CPU 0, the load generator on CPU 1, so neither starves the other.
  const bool pin = r.count("pin") > 0;
  if (pin && !pin_process(coordinator_pid, 0)) return std::cerr << "cannot pin\n", 1;
  SystemRandom secret_random;
  const std::string echo_secret = to_hex(secret_random.bytes(32));
  testing::DaemonProcess echo({self, "echo", "--listen", "tcp://127.0.0.1:0", "--cpu",
                               pin ? "0" : "-1", "--echo-secret", echo_secret},
                              (dir.path() / "echo.err").string());
  auto echo_ready = echo.wait_for_event("ready", 30s);
  if (!echo_ready) return std::cerr << "echo server did not start\n", 1;
  const std::string echo_url = (*echo_ready)["url"];
  Sims sims;
  const auto t_enroll = Clock::now();
  for (int p = 0; p < procs; ++p) {
    const int first = p * agents / procs, count = (p + 1) * agents / procs - first;
    sims.procs.push_back(std::make_unique<testing::DaemonProcess>(
        std::vector<std::string>{self,
                                 "sim",
                                 "--requests",
                                 requests_url,
                                 "--announcements",
                                 announcements_url,
                                 "--protocol",
                                 std::to_string(protocol),
                                 "--tls-ca",
                                 tls ? (dir.path() / "drover-coordinator.crt").string() : "",
                                 "--server-name",
                                 "drover-coordinator",
                                 "--root",
                                 (dir.path() / "root.key.pub").string(),
                                 "--join",
                                 token,
                                 "--first",
                                 std::to_string(first),
                                 "--count",
                                 std::to_string(count),
                                 "--threads",
                                 std::to_string(threads),
                                 "--flood-seconds",
                                 std::to_string(r["flood-seconds"].as<double>()),
                                 "--poll-ms",
                                 std::to_string(r["poll-ms"].as<int>()),
                                 "--health-ms",
                                 std::to_string(r["health-ms"].as<int>()),
                                 "--echo",
                                 echo_url,
                                 "--echo-secret",
                                 echo_secret,
                                 "--flood-threads",
                                 std::to_string(r["flood-threads"].as<int>()),
                                 "--regions",
                                 std::to_string(promotion ? kRegions : 1),
                                 "--services",
                                 std::to_string(concurrent ? services : 1),
                                 "--cpu",
                                 pin ? "1" : "-1",
                                 blue_green ? "--split" : "--no-split"},
        (dir.path() / ("sim-" + std::to_string(p) + ".err")).string()));
  }
  for (auto& p : sims.procs) {
    if (!p->wait_for_event("ready", 600s)) {
      std::cerr << "a simulator did not start:\n" << p->stderr_tail() << "\n";
      return 1;
    }
  }
  std::printf("  enrolled %d agents in %.1f s\n", agents,
              std::chrono::duration<double>(Clock::now() - t_enroll).count());
  for (const auto& a : {v1, v2, v3}) {
    if (!f.registered(a)) return std::cerr << "artifact not registered\n", 1;
  }
  if (concurrent) return run_concurrent(f, sims, releases, agents);
  int status = 0;
  f.api("POST", "/pipelines",
        promotion ? promotion_pipeline(0)
                  : json{{"service", "web"},
                         {"strategy", {{"batch_percent", 10}}},
                         {"health_checks", {{"bake_s", 0}, {"min_samples", 0}}},
                         {"timeouts", {{"ready_s", 120}, {"converge_s", 300}, {"rollback_s", 300}}},
                         {"artifact_ready", "origin"}},
        &status);
  if (status != 201) return std::cerr << "pipeline refused\n", 1;
  if (promotion) {
    std::printf(
        "  layout: 2 environments, %d regions (staging r0; production r1, then r2-r4, "
        "then the rest), canary 1%% and 10%% then 50%% per region, zero bakes\n",
        kRegions);
  }

  // v1 everywhere first (not measured).
  json d = f.api("POST", "/deploys",
                 {{"pipeline_id", "web"},
                  {"artifact_id", v1},
                  {"strategy_override", {{"batch_percent", 100}}}},
                 &status);
  if (status != 201) return failed("first deploy", d);
  d = wait_deploy(f, d["deploy_id"], "succeeded");
  if (d.value("state", "") != "succeeded") return failed("first deploy", d);
  sims.signal_all(SIGUSR2);
  sims.collect("stats", 0);
  if (blue_green) return run_blue_green(f, sims, v2, v3, agents, coordinator_pid);

  // 1. A 10-batch rolling deploy with zero bake.
  double c0 = cpu_seconds(coordinator_pid), s0 = sims.cpu();
  d = f.api("POST", "/deploys", {{"pipeline_id", "web"}, {"artifact_id", v2}}, &status);
  d = wait_deploy(f, d["deploy_id"], "succeeded");
  if (d.value("state", "") != "succeeded") return failed("rollout", d);
  const double rollout_s = static_cast<double>(d["completed_ms"].get<std::int64_t>() -
                                               d["created_ms"].get<std::int64_t>()) /
                           1000;
  sims.signal_all(SIGUSR2);
  double p99 = 0, p50 = 0;
  std::uint64_t pulls = 0;
  const std::vector<json> rollout_stats = sims.collect("stats", 1);
  for (const auto& s : rollout_stats) {
    p99 = std::max(p99, s.value("pull_p99_ms", 0.0));
    p50 = std::max(p50, s.value("pull_p50_ms", 0.0));
    pulls += s.value("pulls", 0ull);
  }
  std::printf("  rollout: %zu batches%s, zero bake: %.2f s from deploy to succeeded\n",
              d["batches"].size(), promotion ? " in 2 environments and 4 waves" : "", rollout_s);
  std::printf("           plan pulls %llu, latency p50 %.2f ms, p99 %.2f ms (worst child)\n",
              static_cast<unsigned long long>(pulls), p50, p99);
  std::printf("           CPU: coordinator %.2f s, simulators %.2f s\n",
              cpu_seconds(coordinator_pid) - c0, sims.cpu() - s0);
  if (!promotion) print_batch_breakdown(d, merge_seqs(rollout_stats));

  // 2. Every host moves to v3 and bakes; the rollback is decided mid-bake.
  // In the promotion layout: production's last wave bakes, and production
  // (its three waves, newest first) rolls back; staging keeps v3.
  d = f.api("POST", "/pipelines",
            promotion
                ? promotion_pipeline(600)
                : json{{"service", "web"},
                       {"strategy", {{"batch_percent", 100}}},
                       {"health_checks", {{"bake_s", 600}, {"min_samples", 0}}},
                       {"timeouts", {{"ready_s", 120}, {"converge_s", 300}, {"rollback_s", 300}}},
                       {"artifact_ready", "origin"}},
            &status);
  d = f.api("POST", "/deploys", {{"pipeline_id", "web"}, {"artifact_id", v3}}, &status);
  const std::string id3 = d["deploy_id"];
  for (;;) {
    d = wait_deploy(f, id3, "baking");
    if (d.value("state", "") != "baking" || !promotion || d.value("wave", "") == "rest") break;
    std::this_thread::sleep_for(50ms);  // an earlier wave's zero bake: not the one to roll back
  }
  if (d.value("state", "") != "baking") return failed("rollback setup", d);
  sims.signal_all(SIGUSR2);  // the seqs so far: not the rollback's
  sims.collect("stats", 2);
  c0 = cpu_seconds(coordinator_pid);
  f.api("POST", "/rollback", {{"deploy_id", id3}, {"reason", "benchmark"}}, &status);
  d = wait_deploy(f, id3, "rolled_back");
  if (d.value("state", "") != "rolled_back") return failed("rollback", d);
  std::size_t moved = 0;
  for (const auto& h : d["hosts"]) moved += h.value("env", "") != "staging";
  std::printf("  rollback: %zu hosts%s back on the prior version %.2f s after the decision\n",
              promotion ? moved : static_cast<std::size_t>(agents),
              promotion ? " of production (3 waves, newest first)" : "",
              static_cast<double>(d["rollback"]["duration_ms"].get<std::int64_t>()) / 1000);
  std::printf("           CPU: coordinator %.2f s\n", cpu_seconds(coordinator_pid) - c0);
  sims.signal_all(SIGUSR2);
  if (!promotion) {
    // The rollback's revisions (one per 128 hosts, announced once): decided
    // -> announced -> last pull -> last "applied" acknowledged -> done.
    std::int64_t announced = 0, pulled = 0, acked = 0;
    for (const auto& [key, t] : merge_seqs(sims.collect("stats", 3))) {
      if (t["applied"].get<std::uint64_t>() == 0) continue;
      const auto a = t["announced_ms"].get<std::int64_t>();
      if (a > 0 && (announced == 0 || a < announced)) announced = a;
      pulled = std::max(pulled, t["pulled_ms"].get<std::int64_t>());
      acked = std::max(acked, t["acked_ms"].get<std::int64_t>());
    }
    if (announced > 0) {
      const auto started = d["rollback"]["started_ms"].get<std::int64_t>();
      const auto done = d["rollback"]["done_ms"].get<std::int64_t>();
      std::printf(
          "           (ms) decided->announced %lld, ->last pull %lld, ->last applied acked %lld, "
          "->done %lld\n",
          static_cast<long long>(announced - started), static_cast<long long>(pulled - announced),
          static_cast<long long>(acked - pulled), static_cast<long long>(done - acked));
    }
  }
  if (deploys_only) {
    sims.signal_all(SIGTERM);
    return 0;
  }

  // 3. Report ingest: every simulated agent reports as fast as it is
  // acknowledged; first to the baseline (the protocol with nothing behind
  // it), then to the coordinator.
  std::uint64_t flooded_reports = 0;  // by the last flood
  auto flood = [&](int sig, const char* event, pid_t server, const char* what) {
    const double c = cpu_seconds(server), s = sims.cpu();
    sims.signal_all(sig);
    std::uint64_t n = 0;
    double secs = 0;
    for (const auto& fl : sims.collect(event, 0)) {
      n += fl.value("reports", 0ull);
      secs = std::max(secs, fl.value("seconds", 0.0));
    }
    const double cc = cpu_seconds(server) - c, sc = sims.cpu() - s;
    const double rate = static_cast<double>(n) / secs;
    flooded_reports = n;
    std::printf("  %s: %llu reports in %.1f s = %.0f reports/s\n", what,
                static_cast<unsigned long long>(n), secs, rate);
    std::printf("           CPU: server %.2f s (%.0f%% of a core), simulators %.2f s (%.0f%%)\n",
                cc, 100 * cc / secs, sc, 100 * sc / secs);
    return rate;
  };
  const double base = flood(SIGHUP, "echo_flood", echo.pid(),
                            "baseline, protocol 1: decode and ack only (no auth, no storage)");
  const double base2 =
      protocol == proto::kProtocolV2
          ? flood(SIGALRM, "echo2_flood", echo.pid(),
                  "baseline, protocol 2: decode, ack sealed (nothing checked or stored)")
          : 0;
  const std::filesystem::path lmdb_file = dir.path() / "coordinator" / "data.mdb";
  const auto size_before = std::filesystem::file_size(lmdb_file);
  const double rate =
      flood(SIGUSR1, "flood", coordinator_pid, "coordinator ingest (MAC checked, durable in LMDB)");
  std::printf("  ingest / baseline = %.2f (protocol 1)", rate / base);
  if (base2 > 0) std::printf(", %.2f (protocol 2)", rate / base2);
  std::printf("\n");
  // The headroom of the storage budget (docs/COORDINATOR.md, "Storage
  // budget"): what one stored health sample costs in the LMDB file.
  const std::uint64_t stored = flooded_reports;  // one sample each
  const auto grown = std::filesystem::file_size(lmdb_file) - size_before;
  if (stored > 0) {
    std::printf("  storage: LMDB grew %.1f MiB for %llu samples = %.0f bytes per sample\n",
                static_cast<double>(grown) / (1 << 20), static_cast<unsigned long long>(stored),
                static_cast<double>(grown) / static_cast<double>(stored));
  }
  sims.signal_all(SIGTERM);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options o("drover-bench-coordinator", "The coordinator under simulated agents.");
  o.add_options()("agents", "simulated agents", cxxopts::value<int>()->default_value("1000"))(
      "procs", "simulator processes", cxxopts::value<int>()->default_value("2"))(
      "threads", "polling threads per simulator", cxxopts::value<int>()->default_value("8"))(
      "flood-threads", "reporting threads per simulator in the ingest flood",
      cxxopts::value<int>()->default_value("64"))("flood-seconds", "length of the ingest flood",
                                                  cxxopts::value<double>()->default_value("5"))(
      "poll-ms", "agents' plan poll interval", cxxopts::value<int>()->default_value("5000"))(
      "health-ms", "agents' health report interval", cxxopts::value<int>()->default_value("5000"))(
      "requests", "", cxxopts::value<std::string>())("announcements", "",
                                                     cxxopts::value<std::string>())(
      "root", "", cxxopts::value<std::string>())("join", "", cxxopts::value<std::string>())(
      "first", "", cxxopts::value<int>()->default_value("0"))(
      "echo", "", cxxopts::value<std::string>())("listen", "", cxxopts::value<std::string>())(
      "echo-secret", "", cxxopts::value<std::string>()->default_value(""))(
      "count", "", cxxopts::value<int>()->default_value("0"))(
      "pin", "the server under measure on CPU 0, the simulated agents on CPU 1")(
      "cpu", "", cxxopts::value<int>()->default_value("-1"))(
      "transport", "tls (the version-2 listener) or tcp (the legacy one)",
      cxxopts::value<std::string>()->default_value("tls"))(
      "protocol", "the agents' protocol version: 2, or 1 (with --transport tcp)",
      cxxopts::value<int>()->default_value("2"))("tls-ca", "", cxxopts::value<std::string>())(
      "server-name", "", cxxopts::value<std::string>()->default_value(""))("h,help", "help")(
      "mode", "", cxxopts::value<std::string>())(
      "layout",
      "single (one environment, one region), promotion (2 environments, 10 regions), blue_green or "
      "concurrent (--services deploys at once)",
      cxxopts::value<std::string>()->default_value("single"))(
      "regions", "", cxxopts::value<int>()->default_value("1"))(
      "services",
      "--layout concurrent: services, one deploy each at once (the agents are dealt among them)",
      cxxopts::value<int>()->default_value("100"))(
      "deploys-only", "measure the rollout and the rollback only (no ingest floods)")("split", "")(
      "no-split", "");
  o.parse_positional({"mode"});
  auto r = o.parse(argc, argv);
  if (r.count("help")) return std::cout << o.help(), 0;
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  if (r.count("mode") && r["mode"].as<std::string>() == "sim") return run_sim(r);
  if (r.count("mode") && r["mode"].as<std::string>() == "echo") return run_echo(r);
  if (!std::getenv("DROVER_BIN_DIR")) {
    ::setenv("DROVER_BIN_DIR", fs::path(self).parent_path().c_str(), 1);
  }
  return run_parent(r, self);
}
