// The artifact manifest, drover.manifest.v1 (docs/FORMATS.md, "Manifest").
//
// decode_manifest() is the gate every manifest passes before anyone acts on it:
// it refuses non-canonical bytes and every entry that materializing could turn
// against the host (absolute or ".." paths, escaping symlinks, set-id bits,
// unknown entry types, extents outside their layers, absurd sizes or counts).
// encode_manifest() runs the same checks, so nothing is ever written that a
// reader would refuse.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.hpp"
#include "core/hash/sha256.hpp"

namespace drover::format {

inline constexpr std::string_view kManifestFormat = "drover.manifest.v1";

enum class Codec { none, zstd };
const char* codec_name(Codec codec);

struct Layer {
  ContentId id;                // SHA-256 of the stored bytes
  std::uint64_t size = 0;      // stored bytes
  std::uint64_t raw_size = 0;  // bytes after decoding
  Codec codec = Codec::none;
  Digest bt_root{};  // BitTorrent v2 pieces root of the stored bytes
};

struct Extent {
  std::uint32_t layer = 0;   // index into Manifest::layers
  std::uint64_t offset = 0;  // within the layer's raw bytes
  std::uint64_t length = 0;
  friend bool operator==(const Extent&, const Extent&) = default;
};

enum class EntryType { dir, file, symlink };
const char* entry_type_name(EntryType type);

struct Entry {
  std::string path;  // raw bytes, relative, '/'-separated
  EntryType type = EntryType::file;
  std::uint32_t mode = 0;       // dir and file
  std::uint64_t size = 0;       // file
  ContentId hash;               // file
  std::vector<Extent> extents;  // file
  std::string target;           // symlink, raw bytes
};

struct Manifest {
  std::string service;
  std::string git_sha;
  std::map<std::string, std::string> meta;
  std::string packing;
  std::vector<Layer> layers;
  std::vector<Entry> entries;

  std::uint64_t tree_bytes() const;    // sum of file sizes
  std::uint64_t stored_bytes() const;  // sum of layer sizes
  std::size_t count(EntryType type) const;
};

// Bounds a reader enforces. The defaults are the format's own limits; a
// caller may only tighten them.
struct Limits {
  std::uint64_t max_manifest_bytes = 256ull << 20;
  std::size_t max_entries = 1'000'000;
  std::size_t max_layers = 65'536;
  std::size_t max_path_bytes = 4096;
  std::size_t max_component_bytes = 255;
  std::size_t max_components = 256;
  std::uint64_t max_layer_bytes = 64ull << 20;
  std::uint64_t max_tree_bytes = 1ull << 40;
  // Path steps all symlink resolution may take together (see LinkChecker).
  std::uint64_t max_link_steps = 32'000'000;
};

Result<std::string> encode_manifest(const Manifest& manifest, const Limits& limits = {});
Result<Manifest> decode_manifest(std::string_view bytes, const Limits& limits = {});
Status validate_manifest(const Manifest& manifest, const Limits& limits = {});
// The checks on entries alone (paths, order, parents, modes, symlinks, total
// size), without layers or extents: what a tree must pass before packing.
Status validate_tree(const std::vector<Entry>& entries, const Limits& limits = {});

// Field rules shared with the command line, so a bad flag is refused before
// any work is done. Each error names the value and the rule.
Status validate_service(std::string_view service);
Status validate_git_sha(std::string_view git_sha);
Status validate_meta(const std::map<std::string, std::string>& meta);

// A path or link target as a person should see it in a message (escaped, cut
// to a readable length).
std::string printable(std::string_view raw);

}  // namespace drover::format
