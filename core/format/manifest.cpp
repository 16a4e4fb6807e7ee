#include "core/format/manifest.hpp"

#include <cstring>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>

#include "core/base/hex.hpp"
#include "core/base/name.hpp"
#include "core/canon/canonical_json.hpp"

namespace drover::format {
namespace {

constexpr std::size_t kMaxMetaKeys = 64;
constexpr std::size_t kMaxMetaKeyBytes = 64;
constexpr std::size_t kMaxMetaValueBytes = 1024;
constexpr std::size_t kMaxTargetBytes = 4096;
constexpr int kMaxSymlinkHops = 40;

using nlohmann::json;

Error invalid(std::string message) {
  return make_error(Errc::invalid_argument, std::move(message));
}
Error refused(std::string message) {
  return make_error(Errc::refused, std::move(message));
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

std::string octal(std::uint32_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", mode);
  return buf;
}

std::vector<std::string_view> split_path(std::string_view p) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    std::size_t slash = p.find('/', start);
    parts.push_back(p.substr(start, slash == std::string_view::npos ? p.npos : slash - start));
    if (slash == std::string_view::npos) return parts;
    start = slash + 1;
  }
}

std::string_view parent_of(std::string_view p) {
  std::size_t slash = p.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : p.substr(0, slash);
}

Status check_path(std::string_view path, const Limits& limits) {
  const std::string who = "entry '" + printable(path) + "'";
  if (path.empty()) return refused("an entry has an empty path");
  if (path.size() > limits.max_path_bytes) {
    return refused(who + ": path is " + std::to_string(path.size()) + " bytes, over the limit of " +
                   std::to_string(limits.max_path_bytes));
  }
  if (path.find('\0') != std::string_view::npos) return refused(who + ": path contains a NUL byte");
  if (path.front() == '/') return refused(who + ": absolute path");
  auto parts = split_path(path);
  if (parts.size() > limits.max_components) {
    return refused(who + ": path has more than " + std::to_string(limits.max_components) +
                   " components");
  }
  for (auto part : parts) {
    if (part.empty()) return refused(who + ": path has an empty component");
    if (part == ".") return refused(who + ": path has a '.' component");
    if (part == "..") return refused(who + ": path has a '..' component");
    if (part.size() > limits.max_component_bytes) {
      return refused(who + ": a path component is over " +
                     std::to_string(limits.max_component_bytes) + " bytes");
    }
  }
  return Ok{};
}

// Resolves symlink targets through the manifest's own links, as the kernel
// would on the materialized tree, and refuses any that climbs above the root
// at any step. Each link is resolved once (later uses reuse the result), and
// all resolution shares one step budget, so chains of hostile links cannot
// make the check expensive.
class LinkChecker {
 public:
  LinkChecker(const std::unordered_map<std::string_view, const Entry*>& links, std::uint64_t budget)
      : links_(links), budget_(budget) {}

  Status check(const Entry& link) {
    const std::string who = "entry '" + printable(link.path) + "'";
    const std::string_view target = link.target;
    if (target.empty()) return refused(who + ": symlink with an empty target");
    if (target.size() > kMaxTargetBytes) return refused(who + ": symlink target is too long");
    if (target.find('\0') != std::string_view::npos) {
      return refused(who + ": symlink target contains a NUL byte");
    }
    if (target.front() == '/') {
      return refused(who + ": symlink to absolute path '" + printable(target) +
                     "' leaves the tree");
    }
    auto r = resolve(link, 0);
    if (r.ok()) return Ok{};
    return refused(who + ": symlink target '" + printable(target) + "' " + r.error().message);
  }

 private:
  // The tree path (components joined by '/', "" for the root) that a link
  // leads to; an error says why it may not be followed.
  Result<std::string> resolve(const Entry& link, int depth) {
    if (auto it = resolved_.find(link.path); it != resolved_.end()) return it->second;
    if (depth > kMaxSymlinkHops || in_progress_.contains(link.path)) {
      return refused("loops or chains through more than 40 links");
    }
    const std::string_view target = link.target;
    if (target.empty() || target.front() == '/') {
      return refused("leaves the tree through '" + printable(link.path) + "'");
    }
    in_progress_.insert(link.path);
    auto r = walk(parent_of(link.path), target, depth);
    in_progress_.erase(link.path);
    if (!r.ok()) return r;
    resolved_.emplace(link.path, *r);
    return r;
  }

  Result<std::string> walk(std::string_view dir, std::string_view target, int depth) {
    std::string cur(dir);
    std::vector<std::size_t> starts;  // where each component of cur begins
    auto reset_starts = [&] {
      starts.clear();
      if (cur.empty()) return;
      starts.push_back(0);
      for (std::size_t i = 0; i < cur.size(); ++i) {
        if (cur[i] == '/') starts.push_back(i + 1);
      }
      steps_ += starts.size();
    };
    reset_starts();
    for (std::string_view part : split_path(target)) {
      if (++steps_ > budget_) return refused("needs too much work to check (too many links)");
      if (part.empty() || part == ".") continue;
      if (part == "..") {
        if (starts.empty()) return refused("leaves the tree");
        cur.resize(starts.back() == 0 ? 0 : starts.back() - 1);
        starts.pop_back();
        continue;
      }
      starts.push_back(cur.empty() ? 0 : cur.size() + 1);
      if (!cur.empty()) cur += '/';
      cur += part;
      auto it = links_.find(cur);
      if (it == links_.end()) continue;
      auto next = resolve(*it->second, depth + 1);
      if (!next.ok()) {
        const std::string& why = next.error().message;
        if (why.rfind("leaves the tree", 0) == 0 && why.find(" through ") == std::string::npos) {
          return refused("leaves the tree through '" + printable(it->second->path) + "'");
        }
        return next;
      }
      cur = *next;
      reset_starts();
    }
    return cur;
  }

  const std::unordered_map<std::string_view, const Entry*>& links_;
  const std::uint64_t budget_;
  std::unordered_map<std::string_view, std::string> resolved_;
  std::unordered_set<std::string_view> in_progress_;
  std::uint64_t steps_ = 0;
};

json encode_name(std::string_view raw) {
  return canon::encode_name(raw);
}

}  // namespace

const char* codec_name(Codec codec) {
  return codec == Codec::zstd ? "zstd" : "none";
}

const char* entry_type_name(EntryType type) {
  switch (type) {
    case EntryType::dir: return "dir";
    case EntryType::file: return "file";
    case EntryType::symlink: return "symlink";
  }
  return "unknown";
}

std::string printable(std::string_view raw) {
  std::string s = canon::encode_name(raw.substr(0, 200));
  if (raw.size() > 200) s += "...";
  return s;
}

std::uint64_t Manifest::tree_bytes() const {
  std::uint64_t n = 0;
  for (const auto& e : entries) n += e.type == EntryType::file ? e.size : 0;
  return n;
}

std::uint64_t Manifest::stored_bytes() const {
  std::uint64_t n = 0;
  for (const auto& l : layers) n += l.size;
  return n;
}

std::size_t Manifest::count(EntryType type) const {
  std::size_t n = 0;
  for (const auto& e : entries) n += e.type == type ? 1 : 0;
  return n;
}

Status validate_service(std::string_view service) {
  return validate_name(service, "service name");
}

Status validate_git_sha(std::string_view git_sha) {
  bool hex = git_sha.size() >= 7 && git_sha.size() <= 64;
  for (char c : git_sha) hex = hex && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  if (!hex) {
    return invalid("git SHA '" + printable(git_sha) + "' must be 7 to 64 lowercase hex digits");
  }
  return Ok{};
}

Status validate_meta(const std::map<std::string, std::string>& meta) {
  if (meta.size() > kMaxMetaKeys) {
    return invalid("at most " + std::to_string(kMaxMetaKeys) + " metadata keys are allowed");
  }
  for (const auto& [k, v] : meta) {
    bool ok = !k.empty() && k.size() <= kMaxMetaKeyBytes;
    for (char c : k) ok = ok && is_name_char(c);
    if (!ok) {
      return invalid("metadata key '" + printable(k) +
                     "' must be 1 to 64 letters, digits, '.', '_' or '-'");
    }
    if (v.size() > kMaxMetaValueBytes || !canon::valid_utf8(v)) {
      return invalid("metadata value of '" + k + "' must be UTF-8 of at most 1024 bytes");
    }
  }
  return Ok{};
}

namespace {

// Checks entries; with layers given, also every file's extents (marking the
// layers they use).
Status check_entries(const std::vector<Entry>& entries, const std::vector<Layer>* layers,
                     std::vector<bool>* layer_used, const Limits& limits) {
  std::unordered_map<std::string_view, const Entry*> dirs, links;
  std::uint64_t tree_bytes = 0;
  std::size_t extents = 0;
  const Entry* prev = nullptr;
  for (const Entry& e : entries) {
    DROVER_TRY(check_path(e.path, limits));
    const std::string who = "entry '" + printable(e.path) + "'";
    if (prev != nullptr && !(prev->path < e.path)) {
      return refused(who + (prev->path == e.path ? ": listed twice" : ": entries are not sorted"));
    }
    prev = &e;
    std::string_view parent = parent_of(e.path);
    if (!parent.empty() && !dirs.contains(parent)) {
      return refused(who + ": parent '" + printable(parent) +
                     "' is not a directory listed before it");
    }
    if (e.type != EntryType::symlink && (e.mode & ~0777u)) {
      return refused(who + ": mode " + octal(e.mode) +
                     " has setuid, setgid or sticky bits, which are not deployable");
    }
    switch (e.type) {
      case EntryType::dir: dirs.emplace(e.path, &e); break;
      case EntryType::symlink: links.emplace(e.path, &e); break;
      case EntryType::file: {
        if (e.size > limits.max_tree_bytes - tree_bytes) {
          return refused(who + ": the tree's files add up to more than " +
                         std::to_string(limits.max_tree_bytes) + " bytes");
        }
        tree_bytes += e.size;
        extents += e.extents.size();
        if (extents > limits.max_entries + limits.max_layers) {
          // A packer needs one extent per small file and one per chunk.
          return refused(who + ": the manifest lists more than " +
                         std::to_string(limits.max_entries + limits.max_layers) + " extents");
        }
        if (layers == nullptr) break;
        std::uint64_t sum = 0;
        for (const Extent& x : e.extents) {
          if (x.layer >= layers->size()) {
            return refused(who + ": extent names layer " + std::to_string(x.layer) +
                           ", which does not exist");
          }
          const Layer& l = (*layers)[x.layer];
          if (x.length == 0 || x.offset > l.raw_size || x.length > l.raw_size - x.offset) {
            return refused(who + ": extent [" + std::to_string(x.layer) + ", " +
                           std::to_string(x.offset) + ", " + std::to_string(x.length) +
                           "] lies outside its layer of " + std::to_string(l.raw_size) + " bytes");
          }
          if (x.length > e.size - sum) {
            return refused(who + ": extents hold more than the file's size of " +
                           std::to_string(e.size) + " bytes");
          }
          sum += x.length;
          (*layer_used)[x.layer] = true;
        }
        if (sum != e.size) {
          return refused(who + ": extents hold " + std::to_string(sum) +
                         " bytes, but the file's size is " + std::to_string(e.size));
        }
        break;
      }
    }
  }
  LinkChecker link_checker(links, limits.max_link_steps);
  for (const Entry& e : entries) {
    if (e.type == EntryType::symlink) DROVER_TRY(link_checker.check(e));
  }
  return Ok{};
}

}  // namespace

Status validate_tree(const std::vector<Entry>& entries, const Limits& limits) {
  if (entries.size() > limits.max_entries) {
    return refused("the tree has " + std::to_string(entries.size()) +
                   " entries, over the limit of " + std::to_string(limits.max_entries));
  }
  return check_entries(entries, nullptr, nullptr, limits);
}

Status validate_manifest(const Manifest& m, const Limits& limits) {
  DROVER_TRY(validate_service(m.service));
  DROVER_TRY(validate_git_sha(m.git_sha));
  DROVER_TRY(validate_meta(m.meta));
  if (!canon::valid_utf8(m.packing) || m.packing.size() > 64) {
    return invalid("manifest: packing must be UTF-8 of at most 64 bytes");
  }
  if (m.layers.size() > limits.max_layers) {
    return refused("manifest lists " + std::to_string(m.layers.size()) +
                   " layers, over the limit of " + std::to_string(limits.max_layers));
  }
  if (m.entries.size() > limits.max_entries) {
    return refused("manifest lists " + std::to_string(m.entries.size()) +
                   " entries, over the limit of " + std::to_string(limits.max_entries));
  }
  std::unordered_map<ContentId, std::size_t> layer_index;
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const Layer& l = m.layers[i];
    const std::string who = "layer " + std::to_string(i) + " (" + l.id.str() + ")";
    if (!layer_index.emplace(l.id, i).second) return refused(who + ": listed twice");
    if (l.size == 0 || l.size > limits.max_layer_bytes || l.raw_size == 0 ||
        l.raw_size > limits.max_layer_bytes) {
      return refused(who + ": size " + std::to_string(l.size) + " / raw size " +
                     std::to_string(l.raw_size) + " outside 1.." +
                     std::to_string(limits.max_layer_bytes));
    }
    if (l.codec == Codec::none && l.raw_size != l.size) {
      return refused(who + ": uncompressed layer with raw size different from its size");
    }
  }

  std::vector<bool> layer_used(m.layers.size(), false);
  DROVER_TRY(check_entries(m.entries, &m.layers, &layer_used, limits));
  for (std::size_t i = 0; i < layer_used.size(); ++i) {
    if (!layer_used[i]) {
      return refused("layer " + std::to_string(i) + " (" + m.layers[i].id.str() +
                     ") is not used by any file");
    }
  }
  return Ok{};
}

Result<std::string> encode_manifest(const Manifest& m, const Limits& limits) {
  DROVER_TRY(validate_manifest(m, limits));
  json layers = json::array();
  for (const Layer& l : m.layers) {
    layers.push_back({{"id", l.id.str()},
                      {"size", l.size},
                      {"raw_size", l.raw_size},
                      {"codec", codec_name(l.codec)},
                      {"bt_root", to_hex(l.bt_root.data(), l.bt_root.size())}});
  }
  json entries = json::array();
  for (const Entry& e : m.entries) {
    json j = {{"path", encode_name(e.path)}, {"type", entry_type_name(e.type)}};
    switch (e.type) {
      case EntryType::dir: j["mode"] = e.mode; break;
      case EntryType::symlink: j["target"] = encode_name(e.target); break;
      case EntryType::file: {
        j["mode"] = e.mode;
        j["size"] = e.size;
        j["hash"] = e.hash.str();
        json extents = json::array();
        for (const Extent& x : e.extents) extents.push_back({x.layer, x.offset, x.length});
        j["extents"] = std::move(extents);
        break;
      }
    }
    entries.push_back(std::move(j));
  }
  json doc = {{"format", kManifestFormat},    {"service", m.service},
              {"git_sha", m.git_sha},         {"meta", m.meta},
              {"packing", m.packing},         {"layers", std::move(layers)},
              {"entries", std::move(entries)}};
  return canon::encode(doc);
}

namespace {

// Field access with errors that name the place.
struct Reader {
  const json& obj;
  std::string where;

  Status exact_keys(std::initializer_list<const char*> keys) const {
    if (!obj.is_object()) return invalid(where + ": not an object");
    for (const char* k : keys) {
      if (!obj.contains(k)) return invalid(where + ": missing field '" + k + "'");
    }
    if (obj.size() != keys.size()) {
      for (const auto& [k, v] : obj.items()) {
        bool known = false;
        for (const char* want : keys) known = known || k == want;
        if (!known) return invalid(where + ": unknown field '" + printable(k) + "'");
      }
    }
    return Ok{};
  }
  Result<std::string> str(const char* key) const {
    const json& v = obj[key];
    if (!v.is_string()) return invalid(where + ": field '" + key + "' must be a string");
    return v.get<std::string>();
  }
  Result<std::uint64_t> u64(const char* key) const {
    const json& v = obj[key];
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<std::int64_t>() >= 0)) {
      return invalid(where + ": field '" + key + "' must be a non-negative integer");
    }
    return v.get<std::uint64_t>();
  }
  Result<std::string> name(const char* key) const {
    DROVER_ASSIGN(std::string text, str(key));
    auto raw = canon::decode_name(text);
    if (!raw.ok()) return raw.error().context(where + ": field '" + key + "'");
    return raw;
  }
};

Result<Layer> read_layer(const json& j, std::size_t index) {
  Reader r{j, "layer " + std::to_string(index)};
  DROVER_TRY(r.exact_keys({"id", "size", "raw_size", "codec", "bt_root"}));
  Layer l;
  DROVER_ASSIGN(std::string id, r.str("id"));
  auto parsed = ContentId::parse(id);
  if (!parsed.ok()) return parsed.error().context(r.where);
  l.id = *parsed;
  DROVER_ASSIGN(l.size, r.u64("size"));
  DROVER_ASSIGN(l.raw_size, r.u64("raw_size"));
  DROVER_ASSIGN(std::string codec, r.str("codec"));
  if (codec == "none") {
    l.codec = Codec::none;
  } else if (codec == "zstd") {
    l.codec = Codec::zstd;
  } else {
    return make_error(Errc::unsupported, r.where + ": unknown codec '" + printable(codec) + "'");
  }
  DROVER_ASSIGN(std::string root, r.str("bt_root"));
  auto raw = from_hex(root);
  bool lower = true;
  for (char c : root) lower = lower && !(c >= 'A' && c <= 'F');
  if (!raw || raw->size() != l.bt_root.size() || !lower) {
    return invalid(r.where + ": bt_root must be 64 lowercase hex digits");
  }
  std::memcpy(l.bt_root.data(), raw->data(), l.bt_root.size());
  return l;
}

Result<Entry> read_entry(const json& j, std::size_t index) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string() || !j.contains("path")) {
    return invalid("entry " + std::to_string(index) + ": needs 'path' and 'type'");
  }
  Reader r{j, "entry " + std::to_string(index)};
  Entry e;
  DROVER_ASSIGN(e.path, r.name("path"));
  r.where = "entry '" + printable(e.path) + "'";
  const std::string type = j["type"].get<std::string>();
  if (type == "dir") {
    e.type = EntryType::dir;
    DROVER_TRY(r.exact_keys({"path", "type", "mode"}));
  } else if (type == "file") {
    e.type = EntryType::file;
    DROVER_TRY(r.exact_keys({"path", "type", "mode", "size", "hash", "extents"}));
  } else if (type == "symlink") {
    e.type = EntryType::symlink;
    DROVER_TRY(r.exact_keys({"path", "type", "target"}));
  } else {
    return refused(r.where + ": entry type '" + printable(type) +
                   "' is not deployable (only dir, file and symlink exist; hard links, "
                   "devices, FIFOs and sockets are refused)");
  }
  if (e.type != EntryType::symlink) {
    DROVER_ASSIGN(std::uint64_t mode, r.u64("mode"));
    if (mode > 07777) return refused(r.where + ": mode " + std::to_string(mode) + " is not a mode");
    e.mode = static_cast<std::uint32_t>(mode);
  }
  if (e.type == EntryType::symlink) {
    DROVER_ASSIGN(e.target, r.name("target"));
  }
  if (e.type == EntryType::file) {
    DROVER_ASSIGN(e.size, r.u64("size"));
    DROVER_ASSIGN(std::string hash, r.str("hash"));
    auto id = ContentId::parse(hash);
    if (!id.ok()) return id.error().context(r.where);
    e.hash = *id;
    const json& xs = j["extents"];
    if (!xs.is_array()) return invalid(r.where + ": extents must be an array");
    e.extents.reserve(xs.size());
    for (const json& x : xs) {
      if (!x.is_array() || x.size() != 3 || !x[0].is_number_unsigned() ||
          !x[1].is_number_unsigned() || !x[2].is_number_unsigned() ||
          x[0].get<std::uint64_t>() > UINT32_MAX) {
        return invalid(r.where + ": each extent must be [layer, offset, length]");
      }
      e.extents.push_back({static_cast<std::uint32_t>(x[0].get<std::uint64_t>()),
                           x[1].get<std::uint64_t>(), x[2].get<std::uint64_t>()});
    }
  }
  return e;
}

}  // namespace

Result<Manifest> decode_manifest(std::string_view bytes, const Limits& limits) {
  // Count entries before building a JSON tree of them: a hostile manifest of
  // millions of tiny entries would otherwise cost gigabytes to parse. Inside
  // strings every quote is escaped, so the bytes "path": occur only as keys.
  std::size_t paths = 0;
  for (std::size_t at = bytes.find("\"path\":"); at != std::string_view::npos;
       at = bytes.find("\"path\":", at + 7)) {
    if (++paths > limits.max_entries) {
      return refused("manifest lists more than " + std::to_string(limits.max_entries) +
                     " entries, over the limit");
    }
  }
  // A file entry takes about a dozen JSON values, a layer eight, each further
  // extent four: this bounds the parsed tree by the entry and layer limits.
  const std::size_t max_values = 16 * (limits.max_entries + limits.max_layers) + 64;
  auto parsed = canon::decode(bytes, limits.max_manifest_bytes, max_values);
  if (!parsed.ok()) return parsed.error().context("manifest");
  const json& doc = *parsed;
  Reader r{doc, "manifest"};
  if (!doc.is_object()) return invalid("manifest: not a JSON object");
  if (!doc.contains("format") || !doc["format"].is_string()) {
    return invalid("manifest: missing format");
  }
  if (doc["format"].get<std::string>() != kManifestFormat) {
    return make_error(Errc::unsupported, "manifest: format '" +
                                             printable(doc["format"].get<std::string>()) +
                                             "' is not known to this build (it reads " +
                                             std::string(kManifestFormat) + ")");
  }
  DROVER_TRY(
      r.exact_keys({"format", "service", "git_sha", "meta", "packing", "layers", "entries"}));
  Manifest m;
  DROVER_ASSIGN(m.service, r.str("service"));
  DROVER_ASSIGN(m.git_sha, r.str("git_sha"));
  DROVER_ASSIGN(m.packing, r.str("packing"));
  if (!doc["meta"].is_object()) return invalid("manifest: meta must be an object");
  for (const auto& [k, v] : doc["meta"].items()) {
    if (!v.is_string()) return invalid("manifest: metadata value of '" + k + "' must be a string");
    m.meta.emplace(k, v.get<std::string>());
  }
  const json& layers = doc["layers"];
  const json& entries = doc["entries"];
  if (!layers.is_array() || !entries.is_array()) {
    return invalid("manifest: layers and entries must be arrays");
  }
  if (layers.size() > limits.max_layers || entries.size() > limits.max_entries) {
    return refused("manifest lists " + std::to_string(entries.size()) + " entries and " +
                   std::to_string(layers.size()) + " layers, over the limits of " +
                   std::to_string(limits.max_entries) + " and " +
                   std::to_string(limits.max_layers));
  }
  m.layers.reserve(layers.size());
  for (std::size_t i = 0; i < layers.size(); ++i) {
    DROVER_ASSIGN(Layer l, read_layer(layers[i], i));
    m.layers.push_back(l);
  }
  m.entries.reserve(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    DROVER_ASSIGN(Entry e, read_entry(entries[i], i));
    m.entries.push_back(std::move(e));
  }
  DROVER_TRY(validate_manifest(m, limits));
  return m;
}

}  // namespace drover::format
