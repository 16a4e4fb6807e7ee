#include "store/layer_codec.hpp"

#include <zstd.h>

#include "core/hash/bt_merkle.hpp"

namespace drover::store {
namespace {

// One compression and one decompression context per thread, reused.
struct ZstdContexts {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_DCtx* d = ZSTD_createDCtx();
  ZstdContexts() { DROVER_ASSERT(c != nullptr && d != nullptr); }
  ~ZstdContexts() {
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
  }
  ZstdContexts(const ZstdContexts&) = delete;
  ZstdContexts& operator=(const ZstdContexts&) = delete;
};

ZstdContexts& contexts() {
  thread_local ZstdContexts ctx;
  return ctx;
}

}  // namespace

EncodedLayer encode_layer(Bytes raw, const LayerEncoding& encoding) {
  EncodedLayer out;
  out.layer.raw_size = raw.size();
  auto finish = [&] {
    out.layer.size = out.stored.size();
    out.layer.id = ContentId::of(view(out.stored));
    out.layer.bt_root = BtMerkle::of(view(out.stored));
    return std::move(out);
  };
  if (!encoding.compress) {
    out.stored = std::move(raw);
    out.layer.codec = format::Codec::none;
    return finish();
  }
  ZSTD_CCtx* cctx = contexts().c;
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  DROVER_ASSERT(
      !ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, encoding.zstd_level)));
  DROVER_ASSERT(!ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1)));
  DROVER_ASSERT(!ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0)));
  Bytes packed(ZSTD_compressBound(raw.size()));
  std::size_t n = ZSTD_compress2(cctx, packed.data(), packed.size(), raw.data(), raw.size());
  DROVER_ASSERT(!ZSTD_isError(n));
  if (32 * static_cast<std::uint64_t>(n) <= 31 * static_cast<std::uint64_t>(raw.size())) {
    packed.resize(n);
    out.stored = std::move(packed);
    out.layer.codec = format::Codec::zstd;
  } else {
    out.stored = std::move(raw);
    out.layer.codec = format::Codec::none;
  }
  return finish();
}

Result<Bytes> decode_layer(const format::Layer& layer, std::string_view stored) {
  const std::string who = "layer " + layer.id.str();
  if (stored.size() != layer.size) {
    return make_error(Errc::corrupt, who + ": holds " + std::to_string(stored.size()) +
                                         " bytes, but the manifest says " +
                                         std::to_string(layer.size));
  }
  if (ContentId::of(stored) != layer.id) {
    return make_error(Errc::corrupt, who + ": content does not match its id (corrupt blob)");
  }
  if (layer.codec == format::Codec::none) return Bytes(stored.begin(), stored.end());

  unsigned long long declared = ZSTD_getFrameContentSize(stored.data(), stored.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR || declared == ZSTD_CONTENTSIZE_UNKNOWN) {
    return make_error(Errc::refused, who + ": not a zstd frame with a declared content size");
  }
  if (declared != layer.raw_size) {
    return make_error(Errc::refused, who + ": zstd frame declares " + std::to_string(declared) +
                                         " bytes, but the manifest says " +
                                         std::to_string(layer.raw_size));
  }
  std::size_t frame = ZSTD_findFrameCompressedSize(stored.data(), stored.size());
  if (ZSTD_isError(frame) || frame != stored.size()) {
    return make_error(Errc::refused, who + ": bytes follow the zstd frame");
  }
  Bytes raw(layer.raw_size);
  std::size_t n =
      ZSTD_decompressDCtx(contexts().d, raw.data(), raw.size(), stored.data(), stored.size());
  if (ZSTD_isError(n)) {
    return make_error(Errc::refused, who + ": zstd: " + ZSTD_getErrorName(n) +
                                         " (expands beyond its declared size, or is malformed)");
  }
  if (n != layer.raw_size) {
    return make_error(Errc::refused, who + ": decodes to " + std::to_string(n) +
                                         " bytes, but the manifest says " +
                                         std::to_string(layer.raw_size));
  }
  return raw;
}

}  // namespace drover::store
