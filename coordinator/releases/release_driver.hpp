// The durable side of releases (docs/COORDINATOR.md, "Releases of several
// services"): creates a release with its runs in one transaction, and on each
// orchestrator tick asks the release machine what to do and commits it (the
// release record with its audit records, then each member's transition).
// Every decision is the release machine's; a restarted coordinator resumes
// from the records alone.
//
// Threads: one caller at a time (under the coordinator's orchestrator lock).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "coordinator/orchestrator/orchestrator.hpp"
#include "coordinator/releases/release_machine.hpp"
#include "coordinator/store/coordinator_store.hpp"
#include "core/log/log.hpp"
#include "core/world/clock.hpp"

namespace drover::coordinator {

// Releases not finished at most (each holds up to kMaxReleaseServices runs).
inline constexpr std::size_t kMaxActiveReleases = 64;

struct ReleaseRequest {
  std::vector<DeployRequest> runs;         // one per service, each from its pipeline
  std::vector<ReleasePipeline> pipelines;  // the same order
  ReleasePolicy policy = ReleasePolicy::failed_only;
  std::string who, person;  // the token, and whose release it is
};

// A release and its runs as they are now.
struct ReleaseView {
  ReleaseRecord release;
  Members runs;  // by service
};

class ReleaseDriver {
 public:
  ReleaseDriver(CoordinatorStore& store, Orchestrator& orchestrator, const Clock& clock,
                Logger& log);

  Result<ReleaseRecord> create(const ReleaseRequest& request);
  Result<ReleaseView> get(const std::string& id);
  // Newest first.
  Result<std::vector<ReleaseRecord>> list(std::size_t limit);
  Status approve(const std::string& id, const Actor& who, const std::string& comment);
  Status reject(const std::string& id, const Actor& who, const std::string& reason);

  // The orchestrator's hook (Orchestrator::on_releases).
  Result<std::map<std::string, std::string>> tick(std::vector<DeployRecord>& active);

 private:
  Result<ReleaseRecord> load(const std::string& id);
  Result<Members> members(const ReleaseRecord& r, const std::vector<DeployRecord>* active);
  // Commits a release step, then applies its commands to the members (the
  // active list, when given, follows their new records).
  Status commit(const ReleaseRecord& before, const ReleaseStep& s, const std::string& who,
                std::vector<DeployRecord>* active);
  std::int64_t now_ms() const;

  CoordinatorStore& store_;
  Orchestrator& orchestrator_;
  const Clock& clock_;
  Logger& log_;
};

}  // namespace drover::coordinator
