// A notification destination for tests (docs/API.md, "Notifications"): a
// real HTTP server on 127.0.0.1 that records every delivery, checks its
// signature under the destination's secret, and answers with the status a
// test sets (to make the coordinator retry).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/http/http.hpp"
#include "core/log/log.hpp"
#include "core/world/clock.hpp"

namespace drover::testing {

class NotifyReceiver {
 public:
  struct Delivery {
    std::string path, kind, event_id, timestamp;
    nlohmann::json body;
    bool signature_ok = false;  // X-Drover-Signature verified under the secret
    int answered = 0;           // the status this receiver answered
  };

  explicit NotifyReceiver(std::string secret);
  ~NotifyReceiver();

  std::uint16_t port() const { return server_->port(); }
  // "http://127.0.0.1:PORT" + path.
  std::string url(const std::string& path = "/hooks/drover") const;
  // What the next deliveries are answered (200 until set).
  void answer(int status);
  // Every delivery so far, in arrival order (repeats included).
  std::vector<Delivery> deliveries() const;
  // Those answered 2xx, one per event id (the first), in arrival order.
  std::vector<Delivery> accepted() const;
  // The kinds of accepted(), in order.
  std::vector<std::string> kinds() const;

 private:
  std::string secret_;
  MemorySink sink_;
  SystemClock clock_;
  Logger log_{sink_, clock_};
  mutable std::mutex mu_;
  int status_ = 200;
  std::vector<Delivery> deliveries_;
  std::unique_ptr<http::Server> server_;
};

}  // namespace drover::testing
