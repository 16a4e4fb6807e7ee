#include "agent/releases.hpp"

#include <fcntl.h>
#include <unistd.h>

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
  std::error_code ec;
  return fs::is_directory(fs::symlink_status(path_of(artifact), ec));
}

std::vector<ContentId> ReleaseDir::list() const {
  std::vector<ContentId> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root_, ec)) {
    auto id = ContentId::parse("sha256:" + e.path().filename().string());
    if (id.ok() && e.is_directory(ec) && !e.is_symlink(ec)) out.push_back(*id);
  }
  return out;
}

std::optional<ContentId> ReleaseDir::link(const std::string& name) const {
  std::error_code ec;
  fs::path target = fs::read_symlink(root_ / name, ec);
  if (ec) return std::nullopt;
  auto id = ContentId::parse("sha256:" + target.string());
  if (!id.ok() || !has(*id)) return std::nullopt;
  return *id;
}

Status ReleaseDir::set_link(const std::string& name, const ContentId& artifact) {
  if (!has(artifact)) {
    return make_error(Errc::internal, "no release " + artifact.str() + " to point " + name + " at");
  }
  const fs::path tmp = root_ / ("." + name + ".tmp-" + to_hex(random_.bytes(6)));
  if (::symlink(artifact.hex().c_str(), tmp.c_str()) != 0) {
    return errno_error("symlink", tmp, errno);
  }
  if (::rename(tmp.c_str(), (root_ / name).c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return errno_error("rename link over", root_ / name, err);
  }
  return fs_.sync_dir(root_);
}

Status ReleaseDir::remove_link(const std::string& name) {
  if (::unlink((root_ / name).c_str()) != 0 && errno != ENOENT) {
    return errno_error("remove", root_ / name, errno);
  }
  return fs_.sync_dir(root_);
}

Result<store::MaterializeStats> ReleaseDir::materialize(const format::Manifest& manifest,
                                                        const ContentId& artifact,
                                                        store::LayerSource& source) {
  if (has(artifact)) return store::MaterializeStats{};
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec) return errno_error("create", root_, ec.value());
  return store::materialize(manifest, source, path_of(artifact), {}, random_);
}

void ReleaseDir::clean_leftovers() {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root_, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() > 1 && name[0] == '.' &&
        (name.find(".staging-") != std::string::npos || name.find(".tmp-") != std::string::npos)) {
      store::remove_tree(e.path());
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
