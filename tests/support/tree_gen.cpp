#include "tests/support/tree_gen.hpp"

#include <sys/stat.h>

#include <fstream>
#include <random>
#include <stdexcept>

#include "tests/support/test_support.hpp"

namespace drover::testing {
namespace {

using Rng = std::mt19937_64;

std::uint64_t pick(Rng& rng, std::uint64_t lo, std::uint64_t hi) {
  return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng);
}

const std::vector<std::string>& vocabulary() {
  static const std::vector<std::string> words = [] {
    Rng rng(12345);
    std::vector<std::string> w;
    for (int i = 0; i < 2000; ++i) {
      std::string s;
      std::size_t len = pick(rng, 2, 11);
      for (std::size_t j = 0; j < len; ++j) s += static_cast<char>('a' + pick(rng, 0, 25));
      w.push_back(s);
    }
    return w;
  }();
  return words;
}

}  // namespace

TreeSpec mixed_512mib() {
  TreeSpec s;
  s.small_files = 3000;
  s.medium_files = 380;
  s.big_files = 10;
  s.big_min = 16ull << 20;
  s.big_max = 36ull << 20;
  s.dirs = 60;
  return s;
}

std::string text_bytes(std::uint64_t seed, std::size_t n) {
  Rng rng(seed);
  const auto& words = vocabulary();
  std::string out;
  out.reserve(n + 16);
  while (out.size() < n) {
    out += words[pick(rng, 0, words.size() - 1)];
    out += pick(rng, 0, 11) == 0 ? '\n' : ' ';
  }
  out.resize(n);
  return out;
}

std::string binary_bytes(std::uint64_t seed, std::size_t n) {
  Rng rng(seed);
  std::string out;
  out.reserve(n + 4096);
  while (out.size() < n) {
    std::uint64_t kind = pick(rng, 0, 9);
    std::size_t run = pick(rng, 64, 4096);
    if (kind < 6) {  // random
      for (std::size_t i = 0; i < run; i += 8) {
        std::uint64_t v = rng();
        out.append(reinterpret_cast<const char*>(&v), 8);
      }
    } else if (kind < 8) {  // a repeated short pattern, as in tables and padding
      std::uint64_t v = rng();
      for (std::size_t i = 0; i < run; i += 8) out.append(reinterpret_cast<const char*>(&v), 8);
    } else {  // zeros
      out.append(run, '\0');
    }
  }
  out.resize(n);
  return out;
}

GeneratedTree generate_tree(const std::filesystem::path& root, const TreeSpec& spec) {
  Rng rng(spec.seed);
  GeneratedTree tree;
  std::vector<std::filesystem::path> dirs;
  for (std::size_t d = 0; d < spec.dirs; ++d) {
    std::filesystem::path p = "d" + std::to_string(d % 7);
    if (d >= 7) p /= "sub" + std::to_string(d);
    dirs.push_back(p);
  }
  auto add = [&](const std::string& prefix, std::size_t i, std::uint64_t size, bool text,
                 unsigned mode) {
    std::filesystem::path rel = dirs[pick(rng, 0, dirs.size() - 1)] /
                                (prefix + std::to_string(i) + (text ? ".txt" : ".bin"));
    std::uint64_t seed = rng();
    write_file(root / rel, text ? text_bytes(seed, size) : binary_bytes(seed, size), mode);
    tree.files.push_back(rel);
    tree.bytes += size;
  };
  for (std::size_t i = 0; i < spec.small_files; ++i) {
    add("s", i, pick(rng, 1024, 32 * 1024), pick(rng, 0, 9) < 8, 0644);
  }
  for (std::size_t i = 0; i < spec.medium_files; ++i) {
    add("m", i, pick(rng, 32 * 1024, 1 << 20), pick(rng, 0, 1) == 0, 0644);
  }
  for (std::size_t i = 0; i < spec.big_files; ++i) {
    add("b", i, pick(rng, spec.big_min, spec.big_max), false, 0755);
  }
  return tree;
}

void change_file(const std::filesystem::path& file, std::uint64_t seed) {
  std::string old = read_file(file);
  bool text = file.extension() == ".txt";
  std::string fresh = text ? text_bytes(seed, old.size()) : binary_bytes(seed, old.size());
  struct stat st {};
  ::stat(file.c_str(), &st);
  write_file(file, fresh, st.st_mode & 07777);
}

}  // namespace drover::testing
