// Deterministic synthetic release trees for tests and benchmarks: the same
// seed gives the same files, with a realistic mix of sizes and of
// compressible (text) and less compressible (binary) content.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace drover::testing {

struct TreeSpec {
  std::size_t small_files = 0;   // 1-32 KiB, mostly text
  std::size_t medium_files = 0;  // 32 KiB-1 MiB, text and binary
  std::size_t big_files = 0;     // big_min..big_max, binary
  std::uint64_t big_min = 8ull << 20;
  std::uint64_t big_max = 40ull << 20;
  std::size_t dirs = 40;  // files are spread over this many directories
  std::uint64_t seed = 1;
};

// About 512 MiB: 3,000 small, 380 medium and 10 big files.
TreeSpec mixed_512mib();

struct GeneratedTree {
  std::vector<std::filesystem::path> files;  // relative paths, in creation order
  std::uint64_t bytes = 0;
};

GeneratedTree generate_tree(const std::filesystem::path& root, const TreeSpec& spec);

// Deterministic content of n bytes: text-like (compresses about 3x) or
// binary-like (compresses a little).
std::string text_bytes(std::uint64_t seed, std::size_t n);
std::string binary_bytes(std::uint64_t seed, std::size_t n);

// Rewrites one file in place with new content of the same kind and size.
void change_file(const std::filesystem::path& file, std::uint64_t seed);

}  // namespace drover::testing
