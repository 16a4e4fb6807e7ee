// The libtorrent side of FirstCopyRule (first_copy.hpp): a torrent plugin
// that sees each request a connection makes to a complete layer and, when
// the rule refuses it, answers with a SUGGEST of the piece the rule offers
// instead and a REJECT (BEP 6's fast extension; peers without it are served
// as libtorrent would). Internal to the mesh node: only mesh_node.cpp
// includes it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <libtorrent/extensions.hpp>
#include <libtorrent/torrent_handle.hpp>
#include <memory>

namespace drover::mesh {

using TorrentExtension = std::function<std::shared_ptr<lt::torrent_plugin>(
    const lt::torrent_handle&, lt::client_data_t)>;

// A layer of `layer_size` bytes, complete from the start or not (a fetch:
// the rule applies once it is). `refused` counts refusals; it must outlive
// the session.
TorrentExtension first_copy_extension(std::uint64_t layer_size, bool complete,
                                      std::atomic<std::uint64_t>& refused);

}  // namespace drover::mesh
