#include "core/proto/messages.hpp"

#include <array>
#include <limits>
#include <optional>

#include "core/base/hex.hpp"
#include "core/base/name.hpp"
#include "core/base/text.hpp"
#include "core/canon/base64.hpp"
#include "core/canon/json_fields.hpp"
#include "core/canon/json_text.hpp"
#include "core/hash/sha256.hpp"
#include "core/sign/secret_box.hpp"

namespace drover::proto {
namespace {

using canon::Empty;
using canon::Fields;
using nlohmann::json;

Error invalid(const std::string& what) {
  return make_error(Errc::invalid_argument, what);
}

Result<json> parse_object(std::string_view bytes, const char* what,
                          std::size_t max_bytes = kMaxMessageBytes) {
  if (bytes.size() > max_bytes) {
    return invalid(std::string(what) + " of " + std::to_string(bytes.size()) + " bytes exceeds " +
                   std::to_string(max_bytes >> 10) + " KiB");
  }
  if (detail::count_json_values(bytes) > kMaxMessageValues) {
    return invalid(std::string(what) + " holds more than " + std::to_string(kMaxMessageValues) +
                   " JSON values");
  }
  json j = json::parse(bytes, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return invalid(std::string(what) + " is not a JSON object");
  }
  return j;
}

// The request's body is bounded by the message's size alone.
constexpr std::size_t kAnySize = kMaxMessageBytes;
constexpr std::int64_t kMaxTime = static_cast<std::int64_t>(kMaxSeq);

Fields fields(const json& j) {
  return Fields(j, "", canon::Nulls::refused);
}

// A name field: the one name rule, the field named in the error.
Result<std::string> name_field(const Fields& f, const std::string& field) {
  DROVER_ASSIGN(std::string v, f.str(field, kMaxNameBytes, Empty::allowed));
  if (auto st = validate_name(v, f.path(field)); !st.ok()) return st.error();
  return v;
}

// A name field that may be "" (region and cluster of a host without them).
Result<std::string> opt_name_field(const Fields& f, const std::string& field) {
  DROVER_ASSIGN(std::string v, f.str(field, kMaxNameBytes, Empty::allowed));
  if (v.empty()) return v;
  if (auto st = validate_name(v, f.path(field)); !st.ok()) return st.error();
  return v;
}

// Reads with a Fields reader; an error names the message: "report: items[0].p99_ms ...".
template <class F>
auto within(const char* what, F&& read) -> decltype(read()) {
  auto r = read();
  if (!r.ok()) return r.error().context(what);
  return r;
}

// A version this build does not speak is unsupported (not merely invalid):
// the peer speaks another protocol. Read by hand for that distinction.
Result<int> check_version(const json& j, const char* what, int highest = kProtocolVersion) {
  auto v = j.find("v");
  if (v == j.end() || !v->is_number_integer()) {
    return invalid(std::string(what) + ": missing protocol version 'v'");
  }
  const std::int64_t n = v->get<std::int64_t>();
  if (n < kProtocolVersion || n > highest) {
    return make_error(Errc::unsupported, std::string(what) + ": protocol version " + v->dump() +
                                             " is not supported (this build speaks 1 and 2)");
  }
  return static_cast<int>(n);
}

// The optional "mac" (64 hex digits) and "sig" (64 bytes in base64) of a
// request or a reply, as raw bytes.
Status read_auth(const Fields& f, std::string& mac, std::string& sig) {
  DROVER_ASSIGN(auto mac_hex, f.opt_str("mac", 64));
  if (mac_hex) {
    auto raw = from_hex(*mac_hex);
    if (!raw || raw->size() != 32) return invalid("mac must be 64 hex digits");
    mac = std::move(*raw);
  }
  DROVER_ASSIGN(auto sig_b64, f.opt_str("sig", 88));
  if (sig_b64) {
    auto raw = canon::base64_decode(*sig_b64);
    if (!raw.ok() || raw->size() != 64) return invalid("sig must be 64 bytes in base64");
    sig = std::move(*raw);
  }
  return Ok{};
}

// A request's MAC covers its version's prefix, type, host and body, one line
// each (docs/FORMATS.md): hashed part by part, never copied into one string.
std::string request_mac(const Request& r, std::string_view key) {
  return sign::hmac_sha256(key, {r.v == kProtocolV2 ? "drover-msg-v2\n" : "drover-msg-v1\n", r.type,
                                 "\n", r.host, "\n", r.body});
}

std::string enroll_input(const Request& r) {
  return (r.v == kProtocolV2 ? "drover-enroll-v2\n" : "drover-enroll-v1\n") + r.body;
}

std::string reply_input(std::string_view type, std::string_view host, std::string_view request_hash,
                        std::string_view body) {
  std::string out = "drover-reply-v2\n";
  out.append(type).append("\n").append(host).append("\n").append(request_hash);
  out.append("\n").append(body);
  return out;
}

std::string reply_mac(std::string_view type, std::string_view host, std::string_view request_hash,
                      std::string_view body, std::string_view key) {
  return sign::hmac_sha256(key,
                           {"drover-reply-v2\n", type, "\n", host, "\n", request_hash, "\n", body});
}

json error_fields(const Error& error) {
  return {{"code", errc_name(error.code)}, {"message", error.message}};
}

// A JSON string, escaped as json_text escapes it.
std::string quoted(std::string_view s) {
  return json_text(json(std::string(s)));
}

// The sealed reply's text, its keys in canonical (sorted) order, written
// without a tree: {"body":…,"key_id":…,"mac":…,"sig":…,"type":…,"v":2},
// each of key_id, mac and sig only when given.
std::string sealed(std::string_view type, std::string_view body, std::string_view mac_hex,
                   std::string_view sig_b64 = {}, std::string_view key_id = {}) {
  std::string out = "{\"body\":";
  out += quoted(body);
  if (!key_id.empty()) out.append(",\"key_id\":").append(quoted(key_id));
  if (!mac_hex.empty()) out.append(",\"mac\":\"").append(mac_hex).append("\"");
  if (!sig_b64.empty()) out.append(",\"sig\":\"").append(sig_b64).append("\"");
  out.append(",\"type\":").append(quoted(type));
  out.append(",\"v\":").append(std::to_string(kProtocolV2)).append("}");
  return out;
}

// ---- The envelopes' fast path ----
// A request and a sealed reply are flat JSON objects of strings and one
// integer ("v") as json_text writes them. Read here without a JSON tree
// (every request pays for it, the body read twice over); anything else
// (whitespace, a \u escape, a byte outside printable ASCII, an unknown or
// repeated key, another kind of value, a bound broken) is left to the full
// reader, whose answer and error stand. On every input the fast reader
// accepts, the full one answers the same (the differential test in
// core/tests/proto_test.cpp and the agent_messages fuzz family).
struct FlatValue {
  bool present = false;
  bool is_int = false;
  std::int64_t n = 0;
  std::string s;
};

// A JSON string's content from in[i] (just past its opening quote) to its
// closing quote, unescaped; i ends past that quote.
bool read_flat_string(std::string_view in, std::size_t& i, std::string& out) {
  const std::size_t n = in.size();
  std::size_t run = i;
  while (i < n) {
    const auto c = static_cast<unsigned char>(in[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    out.append(in.substr(run, i - run));
    if (c == '"') {
      ++i;
      return true;
    }
    if (c != '\\' || i + 1 >= n) return false;  // a control byte, a byte of UTF-8
    char unescaped = 0;
    switch (in[i + 1]) {
      case '"': unescaped = '"'; break;
      case '\\': unescaped = '\\'; break;
      case '/': unescaped = '/'; break;
      case 'b': unescaped = '\b'; break;
      case 'f': unescaped = '\f'; break;
      case 'n': unescaped = '\n'; break;
      case 'r': unescaped = '\r'; break;
      case 't': unescaped = '\t'; break;
      default: return false;  // \u and anything unknown: the full reader
    }
    out.push_back(unescaped);
    i += 2;
    run = i;
  }
  return false;  // no closing quote
}

// {"key":value,...} with each key one of keys, at most once, and each value
// a string or a whole number of at most 18 digits; nothing before or after.
template <std::size_t N>
bool read_flat(std::string_view in, const std::array<std::string_view, N>& keys,
               std::array<FlatValue, N>& out) {
  const std::size_t n = in.size();
  if (n < 2 || in[0] != '{') return false;
  std::size_t i = 1;
  if (in[i] == '}') return i + 1 == n;
  for (;;) {
    if (i >= n || in[i] != '"') return false;
    const std::size_t k0 = ++i;
    while (i < n && ((in[i] >= 'a' && in[i] <= 'z') || in[i] == '_')) ++i;
    if (i >= n || in[i] != '"') return false;
    const std::string_view key = in.substr(k0, i - k0);
    ++i;
    std::size_t slot = N;
    for (std::size_t k = 0; k < N; ++k) {
      if (keys[k] == key) slot = k;
    }
    if (slot == N || out[slot].present) return false;
    FlatValue& v = out[slot];
    v.present = true;
    if (i + 1 >= n || in[i] != ':') return false;
    ++i;
    if (in[i] == '"') {
      ++i;
      if (!read_flat_string(in, i, v.s)) return false;
    } else {
      const bool negative = in[i] == '-';
      if (negative) ++i;
      const std::size_t d0 = i;
      while (i < n && in[i] >= '0' && in[i] <= '9') ++i;
      const std::size_t digits = i - d0;
      // No digits, a leading zero, or too many to hold: the full reader.
      if (digits == 0 || digits > 18 || (digits > 1 && in[d0] == '0')) return false;
      for (std::size_t d = d0; d < i; ++d) v.n = v.n * 10 + (in[d] - '0');
      if (negative) v.n = -v.n;
      v.is_int = true;
    }
    if (i >= n) return false;
    if (in[i] == ',') {
      ++i;
      continue;
    }
    return in[i] == '}' && i + 1 == n;
  }
}

bool flat_string(const FlatValue& v, std::size_t max_size) {
  return v.present && !v.is_int && v.s.size() <= max_size;
}

// The "mac" and "sig" of the fast path, as read_auth reads them.
bool flat_auth(FlatValue& mac, FlatValue& sig, std::string& mac_out, std::string& sig_out) {
  if (mac.present) {
    if (!flat_string(mac, 64)) return false;
    auto raw = from_hex(mac.s);
    if (!raw || raw->size() != 32) return false;
    mac_out = std::move(*raw);
  }
  if (sig.present) {
    if (!flat_string(sig, 88)) return false;
    auto raw = canon::base64_decode(sig.s);
    if (!raw.ok() || raw->size() != 64) return false;
    sig_out = std::move(*raw);
  }
  return true;
}

std::optional<Request> fast_request(std::string_view bytes) {
  if (bytes.size() > kMaxRequestBytes) return std::nullopt;
  static constexpr std::array<std::string_view, 6> kKeys = {"v",    "type", "host",
                                                            "body", "mac",  "sig"};
  std::array<FlatValue, 6> f;
  if (!read_flat(bytes, kKeys, f)) return std::nullopt;
  auto& [v, type, host, body, mac, sig] = f;
  if (!v.present || !v.is_int || (v.n != kProtocolVersion && v.n != kProtocolV2)) {
    return std::nullopt;
  }
  if (!flat_string(type, kMaxTypeBytes) || !flat_string(host, kMaxNameBytes) ||
      !flat_string(body, kAnySize) || !validate_name(host.s, "host").ok()) {
    return std::nullopt;
  }
  Request r;
  r.v = static_cast<int>(v.n);
  if (!flat_auth(mac, sig, r.mac, r.sig)) return std::nullopt;
  r.type = std::move(type.s);
  r.host = std::move(host.s);
  r.body = std::move(body.s);
  return r;
}

std::optional<SealedReply> fast_sealed_reply(std::string_view bytes) {
  if (bytes.size() > kMaxMessageBytes) return std::nullopt;
  static constexpr std::array<std::string_view, 6> kKeys = {"v",   "type", "body",
                                                            "mac", "sig",  "key_id"};
  std::array<FlatValue, 6> f;
  if (!read_flat(bytes, kKeys, f)) return std::nullopt;
  auto& [v, type, body, mac, sig, key_id] = f;
  if (!v.present || !v.is_int || v.n != kProtocolV2) return std::nullopt;
  if (!flat_string(type, kMaxTypeBytes) || !flat_string(body, kAnySize)) return std::nullopt;
  if (key_id.present && !flat_string(key_id, 64)) return std::nullopt;
  SealedReply r;
  if (!flat_auth(mac, sig, r.mac, r.sig)) return std::nullopt;
  if (r.mac.empty() == r.sig.empty()) return std::nullopt;
  if (!r.sig.empty()) {
    if (!key_id.present || key_id.s.empty()) return std::nullopt;  // required, not empty
    r.key_id = std::move(key_id.s);
  }
  r.type = std::move(type.s);
  r.body = std::move(body.s);
  return r;
}

Errc errc_from_name(std::string_view name) {
  for (Errc c : {Errc::invalid_argument, Errc::not_found, Errc::already_exists, Errc::io,
                 Errc::corrupt, Errc::refused, Errc::crypto, Errc::unsupported, Errc::timeout,
                 Errc::exhausted, Errc::internal}) {
    if (name == errc_name(c)) return c;
  }
  return Errc::internal;
}

}  // namespace

// JSON values in bytes (objects, arrays, and the members and elements that
// commas and colons announce), strings skipped: an upper bound on the tree
// a parse would build, found without building it.
std::size_t detail::count_json_values(std::string_view bytes) {
  std::size_t n = 1;
  bool in_string = false;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[' || c == ',' || c == ':') {
      ++n;
    }
  }
  return n;
}

std::string encode_request(const Request& r) {
  json j = {{"v", r.v}, {"type", r.type}, {"host", r.host}, {"body", r.body}};
  if (!r.mac.empty()) j["mac"] = to_hex(r.mac);
  if (!r.sig.empty()) j["sig"] = canon::base64_encode(r.sig);
  return json_text(j);
}

Result<Request> decode_request(std::string_view bytes) {
  if (auto fast = fast_request(bytes)) return std::move(*fast);
  return detail::decode_request_full(bytes);
}

Result<Request> detail::decode_request_full(std::string_view bytes) {
  DROVER_ASSIGN(json j, parse_object(bytes, "request", kMaxRequestBytes));
  DROVER_ASSIGN(const int version, check_version(j, "request", kProtocolV2));
  return within("request", [&]() -> Result<Request> {
    const Fields f = fields(j);
    Request r;
    r.v = version;
    DROVER_ASSIGN(r.type, f.str("type", kMaxTypeBytes, Empty::allowed));
    DROVER_ASSIGN(r.host, name_field(f, "host"));
    DROVER_ASSIGN(r.body, f.str("body", kAnySize, Empty::allowed));
    DROVER_TRY(read_auth(f, r.mac, r.sig));
    return r;
  });
}

void mac_request(Request& r, std::string_view key) {
  r.mac = request_mac(r, key);
}

bool check_mac(const Request& r, std::string_view key) {
  return !r.mac.empty() && sign::mac_equal(r.mac, request_mac(r, key));
}

void sign_enroll(Request& r, const sign::KeyPair& agent_key) {
  r.sig = agent_key.sign(enroll_input(r));
}

bool check_enroll_sig(const Request& r, const sign::PublicKey& agent_key) {
  return agent_key.verify(enroll_input(r), r.sig);
}

int claimed_version(std::string_view bytes) {
  auto j = parse_object(bytes, "request", kMaxRequestBytes);
  if (!j.ok()) return kProtocolVersion;
  auto v = j->find("v");
  return v != j->end() && *v == kProtocolV2 ? kProtocolV2 : kProtocolVersion;
}

std::string request_hash(std::string_view request_bytes) {
  return ContentId::of(request_bytes).hex();
}

std::string mac_reply(std::string_view type, const json& fields, std::string_view host,
                      std::string_view request_hash, std::string_view key) {
  const std::string body = json_text(fields.is_object() ? fields : json::object());
  return sealed(type, body, to_hex(reply_mac(type, host, request_hash, body, key)));
}

std::string sign_reply(std::string_view type, const json& fields, std::string_view host,
                       std::string_view request_hash, const sign::KeyPair& key) {
  const std::string body = json_text(fields.is_object() ? fields : json::object());
  const std::string sig = key.sign(reply_input(type, host, request_hash, body));
  return sealed(type, body, {}, canon::base64_encode(sig), key.public_key().key_id());
}

std::string mac_error_reply(const Error& error, std::string_view host,
                            std::string_view request_hash, std::string_view key) {
  return mac_reply("error", error_fields(error), host, request_hash, key);
}

std::string sign_error_reply(const Error& error, std::string_view host,
                             std::string_view request_hash, const sign::KeyPair& key) {
  return sign_reply("error", error_fields(error), host, request_hash, key);
}

Result<SealedReply> decode_sealed_reply(std::string_view bytes) {
  if (auto fast = fast_sealed_reply(bytes)) return std::move(*fast);
  return detail::decode_sealed_reply_full(bytes);
}

Result<SealedReply> detail::decode_sealed_reply_full(std::string_view bytes) {
  DROVER_ASSIGN(json j, parse_object(bytes, "reply"));
  DROVER_ASSIGN(const int version, check_version(j, "reply", kProtocolV2));
  if (version != kProtocolV2) {
    return make_error(Errc::refused, "reply: a version-1 reply is not authenticated");
  }
  return within("reply", [&]() -> Result<SealedReply> {
    const Fields f = fields(j);
    SealedReply r;
    DROVER_ASSIGN(r.type, f.str("type", kMaxTypeBytes, Empty::allowed));
    DROVER_ASSIGN(r.body, f.str("body", kAnySize, Empty::allowed));
    DROVER_TRY(read_auth(f, r.mac, r.sig));
    if (!r.sig.empty()) {
      DROVER_ASSIGN(r.key_id, f.str("key_id", 64));
    }
    if (r.mac.empty() == r.sig.empty()) return invalid("a reply carries exactly one of mac, sig");
    return r;
  });
}

bool check_reply_mac(const SealedReply& r, std::string_view host, std::string_view request_hash,
                     std::string_view key) {
  return !r.mac.empty() && !key.empty() &&
         sign::mac_equal(r.mac, reply_mac(r.type, host, request_hash, r.body, key));
}

bool check_reply_sig(const SealedReply& r, std::string_view host, std::string_view request_hash,
                     const sign::PublicKey& key) {
  return !r.sig.empty() && key.verify(reply_input(r.type, host, request_hash, r.body), r.sig);
}

Result<Reply> open_reply(const SealedReply& r) {
  DROVER_ASSIGN(json j, parse_object(r.body, "reply body"));
  if (r.type == "error") {
    const Fields f = fields(j);
    auto code = f.str("code", kAnySize, Empty::allowed);
    auto message = f.str("message", kAnySize, Empty::allowed);
    return make_error(code.ok() ? errc_from_name(*code) : Errc::internal,
                      "coordinator: " + (message.ok() ? *message : std::string("(no message)")));
  }
  return Reply{r.type, std::move(j)};
}

std::string make_nonce(Random& random) {
  return to_hex(random.bytes(16));
}

std::string encode_reply(std::string_view type, json fields) {
  if (!fields.is_object()) fields = json::object();
  fields["v"] = kProtocolVersion;
  fields["type"] = type;
  return json_text(fields);
}

std::string encode_error_reply(const Error& error) {
  return encode_reply("error", {{"code", errc_name(error.code)}, {"message", error.message}});
}

Result<Reply> decode_reply(std::string_view bytes) {
  DROVER_ASSIGN(json j, parse_object(bytes, "reply"));
  DROVER_TRY(check_version(j, "reply"));
  const Fields f = fields(j);
  Reply r;
  DROVER_ASSIGN(r.type, within("reply", [&] { return f.str("type", kAnySize, Empty::allowed); }));
  if (r.type == "error") {
    // Whatever the error reply lacks, it is an error.
    auto code = f.str("code", kAnySize, Empty::allowed);
    auto message = f.str("message", kAnySize, Empty::allowed);
    return make_error(code.ok() ? errc_from_name(*code) : Errc::internal,
                      "coordinator: " + (message.ok() ? *message : std::string("(no message)")));
  }
  j.erase("v");
  j.erase("type");
  r.fields = std::move(j);
  return r;
}

std::string encode_announcement(const Announcement& a) {
  json j = {{"v", kProtocolVersion}, {"service", a.service}, {"seq", a.seq}};
  if (a.flags) j["kind"] = "flags";
  return std::string(kAnnouncePrefix) + j.dump();
}

Result<Announcement> decode_announcement(std::string_view bytes) {
  if (bytes.substr(0, kAnnouncePrefix.size()) != kAnnouncePrefix) {
    return invalid("announcement does not start with '" + std::string(kAnnouncePrefix) + "'");
  }
  DROVER_ASSIGN(json j, parse_object(bytes.substr(kAnnouncePrefix.size()), "announcement"));
  DROVER_TRY(check_version(j, "announcement"));
  return within("announcement", [&]() -> Result<Announcement> {
    const Fields f = fields(j);
    Announcement a;
    DROVER_ASSIGN(a.service, name_field(f, "service"));
    DROVER_ASSIGN(a.seq, f.u64("seq", kMaxSeq));
    DROVER_ASSIGN(auto kind, f.opt_str("kind", 16));
    if (kind && *kind != "flags" && *kind != "plan") {
      return invalid(f.path("kind") + " must be \"plan\" or \"flags\"");
    }
    a.flags = kind && *kind == "flags";
    return a;
  });
}

json to_json(const EnrollBody& b) {
  return {{"host", b.host},
          {"region", b.region},
          {"cluster", b.cluster},
          {"services", b.services},
          {"public_key", b.public_key.hex()},
          {"mesh_peer", b.mesh_peer},
          {"join_token", b.join_token},
          {"sealed_mac_key", canon::base64_encode(b.sealed_mac_key)},
          {"at", b.at}};
}

Result<EnrollBody> enroll_body(const json& j) {
  return within("enroll", [&]() -> Result<EnrollBody> {
    DROVER_ASSIGN(const Fields f, Fields::of(j, "", canon::Nulls::refused));
    EnrollBody b;
    DROVER_ASSIGN(b.host, name_field(f, "host"));
    DROVER_ASSIGN(b.region, opt_name_field(f, "region"));
    DROVER_ASSIGN(b.cluster, opt_name_field(f, "cluster"));
    DROVER_ASSIGN(b.mesh_peer, f.str("mesh_peer", kMaxPeerBytes, Empty::allowed));
    DROVER_ASSIGN(b.join_token, f.str("join_token", kMaxTokenBytes, Empty::allowed));
    DROVER_ASSIGN(b.at, f.integer("at", 0, kMaxTime));
    DROVER_ASSIGN(std::string pk, f.str("public_key", 64, Empty::allowed));
    DROVER_ASSIGN(b.public_key, sign::PublicKey::from_hex(pk));
    DROVER_ASSIGN(std::string sealed, f.str("sealed_mac_key", kMaxSealedBytes, Empty::allowed));
    auto raw = canon::base64_decode(sealed);
    if (!raw.ok()) return invalid("sealed_mac_key is not base64");
    b.sealed_mac_key = std::move(*raw);
    DROVER_TRY(f.require({"services"}));
    DROVER_ASSIGN(b.services,
                  f.str_list("services", kMaxHostServices, kMaxNameBytes, Empty::allowed));
    for (std::size_t i = 0; i < b.services.size(); ++i) {
      const std::string where = "services[" + std::to_string(i) + "]";
      if (auto st = validate_name(b.services[i], where); !st.ok()) return st.error();
    }
    return b;
  });
}

json to_json(const ReportBody& b) {
  json items = json::array();
  for (const auto& item : b.items) {
    if (item.health) {
      const HealthItem& h = *item.health;
      json custom = json::object();
      for (const auto& [k, v] : h.custom) custom[k] = v;
      items.push_back({{"kind", "health"},
                       {"service", h.service},
                       {"release", h.release},
                       {"slot", h.slot},
                       {"at", h.at_ms},
                       {"ok", h.ok},
                       {"error", h.error},
                       {"error_rate", h.error_rate},
                       {"p99_ms", h.p99_ms},
                       {"saturation", h.saturation},
                       {"custom", custom},
                       {"state", h.state}});
      if (h.traffic) items.back()["traffic"] = *h.traffic;
      if (h.preview) items.back()["preview"] = true;
      if (h.other) items.back()["other"] = true;
    } else if (item.event) {
      const EventItem& e = *item.event;
      items.push_back({{"kind", "event"},
                       {"service", e.service},
                       {"at", e.at_ms},
                       {"event", e.event},
                       {"seq", e.seq},
                       {"detail", e.detail}});
      if (!e.proof.empty()) items.back()["proof"] = e.proof;
    }
  }
  return {{"seq", b.seq}, {"sent_at", b.sent_at_ms}, {"items", items}};
}

namespace {

Result<HealthItem> health_item(const Fields& f) {
  HealthItem h;
  DROVER_ASSIGN(h.service, name_field(f, "service"));
  DROVER_ASSIGN(h.release, f.str("release", kMaxIdBytes, Empty::allowed));
  DROVER_ASSIGN(h.slot, f.str("slot", kMaxIdBytes, Empty::allowed));
  DROVER_ASSIGN(h.at_ms, f.integer("at", 0, kMaxTime));
  DROVER_ASSIGN(h.error, f.str("error", kMaxTextBytes, Empty::allowed));
  DROVER_ASSIGN(h.state, f.str("state", kMaxIdBytes, Empty::allowed));
  DROVER_ASSIGN(h.ok, f.boolean("ok"));
  DROVER_ASSIGN(h.error_rate, f.num("error_rate"));
  DROVER_ASSIGN(h.p99_ms, f.num("p99_ms"));
  DROVER_ASSIGN(h.saturation, f.num("saturation"));
  DROVER_ASSIGN(const Fields custom, f.object("custom"));
  if (custom.value().size() > kMaxCustomMetrics) {
    return invalid(f.path("custom") + " holds more than 32 metrics");
  }
  for (const auto& [name, v] : custom.value().items()) {
    if (name.size() > kMaxMetricNameBytes) {
      return invalid(f.path("custom") + ": a metric name is longer than 64 bytes");
    }
    DROVER_ASSIGN(h.custom[name], custom.num(name));
  }
  DROVER_ASSIGN(auto traffic, f.opt_int("traffic", 0, 1000));
  if (traffic) h.traffic = static_cast<int>(*traffic);
  DROVER_ASSIGN(auto preview, f.opt_bool("preview"));
  h.preview = preview.value_or(false);
  DROVER_ASSIGN(auto other, f.opt_bool("other"));
  h.other = other.value_or(false);
  if (h.other && !h.traffic) return invalid(f.path("other") + " needs traffic");
  return h;
}

Result<EventItem> event_item(const Fields& f) {
  EventItem e;
  DROVER_ASSIGN(e.service, name_field(f, "service"));
  DROVER_ASSIGN(e.at_ms, f.integer("at", 0, kMaxTime));
  DROVER_ASSIGN(e.event, f.str("event", kMaxIdBytes, Empty::allowed));
  DROVER_ASSIGN(e.seq, f.u64("seq", kMaxSeq));
  DROVER_ASSIGN(e.detail, f.str("detail", kMaxTextBytes, Empty::allowed));
  DROVER_ASSIGN(auto proof, f.opt_str("proof", kMaxProofBytes));
  e.proof = proof.value_or("");
  return e;
}

}  // namespace

Result<ReportBody> report_body(const json& j) {
  return within("report", [&]() -> Result<ReportBody> {
    DROVER_ASSIGN(const Fields f, Fields::of(j, "", canon::Nulls::refused));
    ReportBody b;
    DROVER_ASSIGN(b.seq, f.u64("seq", kMaxSeq));
    DROVER_ASSIGN(b.sent_at_ms, f.integer("sent_at", 0, kMaxTime));
    DROVER_ASSIGN(auto items, f.objects("items", kMaxReportItems));
    if (items.empty()) return invalid("items must list 1 to 256 items");
    for (const Fields& it : items) {
      DROVER_ASSIGN(std::string kind, it.str("kind", kAnySize, Empty::allowed));
      ReportItem item;
      if (kind == "health") {
        DROVER_ASSIGN(item.health, health_item(it));
      } else if (kind == "event") {
        DROVER_ASSIGN(item.event, event_item(it));
      } else {
        return invalid(it.path("kind") + ": unknown item kind '" + kind + "'");
      }
      b.items.push_back(std::move(item));
    }
    return b;
  });
}

void clip_texts(ReportItem& item) {
  if (item.health) item.health->error = clip_utf8(item.health->error, kMaxTextBytes);
  if (item.event) item.event->detail = clip_utf8(item.event->detail, kMaxTextBytes);
}

Result<json> parse_body(std::string_view body) {
  return parse_object(body, "request body", kMaxRequestBytes);
}

std::size_t encoded_size(const ReportItem& item) {
  // Exactly what the item adds to a request: its JSON text, escaped again
  // as part of the body string (so a quote counts twice, a control
  // character seven times), and a comma.
  ReportBody one;
  one.items.push_back(item);
  const json j = to_json(one)["items"][0];
  return json(j.dump()).dump().size() - 2 + 1;
}

}  // namespace drover::proto
