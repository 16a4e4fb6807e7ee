#include "agent/router/router.hpp"

#include <nlohmann/json.hpp>

#include "core/canon/canonical_json.hpp"

namespace drover::agent {
namespace {

constexpr const char* kSlots[2] = {"blue", "green"};

class FileRouter final : public Router {
 public:
  FileRouter(Filesystem& fs, fs::path file) : fs_(fs), file_(std::move(file)) {}

  Status apply(const Routes& r) override {
    DROVER_TRY(check_routes(r));
    const int slot = primary_slot(r);
    const nlohmann::json j = {{"format", "drover.router.v1"},
                              {"service", r.service},
                              {"active", kSlots[slot]},
                              {"port", r.ports[slot]},
                              {"release", r.release}};
    DROVER_TRY(fs_.make_dirs(file_.parent_path()));
    DROVER_TRY(fs_.write_owned(file_, *canon::encode(j) + "\n", 0644));
    current_ = r;
    return Ok{};
  }
  std::optional<Routes> current() const override { return current_; }

 private:
  Filesystem& fs_;
  fs::path file_;
  std::optional<Routes> current_;
};

}  // namespace

Status check_routes(const Routes& r) {
  if (r.service.empty()) return make_error(Errc::invalid_argument, "routes name no service");
  for (int i = 0; i < 2; ++i) {
    if (r.weights[i] < 0 || r.weights[i] > kWeightTotal) {
      return make_error(Errc::invalid_argument,
                        std::string("the weight of slot ") + kSlots[i] + " is out of 0-1000");
    }
    if (r.weights[i] > 0 && r.ports[i] == 0) {
      return make_error(Errc::invalid_argument,
                        std::string("slot ") + kSlots[i] + " takes traffic but has no port");
    }
  }
  if (r.weights[0] + r.weights[1] != kWeightTotal) {
    return make_error(Errc::invalid_argument, "the slots' weights must add up to 1000");
  }
  if (r.preview && (*r.preview < 0 || *r.preview > 1 || r.ports[*r.preview] == 0)) {
    return make_error(Errc::invalid_argument, "the previewed slot has no port");
  }
  return Ok{};
}

int primary_slot(const Routes& r) {
  return r.weights[1] > r.weights[0] ? 1 : 0;
}

std::unique_ptr<Router> make_file_router(Filesystem& fs, fs::path file) {
  return std::make_unique<FileRouter>(fs, std::move(file));
}

}  // namespace drover::agent
