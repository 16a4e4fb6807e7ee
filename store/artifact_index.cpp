#include "store/artifact_index.hpp"

#include <charconv>
#include <nlohmann/json.hpp>

#include "core/canon/canonical_json.hpp"

namespace drover::store {
namespace {

using nlohmann::json;
constexpr std::string_view kStoreFormat = "1";

std::string key_of(const ContentId& id) {
  return std::string(reinterpret_cast<const char*>(id.digest().data()), id.digest().size());
}

Result<ContentId> id_of_key(std::string_view key) {
  Digest d{};
  if (key.size() != d.size()) {
    return make_error(Errc::corrupt, "store index: an artifact key is damaged");
  }
  std::copy(key.begin(), key.end(), d.begin());
  return ContentId(d);
}

std::string service_key(const std::string& service, std::uint64_t seq) {
  std::string k = service;
  k += '\0';
  for (int shift = 56; shift >= 0; shift -= 8) k += static_cast<char>((seq >> shift) & 0xff);
  return k;
}

std::string encode_record(const ArtifactRecord& r) {
  json layers = json::array();
  for (const auto& l : r.layers) layers.push_back(l.str());
  json j = {{"service", r.service},
            {"git_sha", r.git_sha},
            {"meta", r.meta},
            {"pushed_at", r.pushed_at},
            {"push_seq", r.push_seq},
            {"size_bytes", r.size_bytes},
            {"tree_bytes", r.tree_bytes},
            {"files", r.files},
            {"manifest_size", r.manifest_size},
            {"layers", layers}};
  return *canon::encode(j);
}

Result<ArtifactRecord> decode_record(const ContentId& id, std::string_view bytes) {
  auto bad = [&] {
    return make_error(Errc::corrupt, "index record of " + id.str() + " is damaged");
  };
  auto parsed = canon::decode(bytes, 64ull << 20);
  if (!parsed.ok()) return bad();
  const json& j = *parsed;
  try {
    ArtifactRecord r;
    r.id = id;
    r.service = j.at("service").get<std::string>();
    r.git_sha = j.at("git_sha").get<std::string>();
    r.meta = j.at("meta").get<std::map<std::string, std::string>>();
    r.pushed_at = j.at("pushed_at").get<std::int64_t>();
    r.push_seq = j.at("push_seq").get<std::uint64_t>();
    r.size_bytes = j.at("size_bytes").get<std::uint64_t>();
    r.tree_bytes = j.at("tree_bytes").get<std::uint64_t>();
    r.files = j.at("files").get<std::uint64_t>();
    r.manifest_size = j.at("manifest_size").get<std::uint64_t>();
    for (const auto& l : j.at("layers")) {
      auto lid = ContentId::parse(l.get<std::string>());
      if (!lid.ok()) return bad();
      r.layers.push_back(*lid);
    }
    return r;
  } catch (const json::exception&) {
    return bad();
  }
}

}  // namespace

Result<std::unique_ptr<ArtifactIndex>> ArtifactIndex::open(const fs::path& dir,
                                                           std::uint64_t map_size) {
  std::unique_ptr<ArtifactIndex> index(new ArtifactIndex());
  DROVER_ASSIGN(index->env_, lmdb::Env::open(dir, {.map_size = map_size, .max_tables = 8}));
  DROVER_ASSIGN(index->meta_, index->env_->table("meta"));
  DROVER_ASSIGN(index->artifacts_, index->env_->table("artifacts"));
  DROVER_ASSIGN(index->by_service_, index->env_->table("by_service"));
  DROVER_ASSIGN(index->pins_, index->env_->table("pins"));
  DROVER_ASSIGN(lmdb::Txn txn, index->env_->begin_write());
  DROVER_ASSIGN(auto format, txn.get(index->meta_, "store_format"));
  if (!format) {
    DROVER_TRY(txn.put(index->meta_, "store_format", kStoreFormat));
  } else if (*format != kStoreFormat) {
    return make_error(Errc::unsupported, "store index " + dir.string() + " has format " + *format +
                                             "; this build reads format " +
                                             std::string(kStoreFormat));
  }
  DROVER_TRY(txn.commit());
  return index;
}

Result<bool> ArtifactIndex::record_push(ArtifactRecord& record) {
  DROVER_ASSIGN(lmdb::Txn txn, env_->begin_write());
  DROVER_ASSIGN(auto seq_text, txn.get(meta_, "push_seq"));
  std::uint64_t seq = 1;
  if (seq_text) {
    std::uint64_t last = 0;
    auto [end, ec] = std::from_chars(seq_text->data(), seq_text->data() + seq_text->size(), last);
    if (ec != std::errc() || end != seq_text->data() + seq_text->size()) {
      return make_error(Errc::corrupt, "store index: push counter '" + *seq_text + "' is damaged");
    }
    seq = last + 1;
  }
  DROVER_TRY(txn.put(meta_, "push_seq", std::to_string(seq)));
  const std::string key = key_of(record.id);
  DROVER_ASSIGN(auto existing, txn.get(artifacts_, key));
  bool is_new = !existing.has_value();
  if (existing) {
    DROVER_ASSIGN(ArtifactRecord old, decode_record(record.id, *existing));
    DROVER_TRY(txn.erase(by_service_, service_key(old.service, old.push_seq)));
  }
  record.push_seq = seq;
  DROVER_TRY(txn.put(artifacts_, key, encode_record(record)));
  DROVER_TRY(txn.put(by_service_, service_key(record.service, seq), key));
  DROVER_TRY(txn.commit());
  return is_new;
}

Result<std::optional<ArtifactRecord>> ArtifactIndex::get(const ContentId& id) {
  DROVER_ASSIGN(lmdb::Txn txn, env_->begin_read());
  DROVER_ASSIGN(auto bytes, txn.get(artifacts_, key_of(id)));
  if (!bytes) return std::optional<ArtifactRecord>();
  DROVER_ASSIGN(ArtifactRecord r, decode_record(id, *bytes));
  DROVER_ASSIGN(auto pin, txn.get(pins_, key_of(id)));
  if (pin) {
    r.pinned = true;
    auto j = canon::decode(*pin, 1 << 16);
    if (j.ok() && j->contains("reason") && (*j)["reason"].is_string()) {
      r.pin_reason = (*j)["reason"].get<std::string>();
    }
  }
  return std::optional<ArtifactRecord>(std::move(r));
}

Result<std::vector<ArtifactRecord>> ArtifactIndex::list(const std::string& service) {
  std::vector<ContentId> ids;
  {
    DROVER_ASSIGN(lmdb::Txn txn, env_->begin_read());
    DROVER_ASSIGN(lmdb::Cursor cur, txn.cursor(by_service_));
    std::string prefix = service.empty() ? std::string() : service + '\0';
    DROVER_ASSIGN(bool more, prefix.empty() ? cur.first() : cur.seek(prefix));
    while (more && cur.key().substr(0, prefix.size()) == prefix) {
      DROVER_ASSIGN(ContentId id, id_of_key(cur.value()));
      ids.push_back(id);
      DROVER_ASSIGN(more, cur.next());
    }
  }
  std::vector<ArtifactRecord> out;
  for (const auto& id : ids) {
    DROVER_ASSIGN(auto r, get(id));
    if (r) out.push_back(std::move(*r));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.push_seq > b.push_seq; });
  return out;
}

Result<std::vector<ContentId>> ArtifactIndex::find_prefix(const std::string& hex_prefix) {
  std::vector<ContentId> out;
  DROVER_ASSIGN(lmdb::Txn txn, env_->begin_read());
  DROVER_ASSIGN(lmdb::Cursor cur, txn.cursor(artifacts_));
  DROVER_ASSIGN(bool more, cur.first());
  while (more) {
    DROVER_ASSIGN(ContentId id, id_of_key(cur.key()));
    if (id.hex().compare(0, hex_prefix.size(), hex_prefix) == 0) out.push_back(id);
    DROVER_ASSIGN(more, cur.next());
  }
  return out;
}

Status ArtifactIndex::pin(const ContentId& id, const std::string& reason, std::int64_t now) {
  DROVER_ASSIGN(lmdb::Txn txn, env_->begin_write());
  DROVER_ASSIGN(auto present, txn.get(artifacts_, key_of(id)));
  if (!present) return make_error(Errc::not_found, "no artifact " + id.str() + " in the store");
  json j = {{"reason", reason}, {"pinned_at", now}};
  auto bytes = canon::encode(j);
  if (!bytes.ok()) return bytes.error().context("pin reason");
  DROVER_TRY(txn.put(pins_, key_of(id), *bytes));
  return txn.commit();
}

Result<bool> ArtifactIndex::unpin(const ContentId& id) {
  DROVER_ASSIGN(lmdb::Txn txn, env_->begin_write());
  DROVER_ASSIGN(bool removed, txn.erase(pins_, key_of(id)));
  DROVER_TRY(txn.commit());
  return removed;
}

Status ArtifactIndex::remove(const std::vector<ContentId>& ids) {
  DROVER_ASSIGN(lmdb::Txn txn, env_->begin_write());
  for (const auto& id : ids) {
    DROVER_ASSIGN(auto bytes, txn.get(artifacts_, key_of(id)));
    if (!bytes) continue;
    DROVER_ASSIGN(ArtifactRecord r, decode_record(id, *bytes));
    DROVER_TRY(txn.erase(by_service_, service_key(r.service, r.push_seq)));
    DROVER_TRY(txn.erase(artifacts_, key_of(id)));
    DROVER_TRY(txn.erase(pins_, key_of(id)));
  }
  return txn.commit();
}

}  // namespace drover::store
