// Fakes of the agent's seams (agent/context.hpp): a coordinator link and a
// layer source in memory, scripted by the test. Single-threaded use.
#pragma once

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <map>

#include "agent/context.hpp"
#include "agent/layers.hpp"
#include "agent/state.hpp"
#include "agent/tests/test_time.hpp"
#include "core/agent_link/agent_link.hpp"
#include "core/world/memory_filesystem.hpp"
#include "tests/support/test_support.hpp"

namespace drover::agent::testing {

// A world without health endpoints or processes, for cases about the seams.
class NoProbe final : public HealthProbe {
 public:
  proto::HealthItem sample(const std::string&, std::chrono::milliseconds) override { return {}; }
};
class NoProcesses final : public ProcessHost {
 public:
  std::unique_ptr<ServiceProcess> make(std::string, fs::path, ServiceProcess::OnChange) override {
    return nullptr;
  }
};

class FakeLink final : public AgentLink {
 public:
  // What the fake answers; an error set here is returned once per call.
  std::optional<sign::Envelope> cert;
  std::deque<Status> report_answers;  // empty: acknowledged
  Status enroll_answer = Ok{};
  std::map<std::string, proto::PlanBundle> plans;  // service -> newest
  std::vector<sign::Envelope> roots;               // root documents served, oldest first

  // What it was asked.
  std::vector<proto::EnrollBody> enrolled;
  std::vector<proto::ReportBody> reports;  // every attempt, acknowledged or not

  Result<sign::Envelope> pull_cert() override {
    if (!cert) return make_error(Errc::timeout, "coordinator cert_pull: no answer");
    return *cert;
  }
  Status enroll(proto::EnrollBody body, const sign::KeyPair&, const sign::PublicKey&,
                const std::string&) override {
    enrolled.push_back(body);
    return enroll_answer;
  }
  Result<std::optional<proto::PlanBundle>> pull_plan(const std::string& service,
                                                     std::uint64_t) override {
    auto it = plans.find(service);
    if (it == plans.end()) return std::optional<proto::PlanBundle>();
    return std::optional<proto::PlanBundle>(it->second);
  }
  Result<std::string> pull_manifest(const ContentId& artifact, std::uint64_t) override {
    return make_error(Errc::not_found, "no manifest " + artifact.str());
  }
  Result<std::vector<sign::Envelope>> pull_roots(std::uint64_t have_version) override {
    std::vector<sign::Envelope> out;
    for (const auto& r : roots) {
      auto v = sign::claimed_root_version(r);
      if (!v.ok() || *v > have_version) out.push_back(r);
    }
    return out;
  }
  Status send_report(const proto::ReportBody& report) override {
    reports.push_back(report);
    if (report_answers.empty()) return Ok{};
    Status st = report_answers.front();
    report_answers.pop_front();
    return st;
  }
};

class FakeLayers final : public LayerFetcher {
 public:
  std::map<ContentId, std::string> bytes;  // what the "swarm" holds
  std::uint16_t node_port = 0;
  std::string joined;
  std::uint64_t downloaded = 0;
  std::map<ContentId, std::string> cache;

  Status join(const std::string& tracker) override {
    joined = tracker;
    node_port = 6881;
    return Ok{};
  }
  Status fetch(const std::string& tracker, const std::vector<proto::PlanLayer>& layers,
               const std::function<void(std::uint64_t, std::uint64_t)>& progress,
               const std::function<bool()>&) override {
    DROVER_TRY(join(tracker));
    std::uint64_t held = 0, held_bytes = 0;
    for (const auto& l : layers) {
      auto it = bytes.find(l.id);
      if (it == bytes.end()) return make_error(Errc::timeout, "no source for " + l.id.str());
      cache[l.id] = it->second;
      downloaded += it->second.size();
      progress(++held, held_bytes += l.size);
    }
    return Ok{};
  }
  Result<std::string> read(const format::Layer& layer) override {
    auto it = cache.find(layer.id);
    if (it == cache.end()) return make_error(Errc::not_found, "not held: " + layer.id.str());
    return it->second;
  }
  std::vector<ContentId> held() override {
    std::vector<ContentId> out;
    for (const auto& [id, b] : cache) out.push_back(id);
    return out;
  }
  Status drop(const ContentId& layer) override {
    cache.erase(layer);
    return Ok{};
  }
  std::uint64_t downloaded_bytes() override { return downloaded; }
  std::uint16_t port() override { return node_port; }
  std::string tracker() override { return joined; }
};

// An agent context on the fakes above, in virtual time and a memory
// filesystem, with a fresh state file: set config, then call make_context.
struct AgentFixture : ::testing::Test {
  drover::testing::TempDir dir;
  ManualClock clock{SystemTime(std::chrono::seconds(test_time::kNow))};
  MemoryFilesystem mem;
  SeededRandom rnd{3};
  NoProbe probe;
  NoProcesses processes;
  AgentConfig config;
  std::unique_ptr<AgentContext> ctx;
  FakeLink* link = nullptr;
  sign::KeyPair root = sign::KeyPair::generate(rnd);
  sign::KeyPair online = sign::KeyPair::generate(rnd);

  // A plan for service web naming web-1 (seq 7), valid for an hour.
  static proto::Plan web_plan() {
    proto::Plan p;
    p.service = "web";
    p.seq = 7;
    p.deploy_id = "d-1";
    p.artifact = ContentId::of("manifest");
    p.manifest_size = 8;
    p.hosts = {"web-1"};
    p.tracker = "http://127.0.0.1:1";
    p.issued_at = test_time::kNow - 1;
    p.expires_at = test_time::kNow + 3600;
    return p;
  }
  void make_context(std::function<void(const std::string&)> lines = [](const std::string&) {}) {
    ctx = std::make_unique<AgentContext>(config, AgentWorld{clock, mem, rnd, probe, processes},
                                         Logger::discard(), std::move(lines));
    ctx->state = std::move(AgentState::open(dir / "agent.lmdb").value());
    ctx->root = root.public_key();
    auto fake = std::make_unique<FakeLink>();
    link = fake.get();
    ctx->link = std::move(fake);
    ctx->layers = std::make_unique<FakeLayers>();
  }
};

}  // namespace drover::agent::testing
