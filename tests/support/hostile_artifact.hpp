// Installs hand-made artifacts into a store, bypassing every check that push
// runs, so tests can hand hostile manifests and layers to materialize and
// verify, as a compromised build machine or a damaged disk would.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/hash/sha256.hpp"

namespace drover::testing {

struct RawLayer {
  std::string stored;  // the blob's bytes exactly
  std::string codec = "none";
  // What the manifest declares; by default the truth about `stored`.
  std::optional<std::uint64_t> size;
  std::optional<std::uint64_t> raw_size;
};

// A layer holding `raw`, compressed with zstd (content size in the header).
RawLayer zstd_layer(const std::string& raw);

// Writes the layers and a manifest with the given entries (JSON as in
// docs/FORMATS.md, names already escaped) into the store at root, indexes it
// and returns its id. Nothing is validated.
ContentId install_raw_artifact(const std::filesystem::path& root,
                               const std::vector<nlohmann::json>& entries,
                               const std::vector<RawLayer>& layers,
                               const std::string& service = "hostile");

// JSON for the usual entries.
nlohmann::json dir_entry(const std::string& path, unsigned mode = 0755);
nlohmann::json file_entry(const std::string& path, const std::string& content, std::uint32_t layer,
                          std::uint64_t offset, unsigned mode = 0644);
nlohmann::json link_entry(const std::string& path, const std::string& target);

}  // namespace drover::testing
