// The promotion path of a version-2 pipeline (docs/FORMATS.md, "Pipelines,
// version 2"): ordered environments, each with its waves of regions, an
// optional gate of distinct persons, freeze windows and a post-release
// watch. This is the model and its checks; the deploy machine that walks it
// comes next (issue 13).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/base/result.hpp"

namespace drover::coordinator {

// Regions and clusters a pipeline names in all its waves, at most.
inline constexpr std::size_t kMaxPipelineRegions = 512;

struct RegionRef {
  std::string region;
  std::string cluster;  // "" : every cluster of the region
};

struct Wave {
  std::string name;
  std::vector<RegionRef> regions;
  // "*": every region holding the service that no environment names.
  bool rest = false;
  std::optional<std::int64_t> bake_ms;  // default: the environment's bake
};

struct Gate {
  int approvals = 1;  // distinct persons, none of them the run's starter
  std::int64_t deadline_ms = 0;
};

// No wave starts inside a window (an approver may override, with a reason).
// Either absolute (from_ms, to_ms) or weekly in a named time zone (minutes
// since Monday 00:00 local time; from may be after to, wrapping the week).
struct FreezeWindow {
  std::int64_t from_ms = 0, to_ms = 0;
  int weekly_from_min = -1, weekly_to_min = -1;
  std::string time_zone;
  bool weekly() const { return weekly_from_min >= 0; }
};

struct Environment {
  std::string name;
  std::vector<Wave> waves;
  std::optional<Gate> gate;
  std::vector<FreezeWindow> freeze;
  std::optional<std::int64_t> watch_ms;  // default: the pipeline's
  // The pipeline's fields this environment overrides, each as a whole, as
  // written (the pipeline codec reads and checks them).
  std::optional<nlohmann::json> strategy, health_checks, timeouts;
};

// Reads and checks `environments` (errors name the field:
// "environments[1].waves[0].regions[2] ..."). gate_deadline_ms is the
// default deadline of a gate (timeouts.gate_s).
Result<std::vector<Environment>> environments_from_json(const nlohmann::json& list,
                                                        std::int64_t gate_deadline_ms);
nlohmann::json environments_to_json(const std::vector<Environment>& envs);

// The freeze window of `windows` holding at now_ms, described ("" when
// none). Weekly windows load their time zone once, here: an unknown zone is
// refused naming `where`.
using FreezeCheck = std::function<std::string(std::int64_t now_ms)>;
Result<FreezeCheck> freeze_check(const std::vector<FreezeWindow>& windows,
                                 const std::string& where);

}  // namespace drover::coordinator
