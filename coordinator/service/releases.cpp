// Releases of several services (docs/COORDINATOR.md, "Releases of several
// services"): the operations of the API. Every decision about a release is
// the release machine's (coordinator/releases); these check the request,
// compose each service's run as a single deploy would, and take the
// orchestrator's lock.
#include <set>

#include "coordinator/service/coordinator.hpp"

namespace drover::coordinator {
namespace {

Actor person_of(const Caller& who) {
  return {who.name, who.person.empty() ? who.name : who.person};
}

}  // namespace

Result<ReleaseView> Coordinator::create_release(const ReleaseStart& start, const Caller& who) {
  if (start.services.empty()) {
    return make_error(Errc::invalid_argument, "services: a release names at least one service");
  }
  if (start.services.size() > kMaxReleaseServices) {
    return make_error(Errc::invalid_argument,
                      "services: a release names at most " + std::to_string(kMaxReleaseServices) +
                          " services, not " + std::to_string(start.services.size()));
  }
  ReleaseRequest request;
  request.policy = start.policy;
  request.who = who.name;
  request.person = who.person.empty() ? who.name : who.person;
  std::set<std::string> pipelines;
  for (std::size_t i = 0; i < start.services.size(); ++i) {
    const ReleaseService& s = start.services[i];
    const std::string where = "services[" + std::to_string(i) + "]";
    if (!pipelines.insert(s.pipeline_id).second) {
      return make_error(Errc::invalid_argument,
                        where + ": pipeline '" + s.pipeline_id + "' is named twice");
    }
    auto p = load_pipeline(s.pipeline_id);
    if (!p.ok()) return p.error().context(where);
    if (p->format != 2) {
      return make_error(Errc::invalid_argument,
                        where + ": pipeline '" + p->id +
                            "' is version 1; a release walks version-2 pipelines "
                            "(environments and depends_on)");
    }
    DeployStart one;
    one.pipeline_id = s.pipeline_id;
    one.artifact = s.artifact;
    auto run = compose_run(*p, one, who, "");
    if (!run.ok()) return run.error().context(where);
    ReleasePipeline rp{p->service, {}, p->depends_on};
    for (const auto& e : p->environments) rp.envs.push_back(e.name);
    request.pipelines.push_back(std::move(rp));
    request.runs.push_back(std::move(run->request));
  }
  ReleaseRecord r;
  {
    std::lock_guard lock(orchestrator_mu_);
    DROVER_ASSIGN(r, releases_->create(request));
  }
  wake_driver();
  return releases_->get(r.id);
}

Result<ReleaseView> Coordinator::release(const std::string& id) {
  return releases_->get(id);
}

Result<std::vector<ReleaseRecord>> Coordinator::releases(std::size_t limit) {
  return releases_->list(limit);
}

Result<ReleaseView> Coordinator::approve_release(const std::string& id, const std::string& comment,
                                                 const Caller& who) {
  std::lock_guard lock(orchestrator_mu_);
  DROVER_TRY(releases_->approve(id, person_of(who), comment));
  return releases_->get(id);
}

Result<ReleaseView> Coordinator::reject_release(const std::string& id, const std::string& reason,
                                                const Caller& who) {
  std::lock_guard lock(orchestrator_mu_);
  DROVER_TRY(releases_->reject(id, person_of(who), reason));
  return releases_->get(id);
}

Status Coordinator::not_in_release(const std::string& deploy_id, const std::string& verb) {
  DROVER_ASSIGN(DeployRecord d, orchestrator_->get(deploy_id));
  if (d.release.empty()) return Ok{};
  return make_error(Errc::refused, "deploy '" + d.id + "' belongs to release '" + d.release +
                                       "', whose gates are the release's: " + verb +
                                       " the release (drover release " + verb + " " + d.release +
                                       ")");
}

}  // namespace drover::coordinator
