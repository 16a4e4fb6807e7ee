// Fuzz family: the signed formats an agent decodes from the coordinator or a
// peer (docs/FORMATS.md): envelopes, plan bundles, plans, root documents and
// manifests. The
// first byte picks the decoder. Properties: no input crashes or hangs a
// decoder; an accepted plan or manifest re-encodes to the very bytes read.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/format/manifest.hpp"
#include "core/proto/plan.hpp"
#include "core/sign/envelope.hpp"
#include "core/sign/root.hpp"
#include "tests/fuzz/fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace drover;
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
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
    case 3: {
      // A root document (drover.root.v1) offered to an agent of root 1.
      auto e = sign::decode_envelope(in);
      if (!e.ok()) break;
      (void)sign::claimed_root_version(*e);
      static const sign::PublicKey root = sign::PublicKey::from_hex(std::string(64, 'a')).value();
      auto next = sign::next_root(*e, {root, 1}, 1'800'000'000);
      if (next.ok()) std::abort();  // nothing here is signed by that key
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
