// Randomness, behind an interface, so simulations are reproducible from a seed.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

namespace drover {

class Random {
 public:
  virtual ~Random() = default;
  virtual void fill(void* out, std::size_t size) = 0;

  std::uint64_t next_u64();
  // Uniform in [0, bound), without modulo bias. bound must be > 0.
  std::uint64_t uniform(std::uint64_t bound);
  std::string bytes(std::size_t size);
};

// Cryptographically secure (libsodium's randombytes). Thread-safe.
class SystemRandom final : public Random {
 public:
  void fill(void* out, std::size_t size) override;
};

// Deterministic xoshiro256** stream from a 64-bit seed: same seed, same
// sequence. Not for keys. Thread-safe.
class SeededRandom final : public Random {
 public:
  explicit SeededRandom(std::uint64_t seed);
  void fill(void* out, std::size_t size) override;

 private:
  std::uint64_t step();
  std::mutex mu_;  // guards s_
  std::uint64_t s_[4];
};

}  // namespace drover
