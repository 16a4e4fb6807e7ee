// Small valid manifests for tests that need an artifact to exist but not its
// bytes: one layer per `salt` holding one file, whose contents (and so whose
// ids) follow from the salt.
#pragma once

#include <string>
#include <vector>

#include "core/format/manifest.hpp"

namespace drover::testing {

// A manifest of `service` with one layer and one file per salt, in order.
format::Manifest small_manifest(const std::string& service, const std::vector<std::string>& salts);

// The encoded form of small_manifest(service, {salt}).
std::string small_manifest_bytes(const std::string& service, const std::string& salt);

}  // namespace drover::testing
