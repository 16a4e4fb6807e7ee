// drover notify receive: a notification destination on this machine, for
// trying a pipeline's notifications and for the demo (docs/CLI.md). It
// checks each delivery as docs/API.md, "Notifications" asks a receiver to:
// the signature under the secret, a timestamp within 5 minutes, and each
// event id once (a repeat is answered 200 and not printed again).
#include <signal.h>

#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <set>

#include <nlohmann/json.hpp>

#include "core/base/hex.hpp"
#include "core/http/http.hpp"
#include "core/sign/secret_box.hpp"
#include "tools/drover/commands.hpp"

namespace drover::cli {
namespace {

// What a terminal shows as it is: control bytes (an escape sequence in a
// rollback's reason, say) become '?'.
std::string printable(std::string text) {
  for (char& c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = '?';
  }
  return text;
}

}  // namespace

int notify_receive(Context& ctx, const std::string& listen, const std::string& secret,
                   std::size_t count, bool as_json) {
  auto where = http::parse_listen(listen);
  if (!where.ok()) {
    std::cerr << "drover notify: --listen: " << where.error().message << "\n";
    return kExitUsage;
  }
  std::mutex mu;
  std::condition_variable done_cv;
  std::set<std::string> seen;
  Logger log(ctx.log_sink, ctx.clock);
  http::ServerOptions o;
  o.bind = where->first;
  o.port = where->second;
  o.max_body_bytes = 256 << 10;
  auto server = http::Server::start(
      o,
      [&](const http::Request& req, http::Responder respond) {
        auto header = [&req](const char* name) {
          auto it = req.headers.find(name);
          return it == req.headers.end() ? std::string() : it->second;
        };
        auto refuse = [&](int status, const std::string& why) {
          std::cerr << "drover notify: refused a delivery: " << why << std::endl;
          respond(http::Response{
              status, "application/json", nlohmann::json{{"error", why}}.dump(), {}});
        };
        const std::string id = header("x-drover-delivery");
        const std::string timestamp = header("x-drover-timestamp");
        if (req.method != "POST") return refuse(405, "POST only");
        if (id.empty() || timestamp.empty())
          return refuse(401, "X-Drover-Delivery or -Timestamp is missing");
        const std::string expect =
            "sha256=" + to_hex(sign::hmac_sha256(secret, "drover-notification-v1\n" + timestamp +
                                                             "\n" + id + "\n" + req.body));
        if (!sign::mac_equal(header("x-drover-signature"), expect)) {
          return refuse(401, "the signature does not match the secret");
        }
        const long long now =
            std::chrono::duration_cast<std::chrono::seconds>(ctx.clock.now().time_since_epoch())
                .count();
        const long long at = std::atoll(timestamp.c_str());
        if (at < now - 300 || at > now + 300)
          return refuse(401, "the timestamp is not within 5 minutes");
        const nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
        if (!body.is_object()) return refuse(400, "the body is not a JSON object");
        {
          std::lock_guard lock(mu);
          if (!seen.contains(id)) {
            if (as_json) {
              std::cout << body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                        << std::endl;
            } else {
              const std::string text =
                  body.contains("text") && body["text"].is_string()
                      ? body["text"].get<std::string>()
                      : body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
              std::cout << printable(header("x-drover-event")) << "\t" << printable(text)
                        << std::endl;
            }
            seen.insert(id);  // once printed: a delivery that failed here comes again
          }
        }
        done_cv.notify_all();
        respond(http::Response{200, "application/json", "{}", {}});
      },
      log);
  if (!server.ok()) {
    std::cerr << "drover notify: " << server.error().message << "\n";
    return kExitFailed;
  }
  std::cerr << "drover notify: listening on http://" << where->first << ":" << (*server)->port()
            << std::endl;
  std::unique_lock lock(mu);
  done_cv.wait(lock, [&] { return count > 0 && seen.size() >= count; });
  return kExitOk;
}

}  // namespace drover::cli
