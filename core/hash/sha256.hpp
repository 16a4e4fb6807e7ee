// SHA-256 content hashing. Bulk hashing goes through OpenSSL's EVP interface,
// which uses the CPU's SHA extensions (about 4x libsodium's portable code here).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/base/result.hpp"

namespace drover {

using Digest = std::array<std::uint8_t, 32>;

// Streaming SHA-256. Not thread-safe; one per thread of work.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void update(const void* data, std::size_t size);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  // Returns the digest and resets the hasher for reuse.
  Digest finish();

  static Digest of(std::string_view bytes);
  static Digest of(const void* data, std::size_t size);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A content id: the SHA-256 of some bytes, printed as "sha256:<64 hex>".
class ContentId {
 public:
  ContentId() = default;
  explicit ContentId(const Digest& digest) : digest_(digest) {}

  static ContentId of(std::string_view bytes) { return ContentId(Sha256::of(bytes)); }
  // Parses "sha256:<64 lowercase hex>"; the error names the offending text.
  static Result<ContentId> parse(std::string_view text);

  const Digest& digest() const { return digest_; }
  std::string hex() const;        // 64 hex digits
  std::string str() const;        // "sha256:" + hex()
  std::string short_str() const;  // first 12 hex digits, for humans

  friend bool operator==(const ContentId&, const ContentId&) = default;
  friend auto operator<=>(const ContentId&, const ContentId&) = default;

 private:
  Digest digest_{};
};

}  // namespace drover

template <>
struct std::hash<drover::ContentId> {
  std::size_t operator()(const drover::ContentId& id) const noexcept {
    std::size_t h = 0;
    for (int i = 0; i < 8; ++i) h = (h << 8) | id.digest()[static_cast<std::size_t>(i)];
    return h;
  }
};
