#include "coordinator/api/tokens.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/canon/base64.hpp"
#include "core/hash/sha256.hpp"

namespace drover::coordinator {
namespace {

using nlohmann::json;

}  // namespace

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

Result<std::string> TokenStore::create(const std::string& name, Role role, std::int64_t now,
                                       Random& random) {
  if (name.empty() || name.size() > 128) {
    return make_error(Errc::invalid_argument, "token name must be 1-128 characters");
  }
  const std::string token = "drv_" + canon::base64url_encode(random.bytes(32));
  DROVER_ASSIGN(auto txn, env_.begin_write());
  {
    // A write transaction's cursor must be gone before the commit (LMDB
    // frees it at commit; closing it afterwards would free it twice).
    DROVER_ASSIGN(auto cursor, txn.cursor(table_));
    DROVER_ASSIGN(bool more, cursor.first());
    while (more) {
      json j = json::parse(cursor.value(), nullptr, false);
      if (j.is_object() && j.value("name", "") == name) {
        return make_error(Errc::already_exists,
                          "a token named '" + name + "' exists; revoke it first");
      }
      DROVER_ASSIGN(more, cursor.next());
    }
  }
  json j = {{"name", name}, {"role", role_name(role)}, {"created_at", now}};
  DROVER_TRY(txn.put(table_, ContentId::of(token).hex(), j.dump()));
  DROVER_TRY(txn.commit());
  return token;
}

Result<Caller> TokenStore::authenticate(std::string_view token) {
  DROVER_ASSIGN(auto txn, env_.begin_read());
  DROVER_ASSIGN(auto v, txn.get(table_, ContentId::of(token).hex()));
  if (!v) return make_error(Errc::refused, "unknown or revoked token");
  json j = json::parse(*v, nullptr, false);
  if (!j.is_object()) return make_error(Errc::corrupt, "a token record is unreadable");
  DROVER_ASSIGN(Role role, parse_role(j.value("role", "")));
  return Caller{j.value("name", ""), role};
}

Status TokenStore::revoke(const std::string& name) {
  DROVER_ASSIGN(auto txn, env_.begin_write());
  std::string key;
  {
    DROVER_ASSIGN(auto cursor, txn.cursor(table_));
    DROVER_ASSIGN(bool more, cursor.first());
    while (more && key.empty()) {
      json j = json::parse(cursor.value(), nullptr, false);
      if (j.is_object() && j.value("name", "") == name) key = std::string(cursor.key());
      DROVER_ASSIGN(more, cursor.next());
    }
  }
  if (key.empty()) return make_error(Errc::not_found, "no token named '" + name + "'");
  DROVER_TRY(txn.erase(table_, key));
  return txn.commit();
}

Result<std::vector<TokenStore::Listed>> TokenStore::list() {
  DROVER_ASSIGN(auto txn, env_.begin_read());
  DROVER_ASSIGN(auto cursor, txn.cursor(table_));
  std::vector<Listed> out;
  DROVER_ASSIGN(bool more, cursor.first());
  while (more) {
    json j = json::parse(cursor.value(), nullptr, false);
    if (j.is_object()) {
      auto role = parse_role(j.value("role", ""));
      if (role.ok())
        out.push_back({j.value("name", ""), *role, j.value("created_at", std::int64_t{0})});
    }
    DROVER_ASSIGN(more, cursor.next());
  }
  std::sort(out.begin(), out.end(),
            [](const Listed& a, const Listed& b) { return a.name < b.name; });
  return out;
}

}  // namespace drover::coordinator
