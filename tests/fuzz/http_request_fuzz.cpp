// Fuzz family: the HTTP request path of drover's servers (core/http): the
// bytes a client sends, parsed as the server parses them (Beast's parser
// under the server's limits), then the target's percent-decoding and query,
// and URL and listen-address parsing. Properties: nothing crashes; a parsed
// request's body is within the limit; what decodes re-encodes to the same
// bytes.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/http/http.hpp"
#include "tests/fuzz/fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace drover;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  http::ServerOptions limits;
  limits.max_body_bytes = 4096;
  limits.max_header_bytes = 4096;
  auto r = http::parse_request(in, limits);
  if (r.ok()) {
    if (r->body.size() > limits.max_body_bytes) std::abort();
    for (const auto& [k, v] : r->query) (void)http::percent_encode(k + v);
  }
  auto decoded = http::percent_decode(in);
  if (decoded.ok()) {
    auto again = http::percent_decode(http::percent_encode(*decoded));
    if (!again.ok() || *again != *decoded) std::abort();
  }
  (void)http::parse_url(in);
  (void)http::parse_listen(std::string(in));
  return 0;
}
