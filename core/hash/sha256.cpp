#include "core/hash/sha256.hpp"

#include <openssl/evp.h>

#include <cstring>

#include "core/base/hex.hpp"
#include "core/base/text.hpp"

namespace drover {

namespace {

// OpenSSL 3 looks EVP_sha256() up in its providers on every init (a lock and
// a table search, several microseconds on a small message): the algorithm is
// fetched once and kept for the life of the process.
const EVP_MD* sha256_md() {
  static const EVP_MD* const md = [] {
    const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return fetched != nullptr ? fetched : EVP_sha256();
  }();
  return md;
}

}  // namespace

struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
  Impl() : ctx(EVP_MD_CTX_new()) {
    DROVER_ASSERT(ctx != nullptr);
    DROVER_ASSERT(EVP_DigestInit_ex(ctx, sha256_md(), nullptr) == 1);
  }
  ~Impl() { EVP_MD_CTX_free(ctx); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(const void* data, std::size_t size) {
  if (size == 0) return;
  DROVER_ASSERT(EVP_DigestUpdate(impl_->ctx, data, size) == 1);
}

Digest Sha256::finish() {
  Digest out{};
  unsigned int len = 0;
  DROVER_ASSERT(EVP_DigestFinal_ex(impl_->ctx, out.data(), &len) == 1 && len == out.size());
  DROVER_ASSERT(EVP_DigestInit_ex(impl_->ctx, sha256_md(), nullptr) == 1);
  return out;
}

Digest Sha256::of(const void* data, std::size_t size) {
  // One context per thread, reset by finish(): no allocation per digest.
  thread_local Sha256 hasher;
  hasher.update(data, size);
  return hasher.finish();
}

Digest Sha256::of(std::string_view bytes) {
  return of(bytes.data(), bytes.size());
}

Result<ContentId> ContentId::parse(std::string_view text) {
  constexpr std::string_view prefix = "sha256:";
  auto bad = [&](const char* why) {
    return make_error(Errc::invalid_argument, "'" + clip_utf8(text, 80) +
                                                  "' is not a content id (" + why +
                                                  "; expected sha256:<64 lowercase hex digits>)");
  };
  if (text.substr(0, prefix.size()) != prefix) return bad("missing sha256: prefix");
  std::string_view hex = text.substr(prefix.size());
  if (hex.size() != 64) return bad("wrong length");
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return bad("not lowercase hex");
  }
  auto raw = from_hex(hex);
  Digest d{};
  std::memcpy(d.data(), raw->data(), d.size());
  return ContentId(d);
}

std::string ContentId::hex() const {
  return to_hex(digest_.data(), digest_.size());
}
std::string ContentId::str() const {
  return "sha256:" + hex();
}
std::string ContentId::short_str() const {
  return hex().substr(0, 12);
}

}  // namespace drover
