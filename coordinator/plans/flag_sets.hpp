// Flag sets (docs/FORMATS.md, "Flag set"; docs/COORDINATOR.md, "Feature
// flags"): a service's feature flags per environment, signed by the online
// key with a seq of their own, stored with the audit record of the change
// in one transaction, announced, and served to the hosts they list. Kept in
// memory too (what a host's pull reads), loaded from the store on first use.
// Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "coordinator/plans/plan_signer.hpp"
#include "coordinator/store/coordinator_store.hpp"
#include "core/proto/flagset.hpp"

namespace drover::coordinator {

struct FlagSetRecord {
  std::string service, env;
  std::uint64_t seq = 0;
  std::map<std::string, proto::FlagValue> flags;
  std::vector<std::string> hosts;
  std::int64_t at_ms = 0;
  std::string by;      // who changed it last (a person, or "system")
  std::string bundle;  // the signed bundle, as hosts pull it
};

// What a host's pull is answered.
struct FlagsAnswer {
  enum class Kind { none, unchanged, bundle } kind = Kind::none;
  std::uint64_t seq = 0;
  std::string bundle;
};

class FlagSets {
 public:
  using Announce = std::function<void(const std::string& service, std::uint64_t seq)>;
  FlagSets(CoordinatorStore& store, OnlineKeySigner& keys, Announce announce)
      : store_(store), keys_(keys), announce_(std::move(announce)) {}

  // The next revision of service's flag set in env: the whole set of flags
  // and the environment's hosts now. The audit record (its what, who and
  // detail) commits with it.
  Result<FlagSetRecord> issue(const std::string& service, const std::string& env,
                              std::map<std::string, proto::FlagValue> flags,
                              std::vector<std::string> hosts, std::int64_t now_ms,
                              AuditRecord audit);
  Result<std::optional<FlagSetRecord>> current(const std::string& service, const std::string& env);
  // Every environment's flag set of the service, by environment.
  Result<std::vector<FlagSetRecord>> of_service(const std::string& service);
  // A host's pull: the flag set that lists it, unless it holds that seq.
  Result<FlagsAnswer> pull(const std::string& service, const std::string& host,
                           std::uint64_t have_seq);

 private:
  struct Loaded {
    std::map<std::string, FlagSetRecord> by_env;
    std::map<std::string, std::string> env_of_host;
  };
  Result<Loaded*> load(const std::string& service);  // mu_ held

  CoordinatorStore& store_;
  OnlineKeySigner& keys_;
  Announce announce_;
  std::mutex mu_;  // guards cache_; one revision at a time
  std::map<std::string, Loaded> cache_;
};

// Settings keys (docs/COORDINATOR.md, "Feature flags").
std::string flagset_key(const std::string& service, const std::string& env);
std::string flags_seq_key(const std::string& service);

}  // namespace drover::coordinator
