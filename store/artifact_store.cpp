#include "store/artifact_store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "core/hash/bt_merkle.hpp"
#include "store/layer_codec.hpp"

namespace drover::store {

// flock(2) on STORE/lock, released when destroyed.
class ArtifactStore::Lock {
 public:
  explicit Lock(int fd) : fd_(fd) {}
  Lock(Lock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Lock& operator=(Lock&&) = delete;
  ~Lock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the flock
  }

 private:
  int fd_;
};

namespace {

// Hands encoded layers to the blob store's staging area (called from the
// packer's worker threads) and makes each staged file durable on a thread of
// its own, so the fsyncs overlap the encoding of later layers instead of
// stalling the workers or piling up at commit.
class StagingSink final : public LayerSink {
 public:
  StagingSink(BlobStore& blobs, const PushProgress& progress, std::uint64_t tree_bytes)
      : blobs_(blobs), progress_(progress), syncer_([this] { sync_loop(); }) {
    so_far_.tree_bytes = tree_bytes;
  }
  ~StagingSink() override {
    finish();
    syncer_.join();
  }

  Status put(const EncodedLayer& layer) override {
    DROVER_ASSIGN(StagedBlob staged, blobs_.stage(layer.layer.id, view(layer.stored)));
    PushStats now;
    {
      std::lock_guard lock(mu_);
      staged_.push_back(std::move(staged));
      so_far_.raw_bytes += layer.layer.raw_size;
      so_far_.stored_bytes += layer.stored.size();
      ++so_far_.layers;
      now = so_far_;
    }
    changed_.notify_all();
    if (progress_) progress_(now);
    return Ok{};
  }

  // Waits for every staged file to be durable; returns them, or the first
  // fsync error (the files are then still listed for discarding).
  Result<std::vector<StagedBlob>> take() {
    finish();
    std::lock_guard lock(mu_);
    if (sync_error_) return *sync_error_;
    return staged_;
  }
  std::vector<StagedBlob> take_for_discard() {
    finish();
    std::lock_guard lock(mu_);
    return staged_;
  }

 private:
  void finish() {
    std::unique_lock lock(mu_);
    done_ = true;
    changed_.notify_all();
    changed_.wait(lock, [this] { return synced_ == staged_.size() || sync_error_.has_value(); });
  }

  void sync_loop() {
    std::unique_lock lock(mu_);
    for (;;) {
      changed_.wait(lock, [this] { return synced_ < staged_.size() || done_; });
      if (synced_ == staged_.size()) {
        if (done_) return;
        continue;
      }
      StagedBlob blob = staged_[synced_];
      lock.unlock();
      Status st = blobs_.make_durable(blob);
      lock.lock();
      if (!st.ok() && !sync_error_) sync_error_ = std::move(st).error();
      staged_[synced_].durable = blob.durable;
      ++synced_;
      changed_.notify_all();
    }
  }

  BlobStore& blobs_;
  const PushProgress& progress_;
  std::mutex mu_;  // guards staged_, synced_, done_, sync_error_, so_far_
  PushStats so_far_;
  std::condition_variable changed_;
  std::vector<StagedBlob> staged_;
  std::size_t synced_ = 0;  // staged_[0, synced_) have been through make_durable
  bool done_ = false;
  std::optional<Error> sync_error_;
  std::thread syncer_;  // last: starts after the state it uses
};

class BlobLayerSource final : public LayerSource {
 public:
  explicit BlobLayerSource(BlobStore& blobs) : blobs_(blobs) {}
  Result<std::string> read_layer(const format::Layer& layer) override {
    auto bytes = blobs_.read(layer.id, layer.size);
    if (!bytes.ok() && bytes.error().code == Errc::refused) {
      return make_error(Errc::corrupt, "layer " + layer.id.str() +
                                           ": blob holds more bytes than the manifest's " +
                                           std::to_string(layer.size));
    }
    return bytes;
  }

 private:
  BlobStore& blobs_;
};

bool is_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

ArtifactStore::ArtifactStore(const fs::path& root, Filesystem& fs, const Clock& clock,
                             Random& random, Logger& log, const StoreOptions& options)
    : root_(root),
      fs_(fs),
      clock_(clock),
      random_(random),
      log_(log),
      options_(options),
      blobs_(fs, root, random) {}

ArtifactStore::~ArtifactStore() = default;

Result<std::unique_ptr<ArtifactStore>> ArtifactStore::open(const fs::path& root, Filesystem& fs,
                                                           const Clock& clock, Random& random,
                                                           Logger& log,
                                                           const StoreOptions& options) {
  std::unique_ptr<ArtifactStore> store(new ArtifactStore(root, fs, clock, random, log, options));
  auto init = [&]() -> Status {
    DROVER_TRY(fs.make_dirs(root));
    DROVER_TRY(store->blobs_.init());
    DROVER_ASSIGN(store->index_, ArtifactIndex::open(root / "index", options.map_size));
    return Ok{};
  };
  if (auto st = init(); !st.ok())
    return std::move(st).error().context("open store " + root.string());
  return store;
}

Result<ArtifactStore::Lock> ArtifactStore::lock(bool exclusive) {
  const fs::path path = root_ / "lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return errno_error("open", path, errno);
  Lock held(fd);
  while (::flock(fd, exclusive ? LOCK_EX : LOCK_SH) != 0) {
    if (errno != EINTR) return errno_error("lock", path, errno);
  }
  return held;
}

Result<PushResult> ArtifactStore::push(const fs::path& dir, const PackInput& input,
                                       const PushProgress& progress) {
  DROVER_TRY(format::validate_service(input.service));
  DROVER_TRY(format::validate_git_sha(input.git_sha));
  DROVER_TRY(format::validate_meta(input.meta));
  std::error_code ec;
  const fs::path source = fs::canonical(dir, ec);
  if (ec) return make_error(Errc::not_found, dir.string() + ": " + ec.message());

  DROVER_ASSIGN(Lock held, lock(false));
  const SteadyTime started = clock_.steady();
  auto tree = scan_tree(fs_, source, options_.limits);
  if (!tree.ok()) return tree.error().context("push " + source.string());

  std::uint64_t tree_bytes = 0;
  for (const auto& e : *tree) tree_bytes += e.entry.size;
  StagingSink sink(blobs_, progress, tree_bytes);
  auto staged_fail = [&](Error e) {
    blobs_.discard(sink.take_for_discard());
    return std::move(e).context("push " + source.string());
  };
  auto manifest = pack_tree(fs_, std::move(*tree), input, options_.pack, sink);
  if (!manifest.ok()) return staged_fail(manifest.error());
  auto bytes = format::encode_manifest(*manifest, options_.limits);
  if (!bytes.ok()) return staged_fail(bytes.error());
  const ContentId id = ContentId::of(*bytes);
  EncodedLayer manifest_blob;
  manifest_blob.layer.id = id;
  manifest_blob.layer.size = bytes->size();
  manifest_blob.stored.assign(bytes->begin(), bytes->end());
  if (auto st = sink.put(manifest_blob); !st.ok()) {
    return staged_fail(st.error());
  }
  auto durable = sink.take();
  if (!durable.ok()) return staged_fail(durable.error());
  std::vector<StagedBlob> staged = std::move(*durable);
  auto placed = blobs_.commit(staged);
  if (!placed.ok()) {
    blobs_.discard(staged);
    return placed.error().context("push " + source.string());
  }

  PushResult result;
  ArtifactRecord& r = result.record;
  r.id = id;
  r.service = input.service;
  r.git_sha = input.git_sha;
  r.meta = input.meta;
  r.pushed_at = unix_seconds(clock_.now());
  r.size_bytes = manifest->stored_bytes();
  r.tree_bytes = manifest->tree_bytes();
  r.files = manifest->count(format::EntryType::file);
  r.manifest_size = bytes->size();
  for (const auto& l : manifest->layers) r.layers.push_back(l.id);
  DROVER_ASSIGN(bool is_new, index_->record_push(r));
  result.new_bytes = *placed;
  result.already_present = !is_new;
  result.manifest = std::move(*manifest);

  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.steady() - started);
  log_.info("store.push.done", {{"artifact", id.str()},
                                {"service", r.service},
                                {"git_sha", r.git_sha},
                                {"files", r.files},
                                {"layers", r.layers.size()},
                                {"tree_bytes", r.tree_bytes},
                                {"stored_bytes", r.size_bytes},
                                {"new_bytes", result.new_bytes},
                                {"already_present", result.already_present},
                                {"ms", static_cast<std::int64_t>(ms.count())}});
  return result;
}

Result<std::vector<ArtifactRecord>> ArtifactStore::list(const std::string& service) {
  return index_->list(service);
}

Result<std::string> ArtifactStore::id_digits(std::string_view text) {
  std::string_view hex = text;
  if (hex.substr(0, 7) == "sha256:") hex.remove_prefix(7);
  if (hex.size() < 6 || hex.size() > 64 || !is_hex(hex)) {
    return make_error(Errc::invalid_argument,
                      "'" + format::printable(text) +
                          "' is not an artifact id (sha256:<64 hex digits>, or at least 6 "
                          "leading lowercase hex digits of one)");
  }
  return std::string(hex);
}

Result<ArtifactRecord> ArtifactStore::resolve(std::string_view text) {
  DROVER_ASSIGN(std::string hex, id_digits(text));
  DROVER_ASSIGN(auto ids, index_->find_prefix(hex));
  if (ids.empty()) {
    return make_error(Errc::not_found,
                      "no artifact " + std::string(text) + " in store " + root_.string());
  }
  if (ids.size() > 1) {
    std::string msg = "'" + std::string(text) + "' matches " + std::to_string(ids.size()) +
                      " artifacts; give more digits:";
    for (std::size_t i = 0; i < ids.size() && i < 5; ++i) msg += " " + ids[i].str();
    return make_error(Errc::invalid_argument, msg);
  }
  DROVER_ASSIGN(auto record, index_->get(ids[0]));
  if (!record) return make_error(Errc::not_found, "no artifact " + ids[0].str());
  return std::move(*record);
}

Result<format::Manifest> ArtifactStore::load_manifest(const ContentId& id) {
  auto bytes = blobs_.read(id, options_.limits.max_manifest_bytes);
  if (!bytes.ok()) return bytes.error().context("manifest of " + id.str());
  if (ContentId::of(*bytes) != id) {
    return make_error(Errc::corrupt, "manifest blob of " + id.str() +
                                         " does not match its id (corrupt blob " +
                                         blobs_.path_of(id).string() + ")");
  }
  auto m = format::decode_manifest(*bytes, options_.limits);
  if (!m.ok()) return m.error().context("artifact " + id.str());
  return m;
}

Status ArtifactStore::verify_artifact(const ArtifactRecord& record, VerifyReport& report) {
  ++report.artifacts;
  auto manifest = load_manifest(record.id);
  ++report.blobs;
  if (!manifest.ok()) {
    report.problems.push_back(manifest.error().message);
    return Ok{};
  }
  report.bytes += record.manifest_size;
  std::vector<ContentId> listed;
  for (const auto& l : manifest->layers) listed.push_back(l.id);
  if (listed != record.layers) {
    report.problems.push_back("artifact " + record.id.str() +
                              ": index record and manifest list different layers");
  }
  for (const auto& layer : manifest->layers) {
    ++report.blobs;
    const std::string who = "layer " + layer.id.str() + " of " + record.id.str();
    auto bytes = blobs_.read(layer.id, layer.size);
    if (!bytes.ok()) {
      report.problems.push_back(who + ": " + bytes.error().message);
      continue;
    }
    report.bytes += bytes->size();
    if (bytes->size() != layer.size) {
      report.problems.push_back(who + ": blob holds " + std::to_string(bytes->size()) +
                                " bytes, manifest says " + std::to_string(layer.size));
    } else if (ContentId::of(*bytes) != layer.id) {
      report.problems.push_back(who + ": blob content does not match its id (" +
                                blobs_.path_of(layer.id).string() + ")");
    } else if (BtMerkle::of(*bytes) != layer.bt_root) {
      report.problems.push_back(who + ": pieces root does not match the manifest");
    }
  }
  return Ok{};
}

Result<VerifyReport> ArtifactStore::verify(const ContentId& id) {
  DROVER_ASSIGN(Lock held, lock(false));
  DROVER_ASSIGN(auto record, index_->get(id));
  if (!record) return make_error(Errc::not_found, "no artifact " + id.str() + " in the store");
  VerifyReport report;
  DROVER_TRY(verify_artifact(*record, report));
  return report;
}

Result<VerifyReport> ArtifactStore::verify_all() {
  DROVER_ASSIGN(Lock held, lock(false));
  DROVER_ASSIGN(auto records, index_->list(""));
  VerifyReport report;
  std::set<ContentId> referenced;
  for (const auto& r : records) {
    DROVER_TRY(verify_artifact(r, report));
    referenced.insert(r.id);
    referenced.insert(r.layers.begin(), r.layers.end());
  }
  DROVER_ASSIGN(auto present, blobs_.list());
  for (const auto& id : present) report.orphan_blobs += referenced.contains(id) ? 0 : 1;
  return report;
}

Result<MaterializeStats> ArtifactStore::materialize(const ContentId& id, const fs::path& dest) {
  DROVER_ASSIGN(Lock held, lock(false));
  DROVER_ASSIGN(auto record, index_->get(id));
  if (!record) return make_error(Errc::not_found, "no artifact " + id.str() + " in the store");
  DROVER_ASSIGN(format::Manifest m, load_manifest(id));
  BlobLayerSource source(blobs_);
  MaterializeOptions options;
  options.limits = options_.limits;
  options.threads = options_.pack.threads;
  const SteadyTime started = clock_.steady();
  DROVER_ASSIGN(MaterializeStats stats, store::materialize(m, source, dest, options, random_));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.steady() - started);
  log_.info("store.materialize.done", {{"artifact", id.str()},
                                       {"dest", dest.string()},
                                       {"files", stats.files},
                                       {"bytes", stats.bytes},
                                       {"ms", static_cast<std::int64_t>(ms.count())}});
  return stats;
}

Result<GcReport> ArtifactStore::gc(std::size_t keep) {
  DROVER_ASSIGN(Lock held, lock(true));
  DROVER_ASSIGN(auto records, index_->list(""));  // newest first
  GcReport report;
  std::map<std::string, std::size_t> seen;  // per service, how many newer ones were kept
  std::vector<ContentId> doomed;
  std::set<ContentId> referenced;
  for (const auto& r : records) {
    std::size_t& n = seen[r.service];
    if (n < keep || r.pinned) {
      if (n < keep) ++n;
      ++report.kept;
      referenced.insert(r.id);
      referenced.insert(r.layers.begin(), r.layers.end());
    } else {
      doomed.push_back(r.id);
      report.removed.push_back(r);
    }
  }
  // Records first: a crash after this commit leaves only unreferenced blobs,
  // which the next gc removes.
  DROVER_TRY(index_->remove(doomed));
  DROVER_ASSIGN(auto present, blobs_.list());
  for (const auto& id : present) {
    if (referenced.contains(id)) continue;
    DROVER_ASSIGN(auto size, blobs_.size_of(id));
    DROVER_TRY(blobs_.remove(id));
    ++report.blobs_removed;
    report.bytes_freed += size.value_or(0);
  }
  DROVER_ASSIGN(report.tmp_removed, blobs_.clean_tmp());
  log_.info("store.gc.done", {{"keep", keep},
                              {"artifacts_removed", report.removed.size()},
                              {"artifacts_kept", report.kept},
                              {"blobs_removed", report.blobs_removed},
                              {"bytes_freed", report.bytes_freed}});
  return report;
}

// Pins take the shared lock: a gc (exclusive) either finished before the pin,
// or starts after it and sees it.
Status ArtifactStore::pin(const ContentId& id, const std::string& reason) {
  DROVER_ASSIGN(Lock held, lock(false));
  return index_->pin(id, reason, unix_seconds(clock_.now()));
}

Result<bool> ArtifactStore::unpin(const ContentId& id) {
  DROVER_ASSIGN(Lock held, lock(false));
  return index_->unpin(id);
}

}  // namespace drover::store
