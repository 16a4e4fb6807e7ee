#include "core/world/random.hpp"

#include <sodium.h>

#include <cstring>

#include "core/base/result.hpp"

namespace drover {

std::uint64_t Random::next_u64() {
  std::uint64_t v = 0;
  fill(&v, sizeof v);
  return v;
}

std::uint64_t Random::uniform(std::uint64_t bound) {
  DROVER_ASSERT(bound > 0);
  // Reject the top sliver of the range that would bias the modulo.
  const std::uint64_t limit = UINT64_MAX - (UINT64_MAX % bound);
  for (;;) {
    std::uint64_t v = next_u64();
    if (v < limit) return v % bound;
  }
}

std::string Random::bytes(std::size_t size) {
  std::string out(size, '\0');
  fill(out.data(), size);
  return out;
}

void SystemRandom::fill(void* out, std::size_t size) {
  DROVER_ASSERT(sodium_init() >= 0);
  randombytes_buf(out, size);
}

namespace {
std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
std::uint64_t rotl(std::uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}
}  // namespace

SeededRandom::SeededRandom(std::uint64_t seed) {
  for (auto& s : s_) s = splitmix64(seed);
}

std::uint64_t SeededRandom::step() {
  const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

void SeededRandom::fill(void* out, std::size_t size) {
  std::lock_guard lock(mu_);
  auto* p = static_cast<unsigned char*>(out);
  while (size > 0) {
    std::uint64_t v = step();
    std::size_t take = size < sizeof v ? size : sizeof v;
    std::memcpy(p, &v, take);
    p += take;
    size -= take;
  }
}

}  // namespace drover
