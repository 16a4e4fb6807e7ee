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
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "coordinator/plans/flag_sets.hpp"
#include "coordinator/plans/plan_signer.hpp"
#include "coordinator/store/coordinator_store.hpp"
#include "core/hash/sha256.hpp"
#include "core/log/log.hpp"
#include "core/metrics/metrics.hpp"
#include "core/nng/nng.hpp"
#include "core/proto/messages.hpp"
#include "core/sign/envelope.hpp"
#include "core/world/clock.hpp"

namespace drover::coordinator {

struct GatewayOptions {
  // Protocol version 2 only, each message at most proto::kMaxRequestBytesV2.
  std::vector<std::string> requests = {"tcp://127.0.0.1:0"};
  // Versions 1 and 2, messages up to proto::kMaxRequestBytes: for agents not
  // yet upgraded (docs/COORDINATOR.md, "Upgrading agents to protocol 2").
  std::vector<std::string> legacy_requests;
  std::vector<std::string> announcements = {"tcp://127.0.0.1:0"};
  // The certificate and key of tls+tcp:// listeners.
  std::optional<nng::TlsServer> tls;
  // Plain tcp:// beyond loopback (nng::check_transport).
  bool allow_plaintext = false;
  // Root documents (encoded envelopes, drover.root.v1), oldest first, served
  // to agents that pull the root chain.
  std::vector<std::string> root_chain;
  // The host's tracker credential ({"token","expires_at"}), carried in
  // enrollment and plan answers of version 2; none when it returns nullopt.
  std::function<std::optional<nlohmann::json>(const HostRecord&)> mesh_token;
  // Where flags_pull is answered from (none: every host is answered no_flags).
  std::function<Result<FlagsAnswer>(const HostRecord&, const std::string& service,
                                    std::uint64_t have_seq)>
      flags;
  // Where the gateway counts requests, plan pulls and reports
  // (docs/METRICS.md, "Coordinator"); a registry of its own when null.
  metrics::Registry* metrics = nullptr;
  // NNG contexts: requests in flight at once. Reports wait for their group
  // commit without holding a thread, so this may be large.
  int workers = 256;
  // How far ahead of the coordinator's clock a sample or an enrollment may
  // be dated; a fresh enrollment may also be this old at most.
  std::int64_t max_clock_skew_ms = 5 * 60 * 1000;
  // Connections to the request socket, in total and per address (loopback
  // not counted); each may hold a request of up to proto::kMaxRequestBytes.
  std::size_t max_connections = 20'000;
  std::size_t max_connections_per_address = 32;
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

  std::string requests_url() const;         // the first version-2 listener
  std::string legacy_requests_url() const;  // the first legacy one ("" without)
  std::string announcements_url() const;

  // Best effort (agents also poll): "plan seq of service exists".
  void announce(const std::string& service, std::uint64_t seq);
  // The same for a flag set's seq.
  void announce_flags(const std::string& service, std::uint64_t seq);

  // Handles one request's bytes; exposed for tests and benchmarks that drive
  // the gateway without sockets. Reports are answered after their commit.
  // A request as if it came through a listener taking version 1 (legacy) or
  // version 2 only.
  std::string handle(std::string_view request, bool legacy = true);
  void handle_async(std::string_view request, bool legacy, nng::Server::Reply reply);
  // handle_async, with whatever it throws answered and logged.
  void handle_guarded(std::string_view request, bool legacy, nng::Server::Reply reply);
  // Group commits of reports so far (reports per commit = reports / this).
  std::uint64_t report_commits() const { return batches_.load(); }
  // Report items refused so far (another host's service, dated in the
  // future, a plan seq never issued, a proof that does not hold).
  std::uint64_t refused_items() const { return refused_items_.load(); }

  // What screening a report refused, by reason.
  struct Screened {
    std::size_t foreign = 0;        // a service not in the host's record
    std::size_t future = 0;         // a sample or event dated beyond the skew bound
    std::size_t unissued = 0;       // an event naming a plan seq never issued
    std::size_t unproven = 0;       // a proof that is not a plan signed for this host
    std::size_t not_a_release = 0;  // a release named by something else than an artifact id
    std::string first_error;        // what the first bad proof was (for the one log line)
    std::size_t total() const { return foreign + future + unissued + unproven + not_a_release; }
  };

 private:
  AgentGateway(CoordinatorStore& store, const OnlineKeySigner& keys, ManifestLookup manifests,
               ReportHandler reports, const Clock& clock, Logger& log);
  // How one request is answered: version 1 plainly; version 2 by a MAC under
  // the host's report key once one is established, signed by the online key
  // before (docs/FORMATS.md, "Agent protocol (version 2)").
  // Signed answers per second (an ed25519 signature each, for answers no
  // host key covers): beyond it a refusal goes out unsigned, which an agent
  // treats as no answer and asks again later. A flood of garbage costs a
  // bounded share of a core.
  struct SignBudget {
    static constexpr int kPerSecond = 2000;
    std::mutex mu;  // guards second and used
    std::int64_t second = 0;
    int used = 0;
    bool take(std::int64_t now_s);
  };
  struct Responder {
    int v = proto::kProtocolVersion;
    std::string host;
    std::string request_hash;
    std::string mac_key;  // "" until the host is authenticated
    const OnlineKeySigner* keys = nullptr;
    SignBudget* budget = nullptr;
    const Clock* clock = nullptr;
    nng::Server::Reply reply;
    void answer(std::string_view type, nlohmann::json fields);
    void fail(const Error& error);
    void fail(Errc code, const std::string& message) { fail(make_error(code, message)); }
  };
  void enroll(const proto::Request& r, Responder& out);
  void pull_roots(const proto::Request& r, Responder& out);
  // A report of an authenticated host: acknowledged at once when it is a
  // resend, otherwise screened and queued for the next group commit.
  void take_report(std::shared_ptr<const HostRecord> host, proto::ReportBody report,
                   Responder& out);
  void pull_plan(const proto::Request& r, const HostRecord& host, const nlohmann::json& body,
                 Responder& out);
  // Adds the host's tracker credential to a version-2 answer.
  void add_mesh_token(const HostRecord& host, nlohmann::json& fields, int v);
  // Removes from report what host may not say (docs/COORDINATOR.md, "What a
  // host may report"), and notes the seqs its proofs show.
  Screened screen(const HostRecord& host, proto::ReportBody& report);
  // The seq of the plan e.proof carries, when it is a plan signed by the
  // online key, for e.service, naming host.
  Result<std::uint64_t> proven_seq(const std::string& host, const proto::EventItem& e);
  // The highest report seq acknowledged for a host since the hosts last
  // changed (0: unknown), and noting one.
  std::uint64_t acked_seq(const std::string& host);
  void note_acked(const std::string& host, std::uint64_t seq);
  // Whether another line of this event fits this second's budget.
  bool log_allowed(std::string_view event);
  // Logs what ingest dropped (a host over its budget, a full map).
  void note_dropped(const std::string& host, const Ingested& done);
  // The host's record, from a cache that every enrollment or reset empties
  // (so a reset host's old key stops at once); null when not enrolled. Shared,
  // not copied, with each request that needs it.
  Result<std::shared_ptr<const HostRecord>> enrolled(const std::string& name);
  // The committer thread: every report waiting is ingested in one
  // transaction, then each is answered.
  void commit_reports();
  struct PendingReport;
  // One group commit: ingests, then answers each (a reply, once given, is
  // cleared, so a batch that throws halfway answers only the rest).
  void commit_batch(std::vector<PendingReport>& batch);

  CoordinatorStore& store_;
  ManifestLookup manifests_;
  ReportHandler reports_;
  const Clock& clock_;
  Logger& log_;
  const OnlineKeySigner& keys_;
  struct PendingReport {
    std::shared_ptr<const HostRecord> host;
    proto::ReportBody body;
    Responder reply;
    Screened screened;  // counted once the report is durable (a resend is not counted twice)
  };
  std::shared_mutex cache_mu_;
  std::unordered_map<std::string, std::pair<std::uint64_t, std::shared_ptr<const HostRecord>>>
      host_cache_;
  std::mutex queue_mu_;  // guards queue_ and stopping_
  std::condition_variable queue_cv_;
  std::vector<PendingReport> queue_;
  bool stopping_ = false;
  std::atomic<std::uint64_t> batches_{0};
  std::atomic<std::uint64_t> refused_items_{0};
  // The gateway's metrics: resolved once, counted from NNG's threads.
  std::unique_ptr<metrics::Registry> own_metrics_;
  // Every series is resolved at start, so counting takes no lock.
  struct Meters {
    void resolve(metrics::Registry& r);
    std::map<std::string, metrics::Counter*, std::less<>> requests, refused, plans, reports,
        items_refused;
    metrics::Counter* ingested_items = nullptr;
    metrics::Gauge* queued_reports = nullptr;  // set as the queue changes
    // Counts key's series of family (the "other" series for a key not listed).
    static void count(const std::map<std::string, metrics::Counter*, std::less<>>& family,
                      std::string_view key, double n = 1);
  } meters_;
  void count_screened(const Screened& s);
  std::mutex acked_mu_;  // guards acked_
  std::unordered_map<std::string, std::pair<std::uint64_t, std::uint64_t>> acked_;
  std::mutex log_mu_;  // guards log_budget_
  std::unordered_map<std::string, std::pair<std::int64_t, std::uint64_t>> log_budget_;
  std::int64_t max_skew_ms_ = 0;
  std::vector<std::pair<std::uint64_t, std::string>> root_chain_;  // version, document
  std::function<std::optional<nlohmann::json>(const HostRecord&)> mesh_token_;
  std::function<Result<FlagsAnswer>(const HostRecord&, const std::string&, std::uint64_t)> flags_;
  std::size_t legacy_endpoints_ = 0;  // listeners [0, this) are legacy
  SignBudget sign_budget_;
  // Committer thread only: when each throttled host was last named in the log.
  std::unordered_map<std::string, std::int64_t> throttle_logged_;
  std::thread committer_;
  std::unique_ptr<nng::Server> server_;
  std::unique_ptr<nng::Publisher> publisher_;
};

}  // namespace drover::coordinator
