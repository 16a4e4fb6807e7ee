#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "coordinator/orchestrator/deploy_machine.hpp"

namespace drover::coordinator {

// A simulated fleet for the deploy machine's tests: hosts run a plan's
// release apply_delay after it is issued and report health every
// sample_every (what health_of says of their release), unless told to stay
// silent or to ignore plans. Virtual time: the caller passes now.
struct SimFleet {
  std::map<std::string, std::string> running;
  std::map<std::string, std::pair<std::string, std::int64_t>> pending;  // host -> (release, at)
  std::map<std::string, Sample> health_of;  // release -> what its hosts report
  std::set<std::string> silent;             // releases whose hosts send no health
  std::set<std::string> never_applies;      // hosts that ignore plans
  std::vector<HostSample> samples;
  std::int64_t apply_delay = 3000;   // ms from a plan to its hosts running it
  std::int64_t sample_every = 5000;  // ms between health samples
  std::int64_t last_sample = 0;
  std::vector<Action> plans;  // every plan issued, in order

  void issue(const std::string& artifact, const std::vector<std::string>& hosts, std::int64_t now) {
    plans.push_back({Action::Kind::issue_plan, artifact, hosts, "", ""});
    for (const auto& h : hosts) {
      if (!never_applies.count(h)) pending[h] = {artifact, now + apply_delay};
    }
  }
  void tick(std::int64_t now) {
    for (auto it = pending.begin(); it != pending.end();) {
      if (it->second.second <= now) {
        running[it->first] = it->second.first;
        it = pending.erase(it);
      } else {
        ++it;
      }
    }
    if (now - last_sample >= sample_every) {
      last_sample = now;
      for (const auto& [host, release] : running) {
        if (silent.count(release)) continue;
        samples.push_back(
            {host, release, now,
             health_of.count(release) ? health_of[release] : Sample{0.01, 20, 0.3, true}});
      }
    }
  }
  FleetView view() const {
    FleetView v;
    v.artifact_ready = true;
    v.running = running;
    v.samples = samples;
    return v;
  }
};

}  // namespace drover::coordinator
