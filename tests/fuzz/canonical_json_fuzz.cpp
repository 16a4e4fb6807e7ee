// Fuzz family: canonical JSON (core/canon). Properties: an accepted input is
// the one canonical spelling of its value (decode then encode gives the same
// bytes); file names round-trip through their escaping; JSON written for an
// answer is valid UTF-8 whatever the bytes in it.
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/canon/canonical_json.hpp"
#include "core/canon/json_text.hpp"
#include "tests/fuzz/fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace drover;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  auto value = canon::decode(in, 1 << 20, 100'000);
  if (value.ok()) {
    auto again = canon::encode(*value);
    if (!again.ok() || *again != in) std::abort();  // one value, one spelling
  }
  auto name = canon::decode_name(in);
  if (name.ok() && canon::encode_name(*name) != in) std::abort();
  auto back = canon::decode_name(canon::encode_name(in));
  if (!back.ok() || *back != in) std::abort();
  const std::string text = json_text(nlohmann::json{{"echo", std::string(in)}});
  if (!canon::valid_utf8(text)) std::abort();
  return 0;
}
