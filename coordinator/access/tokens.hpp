// Bearer tokens for the coordinator's API (docs/COORDINATOR.md, "Access"):
// a token is shown once when an admin creates it and stored only as its
// SHA-256; each has a name (who acted, in the audit log), a role, and the
// person it belongs to (one person may hold several tokens; an approval
// gate counts persons, not tokens).
//
// Roles, each allowing what the ones before it allow:
//   viewer   read anything
//   deployer start, pause, resume and roll back deploys (on the pipeline's strategy); register
//            artifacts; create and edit pipelines without approval gates
//   approver create and edit pipelines with approval gates; deploy with a strategy_override;
//            approve gates (not their own deploys: checked by the gate)
//   admin    tokens, join tokens, host resets
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/store/coordinator_store.hpp"
#include "core/base/result.hpp"
#include "core/world/random.hpp"

namespace drover::coordinator {

enum class Role { viewer = 0, deployer = 1, approver = 2, admin = 3 };
const char* role_name(Role r);
Result<Role> parse_role(std::string_view name);
// Whether a caller with role `has` may do what needs role `needs`.
inline bool allows(Role has, Role needs) {
  return static_cast<int>(has) >= static_cast<int>(needs);
}

struct Caller {
  std::string name;  // the token's
  Role role = Role::viewer;
  std::string person = {};  // whom the token belongs to
};

// What a request needs of its caller when that depends on what it changes,
// not only on its endpoint (docs/COORDINATOR.md, "Access"): a pipeline with
// an approval gate, a deploy with a strategy_override.
struct RoleNeed {
  Role role = Role::viewer;
  std::string why;  // for the refusal; "" when the endpoint's role is all it takes
};

// What a caller whose role is too low is told (the API's 403): "this needs
// role approver: pipeline 'web' has an approval gate on env prod; token
// 'dee' has role deployer".
std::string role_refusal(const RoleNeed& need, const Caller& who);

class TokenStore {
 public:
  explicit TokenStore(CoordinatorStore& store) : store_(store) {}

  // Returns the new token ("drv_" + 43 base64url characters). Names are
  // unique among live tokens; persons need not be. `person` follows the name
  // rule (core/base/name.hpp; refused naming the field "person"); without
  // it the token's name is its person.
  Result<std::string> create(const std::string& name, Role role, std::int64_t now, Random& random,
                             const std::optional<std::string>& person = std::nullopt);
  // The caller a token belongs to; refused (Errc::refused) for an unknown or
  // revoked token, without saying which.
  Result<Caller> authenticate(std::string_view token);
  Status revoke(const std::string& name);
  struct Listed {
    std::string name;
    Role role = Role::viewer;
    std::int64_t created_at = 0;
    std::string person = {};
  };
  // Live tokens by name (never the tokens themselves: only hashes are kept).
  Result<std::vector<Listed>> list();

 private:
  CoordinatorStore& store_;  // keeps sha256 hex of token -> {name, role, person, created_at}
};

}  // namespace drover::coordinator
