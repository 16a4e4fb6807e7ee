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

#include "core/base/result.hpp"
#include "core/lmdb/lmdb.hpp"
#include "core/world/filesystem.hpp"

namespace drover::agent {

struct ServiceRecord {
  std::string current;                       // artifact id serving now ("" before the first apply)
  std::vector<std::string> previous;         // kept earlier releases, newest first
  std::uint64_t seq = 0;                     // the highest plan seq acted on
  bool seq_failed = false;                   // that plan was refused at apply time
  std::string flags;                         // canonical JSON of the last flags written ("" none)
  std::string active_slot;                   // blue/green: "blue" or "green"; "" otherwise
  std::map<std::string, std::string> slots;  // blue/green: slot -> artifact id
  std::string tracker;                       // tracker URL of the last plan applied
  friend bool operator==(const ServiceRecord&, const ServiceRecord&) = default;
};

struct Intent {
  std::string step;  // "fetch", "unpack", "switch"
  std::uint64_t seq = 0;
  std::string artifact;
  std::string from;  // switch: the release serving before it
};

class AgentState {
 public:
  static Result<std::unique_ptr<AgentState>> open(const fs::path& dir);

  Result<ServiceRecord> service(const std::string& name);
  Result<std::optional<Intent>> intent(const std::string& service);
  Result<std::uint64_t> min_cert_version();

  // One transaction each.
  Status put_service(const std::string& name, const ServiceRecord& record);
  Status put_intent(const std::string& service, const Intent& intent);
  // Writes the record and removes the service's intent together.
  Status finish(const std::string& name, const ServiceRecord& record);
  Status clear_intent(const std::string& service);
  Status raise_min_cert_version(std::uint64_t version);

  // Report sequence numbers: a block of numbers above any handed out before,
  // even by an earlier run (the ceiling is stored before the block is used).
  Result<std::pair<std::uint64_t, std::uint64_t>> reserve_report_seqs(std::uint64_t count);

 private:
  AgentState() = default;
  std::unique_ptr<lmdb::Env> env_;
  lmdb::Table meta_, services_, intents_, trust_;
};

}  // namespace drover::agent
