// Fuzz family: the tracker's announce and swarm requests (docs/FORMATS.md,
// "Tracker announce"), from the raw request target an HTTP client sends.
// Properties: no target crashes the tracker; every answer is bencode (an
// announce) or valid UTF-8 JSON (a swarm listing), whatever the bytes.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/canon/canonical_json.hpp"
#include "core/http/http.hpp"
#include "core/world/clock.hpp"
#include "core/world/random.hpp"
#include "mesh/tracker/swarm_tracker.hpp"
#include "mesh/tracker/tracker_service.hpp"
#include "tests/fuzz/fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace drover;
  static ManualClock clock;
  static SeededRandom random(1);
  mesh::TrackerOptions options;
  options.max_swarms = 4;
  options.max_nodes_per_swarm = 4;
  mesh::SwarmTracker tracker(options, clock, random);
  // Up to four requests per input, separated by newlines: state carries over.
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  for (int i = 0; i < 4 && !rest.empty(); ++i) {
    const std::size_t nl = rest.find('\n');
    const std::string_view target = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    http::Request r;
    r.method = "GET";
    r.target = std::string(target);
    const std::size_t q = target.find('?');
    r.path = std::string(target.substr(0, q));
    if (q != std::string_view::npos) r.query = http::parse_query(target.substr(q + 1));
    r.remote_address = (i % 2) ? "127.0.0.1" : "::1";
    r.remote_port = 7000;
    if (r.path == "/swarm") {
      const http::Response a = mesh::handle_swarm(tracker, r);
      if (!canon::valid_utf8(a.body)) std::abort();
    } else {
      const http::Response a = mesh::handle_announce(tracker, r);
      if (a.body.empty() || a.body.front() != 'd' || a.body.back() != 'e') std::abort();
    }
  }
  return 0;
}
