// Releases of several services in virtual time (docs/COORDINATOR.md,
// "Releases of several services"): the real orchestrator and release driver
// on an in-memory store, three services a <- b, a <- c (b and c depend on a)
// walking staging then production (a gate of one approval), with simulated
// hosts that run what they are told and report health.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "coordinator/orchestrator/orchestrator.hpp"
#include "coordinator/releases/release_driver.hpp"
#include "coordinator/store/memory_coordinator_store.hpp"
#include "core/sign/keys.hpp"
#include "core/world/random.hpp"
#include "tests/support/test_support.hpp"

namespace drover::coordinator {
namespace release_test {

using namespace std::chrono_literals;

constexpr std::int64_t kWatchMs = 20'000;

struct World {
  ManualClock clock{SystemTime(std::chrono::seconds(1'800'000'000))};
  std::unique_ptr<CoordinatorStore> store = MemoryCoordinatorStore::create();
  // host -> (service, region); hosts "<service>-s" (staging), "<service>-p1", "<service>-p2".
  std::map<std::string, std::pair<std::string, std::string>> hosts;
  std::map<std::string, std::string> running;                           // host -> release
  std::map<std::string, std::pair<std::string, std::int64_t>> pending;  // host -> (release, at)
  std::set<std::pair<std::string, std::string>> bad;  // (region, release) reporting errors
  std::vector<HostSample> samples;
  std::unique_ptr<Orchestrator> orchestrator;
  std::unique_ptr<ReleaseDriver> releases;
  // The shape of each service's pipeline: b and c depend on a, production
  // has a gate, unless a test says otherwise.
  std::map<std::string, std::vector<std::string>> deps = {{"a", {}}, {"b", {"a"}}, {"c", {"a"}}};
  std::set<std::string> ungated;  // no gate in production
  bool no_waits = false;          // zero bakes and watches, no samples needed
  std::map<std::string, std::vector<std::string>> envs_of;  // default: staging, production

  World() {
    for (const std::string s : {"a", "b", "c"}) {
      hosts[s + "-s"] = {s, "staging"};
      hosts[s + "-p1"] = {s, "prod"};
      hosts[s + "-p2"] = {s, "prod"};
      for (const std::string env : {"staging", "production"}) released(s, env, s + "1");
    }
    std::uint64_t seed = 0;
    for (const auto& [h, place] : hosts) {
      running[h] = place.first + "1";
      HostRecord rec;
      rec.host = h;
      rec.region = place.second;
      rec.services = {place.first};
      SeededRandom rnd(++seed);
      rec.key = sign::KeyPair::generate(rnd).public_key();
      rec.report_key = std::string(32, 'k');
      EXPECT_TRUE(store->enroll(rec).ok());
    }
    start();
  }

  std::int64_t now() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock.now().time_since_epoch())
        .count();
  }
  void released(const std::string& service, const std::string& env, const std::string& release) {
    AuditRecord r;
    r.at_ms = now() - 3'600'000;
    r.who = "system";
    r.what = "service.release";
    r.service = service;
    r.env = env;
    r.artifact = release;
    ASSERT_TRUE(store->append_audit(r).ok());
  }

  RunPlan plan(const std::string& service) const {
    RunPlan p;
    auto it = envs_of.find(service);
    const std::vector<std::string> envs =
        it != envs_of.end() ? it->second : std::vector<std::string>{"staging", "production"};
    for (const std::string& name : envs) {
      EnvPlan e;
      e.name = name;
      Wave w;
      w.name = "all";
      w.regions.push_back({name == "staging" ? "staging" : "prod", ""});
      e.waves.push_back(w);
      e.shape.batch_size = 1;
      e.params.bake_ms = 10'000;
      e.params.converge_timeout_ms = 60'000;
      e.params.health.min_samples = 3;
      e.watch_ms = kWatchMs;
      if (no_waits) {
        e.params.bake_ms = 0;
        e.params.health.min_samples = 0;
        e.watch_ms = 0;
      }
      if (name == "production" && !ungated.count(service)) e.gate = Gate{1, 3'600'000};
      p.envs.push_back(e);
    }
    p.named = {{"staging", ""}, {"prod", ""}};
    return p;
  }

  // A new coordinator over the same store (a restart).
  void start() {
    orchestrator = std::make_unique<Orchestrator>(
        *store,
        [this](const DeployRecord& d, const RunPlan&) {
          FleetView v;
          v.artifact_ready = true;
          for (const auto& [h, place] : hosts) {
            if (place.first != d.service) continue;
            v.hosts.push_back({h, place.second, ""});
            v.running[h] = running[h];
          }
          for (const auto& s : samples) {
            if (hosts[s.host].first == d.service) v.samples.push_back(s);
          }
          return v;
        },
        [this](const DeployRecord&, const std::string& artifact, const std::vector<std::string>& to,
               const PlanRoute&) -> Status {
          for (const auto& h : to) pending[h] = {artifact, now() + 2000};
          return Ok{};
        },
        [this](const DeployRecord& d) { return plan(d.service); }, clock, Logger::discard());
    releases = std::make_unique<ReleaseDriver>(*store, *orchestrator, clock, Logger::discard());
    orchestrator->on_releases(
        [this](std::vector<DeployRecord>& active) { return releases->tick(active); });
    ASSERT_TRUE(orchestrator->recover().ok());
  }

  void step() {
    for (auto it = pending.begin(); it != pending.end();) {
      if (it->second.second <= now()) {
        running[it->first] = it->second.first;
        it = pending.erase(it);
      } else {
        ++it;
      }
    }
    for (const auto& [h, release] : running) {
      const bool sick = bad.count({hosts[h].second, release}) > 0;
      samples.push_back(
          {h, release, now(), sick ? Sample{0.4, 900, 0.9, false} : Sample{0.01, 20, 0.3, true}});
    }
    auto t = orchestrator->tick();
    ASSERT_TRUE(t.ok()) << t.error().message;
    clock.advance(1s);
  }

  ReleaseRequest request(ReleasePolicy policy = ReleasePolicy::failed_only) {
    ReleaseRequest r;
    for (const std::string s : {"c", "b", "a"}) {  // any order: the release sorts them
      DeployRequest d;
      d.pipeline_id = s;
      d.service = s;
      d.artifact = s + "2";
      d.plan = plan(s);
      d.who = "alice-laptop";
      d.person = "alice";
      d.config_snapshot = "{}";
      r.runs.push_back(d);
      std::vector<std::string> envs;
      for (const auto& e : d.plan.envs) envs.push_back(e.name);
      r.pipelines.push_back({s, envs, deps.at(s)});
    }
    r.policy = policy;
    r.who = "alice-laptop";
    r.person = "alice";
    return r;
  }

  DeployRecord run(const ReleaseRecord& r, const std::string& service) {
    return *store->deploy(r.member(service)->deploy_id).value();
  }
  ReleaseRecord release(const std::string& id) { return releases->get(id)->release; }
  // Steps until done() or the deadline (virtual seconds).
  template <class F>
  bool until(F done, int seconds = 3600) {
    for (int i = 0; i < seconds; ++i) {
      if (done()) return true;
      step();
    }
    return done();
  }
  bool ended(const std::string& id) { return release(id).state != ReleaseState::running; }
  bool finished(const std::string& id) {
    auto listed = store->settings_under("release/active/" + id);
    return listed.ok() && listed->empty();
  }
  static EnvRun env(const DeployRecord& d, const std::string& name) {
    for (const auto& e : d.environments) {
      if (e.name == name) return e;
    }
    throw std::runtime_error("no env " + name);
  }
  std::vector<AuditRecord> audit(const std::string& what) {
    AuditQuery q;
    q.limit = 100'000;
    std::vector<AuditRecord> out;
    auto all = store->audit(q);
    EXPECT_TRUE(all.ok());
    for (auto& r : *all) {
      if (r.what == what) out.push_back(std::move(r));
    }
    return out;
  }
};

const Actor kBob{"bob-laptop", "bob"};

TEST(Releases, EachEnvironmentIsWalkedInDependencyOrderWithOneApprovalForAll) {
  World w;
  auto r = w.releases->create(w.request());
  ASSERT_TRUE(r.ok()) << r.error().message;
  // Dependencies first, whatever order they were named in.
  ASSERT_EQ(r->services.size(), 3u);
  EXPECT_EQ(r->services[0].service, "a");
  EXPECT_EQ(r->environments, (std::vector<std::string>{"staging", "production"}));
  ASSERT_EQ(r->gates.size(), 1u);
  EXPECT_EQ(r->gates[0].env, "production");

  // b and c wait at staging's entrance while a deploys there.
  ASSERT_TRUE(w.until([&] { return w.run(*r, "a").state == DeployState::deploying; }));
  w.step();
  EXPECT_EQ(member_env_state(w.run(*r, "b"), "staging"), "waiting");
  EXPECT_NE(w.run(*r, "b").queued_behind.find("waiting for 'a' to finish 'staging'"),
            std::string::npos);

  // The release stands at production's gate; nobody passes it without an approval.
  ASSERT_TRUE(w.until([&] { return w.run(*r, "a").state == DeployState::awaiting_approval; }));
  const DeployRecord a_staged = w.run(*r, "a");
  for (const std::string s : {"b", "c"}) {
    // Each dependent entered staging only once a had passed it, watch included.
    const EnvRun staging = w.env(w.run(*r, s), "staging");
    EXPECT_EQ(staging.status, "passed");
    EXPECT_GE(staging.entered_ms, w.env(a_staged, "staging").finished_ms);
  }
  // b and c ran side by side.
  const EnvRun bs = w.env(w.run(*r, "b"), "staging");
  const EnvRun cs = w.env(w.run(*r, "c"), "staging");
  EXPECT_LT(bs.entered_ms, cs.finished_ms);
  EXPECT_LT(cs.entered_ms, bs.finished_ms);

  // The starter cannot approve; bob's one approval is applied to all three.
  auto self = w.releases->approve(r->id, {"alice-laptop", "alice"}, "");
  ASSERT_FALSE(self.ok());
  EXPECT_NE(self.error().message.find("cannot approve"), std::string::npos);
  ASSERT_TRUE(w.releases->approve(r->id, kBob, "looks good").ok());
  auto twice = w.releases->approve(r->id, kBob, "");
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.error().message.find("already approved"), std::string::npos);

  ASSERT_TRUE(w.until([&] { return w.finished(r->id); }));
  const ReleaseRecord done = w.release(r->id);
  EXPECT_EQ(done.state, ReleaseState::succeeded) << done.reason;
  const DeployRecord a = w.run(*r, "a");
  for (const std::string s : {"a", "b", "c"}) {
    const DeployRecord d = w.run(*r, s);
    EXPECT_EQ(d.state, DeployState::succeeded) << s << ": " << d.reason;
    EXPECT_EQ(w.env(d, "production").gate.approvals.size(), 1u);
    EXPECT_EQ(w.env(d, "production").gate.approvals[0].person, "bob");
    if (s != "a") {
      // In production too, after a's watch ended.
      EXPECT_GE(w.env(d, "production").entered_ms, w.env(a, "production").finished_ms);
    }
  }
  EXPECT_GE(w.env(a, "production").finished_ms - w.env(a, "production").waves[0].finished_ms,
            kWatchMs);
  // The approval is recorded once for the release and once per service.
  EXPECT_EQ(w.audit("release.approved").size(), 1u);
  auto per_service = w.audit("gate.approved");
  ASSERT_EQ(per_service.size(), 3u);
  std::set<std::string> services;
  for (const auto& rec : per_service) {
    services.insert(rec.service);
    EXPECT_EQ(rec.who, "bob-laptop");
    EXPECT_EQ(nlohmann::json::parse(rec.detail)["release"], r->id);
  }
  EXPECT_EQ(services, (std::set<std::string>{"a", "b", "c"}));
  EXPECT_EQ(w.audit("release.succeeded").size(), 1u);
  EXPECT_TRUE(w.store->verify_audit()->ok);
}

// Runs the release until c (or `who`) degrades in production.
static ReleaseRecord release_where_c_fails_in_production(World& w, ReleasePolicy policy) {
  w.bad.insert({"prod", "c2"});
  auto r = w.releases->create(w.request(policy));
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(w.until([&] { return w.run(*r, "a").state == DeployState::awaiting_approval; }));
  EXPECT_TRUE(w.releases->approve(r->id, kBob, "").ok());
  EXPECT_TRUE(w.until([&] { return w.finished(r->id); }));
  return w.release(r->id);
}

// A tick takes a run as far as it can go, but never past the environment
// its release decided about: with nothing to wait for (the hosts already
// run the release, zero bakes and watches, no gates), a could pass staging
// and enter production in the tick that let it into staging, while b and c
// have not entered staging yet. It stops at production's entrance until
// the release lets it in.
TEST(Releases, ARunThatPassesAnEnvironmentInOneTickWaitsForItsReleaseAtTheNext) {
  World w;
  w.no_waits = true;
  w.ungated = {"a", "b", "c"};
  for (const auto& [h, place] : w.hosts) w.running[h] = place.first + "2";
  auto r = w.releases->create(w.request());
  ASSERT_TRUE(r.ok()) << r.error().message;
  bool ordered = true;
  ASSERT_TRUE(w.until([&] {
    // Nobody in production while a run still going has not passed staging.
    bool any_in_production = false, staging_open = false;
    for (const std::string s : {"a", "b", "c"}) {
      const DeployRecord d = w.run(*r, s);
      any_in_production |= w.env(d, "production").status != "pending";
      staging_open |= w.env(d, "staging").status != "passed";
    }
    ordered &= !(any_in_production && staging_open);
    return w.ended(r->id);
  }));
  EXPECT_TRUE(ordered);
  EXPECT_EQ(w.release(r->id).state, ReleaseState::succeeded);
}

TEST(Releases, UnderFailedOnlyTheFailedServiceRollsBackAndTheOthersStay) {
  World w;
  const ReleaseRecord r = release_where_c_fails_in_production(w, ReleasePolicy::failed_only);
  EXPECT_EQ(r.state, ReleaseState::failed);
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_EQ(r.failures[0].service, "c");
  EXPECT_EQ(r.failures[0].env, "production");
  EXPECT_EQ(w.run(r, "c").state, DeployState::rolled_back);
  EXPECT_EQ(w.run(r, "a").state, DeployState::succeeded);
  EXPECT_EQ(w.run(r, "b").state, DeployState::succeeded);
  EXPECT_EQ(w.running["c-p1"], "c1");
  EXPECT_EQ(w.running["a-p1"], "a2");
  EXPECT_EQ(w.running["b-p2"], "b2");
  EXPECT_EQ(w.running["c-s"], "c2");  // earlier environments stay
  EXPECT_TRUE(w.store->verify_audit()->ok);
}

TEST(Releases, UnderAllEveryServiceChangedThereRollsBackDependentsFirst) {
  World w;
  const ReleaseRecord r = release_where_c_fails_in_production(w, ReleasePolicy::all);
  EXPECT_EQ(r.state, ReleaseState::rolled_back) << r.reason;
  ASSERT_EQ(r.failures.size(), 1u);  // the release's own rollbacks are not failures
  const DeployRecord a = w.run(r, "a"), b = w.run(r, "b"), c = w.run(r, "c");
  for (const auto* d : {&a, &b, &c}) {
    EXPECT_EQ(d->state, DeployState::rolled_back) << d->id << ": " << d->reason;
    EXPECT_EQ(w.env(*d, "production").status, "rolled_back");
    EXPECT_EQ(w.env(*d, "staging").status, "passed");  // earlier environments stay
  }
  for (const std::string h : {"a-p1", "a-p2", "b-p1", "c-p2"}) {
    EXPECT_EQ(w.running[h], h.substr(0, 1) + "1") << h;
  }
  EXPECT_EQ(w.running["a-s"], "a2");
  // a, which b and c depend on, went back only after both had.
  EXPECT_GE(w.env(a, "production").rollback_started_ms, w.env(b, "production").rollback_done_ms);
  EXPECT_GE(w.env(a, "production").rollback_started_ms, w.env(c, "production").rollback_done_ms);
  EXPECT_TRUE(w.store->verify_audit()->ok);
}

TEST(Releases, AServiceWhoseDependencyFailedNeverStartsThere) {
  World w;
  w.bad.insert({"staging", "a2"});
  auto r = w.releases->create(w.request());
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(w.until([&] { return w.finished(r->id); }));
  const ReleaseRecord done = w.release(r->id);
  EXPECT_EQ(done.state, ReleaseState::failed);
  EXPECT_EQ(w.run(*r, "a").state, DeployState::rolled_back);
  for (const std::string s : {"b", "c"}) {
    const DeployRecord d = w.run(*r, s);
    EXPECT_EQ(d.state, DeployState::cancelled) << s;
    EXPECT_EQ(w.env(d, "staging").entered_ms, 0);
    EXPECT_NE(d.reason.find("dependency 'a' did not finish 'staging'"), std::string::npos)
        << d.reason;
    EXPECT_EQ(member_env_state(d, "staging"), "cancelled");
  }
  EXPECT_EQ(w.running["b-s"], "b1");
}

TEST(Releases, ARejectionAtTheGateEndsEveryService) {
  World w;
  auto r = w.releases->create(w.request());
  ASSERT_TRUE(r.ok());
  // Nothing to approve before a member reaches a gate.
  auto early = w.releases->approve(r->id, kBob, "");
  ASSERT_FALSE(early.ok());
  EXPECT_NE(early.error().message.find("not waiting at a gate"), std::string::npos);
  ASSERT_TRUE(w.until([&] { return w.run(*r, "a").state == DeployState::awaiting_approval; }));
  ASSERT_TRUE(w.releases->reject(r->id, kBob, "not today").ok());
  ASSERT_TRUE(w.until([&] { return w.finished(r->id); }));
  EXPECT_EQ(w.release(r->id).state, ReleaseState::rejected);
  EXPECT_EQ(w.run(*r, "a").state, DeployState::rejected);
  EXPECT_EQ(w.run(*r, "b").state, DeployState::cancelled);
  EXPECT_EQ(w.run(*r, "c").state, DeployState::cancelled);
  EXPECT_EQ(w.running["b-p1"], "b1");
}

TEST(Releases, ANewerRunOfAServiceSupersedesTheReleaseAsOneUnit) {
  World w;
  auto r = w.releases->create(w.request());
  ASSERT_TRUE(r.ok());
  // b waits for a at staging's entrance, holding it for its service: a
  // newer single run of b queues behind it, and, being newer, takes its place.
  ASSERT_TRUE(w.until([&] { return member_env_state(w.run(*r, "b"), "staging") == "waiting"; }));
  DeployRequest single = w.request().runs[1];
  ASSERT_EQ(single.service, "b");
  single.artifact = "b3";
  auto newer = w.orchestrator->start(single);
  ASSERT_TRUE(newer.ok());
  ASSERT_TRUE(w.until([&] { return w.run(*r, "b").state == DeployState::superseded; }, 10));
  ASSERT_TRUE(w.until([&] { return w.finished(r->id); }));
  const ReleaseRecord done = w.release(r->id);
  EXPECT_EQ(done.state, ReleaseState::superseded);
  EXPECT_NE(done.reason.find(newer->id), std::string::npos);
  EXPECT_EQ(w.run(*r, "c").state, DeployState::cancelled);
  // a finished the environment it was in, and went no further.
  EXPECT_EQ(w.env(w.run(*r, "a"), "staging").status, "passed");
  EXPECT_EQ(w.run(*r, "a").state, DeployState::cancelled);
  EXPECT_EQ(w.running["a-p1"], "a1");
  // The single run goes on through staging to production's gate.
  ASSERT_TRUE(w.until(
      [&] { return w.orchestrator->get(newer->id)->state == DeployState::awaiting_approval; }));
  EXPECT_EQ(w.running["b-s"], "b3");
}

TEST(Releases, AReleasesRunQueuesBehindASingleRunHoldingTheEnvironment) {
  World w;
  // A single run of a holds staging (at nothing slower than its own pace).
  DeployRequest single = w.request().runs[2];
  ASSERT_EQ(single.service, "a");
  auto first = w.orchestrator->start(single);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(
      w.until([&] { return w.orchestrator->get(first->id)->state == DeployState::deploying; }));
  auto r = w.releases->create(w.request());
  ASSERT_TRUE(r.ok());
  w.step();
  w.step();
  const DeployRecord a = w.run(*r, "a");
  EXPECT_EQ(a.state, DeployState::queued);
  EXPECT_EQ(a.queued_behind, first->id);
  EXPECT_EQ(member_env_state(a, "staging"), "queued");
}

TEST(Releases, ARestartedCoordinatorResumesTheRelease) {
  World w;
  auto r = w.releases->create(w.request());
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(w.until([&] { return w.run(*r, "b").state == DeployState::deploying; }));
  w.start();  // the process died between two ticks
  ASSERT_TRUE(w.until([&] { return w.run(*r, "a").state == DeployState::awaiting_approval; }));
  w.start();
  ASSERT_TRUE(w.releases->approve(r->id, kBob, "").ok());
  ASSERT_TRUE(w.until([&] { return w.finished(r->id); }));
  EXPECT_EQ(w.release(r->id).state, ReleaseState::succeeded);
}

// Review of issue 16: a release's run held by its release never takes the
// place of a single run in the environment; it queues behind it.
TEST(Releases, AHeldRunNeverEntersBesideASingleRunOfItsService) {
  World w;
  DeployRequest single = w.request().runs[1];
  ASSERT_EQ(single.service, "b");
  single.artifact = "b3";
  auto s = w.orchestrator->start(single);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(w.until([&] { return w.orchestrator->get(s->id)->state == DeployState::deploying; }));
  ASSERT_TRUE(w.orchestrator->pause(s->id, {"carol-laptop", "carol"}).ok());
  auto r = w.releases->create(w.request());
  ASSERT_TRUE(r.ok());
  // a passes staging; b's release run still may not enter: b's single run is there.
  ASSERT_TRUE(w.until([&] { return w.env(w.run(*r, "a"), "staging").status == "passed"; }));
  for (int i = 0; i < 30; ++i) w.step();
  const DeployRecord b = w.run(*r, "b");
  EXPECT_EQ(b.state, DeployState::queued);
  EXPECT_EQ(b.queued_behind, s->id);
  EXPECT_EQ(w.env(b, "staging").entered_ms, 0);
  // Once the single run has moved on, the release's run enters.
  ASSERT_TRUE(w.orchestrator->resume(s->id, {"carol-laptop", "carol"}).ok());
  ASSERT_TRUE(w.until([&] { return w.env(w.run(*r, "b"), "staging").entered_ms > 0; }));
  EXPECT_GE(w.env(w.run(*r, "b"), "staging").entered_ms,
            w.env(*w.orchestrator->get(s->id), "staging").finished_ms);
}

// A rejection is a failure too: under policy all, what the release changed
// in that environment goes back.
TEST(Releases, ARejectionUnderPolicyAllTakesBackWhatTheReleaseChangedThere) {
  World w;
  w.deps = {{"a", {}}, {"b", {}}, {"c", {}}};
  w.ungated = {"c"};
  auto r = w.releases->create(w.request(ReleasePolicy::all));
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(w.until([&] { return w.run(*r, "c").state == DeployState::succeeded; }));
  EXPECT_EQ(w.running["c-p1"], "c2");
  ASSERT_EQ(w.run(*r, "a").state, DeployState::awaiting_approval);
  ASSERT_TRUE(w.releases->reject(r->id, kBob, "not with c like this").ok());
  ASSERT_TRUE(w.until([&] { return w.finished(r->id); }));
  EXPECT_EQ(w.release(r->id).state, ReleaseState::rejected);
  EXPECT_EQ(w.run(*r, "a").state, DeployState::rejected);
  EXPECT_EQ(w.run(*r, "c").state, DeployState::rolled_back);
  EXPECT_EQ(w.env(w.run(*r, "c"), "staging").status, "passed");
  EXPECT_EQ(w.running["c-p1"], "c1");
  EXPECT_EQ(w.running["c-s"], "c2");
}

// Found by the chaos simulation (seed 7696): under policy all a member that
// cannot go back (a newer run of its service entered the environment since,
// and owns it) leaves the release's rollback, and still goes no further:
// its run, waiting at the next environment's entrance, is cancelled and the
// release ends, instead of holding the run queued for ever.
TEST(Releases, AMemberThatCannotGoBackIsCancelledAndTheReleaseEnds) {
  World w;
  w.bad.insert({"staging", "b2"});
  w.bad.insert({"staging", "a3"});  // the newer run of a fails there too
  auto r = w.releases->create(w.request(ReleasePolicy::all));
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(w.until([&] { return w.env(w.run(*r, "a"), "staging").status == "passed"; }));
  DeployRequest single;
  for (const auto& run : w.request().runs) {
    if (run.service == "a") single = run;
  }
  ASSERT_EQ(single.service, "a");
  single.artifact = "a3";
  auto newer = w.orchestrator->start(single);
  ASSERT_TRUE(newer.ok());
  ASSERT_TRUE(w.until([&] { return w.finished(r->id); }));
  const ReleaseRecord done = w.release(r->id);
  EXPECT_EQ(done.state, ReleaseState::rolled_back) << done.reason;
  EXPECT_TRUE(done.left.count("a"));
  EXPECT_EQ(w.run(*r, "a").state, DeployState::cancelled) << w.run(*r, "a").reason;
  EXPECT_EQ(w.run(*r, "b").state, DeployState::rolled_back);
  EXPECT_EQ(w.running["a-p1"], "a1");  // a never entered production
  EXPECT_TRUE(w.store->verify_audit()->ok);
}

// a <- b <- c where b's pipeline has no production: c still waits for a
// there, and under policy all goes back before a does.
TEST(Releases, ADependencyOfADependencyAbsentFromAnEnvironmentStillOrdersIt) {
  World w;
  w.deps = {{"a", {}}, {"b", {"a"}}, {"c", {"b"}}};
  w.envs_of["b"] = {"staging"};
  w.bad.insert({"prod", "c2"});
  auto r = w.releases->create(w.request(ReleasePolicy::all));
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(w.until([&] { return w.run(*r, "a").state == DeployState::awaiting_approval; }));
  ASSERT_TRUE(w.releases->approve(r->id, kBob, "").ok());
  ASSERT_TRUE(w.until([&] { return w.finished(r->id); }));
  const DeployRecord a = w.run(*r, "a"), c = w.run(*r, "c");
  std::int64_t a_passed = 0;  // a's production ended rolled back: when it had passed
  for (const auto& rec : w.audit("env.passed")) {
    if (rec.service == "a" && rec.env == "production") a_passed = rec.at_ms;
  }
  ASSERT_GT(a_passed, 0);
  EXPECT_GE(w.env(c, "production").entered_ms, a_passed);
  EXPECT_EQ(w.release(r->id).state, ReleaseState::rolled_back);
  EXPECT_EQ(a.state, DeployState::rolled_back) << a.reason;
  EXPECT_GE(w.env(a, "production").rollback_started_ms, w.env(c, "production").rollback_done_ms);
  EXPECT_EQ(w.env(w.run(*r, "b"), "staging").status, "passed");  // earlier environments stay
}

TEST(Releases, TheGraphAndTheEnvironmentsAreChecked) {
  auto cycle = release_members({{"a", {}, {"c"}}, {"b", {}, {"a"}}, {"c", {}, {"b"}}});
  ASSERT_FALSE(cycle.ok());
  EXPECT_NE(cycle.error().message.find("a -> c -> b -> a"), std::string::npos)
      << cycle.error().message;
  auto twice = release_members({{"a", {}, {}}, {"a", {}, {}}});
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.error().message.find("named twice"), std::string::npos);
  // A dependency the release does not change is left out.
  auto kept = release_members({{"b", {}, {"a", "db"}}, {"a", {}, {}}});
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->at(1).depends_on, (std::vector<std::string>{"a"}));

  auto order = release_environments({{"a", {"dev", "staging", "production"}, {}},
                                     {"b", {"staging", "canary", "production"}, {}}});
  ASSERT_TRUE(order.ok());
  EXPECT_EQ(*order, (std::vector<std::string>{"dev", "staging", "canary", "production"}));
  auto against = release_environments(
      {{"a", {"staging", "production"}, {}}, {"b", {"production", "staging"}, {}}});
  ASSERT_FALSE(against.ok());
  EXPECT_NE(against.error().message.find("differently"), std::string::npos);
}

TEST(Releases, RecordsReadBackAsWritten) {
  World w;
  auto r = w.releases->create(w.request(ReleasePolicy::all));
  ASSERT_TRUE(r.ok());
  const std::string bytes = encode_release(*r);
  auto back = decode_release(bytes);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(encode_release(*back), bytes);
  EXPECT_EQ(back->policy, ReleasePolicy::all);
  EXPECT_EQ(decode_release(R"({"format":"drover.release.v9"})").error().code, Errc::unsupported);
  EXPECT_FALSE(decode_release(R"({"format":"drover.release.v1"})").ok());
  // A release's run is written as version 3; a single run keeps version 2.
  const DeployRecord a = w.run(*r, "a");
  EXPECT_NE(encode_deploy(a).find("drover.deploy.v3"), std::string::npos);
  EXPECT_EQ(encode_deploy(*decode_deploy(encode_deploy(a))), encode_deploy(a));
  DeployRecord single = a;
  single.release.clear();
  EXPECT_NE(encode_deploy(single).find("drover.deploy.v2"), std::string::npos);
}

}  // namespace release_test
}  // namespace drover::coordinator
