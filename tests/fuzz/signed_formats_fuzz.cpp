// Fuzz family: the signed formats an agent decodes from the coordinator or a
// peer (docs/FORMATS.md): envelopes, plan bundles, plans and manifests. The
// first byte picks the decoder. Properties: no input crashes or hangs a
// decoder; an accepted plan or manifest re-encodes to the very bytes read.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/format/manifest.hpp"
#include "core/proto/plan.hpp"
#include "core/sign/envelope.hpp"
#include "tests/fuzz/fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace drover;
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: {
      auto e = sign::decode_envelope(in);
      if (e.ok()) (void)sign::encode_envelope(*e);
      break;
    }
    case 1: {
      auto b = proto::decode_bundle(in);
      if (b.ok()) (void)proto::encode_bundle(*b);
      break;
    }
    case 2: {
      auto p = proto::decode_plan(in);
      if (p.ok()) {
        auto again = proto::encode_plan(*p);
        if (!again.ok() || *again != in) std::abort();
      }
      break;
    }
    default: {
      auto m = format::decode_manifest(in);
      if (m.ok()) {
        auto again = format::encode_manifest(*m);
        if (!again.ok() || *again != in) std::abort();
      }
      break;
    }
  }
  return 0;
}
