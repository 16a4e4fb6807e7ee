#include "tests/support/prometheus.hpp"

#include <nlohmann/json.hpp>

#include "core/http/http.hpp"

namespace drover::testing {

using nlohmann::json;
using namespace std::chrono_literals;

PrometheusProcess::PrometheusProcess(const fs::path& dir,
                                     const std::vector<ScrapeTarget>& targets) {
  dir_ = dir;
  fs::create_directories(dir / "data");
  set_targets(targets);
  // YAML is a superset of JSON: the configuration written as JSON.
  const json config = {{"global", {{"scrape_interval", "1s"}, {"evaluation_interval", "1s"}}},
                       {"scrape_configs",
                        {{{"job_name", "service"},
                          {"file_sd_configs", {{{"files", {(dir / "targets.json").string()}}}}}}}}};
  write_file(dir / "prometheus.yml", config.dump(2));
  port_ = free_port();
  process_ = std::make_unique<DaemonProcess>(
      std::vector<std::string>{
          "/usr/bin/prometheus", "--config.file=" + (dir / "prometheus.yml").string(),
          "--storage.tsdb.path=" + (dir / "data").string(),
          "--web.listen-address=127.0.0.1:" + std::to_string(port_), "--log.level=warn"},
      (dir / "prometheus.err").string());
  const bool ready = eventually(
      [&] {
        auto r = http::request("GET", url() + "/-/ready", "", 1s);
        return r.ok() && r->status == 200;
      },
      60s);
  if (!ready) error_ = "prometheus did not become ready: " + process_->stderr_tail();
}

void PrometheusProcess::set_targets(const std::vector<ScrapeTarget>& targets) {
  json groups = json::array();
  for (const auto& t : targets) groups.push_back({{"targets", {t.address}}, {"labels", t.labels}});
  // Whole or not at all: written beside it, then renamed over it.
  write_file(dir_ / "targets.json.new", groups.dump(2));
  fs::rename(dir_ / "targets.json.new", dir_ / "targets.json");
}

std::string PrometheusProcess::query(const std::string& promql) const {
  auto r =
      http::request("GET", url() + "/api/v1/query?query=" + http::percent_encode(promql), "", 2s);
  if (!r.ok() || r->status != 200) return "";
  const json doc = json::parse(r->body, nullptr, false);
  if (doc.is_discarded()) return "";
  const json result = doc["data"].value("result", json::array());
  if (!result.is_array() || result.empty()) return "";
  return result[0]["value"][1].get<std::string>();
}

}  // namespace drover::testing
