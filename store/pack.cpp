#include "store/pack.hpp"

#include <algorithm>
#include <deque>
#include <future>
#include <unordered_map>

#include "core/base/worker_pool.hpp"
#include "core/canon/canonical_json.hpp"

namespace drover::store {
namespace {

__extension__ using u128 = unsigned __int128;

std::string octal(std::uint32_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", mode);
  return buf;
}

Status scan_dir(Filesystem& fs, const fs::path& root, const std::string& rel,
                std::vector<SourceEntry>& out, const format::Limits& limits) {
  fs::path dir = rel.empty() ? root : root / rel;
  DROVER_ASSIGN(auto names, fs.list_dir(dir));
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    if (out.size() >= limits.max_entries) {
      return make_error(Errc::refused, "the tree has more than " +
                                           std::to_string(limits.max_entries) + " entries");
    }
    std::string path = rel.empty() ? name : rel + "/" + name;
    fs::path full = root / path;
    const std::string who = "'" + format::printable(path) + "'";
    DROVER_ASSIGN(FileInfo info, fs.lstat(full));
    SourceEntry se;
    se.entry.path = path;
    se.source = full;
    switch (info.type) {
      case FileType::regular:
        se.entry.type = format::EntryType::file;
        se.entry.size = info.size;
        break;
      case FileType::directory: se.entry.type = format::EntryType::dir; break;
      case FileType::symlink: {
        se.entry.type = format::EntryType::symlink;
        DROVER_ASSIGN(se.entry.target, fs.read_link(full));
        break;
      }
      default:
        return make_error(Errc::refused, who + " is a " + file_type_name(info.type) +
                                             ": devices, FIFOs and sockets cannot be deployed");
    }
    if (info.type != FileType::symlink) {
      if (info.mode & 07000) {
        return make_error(Errc::refused, who + " has mode " + octal(info.mode) +
                                             ": setuid, setgid and sticky bits cannot be "
                                             "deployed; clear them (chmod ug-s,o-t)");
      }
      // A release is the agent's to write and its service's to read: what
      // group or others may write could be rewritten under the service.
      if (info.mode & 022) {
        return make_error(Errc::refused, who + " has mode " + octal(info.mode) +
                                             ": group- or world-writable files and directories "
                                             "cannot be deployed; clear those bits (chmod go-w)");
      }
      se.entry.mode = info.mode;
    }
    const bool is_dir = info.type == FileType::directory;
    out.push_back(std::move(se));
    if (is_dir) DROVER_TRY(scan_dir(fs, root, path, out, limits));
  }
  return Ok{};
}

// h(path) of the rule: the first 8 bytes, big-endian, of
// SHA-256("drover.pack.v1" || 0x00 || path).
std::uint64_t path_hash(std::string_view path) {
  Sha256 h;
  h.update(kPackingName);
  h.update(std::string_view("\0", 1));
  h.update(path);
  Digest d = h.finish();
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | d[static_cast<std::size_t>(i)];
  return v;
}

// Reads exactly `length` bytes of an open file into out at `at`; an early end
// means the file changed under us.
Status read_exact(ReadableFile& file, char* out, std::uint64_t length, const std::string& path) {
  std::uint64_t got = 0;
  while (got < length) {
    DROVER_ASSIGN(std::size_t n, file.read(out + got, length - got));
    if (n == 0) {
      return make_error(Errc::io, "'" + format::printable(path) +
                                      "' shrank while it was being packed; retry the push");
    }
    got += n;
  }
  return Ok{};
}

Status expect_eof(ReadableFile& file, const std::string& path) {
  char probe;
  DROVER_ASSIGN(std::size_t n, file.read(&probe, 1));
  if (n != 0) {
    return make_error(Errc::io, "'" + format::printable(path) +
                                    "' grew while it was being packed; retry the push");
  }
  return Ok{};
}

bool whole_file(const Piece& p, const format::Entry& e) {
  return p.file_offset == 0 && p.length == e.size;
}

// Reads a layer whose pieces are whole files, hashing each file. Runs on a
// worker thread; each entry belongs to exactly one such layer, so writing its
// hash races with nothing.
Result<Bytes> read_whole_files(Filesystem& fs, const LayerPlan& plan,
                               std::vector<format::Entry>& entries,
                               const std::vector<SourceEntry>& tree) {
  Bytes raw(plan.raw_size);
  std::uint64_t at = 0;
  for (const Piece& p : plan.pieces) {
    format::Entry& e = entries[p.entry];
    DROVER_ASSIGN(auto file, fs.open_read(tree[p.entry].source));
    DROVER_TRY(read_exact(*file, raw.data() + at, p.length, e.path));
    DROVER_TRY(expect_eof(*file, e.path));
    e.hash = ContentId(Sha256::of(raw.data() + at, p.length));
    at += p.length;
  }
  return raw;
}

}  // namespace

Result<std::vector<SourceEntry>> scan_tree(Filesystem& fs, const fs::path& root,
                                           const format::Limits& limits) {
  DROVER_ASSIGN(FileInfo info, fs.lstat(root));
  if (info.type != FileType::directory) {
    return make_error(Errc::invalid_argument, root.string() + " is not a directory");
  }
  std::vector<SourceEntry> out;
  DROVER_TRY(scan_dir(fs, root, "", out, limits));
  std::sort(out.begin(), out.end(),
            [](const SourceEntry& a, const SourceEntry& b) { return a.entry.path < b.entry.path; });
  std::vector<format::Entry> entries;
  entries.reserve(out.size());
  for (const auto& se : out) entries.push_back(se.entry);
  DROVER_TRY(format::validate_tree(entries, limits));
  return out;
}

std::vector<LayerPlan> plan_layers(const std::vector<format::Entry>& entries,
                                   const PackParams& params) {
  const std::uint64_t L = params.layer_target;
  std::vector<LayerPlan> layers;
  LayerPlan pack;
  auto close_pack = [&] {
    if (pack.pieces.empty()) return;
    layers.push_back(std::move(pack));
    pack = LayerPlan{};
  };
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const format::Entry& e = entries[i];
    if (e.type != format::EntryType::file || e.size == 0) continue;
    if (e.size >= L) {
      for (std::uint64_t off = 0; off < e.size; off += L) {
        std::uint64_t len = std::min(L, e.size - off);
        layers.push_back(LayerPlan{{Piece{i, off, len}}, len});
      }
      continue;
    }
    if (pack.raw_size > 0 && pack.raw_size + e.size > params.pack_cap) close_pack();
    pack.pieces.push_back(Piece{i, 0, e.size});
    pack.raw_size += e.size;
    const u128 threshold = (static_cast<u128>(e.size) << 64) / L;
    if (static_cast<u128>(path_hash(e.path)) < threshold) close_pack();
  }
  close_pack();
  return layers;
}

Result<format::Manifest> pack_tree(Filesystem& fs, std::vector<SourceEntry> tree,
                                   const PackInput& input, const PackParams& params,
                                   LayerSink& sink) {
  std::vector<format::Entry> entries;
  entries.reserve(tree.size());
  for (auto& se : tree) entries.push_back(std::move(se.entry));
  const std::vector<LayerPlan> plan = plan_layers(entries, params);

  // Where each piece lands is known from the plan alone.
  struct Placement {
    std::size_t plan_layer;
    std::uint64_t offset;
    std::uint64_t length;
  };
  std::vector<std::vector<Placement>> placements(entries.size());
  for (std::size_t li = 0; li < plan.size(); ++li) {
    std::uint64_t at = 0;
    for (const Piece& p : plan[li].pieces) {
      placements[p.entry].push_back({li, at, p.length});
      at += p.length;
    }
  }

  // Packs of whole files are read, hashed and encoded on worker threads. The
  // chunks of a big file are read here, in order, because the file's hash runs
  // through all of them; encoding them still happens on the workers.
  std::vector<format::Layer> encoded(plan.size());
  WorkerPool pool(std::max(1u, params.threads));
  std::deque<std::pair<std::size_t, std::future<Result<format::Layer>>>> in_flight;
  const std::size_t window = std::max(1u, params.threads) * 2;
  auto drain_one = [&]() -> Status {
    auto [index, fut] = std::move(in_flight.front());
    in_flight.pop_front();
    DROVER_ASSIGN(encoded[index], fut.get());
    return Ok{};
  };
  auto fail = [&](Error e) -> Error {
    for (auto& f : in_flight) f.second.wait();
    in_flight.clear();
    return e;
  };
  auto encode_and_put = [&params, &sink](Bytes raw) -> Result<format::Layer> {
    EncodedLayer el = encode_layer(std::move(raw), params.encoding);
    DROVER_TRY(sink.put(el));
    return el.layer;
  };

  std::unique_ptr<ReadableFile> big_file;  // the big file whose chunks are being read
  Sha256 big_hash;
  for (std::size_t li = 0; li < plan.size(); ++li) {
    if (in_flight.size() >= window) {
      if (auto st = drain_one(); !st.ok()) return fail(st.error());
    }
    const LayerPlan& lp = plan[li];
    const Piece& first = lp.pieces.front();
    if (whole_file(first, entries[first.entry])) {
      in_flight.emplace_back(li, pool.submit([&, li]() -> Result<format::Layer> {
        DROVER_ASSIGN(Bytes raw, read_whole_files(fs, plan[li], entries, tree));
        return encode_and_put(std::move(raw));
      }));
      continue;
    }
    DROVER_ASSERT(lp.pieces.size() == 1);
    format::Entry& e = entries[first.entry];
    if (first.file_offset == 0) {
      auto file = fs.open_read(tree[first.entry].source);
      if (!file.ok()) return fail(file.error());
      big_file = std::move(*file);
    }
    Bytes raw(first.length);
    if (auto st = read_exact(*big_file, raw.data(), first.length, e.path); !st.ok()) {
      return fail(st.error());
    }
    big_hash.update(raw.data(), raw.size());
    if (first.file_offset + first.length == e.size) {
      if (auto st = expect_eof(*big_file, e.path); !st.ok()) return fail(st.error());
      e.hash = ContentId(big_hash.finish());
      big_file.reset();
    }
    in_flight.emplace_back(li, pool.submit([&encode_and_put, raw = std::move(raw)]() mutable {
      return encode_and_put(std::move(raw));
    }));
  }
  while (!in_flight.empty()) {
    if (auto st = drain_one(); !st.ok()) return fail(st.error());
  }

  // Equal layers are listed once, at their first position.
  format::Manifest m;
  m.service = input.service;
  m.git_sha = input.git_sha;
  m.meta = input.meta;
  m.packing = std::string(kPackingName);
  std::unordered_map<ContentId, std::uint32_t> index_of;
  std::vector<std::uint32_t> final_index(plan.size());
  for (std::size_t li = 0; li < plan.size(); ++li) {
    auto [it, inserted] =
        index_of.emplace(encoded[li].id, static_cast<std::uint32_t>(m.layers.size()));
    if (inserted) m.layers.push_back(encoded[li]);
    final_index[li] = it->second;
  }
  for (std::size_t i = 0; i < entries.size(); ++i) {
    format::Entry& e = entries[i];
    if (e.type != format::EntryType::file) continue;
    if (e.size == 0) e.hash = ContentId::of("");
    for (const Placement& p : placements[i]) {
      e.extents.push_back({final_index[p.plan_layer], p.offset, p.length});
    }
  }
  m.entries = std::move(entries);
  return m;
}

}  // namespace drover::store
