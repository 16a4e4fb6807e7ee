#include "core/format/layer_torrent.hpp"

namespace drover::format {
namespace {
void bstring(std::string& out, std::string_view s) {
  out += std::to_string(s.size());
  out += ':';
  out += s;
}
void bint(std::string& out, std::uint64_t v) {
  out += 'i';
  out += std::to_string(v);
  out += 'e';
}
}  // namespace

LayerTorrent derive_layer_torrent(const Layer& layer) {
  LayerTorrent t;
  t.name = layer.id.hex();
  std::string root(reinterpret_cast<const char*>(layer.bt_root.data()), layer.bt_root.size());
  // Keys in bencoded dictionaries are sorted by raw bytes: "file tree" <
  // "meta version" < "name" < "piece length"; "length" < "pieces root".
  std::string& d = t.info_dict;
  d += 'd';
  bstring(d, "file tree");
  d += 'd';
  bstring(d, t.name);
  d += 'd';
  bstring(d, "");
  d += 'd';
  bstring(d, "length");
  bint(d, layer.size);
  bstring(d, "pieces root");
  bstring(d, root);
  d += "eee";
  bstring(d, "meta version");
  bint(d, 2);
  bstring(d, "name");
  bstring(d, t.name);
  bstring(d, "piece length");
  bint(d, kLayerPieceLength);
  d += 'e';
  t.info_hash = Sha256::of(d);
  return t;
}

}  // namespace drover::format
