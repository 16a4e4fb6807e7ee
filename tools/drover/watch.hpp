// Watching a deploy (docs/CLI.md, "Watching a deploy"): what `drover
// status --watch` and `deploy --watch` show. Pure: a frame is rendered from
// the deploy's view (GET /deploys/:id) and its audit records (GET
// /deploys/:id/audit) at an instant; the command redraws it in place on a
// terminal, and on a pipe prints one line per new record instead.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace drover::cli {

// The exit status a deploy's end state maps to (docs/CLI.md, "Exit codes").
int exit_for_state(const std::string& state);

struct FrameOptions {
  std::int64_t now_ms = 0;  // the coordinator's clock (the view's now_ms)
  std::size_t width = 100;  // the terminal's columns
  std::size_t events = 6;   // the newest records shown
};

// The whole view, one string per line, none longer than width.
std::vector<std::string> render_frame(const nlohmann::json& view, const nlohmann::json& records,
                                      const FrameOptions& options);

// One audit record as a line of the plain (pipe) view:
// "12:03:07  production  us-east-2  batch 2 of 4 passed (5 samples)".
std::string record_line(const nlohmann::json& record);
// The same without the time: where, what (a batch numbered from 1, a
// reason), and who when a person.
std::string record_text(const nlohmann::json& record);

// "[########------------]" of done out of total, `cells` wide inside.
std::string progress_bar(std::size_t done, std::size_t total, std::size_t cells);

// A content id cut for people: "sha256:1f65cac92769…" -> "1f65cac92769".
std::string short_id(const std::string& id);

}  // namespace drover::cli
