#include "agent/releases.hpp"

#include <nlohmann/json.hpp>

#include "core/base/hex.hpp"

namespace drover::agent {
namespace {

std::string substitute(std::string s, std::uint16_t port, const fs::path& release,
                       const fs::path& flags) {
  auto replace = [&s](const std::string& from, const std::string& to) {
    for (std::size_t at = s.find(from); at != std::string::npos;
         at = s.find(from, at + to.size())) {
      s.replace(at, from.size(), to);
    }
  };
  replace("{port}", std::to_string(port));
  replace("{release}", release.string());
  replace("{flags}", flags.string());
  return s;
}

}  // namespace

bool ReleaseDir::has(const ContentId& artifact) const {
  auto info = fs_.lstat(path_of(artifact));
  return info.ok() && info->type == FileType::directory;
}

std::vector<ContentId> ReleaseDir::list() const {
  std::vector<ContentId> out;
  auto names = fs_.list_dir(root_);
  if (!names.ok()) return out;
  for (const auto& name : *names) {
    auto id = ContentId::parse("sha256:" + name);
    if (id.ok() && has(*id)) out.push_back(*id);
  }
  return out;
}

std::optional<ContentId> ReleaseDir::link(const std::string& name) const {
  auto target = fs_.read_link(root_ / name);
  if (!target.ok()) return std::nullopt;
  auto id = ContentId::parse("sha256:" + *target);
  if (!id.ok() || !has(*id)) return std::nullopt;
  return *id;
}

Status ReleaseDir::set_link(const std::string& name, const ContentId& artifact) {
  if (!has(artifact)) {
    return make_error(Errc::internal, "no release " + artifact.str() + " to point " + name + " at");
  }
  const fs::path tmp = root_ / ("." + name + ".tmp-" + to_hex(random_.bytes(6)));
  DROVER_TRY(fs_.symlink(artifact.hex(), tmp));
  if (Status st = fs_.rename(tmp, root_ / name); !st.ok()) {
    (void)fs_.remove(tmp);
    return st;
  }
  return fs_.sync_dir(root_);
}

Status ReleaseDir::remove_link(const std::string& name) {
  if (Status st = fs_.remove(root_ / name); !st.ok() && st.error().code != Errc::not_found) {
    return st;
  }
  return fs_.sync_dir(root_);
}

Status ReleaseDir::prepare() {
  DROVER_TRY(fs_.make_dirs(root_));
  if (group_) DROVER_TRY(fs_.set_access(root_, 0750, group_));
  return Ok{};
}

Result<store::MaterializeStats> ReleaseDir::materialize(const format::Manifest& manifest,
                                                        const ContentId& artifact,
                                                        store::LayerSource& source, bool durable) {
  if (has(artifact)) return store::MaterializeStats{};
  DROVER_TRY(prepare());
  store::MaterializeOptions options;
  options.sync = durable;
  if (group_) {
    options.group = group_;
    options.root_mode = 0750;
  }
  return store::materialize(manifest, source, path_of(artifact), options, random_);
}

void ReleaseDir::clean_leftovers() {
  auto names = fs_.list_dir(root_);
  if (!names.ok()) return;
  for (const auto& name : *names) {
    if (name.size() < 2 || name[0] != '.') continue;
    if (name.find(".tmp-") != std::string::npos) {
      (void)fs_.remove(root_ / name);  // a link that set_link never renamed into place
    } else if (name.find(".staging-") != std::string::npos) {
      store::remove_tree(root_ / name);  // a tree that materialize never finished
    }
  }
}

std::size_t ReleaseDir::remove_all_but(const std::set<std::string>& keep_ids) {
  std::size_t removed = 0;
  for (const ContentId& id : list()) {
    if (keep_ids.count(id.str())) continue;
    store::remove_tree(path_of(id));
    ++removed;
  }
  return removed;
}

Result<Hooks> resolve_hooks(Filesystem& fsys, const HookSources& config,
                            const fs::path& release_dir, std::uint16_t port,
                            const fs::path& flags_file) {
  HookSources merged = config;
  const fs::path file = release_dir / "drover-service.json";
  auto present = fsys.exists(file);
  if (present.ok() && *present) {
    auto text = fsys.read_file(file, 64 << 10);
    if (!text.ok()) return text.error().context("service hooks");
    nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
    auto bad = [&](const std::string& what) {
      return make_error(Errc::invalid_argument, file.string() + ": " + what);
    };
    if (!j.is_object()) return bad("not a JSON object");
    if (j.value("format", "") != "drover.service.v1") {
      return bad("format must be drover.service.v1");
    }
    for (const auto& [k, v] : j.items()) {
      if (k == "format") continue;
      if (k == "start" || k == "stop") {
        if (!v.is_array()) return bad("'" + k + "' must be a list of strings");
        std::vector<std::string> argv;
        for (const auto& a : v) {
          if (!a.is_string()) return bad("'" + k + "' must be a list of strings");
          argv.push_back(a.get<std::string>());
        }
        auto& slot = k == "start" ? merged.start : merged.stop;
        if (slot.empty()) slot = argv;
      } else if (k == "health") {
        if (!v.is_string()) return bad("'health' must be a URL");
        if (merged.health.empty()) merged.health = v.get<std::string>();
      } else if (k == "start_timeout_s" || k == "stop_timeout_s") {
        if (!v.is_number_integer() || v.get<int>() < 1 || v.get<int>() > 3600) {
          return bad("'" + k + "' must be 1-3600");
        }
        auto& slot = k == "start_timeout_s" ? merged.start_timeout_s : merged.stop_timeout_s;
        if (!slot) slot = v.get<int>();
      } else {
        return bad("unknown field '" + k + "'");
      }
    }
  }
  if (merged.start.empty()) {
    return make_error(Errc::invalid_argument,
                      "no start command: set 'start' for the service in the agent config, or "
                      "ship drover-service.json in the artifact");
  }
  Hooks h;
  for (const auto& a : merged.start)
    h.start.push_back(substitute(a, port, release_dir, flags_file));
  for (const auto& a : merged.stop) h.stop.push_back(substitute(a, port, release_dir, flags_file));
  // A relative program is relative to the release.
  for (auto* argv : {&h.start, &h.stop}) {
    if (!argv->empty() && (*argv)[0].find('/') != std::string::npos && (*argv)[0][0] != '/') {
      (*argv)[0] = (release_dir / (*argv)[0]).string();
    }
  }
  h.health = substitute(merged.health, port, release_dir, flags_file);
  h.start_timeout_s = merged.start_timeout_s.value_or(30);
  h.stop_timeout_s = merged.stop_timeout_s.value_or(10);
  return h;
}

}  // namespace drover::agent
