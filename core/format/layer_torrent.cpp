#include "core/format/layer_torrent.hpp"

#include "core/bencode/bencode.hpp"

namespace drover::format {

LayerTorrent derive_layer_torrent(const Layer& layer) {
  LayerTorrent t;
  t.name = layer.id.hex();
  const std::string_view root(reinterpret_cast<const char*>(layer.bt_root.data()),
                              layer.bt_root.size());
  bencode::Dict file;
  file.integer("length", layer.size).bytes("pieces root", root);
  bencode::Dict entry;  // a file's entry in the tree: the empty key holds its fields
  entry.dict("", file);
  bencode::Dict tree;
  tree.dict(t.name, entry);
  bencode::Dict info;
  info.dict("file tree", tree)
      .integer("meta version", 2)
      .bytes("name", t.name)
      .integer("piece length", kLayerPieceLength);
  t.info_dict = info.encode();
  t.info_hash = Sha256::of(t.info_dict);
  return t;
}

}  // namespace drover::format
