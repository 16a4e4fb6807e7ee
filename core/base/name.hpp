// The one rule for every name that becomes a key, a path, a config line or a
// label: services, hosts, regions, clusters, pipeline ids, environments,
// flags. `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`: never empty, never "." or "..",
// never starting with '.' or '-', never a '/' or a byte that needs quoting.
#pragma once

#include <cstddef>
#include <string_view>

#include "core/base/result.hpp"

namespace drover {

inline constexpr std::size_t kMaxNameBytes = 128;

bool is_valid_name(std::string_view name);
// what: the kind of name, for the error ("service name", "region").
// "region 'eu west' may only contain letters, digits, '.', '_' and '-'".
Status validate_name(std::string_view name, std::string_view what);

}  // namespace drover
