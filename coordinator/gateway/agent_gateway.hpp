// The coordinator's end of the agent protocol (docs/FORMATS.md, "Agent
// protocol"; docs/COORDINATOR.md, "The agent gateway"): one NNG REP socket
// that enrolls agents, answers plan, manifest and certificate pulls and
// ingests reports, and one PUB socket that announces new plans.
//
// Every request is checked before its body is read: protocol version, then
// the enrollment signature or the MAC under the host's report key, so one
// host cannot speak for another. Reports are ingested at most once (by the
// host's report seq) and handed to the report handler after the seq is
// durably recorded.
//
// Threads: requests are handled on NNG's threads, several at once; the
// handlers passed in must be thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "coordinator/plans/plan_signer.hpp"
#include "coordinator/store/coordinator_store.hpp"
#include "core/hash/sha256.hpp"
#include "core/log/log.hpp"
#include "core/nng/nng.hpp"
#include "core/proto/messages.hpp"
#include "core/sign/envelope.hpp"
#include "core/world/clock.hpp"

namespace drover::coordinator {

struct GatewayOptions {
  std::string requests_listen = "tcp://127.0.0.1:0";
  std::string announcements_listen = "tcp://127.0.0.1:0";
  // NNG contexts: requests in flight at once. Reports wait for their group
  // commit without holding a thread, so this may be large.
  int workers = 256;
};

class AgentGateway {
 public:
  using ManifestLookup = std::function<Result<std::string>(const ContentId&)>;
  using ReportHandler = std::function<void(const HostRecord&, const proto::ReportBody&)>;

  // keys: the online key, read for every enrollment and certificate pull.
  static Result<std::unique_ptr<AgentGateway>> start(
      const GatewayOptions& options, CoordinatorStore& store, const OnlineKeySigner& keys,
      ManifestLookup manifests, ReportHandler reports, const Clock& clock, Logger& log);
  ~AgentGateway();

  std::string requests_url() const;
  std::string announcements_url() const;

  // Best effort (agents also poll): "plan seq of service exists".
  void announce(const std::string& service, std::uint64_t seq);

  // Handles one request's bytes; exposed for tests and benchmarks that drive
  // the gateway without sockets. Reports are answered after their commit.
  std::string handle(std::string_view request);
  void handle_async(std::string_view request, nng::Server::Reply reply);
  // Group commits of reports so far (reports per commit = reports / this).
  std::uint64_t report_commits() const { return batches_.load(); }

 private:
  AgentGateway(CoordinatorStore& store, const OnlineKeySigner& keys, ManifestLookup manifests,
               ReportHandler reports, const Clock& clock, Logger& log);
  std::string enroll(const proto::Request& r);
  // The host's record, from a cache that every enrollment or reset empties
  // (so a reset host's old key stops at once).
  Result<std::optional<HostRecord>> enrolled(const std::string& name);
  // The committer thread: every report waiting is ingested in one
  // transaction, then each is answered.
  void commit_reports();

  CoordinatorStore& store_;
  ManifestLookup manifests_;
  ReportHandler reports_;
  const Clock& clock_;
  Logger& log_;
  const OnlineKeySigner& keys_;
  struct PendingReport {
    HostRecord host;
    proto::ReportBody body;
    nng::Server::Reply reply;
  };
  std::shared_mutex cache_mu_;
  std::unordered_map<std::string, std::pair<std::uint64_t, HostRecord>> host_cache_;
  std::mutex queue_mu_;  // guards queue_ and stopping_
  std::condition_variable queue_cv_;
  std::vector<PendingReport> queue_;
  bool stopping_ = false;
  std::atomic<std::uint64_t> batches_{0};
  std::thread committer_;
  std::unique_ptr<nng::Server> server_;
  std::unique_ptr<nng::Publisher> publisher_;
};

}  // namespace drover::coordinator
