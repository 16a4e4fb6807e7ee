#include "core/world/memory_filesystem.hpp"

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <vector>

namespace drover {

struct MemoryFilesystem::State {
  struct Node;
  using NodePtr = std::shared_ptr<Node>;
  struct Node {
    FileType type = FileType::regular;
    std::uint32_t mode = 0;
    std::string data, durable_data;                           // regular files
    std::map<std::string, NodePtr> entries, durable_entries;  // directories
    std::uint64_t links = 0;  // live directory entries that name the node
  };

  std::mutex mu;  // guards everything below and every node reachable from it
  NodePtr root;
  std::uint64_t generation = 0;  // bumped by a crash: files opened before are dead
};

namespace {

using State = MemoryFilesystem::State;
using Node = State::Node;
using NodePtr = State::NodePtr;

NodePtr new_node(FileType type, std::uint32_t mode) {
  auto n = std::make_shared<Node>();
  n->type = type;
  n->mode = mode & 07777;
  return n;
}

constexpr std::uint32_t kDirMode = 0755;

// A path resolved in the live tree: the directory that holds its last
// component, that component, and the node it names (null when absent).
// The root resolves to no parent and the root node.
struct Walk {
  NodePtr parent;
  std::string name;
  NodePtr node;
};

std::vector<std::string> components(const fs::path& path) {
  std::vector<std::string> out;
  for (const auto& c : path.lexically_normal().relative_path()) {
    const std::string s = c.string();
    if (s.empty() || s == ".") continue;
    if (s == "..") {
      if (!out.empty()) out.pop_back();
      continue;
    }
    out.push_back(s);
  }
  return out;
}

// Walks the live tree; an errno value when a directory on the way is
// missing (ENOENT) or is not a directory (ENOTDIR).
int walk(const State& s, const fs::path& path, Walk& out) {
  const auto parts = components(path);
  out = Walk{};
  if (parts.empty()) {
    out.node = s.root;
    return 0;
  }
  NodePtr dir = s.root;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    auto it = dir->entries.find(parts[i]);
    if (it == dir->entries.end()) return ENOENT;
    if (it->second->type != FileType::directory) return ENOTDIR;
    dir = it->second;
  }
  out.parent = dir;
  out.name = parts.back();
  auto it = dir->entries.find(out.name);
  if (it != dir->entries.end()) out.node = it->second;
  return 0;
}

FileInfo info_of(const Node& n) {
  FileInfo info;
  info.type = n.type;
  info.mode = n.mode;
  if (n.type == FileType::directory) {
    info.links = 2;  // its entry in the parent and its own "."
    for (const auto& [name, child] : n.entries) {
      if (child->type == FileType::directory) ++info.links;  // the child's ".."
    }
  } else {
    info.size = n.data.size();
    info.links = n.links;
  }
  return info;
}

// Whether target is node or lies beneath it.
bool within(const NodePtr& node, const NodePtr& target) {
  std::set<const Node*> seen;
  std::vector<const Node*> todo{node.get()};
  while (!todo.empty()) {
    const Node* n = todo.back();
    todo.pop_back();
    if (n == target.get()) return true;
    if (!seen.insert(n).second) continue;
    for (const auto& [name, child] : n->entries) {
      if (child->type == FileType::directory) todo.push_back(child.get());
    }
  }
  return false;
}

// Calls visit on every node reachable from root, once each; visit runs
// before a node's entries are followed, so it may replace them.
template <typename Visit>
void for_each_reached(Node& root, Visit visit) {
  std::set<Node*> seen;
  std::vector<Node*> todo{&root};
  while (!todo.empty()) {
    Node* n = todo.back();
    todo.pop_back();
    if (!seen.insert(n).second) continue;
    visit(*n);
    for (const auto& [name, child] : n->entries) todo.push_back(child.get());
  }
}

Error crashed(const char* what, const fs::path& path) {
  return make_error(Errc::io, std::string(what) + " " + path.string() +
                                  ": the filesystem crashed since the file was opened");
}

class MemoryReadable final : public ReadableFile {
 public:
  MemoryReadable(std::shared_ptr<State> state, NodePtr node, fs::path path)
      : state_(std::move(state)),
        node_(std::move(node)),
        path_(std::move(path)),
        generation_(state_->generation) {}
  Result<std::size_t> read(void* out, std::size_t size) override {
    std::lock_guard lock(state_->mu);
    if (state_->generation != generation_) return crashed("read", path_);
    const std::string& data = node_->data;
    const std::size_t n = offset_ < data.size() ? std::min(size, data.size() - offset_) : 0;
    std::memcpy(out, data.data() + offset_, n);
    offset_ += n;
    return n;
  }
  Result<FileInfo> info() override {
    std::lock_guard lock(state_->mu);
    if (state_->generation != generation_) return crashed("fstat", path_);
    return info_of(*node_);
  }

 private:
  std::shared_ptr<State> state_;
  NodePtr node_;
  fs::path path_;
  std::uint64_t generation_;
  std::size_t offset_ = 0;
};

class MemoryWritable final : public WritableFile {
 public:
  MemoryWritable(std::shared_ptr<State> state, NodePtr node, fs::path path)
      : state_(std::move(state)),
        node_(std::move(node)),
        path_(std::move(path)),
        generation_(state_->generation) {}
  Status write(std::string_view bytes) override {
    std::lock_guard lock(state_->mu);
    DROVER_TRY(usable("write"));
    node_->data.append(bytes);
    return Ok{};
  }
  Status sync() override {
    std::lock_guard lock(state_->mu);
    DROVER_TRY(usable("fsync"));
    node_->durable_data = node_->data;
    return Ok{};
  }
  Status close() override {
    std::lock_guard lock(state_->mu);
    if (closed_) return Ok{};
    closed_ = true;
    if (state_->generation != generation_) return crashed("close", path_);
    return Ok{};
  }

 private:
  // As a closed descriptor does (EBADF), or a crashed process would.
  Status usable(const char* what) const {
    if (closed_) return errno_error(what, path_, EBADF);
    if (state_->generation != generation_) return crashed(what, path_);
    return Ok{};
  }

  std::shared_ptr<State> state_;
  NodePtr node_;
  fs::path path_;
  std::uint64_t generation_;
  bool closed_ = false;
};

}  // namespace

MemoryFilesystem::MemoryFilesystem() : state_(std::make_shared<State>()) {
  state_->root = new_node(FileType::directory, kDirMode);
}

MemoryFilesystem::~MemoryFilesystem() = default;

Result<FileInfo> MemoryFilesystem::lstat(const fs::path& path) {
  std::lock_guard lock(state_->mu);
  Walk w;
  if (int err = walk(*state_, path, w)) return errno_error("lstat", path, err);
  if (!w.node) return errno_error("lstat", path, ENOENT);
  return info_of(*w.node);
}

Result<std::vector<std::string>> MemoryFilesystem::list_dir(const fs::path& path) {
  std::lock_guard lock(state_->mu);
  Walk w;
  if (int err = walk(*state_, path, w)) return errno_error("open directory", path, err);
  if (!w.node) return errno_error("open directory", path, ENOENT);
  if (w.node->type != FileType::directory) return errno_error("open directory", path, ENOTDIR);
  std::vector<std::string> names;
  for (const auto& [name, child] : w.node->entries) names.push_back(name);
  return names;
}

Result<std::string> MemoryFilesystem::read_link(const fs::path& path) {
  std::lock_guard lock(state_->mu);
  Walk w;
  if (int err = walk(*state_, path, w)) return errno_error("readlink", path, err);
  if (!w.node) return errno_error("readlink", path, ENOENT);
  if (w.node->type != FileType::symlink) return errno_error("readlink", path, EINVAL);
  return w.node->data;
}

Status MemoryFilesystem::symlink(const std::string& target, const fs::path& link) {
  std::lock_guard lock(state_->mu);
  Walk w;
  if (int err = walk(*state_, link, w)) return errno_error("symlink", link, err);
  if (w.node) return errno_error("symlink", link, EEXIST);
  NodePtr node = new_node(FileType::symlink, 0777);
  node->data = node->durable_data = target;  // a link's target is written with its entry
  node->links = 1;
  w.parent->entries[w.name] = node;
  return Ok{};
}

Result<std::unique_ptr<ReadableFile>> MemoryFilesystem::open_read(const fs::path& path) {
  std::lock_guard lock(state_->mu);
  Walk w;
  if (int err = walk(*state_, path, w)) return errno_error("open", path, err);
  if (!w.node) return errno_error("open", path, ENOENT);
  if (w.node->type != FileType::regular) {
    return make_error(Errc::refused, "open " + path.string() + ": is a " +
                                         file_type_name(w.node->type) + ", not a regular file");
  }
  return std::unique_ptr<ReadableFile>(std::make_unique<MemoryReadable>(state_, w.node, path));
}

Result<std::unique_ptr<WritableFile>> MemoryFilesystem::create_new(const fs::path& path,
                                                                   std::uint32_t mode) {
  std::lock_guard lock(state_->mu);
  Walk w;
  if (int err = walk(*state_, path, w)) return errno_error("create", path, err);
  if (w.node) return errno_error("create", path, EEXIST);
  NodePtr file = new_node(FileType::regular, mode);
  file->links = 1;
  w.parent->entries[w.name] = file;
  return std::unique_ptr<WritableFile>(std::make_unique<MemoryWritable>(state_, file, path));
}

namespace {

// rename(2) and renameat2(RENAME_NOREPLACE) on the live tree.
int rename_in(State& s, const fs::path& from_path, const fs::path& to_path, bool replace) {
  Walk from, to;
  if (int err = walk(s, from_path, from)) return err;
  if (!from.node) return ENOENT;
  if (int err = walk(s, to_path, to)) return err;
  if (!from.parent || !to.parent) return EBUSY;  // the root
  if (to.node && !replace) return EEXIST;
  if (to.node == from.node) return 0;  // two names of one file: nothing to do
  if (from.node->type == FileType::directory) {
    if (within(from.node, to.parent)) return EINVAL;  // into itself
    if (to.node && to.node->type != FileType::directory) return ENOTDIR;
    if (to.node && !to.node->entries.empty()) return ENOTEMPTY;
  } else if (to.node && to.node->type == FileType::directory) {
    return EISDIR;
  }
  if (to.node) --to.node->links;
  NodePtr moved = from.node;
  from.parent->entries.erase(from.name);
  to.parent->entries[to.name] = std::move(moved);
  return 0;
}

}  // namespace

Status MemoryFilesystem::rename(const fs::path& from, const fs::path& to) {
  std::lock_guard lock(state_->mu);
  if (int err = rename_in(*state_, from, to, true)) {
    return errno_error("rename", from.string() + " to " + to.string(), err);
  }
  return Ok{};
}

Status MemoryFilesystem::rename_noreplace(const fs::path& from, const fs::path& to) {
  std::lock_guard lock(state_->mu);
  if (int err = rename_in(*state_, from, to, false)) {
    return errno_error("rename", from.string() + " to " + to.string(), err);
  }
  return Ok{};
}

Status MemoryFilesystem::remove(const fs::path& path) {
  std::lock_guard lock(state_->mu);
  Walk w;
  if (int err = walk(*state_, path, w)) return errno_error("remove", path, err);
  if (!w.node) return errno_error("remove", path, ENOENT);
  if (!w.parent) return errno_error("remove", path, EBUSY);
  if (w.node->type == FileType::directory && !w.node->entries.empty()) {
    return errno_error("remove", path, ENOTEMPTY);
  }
  --w.node->links;
  w.parent->entries.erase(w.name);
  return Ok{};
}

Status MemoryFilesystem::make_dirs(const fs::path& path) {
  std::lock_guard lock(state_->mu);
  NodePtr dir = state_->root;
  for (const auto& part : components(path)) {
    auto it = dir->entries.find(part);
    if (it == dir->entries.end()) {
      NodePtr child = new_node(FileType::directory, kDirMode);
      child->links = 1;
      it = dir->entries.emplace(part, std::move(child)).first;
    }
    if (it->second->type != FileType::directory) {
      return errno_error("create directory", path, ENOTDIR);
    }
    dir = it->second;
  }
  return Ok{};
}

Status MemoryFilesystem::set_access(const fs::path& path, std::uint32_t mode,
                                    std::optional<std::uint32_t>) {
  std::lock_guard lock(state_->mu);
  Walk w;
  if (int err = walk(*state_, path, w)) return errno_error("stat", path, err);
  if (!w.node) return errno_error("stat", path, ENOENT);
  if (w.node->type == FileType::symlink) return errno_error("set the mode of", path, ELOOP);
  w.node->mode = mode & 07777;
  return Ok{};
}

Status MemoryFilesystem::sync_dir(const fs::path& path) {
  std::lock_guard lock(state_->mu);
  Walk w;
  if (int err = walk(*state_, path, w)) return errno_error("open directory", path, err);
  if (!w.node) return errno_error("open directory", path, ENOENT);
  if (w.node->type != FileType::directory) return errno_error("open directory", path, ENOTDIR);
  w.node->durable_entries = w.node->entries;
  return Ok{};
}

Status MemoryFilesystem::sync_file(const fs::path& path) {
  std::lock_guard lock(state_->mu);
  Walk w;
  if (int err = walk(*state_, path, w)) return errno_error("open", path, err);
  if (!w.node) return errno_error("open", path, ENOENT);
  // fsync of a directory's descriptor syncs its entries, as sync_dir does.
  if (w.node->type == FileType::directory) {
    w.node->durable_entries = w.node->entries;
  } else {
    w.node->durable_data = w.node->data;
  }
  return Ok{};
}

void MemoryFilesystem::crash() {
  std::lock_guard lock(state_->mu);
  ++state_->generation;
  // The durable tree becomes the live one; nodes it does not reach are gone.
  std::vector<Node*> reached;
  for_each_reached(*state_->root, [&](Node& n) {
    reached.push_back(&n);
    n.data = n.durable_data;
    n.entries = n.durable_entries;
    n.links = 0;
  });
  for (Node* n : reached) {
    for (const auto& [name, child] : n->entries) ++child->links;
  }
}

void MemoryFilesystem::sync_all() {
  std::lock_guard lock(state_->mu);
  for_each_reached(*state_->root, [](Node& n) {
    n.durable_data = n.data;
    n.durable_entries = n.entries;
  });
}

}  // namespace drover
