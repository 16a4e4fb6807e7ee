#include "tests/support/small_manifest.hpp"

namespace drover::testing {

format::Manifest small_manifest(const std::string& service, const std::vector<std::string>& salts) {
  format::Manifest m;
  m.service = service;
  m.git_sha = "0123abcd";
  m.packing = "drover.pack.v1";
  for (const auto& salt : salts) {
    const std::string raw = "contents " + salt;
    format::Layer l;
    l.id = ContentId::of(raw);
    l.size = l.raw_size = raw.size();
    l.bt_root = ContentId::of("root " + salt).digest();
    m.layers.push_back(l);
    format::Entry e;
    e.path = "file-" + std::to_string(m.entries.size());
    e.type = format::EntryType::file;
    e.mode = 0644;
    e.size = raw.size();
    e.hash = ContentId::of(raw);
    e.extents = {{static_cast<std::uint32_t>(m.layers.size() - 1), 0, raw.size()}};
    m.entries.push_back(e);
  }
  return m;
}

std::string small_manifest_bytes(const std::string& service, const std::string& salt) {
  return format::encode_manifest(small_manifest(service, {salt})).value();
}

}  // namespace drover::testing
