#include "mesh/node/mesh_node.hpp"
#include "core/base/thread_name.hpp"
#include "mesh/node/first_copy_plugin.hpp"

#include <atomic>
#include <condition_variable>
#include <libtorrent/alert_types.hpp>
#include <libtorrent/create_torrent.hpp>
#include <libtorrent/ip_filter.hpp>
#include <libtorrent/posix_disk_io.hpp>
#include <libtorrent/read_resume_data.hpp>
#include <libtorrent/session.hpp>
#include <libtorrent/session_params.hpp>
#include <libtorrent/torrent_info.hpp>
#include <libtorrent/write_resume_data.hpp>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "core/format/layer_torrent.hpp"
#include "core/mesh_token/mesh_token.hpp"
#include "core/world/filesystem.hpp"
#include "mesh/tracker/client/tracker_client.hpp"
#include "mesh/tracker/tracker_service.hpp"

namespace drover::mesh {
namespace {

// Peer-id prefixes (libtorrent's "fingerprint") by role, so a node can tell
// which kind of node it exchanges bytes with.
const char* fingerprint(NodeRole role) {
  switch (role) {
    case NodeRole::origin: return "-DO0100-";
    case NodeRole::seed: return "-DS0100-";
    case NodeRole::peer: return "-DP0100-";
  }
  return "-DP0100-";
}

enum class Remote { origin, seed, peer, other };

Remote classify(const lt::peer_id& pid) {
  const char* p = pid.data();
  if (p[0] != '-' || p[1] != 'D') return Remote::other;
  switch (p[2]) {
    case 'O': return Remote::origin;
    case 'S': return Remote::seed;
    case 'P': return Remote::peer;
    default: return Remote::other;
  }
}

const char* remote_name(Remote r) {
  switch (r) {
    case Remote::origin: return "origin";
    case Remote::seed: return "seed";
    case Remote::peer: return "peer";
    case Remote::other: return "other";
  }
  return "other";
}

void count(ByteCounts& c, Remote r, std::uint64_t n) {
  switch (r) {
    case Remote::origin: c.origin += n; break;
    case Remote::seed: c.seed += n; break;
    case Remote::peer: c.peer += n; break;
    case Remote::other: c.other += n; break;
  }
}

lt::sha256_hash v2_hash(const Digest& d) {
  return lt::sha256_hash(reinterpret_cast<const char*>(d.data()));
}

// The 20-byte key libtorrent files a v2-only torrent under.
std::string key_of(const lt::info_hash_t& ih) {
  return ih.get_best().to_string();
}

Error lt_error(const std::string& what, const lt::error_code& ec) {
  return make_error(Errc::io, what + ": " + ec.message());
}

}  // namespace

LayerRef layer_ref(const format::Layer& layer) {
  return {layer.id, layer.size, layer.bt_root};
}

constexpr int kMaxRechecks = 3;
// libtorrent's tick while a layer is fetched, and while the node only seeds
// (libtorrent's default); see Impl::quick_ticks.
constexpr int kQuickTickMs = 100;
constexpr int kIdleTickMs = 500;
// How long a finished layer waits for the block alerts that say its last
// pieces are written. libtorrent 2.0.8 can leave a passed piece unwritten
// indefinitely (docs/NOTES.md); the recheck that follows a failed hash writes
// it out, so waiting longer only delays.
constexpr std::chrono::seconds kWriteWait{2};

struct MeshNode::Impl {
  NodeOptions options;
  Logger& log;
  std::unique_ptr<lt::session> session;
  std::thread alert_thread;
  std::atomic<bool> stopping{false};
  // Finished torrents waiting for their last block alerts (alert thread only).
  struct Finished {
    lt::torrent_handle handle;
    std::chrono::steady_clock::time_point deadline;
  };
  std::vector<Finished> finished;
  std::uint16_t port = 0;
  std::string announce;  // full announce URL with this node's parameters (guarded by mu)
  std::string token;     // the mesh token in announce (guarded by mu)

  // Vouching (with a token and options.vouched_only): a libtorrent ip_filter
  // that blocks every address but those the tracker's /vouched answers. It is
  // refreshed every interval the tracker names, and soon after a connection
  // is blocked (at most once a second), so a peer vouched for since the last
  // refresh gets in within about a second. Outgoing connections that were
  // blocked are retried once a refresh admits their address.
  std::atomic<bool> vouching{false};
  std::thread vouch_thread;
  std::mutex vouch_mu;  // guards the fields below, to the end of the block
  std::condition_variable vouch_cv;
  bool vouch_poke = false;              // a connection was blocked, or the token changed
  std::set<std::string> refused_since;  // blocked since the last interval's refresh
  struct BlockedConnect {
    lt::torrent_handle handle;
    lt::tcp::endpoint endpoint;
  };
  std::vector<BlockedConnect> blocked_connects;  // outgoing, to retry once admitted

  struct Layer {
    LayerRef ref;
    lt::torrent_handle handle;
    fs::path file;
    bool fetching = false;
    bool avoid_seed = false;  // the region's seed sent corrupt data: announce avoid=seed
    bool done = false;
    bool verifying = false;          // flushing or hashing the finished file
    int rechecks = 0;                // after a finished file failed its hash
    std::uint64_t expect_down = 0;   // bytes not already on disk when the fetch began
    std::uint64_t counted_down = 0;  // bytes counted from block alerts
    // A stalled fetch (unstick): when its last block came (or it began), when
    // it was last kicked, and whether its tracker now names sources only.
    std::chrono::steady_clock::time_point last_block{}, last_kick{};
    bool sources_only = false;
    std::vector<bool> sent;  // blocks uploaded at least once (counters.up_again)
    LayerDiagnostics diag;
  };
  // The layer's announce URL: this node's, with the layer's own requests.
  std::string tracker_url_locked(const Layer& l) const {
    std::string url = announce;
    if (l.avoid_seed) url += "&avoid=seed";
    if (l.sources_only) url += "&want=sources";
    return url;
  }
  // libtorrent's tick: quick while a layer is fetched (bandwidth and choking
  // rounds every 100 ms start a fetch sooner); on a host's node (role peer),
  // libtorrent's default 500 ms while it only seeds what it holds, so an
  // idle host is woken less. Guarded by mu.
  bool quick_ticks = true;
  mutable std::mutex mu;  // guards layers, by_key, counters, handlers
  std::map<ContentId, Layer> layers;
  std::map<std::string, ContentId> by_key;  // torrent key -> layer
  NodeCounters counters;
  std::atomic<std::uint64_t> repeats_refused{0};  // by the first-copy plugins
  std::function<void(const MeshEvent&)> event_handler;
  std::function<void(const ContentId&, std::string)> resume_handler;

  Impl(const NodeOptions& o, Logger& l) : options(o), log(l) {}

  void set_quick_ticks_locked(bool quick) {
    if (quick_ticks == quick) return;
    quick_ticks = quick;
    lt::settings_pack sp;
    sp.set_int(lt::settings_pack::tick_interval, quick ? kQuickTickMs : kIdleTickMs);
    session->apply_settings(std::move(sp));
  }

  // Whether some layer is still being fetched.
  bool fetching() const {
    std::lock_guard lock(mu);
    return fetching_locked();
  }
  bool fetching_locked() const {
    return std::any_of(layers.begin(), layers.end(),
                       [](const auto& kv) { return kv.second.fetching && !kv.second.done; });
  }

  void emit(const MeshEvent& e) {
    std::function<void(const MeshEvent&)> h;
    {
      std::lock_guard lock(mu);
      h = event_handler;
    }
    if (h) h(e);
  }

  // Which layer an alert is about, if it is one of ours.
  Layer* find(const lt::torrent_handle& h) {
    if (!h.is_valid()) return nullptr;
    auto it = by_key.find(key_of(h.info_hashes()));
    if (it == by_key.end()) return nullptr;
    auto lit = layers.find(it->second);
    return lit == layers.end() ? nullptr : &lit->second;
  }

  // libtorrent moves 16 KiB blocks (BT v2's leaves): two to a layer's piece.
  static constexpr std::uint64_t kBlock = 16 * 1024;
  static constexpr std::uint64_t kBlocksPerPiece = format::kLayerPieceLength / kBlock;
  // A block's place in its layer, counted from 0.
  static std::uint64_t block_number(lt::piece_index_t piece, int block) {
    return static_cast<std::uint64_t>(static_cast<int>(piece)) * kBlocksPerPiece +
           static_cast<std::uint64_t>(block);
  }
  static std::uint64_t block_bytes(std::uint64_t size, lt::piece_index_t piece, int block) {
    const std::uint64_t start = block_number(piece, block) * kBlock;
    if (start >= size) return 0;
    return std::min<std::uint64_t>(kBlock, size - start);
  }

  // A finished download is checked against the signed layer id, whatever the
  // torrent's own hashes said.
  void verify_finished(ContentId id, fs::path file, std::uint64_t size) {
    PosixFilesystem fsys;
    MeshEvent e;
    e.layer = id;
    e.total = size;
    auto opened = fsys.open_read(file);
    Sha256 h;
    std::uint64_t n = 0;
    std::string error;
    if (!opened.ok()) {
      error = opened.error().message;
    } else {
      std::string buf(1 << 20, '\0');
      for (;;) {
        auto got = (*opened)->read(buf.data(), buf.size());
        if (!got.ok()) {
          error = got.error().message;
          break;
        }
        if (*got == 0) break;
        h.update(buf.data(), *got);
        n += *got;
      }
    }
    if (error.empty() && n != size)
      error = "holds " + std::to_string(n) + " bytes, not " + std::to_string(size);
    if (error.empty() && ContentId(h.finish()) != id)
      error = "bytes do not match the signed layer id";
    if (!error.empty()) {
      // libtorrent 2.0.8 can call a v2 torrent finished while a piece that
      // passed its hash is still unwritten (docs/NOTES.md): a recheck writes
      // it out, or finds pieces missing and fetches them again. A file that
      // fails after
      // kMaxRechecks rechecks fails for good (a manifest whose pieces root
      // and layer id disagree ends here).
      lt::torrent_handle th;
      int rechecks = 0;
      {
        std::lock_guard lock(mu);
        auto it = layers.find(id);
        if (it != layers.end()) {
          it->second.verifying = false;
          rechecks = it->second.rechecks;
          if (rechecks < kMaxRechecks) {
            ++it->second.rechecks;
            ++counters.rechecks;
            it->second.counted_down = 0;
            it->second.expect_down = 0;
            th = it->second.handle;
          }
        }
      }
      if (th.is_valid()) {
        log.warn("mesh.layer.recheck",
                 {{"layer", id.str()}, {"error", error}, {"recheck", rechecks + 1}});
        th.force_recheck();
        return;
      }
      e.kind = MeshEvent::Kind::failed;
      e.detail = "layer " + id.str() + ": " + error;
      log.error("mesh.layer.verify_failed", {{"layer", id.str()}, {"error", error}});
    } else {
      e.kind = MeshEvent::Kind::complete;
      e.done = size;
      {
        std::lock_guard lock(mu);
        ++counters.layers_completed;
        if (auto it = layers.find(id); it != layers.end()) {
          it->second.done = true;
          it->second.verifying = false;
        }
      }
      log.info("mesh.layer.complete", {{"layer", id.str()}, {"bytes", size}});
    }
    emit(e);
  }

  void handle(lt::alert* a) {
    if (auto* b = lt::alert_cast<lt::block_finished_alert>(a)) {
      std::lock_guard lock(mu);
      if (Layer* l = find(b->handle)) {
        const std::uint64_t n = block_bytes(l->ref.size, b->piece_index, b->block_index);
        count(counters.down, classify(b->pid), n);
        l->counted_down += n;
        l->last_block = std::chrono::steady_clock::now();
      }
    } else if (auto* u = lt::alert_cast<lt::block_uploaded_alert>(a)) {
      std::lock_guard lock(mu);
      if (Layer* l = find(u->handle)) {
        const std::uint64_t n = block_bytes(l->ref.size, u->piece_index, u->block_index);
        count(counters.up, classify(u->pid), n);
        const std::uint64_t block = block_number(u->piece_index, u->block_index);
        if (l->sent.empty()) l->sent.resize((l->ref.size + kBlock - 1) / kBlock);
        if (block < l->sent.size()) {
          if (l->sent[block]) counters.up_again += n;
          l->sent[block] = true;
        }
      }
    } else if (auto* f = lt::alert_cast<lt::torrent_finished_alert>(a)) {
      flush_then_verify(f->handle);
    } else if (auto* tc = lt::alert_cast<lt::torrent_checked_alert>(a)) {
      // After a recheck, a layer whose pieces are all present again is not
      // always announced as finished anew.
      if (tc->handle.status(lt::torrent_handle::status_flags_t{}).is_finished)
        flush_then_verify(tc->handle);
    } else if (auto* cf = lt::alert_cast<lt::cache_flushed_alert>(a)) {
      std::lock_guard lock(mu);
      Layer* l = find(cf->handle);
      if (l != nullptr && l->verifying)
        finished.push_back({cf->handle, std::chrono::steady_clock::now() + kWriteWait});
    } else if (auto* hf = lt::alert_cast<lt::hash_failed_alert>(a)) {
      ContentId id;
      {
        std::lock_guard lock(mu);
        ++counters.hash_failures;
        Layer* l = find(hf->handle);
        if (l == nullptr) return;
        id = l->ref.id;
      }
      log.warn("mesh.piece.hash_failed",
               {{"layer", id.str()}, {"piece", static_cast<int>(hf->piece_index)}});
      emit({MeshEvent::Kind::hash_failed, id, 0, 0,
            "piece " + std::to_string(static_cast<int>(hf->piece_index))});
    } else if (auto* pb = lt::alert_cast<lt::peer_blocked_alert>(a)) {
      if (pb->reason != lt::peer_blocked_alert::ip_filter || !vouching) return;
      const lt::tcp::endpoint ep = pb->endpoint;
      const std::string address = canonical_address(ep.address().to_string());
      {
        std::lock_guard lock(mu);
        ++counters.peers_blocked;
      }
      bool poke = false;
      {
        std::lock_guard lock(vouch_mu);
        if (pb->handle.is_valid() && blocked_connects.size() < 256)
          blocked_connects.push_back({pb->handle, ep});
        // An address refused once since the last interval's refresh waits for
        // the next one: an outsider knocking costs the tracker one question.
        if (refused_since.size() < 4096 && refused_since.insert(address).second) {
          vouch_poke = true;
          poke = true;
        }
      }
      if (poke) {
        vouch_cv.notify_one();
        log.debug("mesh.peer.blocked", {{"peer", address + ":" + std::to_string(ep.port())}});
      }
    } else if (auto* ban = lt::alert_cast<lt::peer_ban_alert>(a)) {
      ContentId id;
      const std::string who = ban->endpoint.address().to_string() + ":" +
                              std::to_string(ban->endpoint.port()) + " (" +
                              remote_name(classify(ban->pid)) + ")";
      {
        std::lock_guard lock(mu);
        ++counters.peers_banned;
        if (Layer* l = find(ban->handle)) id = l->ref.id;
      }
      log.warn("mesh.peer.banned",
               {{"layer", id.str()}, {"peer", who}, {"reason", "sent corrupt data"}});
      avoid_seed(ban->endpoint.address().to_string(), ban->handle, classify(ban->pid));
      emit({MeshEvent::Kind::peer_banned, id, 0, 0, who});
    } else if (auto* tr = lt::alert_cast<lt::tracker_reply_alert>(a)) {
      log.debug("mesh.tracker.reply", {{"peers", tr->num_peers}});
      std::lock_guard lock(mu);
      if (Layer* l = find(tr->handle)) {
        l->diag.tracker_peers = tr->num_peers;
        l->diag.tracker_status = "answered with " + std::to_string(tr->num_peers) + " peers";
      }
    } else if (auto* te = lt::alert_cast<lt::tracker_error_alert>(a)) {
      std::lock_guard lock(mu);
      if (Layer* l = find(te->handle)) {
        std::string reason = te->failure_reason();
        l->diag.tracker_status =
            "failed: " + te->error.message() + (reason.empty() ? "" : " (" + reason + ")");
      }
    } else if (auto* sr = lt::alert_cast<lt::save_resume_data_alert>(a)) {
      ContentId id;
      std::function<void(const ContentId&, std::string)> h;
      {
        std::lock_guard lock(mu);
        Layer* l = find(sr->handle);
        if (l == nullptr) return;
        id = l->ref.id;
        h = resume_handler;
      }
      std::vector<char> buf = lt::write_resume_data_buf(sr->params);
      if (h) h(id, std::string(buf.begin(), buf.end()));
    } else if (auto* st = lt::alert_cast<lt::state_update_alert>(a)) {
      std::vector<MeshEvent> progress;
      {
        std::lock_guard lock(mu);
        for (const auto& s : st->status) {
          Layer* l = find(s.handle);
          if (l == nullptr || !l->fetching || l->done) continue;
          progress.push_back({MeshEvent::Kind::progress,
                              l->ref.id,
                              static_cast<std::uint64_t>(s.total_wanted_done),
                              l->ref.size,
                              {}});
        }
      }
      for (const auto& e : progress) emit(e);
    } else if (auto* fe = lt::alert_cast<lt::file_error_alert>(a)) {
      ContentId id;
      {
        std::lock_guard lock(mu);
        Layer* l = find(fe->handle);
        if (l == nullptr) return;
        id = l->ref.id;
      }
      emit({MeshEvent::Kind::failed, id, 0, 0,
            "layer " + id.str() + ": file error: " + fe->error.message()});
    } else if (auto* ta = lt::alert_cast<lt::tracker_announce_alert>(a)) {
      log.debug("mesh.tracker.announce", {{"event", static_cast<int>(ta->event)}});
    } else if (auto* pc = lt::alert_cast<lt::peer_connect_alert>(a)) {
      log.debug("mesh.peer.connect", {{"peer", pc->endpoint.port()}});
    } else if (auto* uc = lt::alert_cast<lt::peer_unsnubbed_alert>(a)) {
      (void)uc;
    }
  }

  // Every piece of a layer passed its hash, but some may still sit in
  // libtorrent's write buffer: the file is read only after they are on disk.
  void flush_then_verify(const lt::torrent_handle& h) {
    {
      std::lock_guard lock(mu);
      Layer* l = find(h);
      if (l == nullptr || !l->fetching || l->done || l->verifying) return;
      l->verifying = true;
    }
    h.flush_cache();
  }

  // libtorrent may post a torrent's finished alert before the block alerts of
  // its last blocks (a piece's hash can pass before its blocks are written).
  // A finished layer is verified, and reported done, once its write buffer is
  // flushed (cache_flushed_alert) and its block alerts add up to what it had
  // to fetch (or kWriteWait after the flush at most), so the file is complete
  // when hashed and the done event's byte counters include every block.
  void finish_layers() {
    const auto now = std::chrono::steady_clock::now();
    std::vector<Finished> waiting;
    for (const auto& f : finished) {
      ContentId id;
      fs::path file;
      std::uint64_t size = 0;
      {
        std::lock_guard lock(mu);
        Layer* l = find(f.handle);
        if (l == nullptr || !l->fetching || l->done) continue;
        if (l->counted_down < l->expect_down) {
          if (now < f.deadline) {
            waiting.push_back(f);
            continue;
          }
          log.warn("mesh.layer.write_wait_expired", {{"layer", l->ref.id.str()},
                                                     {"counted", l->counted_down},
                                                     {"expected", l->expect_down}});
        }
        id = l->ref.id;
        file = l->file;
        size = l->ref.size;
      }
      verify_finished(id, file, size);
    }
    finished.swap(waiting);
  }

  void run_alerts() {
    std::vector<lt::alert*> alerts;
    auto last_update = std::chrono::steady_clock::now();
    bool busy = true;
    while (!stopping) {
      // Alerts wake it at once; the timeout paces progress and the layers
      // finishing, so a node that only seeds waits longer (the destructor
      // posts an alert to end the wait).
      session->wait_for_alert(std::chrono::milliseconds(busy ? 200 : 2000));
      session->pop_alerts(&alerts);
      for (lt::alert* a : alerts) handle(a);
      finish_layers();
      auto now = std::chrono::steady_clock::now();
      unstick(now);
      // Progress is asked for only while something is fetched: an idle
      // node (every layer held, seeding) is not woken for it twice a second.
      const bool fetching_now = fetching();
      if (now - last_update > std::chrono::milliseconds(500) && fetching_now) {
        session->post_torrent_updates();
        last_update = now;
      }
      busy = fetching_now || !finished.empty();
      // A host's node only: seeds and the origin upload all day, and keep
      // the quick rounds their peers' fetches start on.
      if (!busy && options.role == NodeRole::peer) {
        std::lock_guard lock(mu);
        // Checked under mu, where add() sets quick ticks for a new fetch.
        if (!fetching_locked()) set_quick_ticks_locked(false);
      }
    }
  }

  // A fetch with no block for stall_kick_s while none of its peers has a
  // piece it lacks is connected only to nodes as stuck as it is: they hold
  // its connection slots, so a source the tracker names is never dialled. It
  // then drops the idle ones and asks the tracker for nodes that can send it pieces
  // (want=sources), and asks as before once blocks come again (docs/MESH.md,
  // "Fallback").
  void unstick(std::chrono::steady_clock::time_point now) {
    // A host's node only: a seed or origin holds a layer's connections for
    // its downstream peers, and dropping them would cost them all.
    if (options.stall_kick_s <= 0 || options.role != NodeRole::peer) return;
    const auto after = std::chrono::seconds(options.stall_kick_s);
    struct Due {
      lt::torrent_handle handle;
      ContentId id;
    };
    std::vector<Due> due;
    {
      std::lock_guard lock(mu);
      if (announce.empty()) return;  // no tracker: nothing to ask
      for (auto& [id, l] : layers) {
        // Sources only, and blocks come again (or the layer is complete, or
        // being verified): back to all peers. The tracker list is replaced
        // under mu, so a token replaced meanwhile (set_token) is not undone.
        if (l.sources_only && (l.done || l.verifying || now - l.last_block < after)) {
          l.sources_only = false;
          if (replace_trackers(l.handle, tracker_url_locked(l))) {
            log.info("mesh.layer.moving", {{"layer", id.str()}});
          }
          continue;
        }
        if (!l.fetching || l.done || l.verifying) continue;
        if (now - l.last_block >= after && now - l.last_kick >= after) {
          l.last_kick = now;
          due.push_back({l.handle, id});
        }
      }
    }
    for (const Due& d : due) {
      // A layer removed meanwhile (a failed fetch) leaves an invalid handle,
      // on which libtorrent throws: that layer is simply skipped.
      try {
        std::vector<lt::peer_info> peers;
        d.handle.get_peer_info(peers);
        const bool useful = std::any_of(peers.begin(), peers.end(), [](const lt::peer_info& p) {
          return static_cast<bool>(p.flags & lt::peer_info::interesting);
        });
        if (useful) continue;  // a peer has what it lacks: choked for now, its turn comes
        // Frees the slots: libtorrent disconnects the peers it is least
        // interested in first, and dials the candidates it has never been
        // connected to before those it just left. (Not clear_peers(): in
        // 2.0.8 it frees the peer list under connections still closing, and
        // the network thread crashed on it in a 64-peer rollout.)
        d.handle.set_max_connections(1);
        d.handle.set_max_connections(options.peers_per_layer);
        {
          std::lock_guard lock(mu);
          auto it = layers.find(d.id);
          if (it == layers.end() || it->second.done || it->second.verifying) continue;
          it->second.sources_only = true;
          if (!replace_trackers(d.handle, tracker_url_locked(it->second))) continue;
        }
        d.handle.force_reannounce(0, -1, lt::torrent_handle::ignore_min_interval);
        log.warn("mesh.layer.kicked",
                 {{"layer", d.id.str()},
                  {"connected", static_cast<std::int64_t>(peers.size())},
                  {"idle_s", options.stall_kick_s},
                  {"then", "dropped its idle peers; asking the tracker for sources"}});
      } catch (const std::exception& e) {
        log.info("mesh.layer.kick_skipped", {{"layer", d.id.str()}, {"why", e.what()}});
      }
    }
  }

  // Replaces a torrent's tracker list (libtorrent announces to it again);
  // false when the torrent is gone.
  static bool replace_trackers(const lt::torrent_handle& h, const std::string& url) {
    try {
      h.replace_trackers({lt::announce_entry(url)});
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }

  static lt::ip_filter vouched_filter(const std::vector<std::string>& addresses) {
    lt::ip_filter f;
    lt::error_code ec;
    f.add_rule(lt::make_address("0.0.0.0", ec), lt::make_address("255.255.255.255", ec),
               lt::ip_filter::blocked);
    f.add_rule(lt::make_address("::", ec),
               lt::make_address("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ec),
               lt::ip_filter::blocked);
    for (const auto& text : addresses) {
      lt::error_code bad;
      const lt::address a = lt::make_address(text, bad);
      if (!bad) f.add_rule(a, a, 0);
    }
    return f;
  }

  // Turns vouching on: nothing gets in until the tracker vouches for it.
  // Trackers are exempt from the filter (libtorrent applies it to them by
  // default), so the node can still announce.
  void start_vouching() {
    if (vouching.exchange(true)) return;
    lt::settings_pack sp;
    sp.set_bool(lt::settings_pack::apply_ip_filter_to_trackers, false);
    sp.set_int(lt::settings_pack::alert_mask,
               session->get_settings().get_int(lt::settings_pack::alert_mask) |
                   static_cast<int>(static_cast<std::uint32_t>(lt::alert_category::ip_block)));
    session->apply_settings(std::move(sp));
    session->set_ip_filter(vouched_filter({}));
    // Before the first torrent when the node starts with a token, so that
    // the peers of its first announce answer are admitted already.
    const auto first = refresh_vouched();
    vouch_thread = std::thread([this, first] {
      name_this_thread("mesh-vouch");
      keep_running(
          log, "mesh.vouching.threw", [this] { return stopping.load(); },
          [this, first] { run_vouching(first); });
    });
  }

  // A peer sent corrupt data (libtorrent bans it from the swarm). When it was
  // the region's seed, this layer announces again with avoid=seed, so the
  // tracker answers with the origin instead, and never names that seed to
  // this node again (docs/MESH.md, "Fallback").
  void avoid_seed(const std::string& text, const lt::torrent_handle& handle, Remote from) {
    const std::string address = canonical_address(text);
    if (from != Remote::seed) return;
    std::string url;
    {
      std::lock_guard lock(mu);
      Layer* l = find(handle);
      if (l == nullptr || l->avoid_seed || announce.empty()) return;
      l->avoid_seed = true;
      url = tracker_url_locked(*l);
    }
    handle.replace_trackers({lt::announce_entry(url)});
    handle.force_reannounce();
    log.warn("mesh.seed.avoided", {{"peer", address}});
  }

  // Asks the tracker whom it vouches for and installs the filter. Returns the
  // interval to the next refresh.
  std::chrono::seconds refresh_vouched() {
    std::string tok;
    {
      std::lock_guard lock(mu);
      tok = token;
    }
    auto v = fetch_vouched(options.tracker, tok, std::chrono::seconds(2));
    if (!v.ok()) {
      // Fail closed: the last filter stays (at first, everything blocked).
      log.warn("mesh.vouched.failed",
               {{"tracker", options.tracker}, {"error", v.error().message}, {"retry_s", 5}});
      return std::chrono::seconds(5);
    }
    session->set_ip_filter(vouched_filter(v->addresses));
    const std::set<std::string> admitted(v->addresses.begin(), v->addresses.end());
    std::uint64_t before = 0;
    {
      std::lock_guard lock(mu);
      before = counters.vouched_addresses;
      counters.vouched_addresses = admitted.size();
    }
    if (before != admitted.size())
      log.info("mesh.vouched", {{"addresses", admitted.size()}, {"was", before}});
    std::vector<BlockedConnect> retry;
    {
      std::lock_guard lock(vouch_mu);
      retry.swap(blocked_connects);
    }
    for (const auto& b : retry) {
      if (!b.handle.is_valid() ||
          !admitted.contains(canonical_address(b.endpoint.address().to_string())))
        continue;
      try {
        b.handle.connect_peer(b.endpoint);
      } catch (const std::exception&) {
        // The torrent is checking or gone; the next announce brings the peer.
      }
    }
    return v->interval;
  }

  void run_vouching(std::chrono::seconds first) {
    using clock = std::chrono::steady_clock;
    auto next = clock::now() + first;
    while (!stopping) {
      std::unique_lock lock(vouch_mu);
      vouch_cv.wait_until(lock, next, [this] { return stopping.load() || vouch_poke; });
      if (stopping) return;
      const bool regular = !vouch_poke;
      vouch_poke = false;
      if (regular) refused_since.clear();
      lock.unlock();
      const auto interval = refresh_vouched();
      const auto started = clock::now();
      if (regular || next - started > interval) next = started + interval;
      // At most one refresh a second, whatever pokes it.
      lock.lock();
      vouch_cv.wait_until(lock, started + std::chrono::seconds(1),
                          [this] { return stopping.load(); });
    }
  }

  // Bytes of a layer that resume data says are already on disk.
  static std::uint64_t held_bytes(const LayerRef& ref, const lt::add_torrent_params& atp) {
    constexpr int blocks_per_piece = static_cast<int>(kBlocksPerPiece);
    std::uint64_t held = 0;
    for (lt::piece_index_t p(0); p < atp.have_pieces.end_index(); ++p) {
      if (!atp.have_pieces[p]) continue;
      for (int b = 0; b < blocks_per_piece; ++b) held += block_bytes(ref.size, p, b);
    }
    for (const auto& [p, blocks] : atp.unfinished_pieces) {
      if (p < atp.have_pieces.end_index() && atp.have_pieces[p]) continue;
      for (int b = 0; b < blocks.size() && b < blocks_per_piece; ++b) {
        if (blocks.get_bit(b)) held += block_bytes(ref.size, p, b);
      }
    }
    return held;
  }

  Status add(const LayerRef& ref, const fs::path& file, lt::add_torrent_params atp, bool fetching) {
    const auto derived = format::derive_layer_torrent(
        format::Layer{ref.id, ref.size, ref.size, format::Codec::none, ref.bt_root});
    if (file.filename() != derived.name) {
      return make_error(Errc::invalid_argument,
                        "layer file " + file.string() + " must be named " + derived.name);
    }
    const std::uint64_t held = held_bytes(ref, atp);
    atp.save_path = file.parent_path().string();
    atp.flags &= ~(lt::torrent_flags::paused | lt::torrent_flags::auto_managed);
    atp.trackers.clear();
    atp.max_connections = options.peers_per_layer;
    if (options.first_copies_first)
      atp.extensions.push_back(first_copy_extension(ref.size, !fetching, repeats_refused));
    // The lock is held across add_torrent: the torrent may announce, connect
    // and receive its first blocks before add_torrent returns, and the alert
    // thread must find the layer for each of them, or their bytes go
    // uncounted and the layer's completion waits out kWriteWait for them.
    // libtorrent's own threads never take this lock (the first-copy plugin
    // keeps its own state), so holding it while the session adds the torrent
    // cannot deadlock.
    std::lock_guard lock(mu);
    if (!announce.empty()) atp.trackers.push_back(announce);
    lt::error_code ec;
    lt::torrent_handle h = session->add_torrent(std::move(atp), ec);
    if (ec) return lt_error("add torrent for layer " + ref.id.str(), ec);
    Layer& l = layers[ref.id];
    l.ref = ref;
    l.handle = h;
    l.file = file;
    l.fetching = fetching;
    l.done = !fetching;
    if (fetching) set_quick_ticks_locked(true);
    l.expect_down = ref.size - std::min(held, ref.size);
    l.counted_down = 0;
    l.last_block = std::chrono::steady_clock::now();
    l.last_kick = {};
    l.sources_only = false;
    by_key[key_of(h.info_hashes())] = ref.id;
    return Ok{};
  }
};

MeshNode::MeshNode(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MeshNode::~MeshNode() {
  {
    std::lock_guard lock(impl_->vouch_mu);
    impl_->stopping = true;
  }
  impl_->vouch_cv.notify_all();
  if (impl_->vouch_thread.joinable()) impl_->vouch_thread.join();
  impl_->session->post_session_stats();  // an alert: ends the alert thread's wait
  if (impl_->alert_thread.joinable()) impl_->alert_thread.join();
  impl_->session.reset();  // announces "stopped" (bounded by stop_tracker_timeout)
}

Result<std::unique_ptr<MeshNode>> MeshNode::start(const NodeOptions& options, Logger& log) {
  auto impl = std::make_unique<Impl>(options, log);
  lt::settings_pack sp;
  sp.set_str(lt::settings_pack::listen_interfaces, options.listen);
  // Connections to peers and trackers leave from the listen address, so that
  // a host with several addresses (or a test host on 127.x.y.z) is reached
  // back where it listens.
  if (auto colon = options.listen.rfind(':'); colon != std::string::npos) {
    std::string ip = options.listen.substr(0, colon);
    if (ip.size() > 2 && ip.front() == '[') ip = ip.substr(1, ip.size() - 2);
    if (ip != "0.0.0.0" && ip != "::") sp.set_str(lt::settings_pack::outgoing_interfaces, ip);
  }
  sp.set_str(lt::settings_pack::peer_fingerprint, fingerprint(options.role));
  sp.set_str(lt::settings_pack::user_agent, "drover/0.1");
  sp.set_int(
      lt::settings_pack::alert_mask,
      static_cast<int>(static_cast<std::uint32_t>(
          lt::alert_category::error | lt::alert_category::peer | lt::alert_category::status |
          lt::alert_category::storage | lt::alert_category::tracker | lt::alert_category::connect |
          lt::alert_category::block_progress | lt::alert_category::upload)));
  sp.set_int(lt::settings_pack::alert_queue_size, 1 << 20);
  sp.set_bool(lt::settings_pack::enable_dht, false);
  sp.set_bool(lt::settings_pack::enable_lsd, false);
  sp.set_bool(lt::settings_pack::enable_upnp, false);
  sp.set_bool(lt::settings_pack::enable_natpmp, false);
  sp.set_bool(lt::settings_pack::enable_incoming_utp, options.utp);
  sp.set_bool(lt::settings_pack::enable_outgoing_utp, options.utp);
  sp.set_bool(lt::settings_pack::allow_multiple_connections_per_ip, true);
  sp.set_int(lt::settings_pack::upload_rate_limit,
             static_cast<int>(std::min<std::uint64_t>(options.upload_rate, INT32_MAX)));
  sp.set_int(lt::settings_pack::download_rate_limit,
             static_cast<int>(std::min<std::uint64_t>(options.download_rate, INT32_MAX)));
  sp.set_int(lt::settings_pack::unchoke_slots_limit, options.unchoke_slots);
  // Throttled seeds send fewer duplicate copies when peers queue less (NOTES.md).
  sp.set_int(lt::settings_pack::request_queue_time, 1);
  sp.set_int(lt::settings_pack::min_announce_interval, options.min_announce_interval_s);
  // A refused announce (an artifact the tracker has not registered yet, a
  // full swarm) is retried after max(5 s, the tracker's min interval, a
  // backoff of 5 + fails^2 * 5 * tracker_backoff/100 s). Without backoff the
  // first deploy of a new push waits at most an interval, not 17-117 s; a
  // tracker that is down sees each node once an interval, as when it is up.
  sp.set_int(lt::settings_pack::tracker_backoff, 0);
  sp.set_int(lt::settings_pack::aio_threads, 2);
  sp.set_int(lt::settings_pack::hashing_threads, 1);
  sp.set_int(lt::settings_pack::active_downloads, -1);
  sp.set_int(lt::settings_pack::active_seeds, -1);
  sp.set_int(lt::settings_pack::active_limit, -1);
  sp.set_int(lt::settings_pack::stop_tracker_timeout, 1);
  sp.set_int(lt::settings_pack::connections_limit, 2000);
  // libtorrent waits 60 s before retrying a peer it failed to reach; hosts of
  // a deployment come and go in seconds.
  sp.set_int(lt::settings_pack::min_reconnect_time, 2);
  // Quicker bandwidth and choking rounds than libtorrent's defaults (500 ms,
  // 15 s): a fetch starts moving bytes about a second sooner (measured).
  sp.set_int(lt::settings_pack::tick_interval, kQuickTickMs);
  sp.set_int(lt::settings_pack::unchoke_interval, 5);
  sp.set_bool(lt::settings_pack::send_redundant_have, false);
  lt::session_params params(std::move(sp));
  // pread/pwrite instead of libtorrent's default memory-mapped files: a
  // write into a mapped file on a full disk is a SIGBUS that kills the whole
  // process (drover-chaos's disk-full-mid-fetch found it), where pwrite's
  // ENOSPC becomes a file error, so the fetch fails and is retried.
  params.disk_io_constructor = lt::posix_disk_io_constructor;
  {
    // libtorrent's threads take their name from the thread that starts them.
    char caller[16] = {};
    const bool named = ::pthread_getname_np(::pthread_self(), caller, sizeof caller) == 0;
    name_this_thread("libtorrent");
    struct Restore {
      const char* name;
      bool named;
      ~Restore() {
        if (named) name_this_thread(name);
      }
    } restore{caller, named};
    impl->session = std::make_unique<lt::session>(std::move(params));
  }

  // libtorrent puts loopback and private-range peers in its local class, which
  // ignores rate limits. Map every address to the global class instead.
  lt::ip_filter classes;
  const std::uint32_t global = 1u << static_cast<std::uint32_t>(lt::session::global_peer_class_id);
  lt::error_code ec;
  classes.add_rule(lt::make_address("0.0.0.0", ec), lt::make_address("255.255.255.255", ec),
                   global);
  classes.add_rule(lt::make_address("::", ec),
                   lt::make_address("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ec), global);
  impl->session->set_peer_class_filter(classes);

  // Wait for the listen socket, to learn the port.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::vector<lt::alert*> alerts;
  while (impl->port == 0 && std::chrono::steady_clock::now() < deadline) {
    impl->session->wait_for_alert(std::chrono::milliseconds(100));
    impl->session->pop_alerts(&alerts);
    for (lt::alert* a : alerts) {
      if (auto* ls = lt::alert_cast<lt::listen_succeeded_alert>(a))
        impl->port = static_cast<std::uint16_t>(ls->port);
      if (auto* lf = lt::alert_cast<lt::listen_failed_alert>(a)) {
        return make_error(Errc::io, "listen on " + options.listen + ": " + lf->error.message());
      }
    }
  }
  if (impl->port == 0)
    return make_error(Errc::io, "listen on " + options.listen + ": no answer from libtorrent");
  if (!options.tracker.empty()) {
    impl->token = options.token;
    impl->announce = announce_url(options.tracker, options.host, options.role, options.region,
                                  options.cluster, options.token);
    if (!options.token.empty() && options.vouched_only) impl->start_vouching();
  }
  Impl* raw = impl.get();
  impl->alert_thread = std::thread([raw] {
    name_this_thread("mesh-alerts");
    keep_running(
        raw->log, "mesh.alerts.threw", [raw] { return raw->stopping.load(); },
        [raw] { raw->run_alerts(); });
  });
  log.info("mesh.node.started", {{"role", role_name(options.role)},
                                 {"host", options.host},
                                 {"region", options.region},
                                 {"cluster", options.cluster},
                                 {"port", impl->port},
                                 {"upload_rate", options.upload_rate},
                                 {"download_rate", options.download_rate},
                                 {"token", !options.token.empty()},
                                 {"vouched_only", impl->vouching.load()}});
  return std::unique_ptr<MeshNode>(new MeshNode(std::move(impl)));
}

std::uint16_t MeshNode::port() const {
  return impl_->port;
}
const NodeOptions& MeshNode::options() const {
  return impl_->options;
}

Status MeshNode::seed(const LayerRef& layer, const fs::path& file) {
  if (has_torrent(layer.id)) return Ok{};
  const std::string name = layer.id.hex();
  lt::file_storage files;
  files.add_file(name, static_cast<std::int64_t>(layer.size));
  lt::create_torrent ct(files, static_cast<int>(format::kLayerPieceLength),
                        lt::create_torrent::v2_only);
  lt::error_code ec;
  lt::set_piece_hashes(ct, file.parent_path().string(), ec);
  if (ec) return lt_error("hash layer file " + file.string(), ec);
  std::vector<char> buf;
  lt::bencode(std::back_inserter(buf), ct.generate());
  auto ti = std::make_shared<lt::torrent_info>(buf, ec, lt::from_span);
  if (ec) return lt_error("torrent of layer " + layer.id.str(), ec);
  if (ti->info_hashes().v2 !=
      v2_hash(format::derive_layer_torrent(format::Layer{layer.id, layer.size, layer.size,
                                                         format::Codec::none, layer.bt_root})
                  .info_hash)) {
    return make_error(Errc::corrupt, "layer file " + file.string() + " does not hold layer " +
                                         layer.id.str() +
                                         " (its pieces root differs from the manifest's)");
  }
  lt::add_torrent_params atp;
  atp.ti = std::move(ti);
  atp.flags |= lt::torrent_flags::seed_mode;  // just hashed: no need to check again
  if (impl_->options.super_seed) atp.flags |= lt::torrent_flags::super_seeding;
  return impl_->add(layer, file, std::move(atp), false);
}

Status MeshNode::fetch(const LayerRef& layer, const fs::path& file,
                       const std::string& resume_data) {
  if (has_torrent(layer.id)) return Ok{};
  const auto derived = format::derive_layer_torrent(
      format::Layer{layer.id, layer.size, layer.size, format::Codec::none, layer.bt_root});
  // A torrent file of the info dictionary alone: the piece hashes come from
  // peers, each checked against the pieces root from the signed manifest.
  const std::string torrent = "d4:info" + derived.info_dict + "e";
  lt::error_code ec;
  auto ti = std::make_shared<lt::torrent_info>(
      lt::span<const char>(torrent.data(), static_cast<std::ptrdiff_t>(torrent.size())), ec,
      lt::from_span);
  if (ec) return lt_error("torrent of layer " + layer.id.str(), ec);
  lt::add_torrent_params atp;
  if (!resume_data.empty()) {
    lt::error_code rec;
    atp = lt::read_resume_data(
        lt::span<const char>(resume_data.data(), static_cast<std::ptrdiff_t>(resume_data.size())),
        rec);
    if (rec || atp.info_hashes.v2 != ti->info_hashes().v2)
      atp = lt::add_torrent_params();  // unusable: start over
  }
  atp.ti = std::move(ti);
  atp.flags &= ~lt::torrent_flags::seed_mode;
  impl_->log.info(
      "mesh.layer.fetch",
      {{"layer", layer.id.str()}, {"bytes", layer.size}, {"resumed", !resume_data.empty()}});
  return impl_->add(layer, file, std::move(atp), true);
}

void MeshNode::remove(const ContentId& id) {
  lt::torrent_handle h;
  {
    std::lock_guard lock(impl_->mu);
    auto it = impl_->layers.find(id);
    if (it == impl_->layers.end()) return;
    h = it->second.handle;
    impl_->by_key.erase(key_of(h.info_hashes()));
    impl_->layers.erase(it);
  }
  impl_->session->remove_torrent(h);
}

bool MeshNode::has_torrent(const ContentId& id) const {
  std::lock_guard lock(impl_->mu);
  return impl_->layers.contains(id);
}

void MeshNode::save_resume(const ContentId& id) {
  lt::torrent_handle h;
  {
    std::lock_guard lock(impl_->mu);
    auto it = impl_->layers.find(id);
    if (it == impl_->layers.end()) return;
    h = it->second.handle;
  }
  h.save_resume_data(lt::torrent_handle::save_info_dict);
}

void MeshNode::on_resume_data(std::function<void(const ContentId&, std::string)> handler) {
  std::lock_guard lock(impl_->mu);
  impl_->resume_handler = std::move(handler);
}

void MeshNode::on_event(std::function<void(const MeshEvent&)> handler) {
  std::lock_guard lock(impl_->mu);
  impl_->event_handler = std::move(handler);
}

namespace {

// Whether a node holding `current` should take `next` (see set_token).
bool replaces(const std::string& current, const std::string& next, std::int64_t now) {
  if (current.empty()) return true;
  auto cur = mesh_token::peek(current);
  auto nxt = mesh_token::peek(next);
  if (!nxt.ok()) return false;  // the tracker would refuse it; keep what works
  if (!cur.ok() || cur->role != nxt->role || cur->region != nxt->region || cur->host != nxt->host)
    return true;
  if (nxt->expires_at <= cur->expires_at) return false;
  const std::int64_t margin = std::min<std::int64_t>(3600, (nxt->expires_at - now) / 2);
  return cur->expires_at - now < margin;
}

}  // namespace

bool MeshNode::set_token(const std::string& token) {
  Impl& m = *impl_;
  if (m.options.tracker.empty() || token.empty()) return false;
  std::vector<lt::torrent_handle> handles;
  std::vector<std::string> urls;
  {
    std::lock_guard lock(m.mu);
    if (token == m.token ||
        !replaces(m.token, token, unix_seconds(std::chrono::system_clock::now())))
      return false;
    m.token = token;
    m.announce = announce_url(m.options.tracker, m.options.host, m.options.role, m.options.region,
                              m.options.cluster, token);
    for (const auto& [id, layer] : m.layers) {
      handles.push_back(layer.handle);
      urls.push_back(m.tracker_url_locked(layer));
    }
  }
  // libtorrent announces again to a replaced tracker list.
  for (std::size_t i = 0; i < handles.size(); ++i) {
    handles[i].replace_trackers({lt::announce_entry(urls[i])});
  }
  const auto claims = mesh_token::peek(token);
  m.log.info("mesh.token.replaced",
             {{"torrents", handles.size()},
              {"expires_at", claims.ok() ? claims->expires_at : std::int64_t{0}}});
  if (m.options.vouched_only) {
    if (m.vouching) {
      {
        std::lock_guard lock(m.vouch_mu);
        m.vouch_poke = true;
      }
      m.vouch_cv.notify_one();
    } else {
      m.start_vouching();
    }
  }
  return true;
}

std::string MeshNode::token() const {
  std::lock_guard lock(impl_->mu);
  return impl_->token;
}

Status MeshNode::connect(const ContentId& layer, const std::string& address, std::uint16_t port) {
  lt::torrent_handle h;
  {
    std::lock_guard lock(impl_->mu);
    auto it = impl_->layers.find(layer);
    if (it == impl_->layers.end())
      return make_error(Errc::not_found, "layer " + layer.str() + " is not on this node");
    h = it->second.handle;
  }
  lt::error_code ec;
  const lt::address a = lt::make_address(address, ec);
  if (ec) return make_error(Errc::invalid_argument, "'" + address + "' is no IP address");
  try {
    h.connect_peer(lt::tcp::endpoint(a, port));
  } catch (const std::exception& e) {
    return make_error(Errc::io, "connect to " + address + ":" + std::to_string(port) +
                                    " for layer " + layer.str() + ": " + e.what());
  }
  return Ok{};
}

NodeCounters MeshNode::counters() const {
  std::lock_guard lock(impl_->mu);
  NodeCounters c = impl_->counters;
  c.repeats_refused = impl_->repeats_refused.load(std::memory_order_relaxed);
  return c;
}

MeshNode::Swarms MeshNode::swarms() const {
  Swarms s;
  {
    std::lock_guard lock(impl_->mu);
    s.layers = impl_->layers.size();
    for (const auto& [id, l] : impl_->layers) s.fetching += l.fetching && !l.done ? 1 : 0;
  }
  // One call to the session for every torrent's peer count.
  for (const auto& st :
       impl_->session->get_torrent_status([](const lt::torrent_status&) { return true; })) {
    s.peers += static_cast<std::size_t>(st.num_peers);
  }
  return s;
}

std::optional<LayerDiagnostics> MeshNode::diagnostics(const ContentId& id) const {
  lt::torrent_handle h;
  LayerDiagnostics d;
  {
    std::lock_guard lock(impl_->mu);
    auto it = impl_->layers.find(id);
    if (it == impl_->layers.end()) return std::nullopt;
    d = it->second.diag;
    h = it->second.handle;
  }
  // Who is connected now, by role, and how much of the layer each one has.
  std::vector<lt::peer_info> peers;
  h.get_peer_info(peers);
  for (const auto& p : peers) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s (has %d%%)", remote_name(classify(p.pid)),
                  static_cast<int>(p.progress_ppm / 10000));
    d.connected.emplace_back(buf);
  }
  return d;
}

MeshNode::LimitsInForce MeshNode::limits_in_force() const {
  LimitsInForce out;
  lt::settings_pack sp = impl_->session->get_settings();
  out.upload = sp.get_int(lt::settings_pack::upload_rate_limit);
  out.download = sp.get_int(lt::settings_pack::download_rate_limit);
  lt::ip_filter f = impl_->session->get_peer_class_filter();
  const std::uint32_t global = 1u << static_cast<std::uint32_t>(lt::session::global_peer_class_id);
  lt::error_code ec;
  out.loopback_in_global_class = f.access(lt::make_address("127.0.0.1", ec)) == global &&
                                 f.access(lt::make_address("::1", ec)) == global;
  out.private_ranges_in_global_class = f.access(lt::make_address("10.1.2.3", ec)) == global &&
                                       f.access(lt::make_address("192.168.1.1", ec)) == global;
  return out;
}

}  // namespace drover::mesh
