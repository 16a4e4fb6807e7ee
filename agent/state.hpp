// The agent's durable state in LMDB (docs/FORMATS.md, "Agent state"): per
// service, the stored plan seq, the current and previous releases and the
// blue/green slots; the step in flight; the trust floor; the report sequence.
// Every transition is one write transaction, committed before the agent acts
// on it. Thread-safe (LMDB serializes writers).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/step/record.hpp"
#include "core/base/result.hpp"
#include "core/lmdb/lmdb.hpp"
#include "core/sign/root.hpp"
#include "core/world/filesystem.hpp"

namespace drover::agent {

class AgentState {
 public:
  static Result<std::unique_ptr<AgentState>> open(const fs::path& dir);

  Result<ServiceRecord> service(const std::string& name);
  Result<std::optional<Intent>> intent(const std::string& service);
  Result<std::uint64_t> min_cert_version();
  // The root this agent moved to through root documents (nullopt: the
  // pinned one, version 1).
  Result<std::optional<sign::Root>> root();

  // One transaction each.
  Status put_service(const std::string& name, const ServiceRecord& record);
  Status put_intent(const std::string& service, const Intent& intent);
  // Writes the record and removes the service's intent together.
  Status finish(const std::string& name, const ServiceRecord& record);
  Status clear_intent(const std::string& service);
  Status raise_min_cert_version(std::uint64_t version);
  Status set_root(const sign::Root& root);

  // Report sequence numbers: a block of numbers above any handed out before,
  // even by an earlier run (the ceiling is stored before the block is used).
  Result<std::pair<std::uint64_t, std::uint64_t>> reserve_report_seqs(std::uint64_t count);

 private:
  AgentState() = default;
  std::unique_ptr<lmdb::Env> env_;
  lmdb::Table meta_, services_, intents_, trust_;
};

}  // namespace drover::agent
