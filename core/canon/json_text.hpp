// JSON text for everything drover writes out (HTTP answers, event lines,
// log lines, messages): a string that is not UTF-8 (a path, or a name an
// attacker chose) has its bad bytes replaced by U+FFFD instead of throwing,
// so no input can make the writing of an answer kill a daemon. Records whose
// exact bytes matter are encoded by core/canon's canonical form instead.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace drover {

std::string json_text(const nlohmann::json& value);

}  // namespace drover
