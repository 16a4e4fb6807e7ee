#include "coordinator/access/tokens.hpp"

#include <algorithm>

#include "core/base/name.hpp"
#include "core/canon/base64.hpp"
#include "core/hash/sha256.hpp"

namespace drover::coordinator {

const char* role_name(Role r) {
  switch (r) {
    case Role::viewer: return "viewer";
    case Role::deployer: return "deployer";
    case Role::approver: return "approver";
    case Role::admin: return "admin";
  }
  return "?";
}

Result<Role> parse_role(std::string_view name) {
  for (Role r : {Role::viewer, Role::deployer, Role::approver, Role::admin}) {
    if (name == role_name(r)) return r;
  }
  return make_error(
      Errc::invalid_argument,
      "role '" + std::string(name) + "' is not one of viewer, deployer, approver, admin");
}

std::string role_refusal(const RoleNeed& need, const Caller& who) {
  return "this needs role " + std::string(role_name(need.role)) +
         (need.why.empty() ? "" : ": " + need.why) + "; token '" + who.name + "' has role " +
         role_name(who.role);
}

Result<std::string> TokenStore::create(const std::string& name, Role role, std::int64_t now,
                                       Random& random, const std::optional<std::string>& person) {
  if (name.empty() || name.size() > 128) {
    return make_error(Errc::invalid_argument, "token name must be 1-128 characters");
  }
  if (person) DROVER_TRY(validate_name(*person, "person"));
  const std::string token = "drv_" + canon::base64url_encode(random.bytes(32));
  DROVER_TRY(store_.add_api_token(ContentId::of(token).hex(),
                                  {name, role_name(role), now, person.value_or(name)}));
  return token;
}

Result<Caller> TokenStore::authenticate(std::string_view token) {
  DROVER_ASSIGN(auto t, store_.api_token(ContentId::of(token).hex()));
  if (!t) return make_error(Errc::refused, "unknown or revoked token");
  DROVER_ASSIGN(Role role, parse_role(t->role));
  return Caller{t->name, role, t->person};
}

Status TokenStore::revoke(const std::string& name) {
  return store_.revoke_api_token(name);
}

Result<std::vector<TokenStore::Listed>> TokenStore::list() {
  DROVER_ASSIGN(auto all, store_.api_tokens());
  std::vector<Listed> out;
  for (const auto& t : all) {
    auto role = parse_role(t.role);
    if (role.ok()) out.push_back({t.name, *role, t.created_at, t.person});
  }
  std::sort(out.begin(), out.end(),
            [](const Listed& a, const Listed& b) { return a.name < b.name; });
  return out;
}

}  // namespace drover::coordinator
