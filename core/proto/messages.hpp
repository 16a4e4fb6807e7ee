// The agent <-> coordinator messages, version 1 (docs/FORMATS.md, "Agent
// protocol"). Both sides build against these types, so they cannot disagree
// on a field. Transport (NNG) lives in core/nng; this library only encodes,
// decodes, authenticates and validates.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.hpp"
#include "core/sign/keys.hpp"
#include "core/world/random.hpp"

namespace drover::proto {

inline constexpr int kProtocolVersion = 1;
// Version 2 (docs/FORMATS.md, "Agent protocol (version 2)"): nonces,
// authenticated replies, "unchanged", and a 64 KiB bound on every message a
// version-2 listener takes (before anything is authenticated).
inline constexpr int kProtocolV2 = 2;
inline constexpr std::size_t kMaxRequestBytesV2 = 64ull << 10;
// The items of one report, as encoded_size counts them (escaped inside the
// request's body); a proof larger than kMaxProofBytesV2 is left out, so even
// one item alone stays below kMaxRequestBytesV2.
inline constexpr std::size_t kMaxReportBytesV2 = 48ull << 10;
inline constexpr std::size_t kMaxProofBytesV2 = 20ull << 10;
inline constexpr std::size_t kNonceHexBytes = 32;
inline constexpr std::size_t kMaxMessageBytes = 16ull << 20;  // replies (a manifest, say)
// A request is far smaller: the coordinator's sockets receive at most this,
// and the agent fills a report to at most kMaxReportBytes of items.
inline constexpr std::size_t kMaxRequestBytes = 1ull << 20;
inline constexpr std::size_t kMaxReportBytes = 512ull << 10;
// JSON values a message may hold (counted before it is parsed, so a small
// message of many tiny values cannot make the parser build a huge tree).
inline constexpr std::size_t kMaxMessageValues = 65'536;
inline constexpr std::string_view kAnnouncePrefix = "drover.announce.v1 ";
inline constexpr std::size_t kMaxReportItems = 256;
// Seqs and times stay below 2^53, so JSON readers in any language keep them exact.
inline constexpr std::uint64_t kMaxSeq = (1ull << 53) - 1;

// Bounds on every string of every message (docs/FORMATS.md, "Agent
// protocol"): names (host, region, cluster, service) follow the one name rule
// (core/base/name.hpp); the rest are bounded here. A message over a bound is
// refused whole, naming the field; the agent clips its texts before sending
// (clip_texts), so it never writes a report the coordinator refuses.
inline constexpr std::size_t kMaxTypeBytes = 32;    // request types
inline constexpr std::size_t kMaxIdBytes = 128;     // artifact ids, slots, states, event kinds
inline constexpr std::size_t kMaxTextBytes = 4096;  // error texts, event details
inline constexpr std::size_t kMaxProofBytes = 256 << 10;  // an event's proof (a plan bundle)
inline constexpr std::size_t kMaxCustomMetrics = 32;      // per health sample
inline constexpr std::size_t kMaxMetricNameBytes = 64;
inline constexpr std::size_t kMaxHostServices = 256;  // services one host may enroll
inline constexpr std::size_t kMaxPeerBytes = 262;     // "host:port" of a mesh node
inline constexpr std::size_t kMaxTokenBytes = 256;    // join tokens
inline constexpr std::size_t kMaxSealedBytes = 256;   // the sealed report key

// Request types.
inline constexpr std::string_view kEnroll = "enroll";
inline constexpr std::string_view kPlanPull = "plan_pull";
inline constexpr std::string_view kManifestPull = "manifest_pull";
inline constexpr std::string_view kFlagsPull = "flags_pull";  // version 2, issue 15
inline constexpr std::string_view kReport = "report";
inline constexpr std::string_view kCertPull = "cert_pull";
inline constexpr std::string_view kRootPull = "root_pull";  // version 2

// A request as it travels: the body is a JSON text, authenticated by a MAC
// (or, for enroll, a signature) over the exact bytes.
struct Request {
  std::string type;
  std::string host;
  std::string body;  // JSON text of the request's fields
  std::string mac;   // 32 raw bytes (hex on the wire); empty for enroll
  std::string sig;   // 64 raw bytes (base64 on the wire); enroll only
  int v = kProtocolVersion;
};
std::string encode_request(const Request& request);
Result<Request> decode_request(std::string_view bytes);

// The protocol version a message claims (1 when it does not decode), to
// answer an undecodable request in the version it was sent in.
int claimed_version(std::string_view bytes);

// Fills request.mac, and checks it. key is the host's report key. The MAC's
// domain follows request.v.
void mac_request(Request& request, std::string_view key);
bool check_mac(const Request& request, std::string_view key);
// Fills request.sig with the agent's key, and checks it.
void sign_enroll(Request& request, const sign::KeyPair& agent_key);
bool check_enroll_sig(const Request& request, const sign::PublicKey& agent_key);

// A reply: a type and its fields. An error reply decodes to an Error.
std::string encode_reply(std::string_view type, nlohmann::json fields = nlohmann::json::object());
std::string encode_error_reply(const Error& error);
struct Reply {
  std::string type;
  nlohmann::json fields;
};
Result<Reply> decode_reply(std::string_view bytes);

// ---- version 2 replies ----
// The lowercase hex SHA-256 of a request's bytes: what a reply answers.
std::string request_hash(std::string_view request_bytes);
// A reply authenticated by a MAC under the host's report key, or signed by
// the online key, over "drover-reply-v2" LF type LF host LF request_hash LF body.
std::string mac_reply(std::string_view type, const nlohmann::json& fields, std::string_view host,
                      std::string_view request_hash, std::string_view key);
std::string sign_reply(std::string_view type, const nlohmann::json& fields, std::string_view host,
                       std::string_view request_hash, const sign::KeyPair& key);
std::string mac_error_reply(const Error& error, std::string_view host,
                            std::string_view request_hash, std::string_view key);
std::string sign_error_reply(const Error& error, std::string_view host,
                             std::string_view request_hash, const sign::KeyPair& key);
// A version-2 reply as it travels, before it is authenticated.
struct SealedReply {
  std::string type;
  std::string body;    // JSON text of the fields
  std::string mac;     // 32 raw bytes, or empty
  std::string sig;     // 64 raw bytes, or empty
  std::string key_id;  // the signer's key id (hex), with sig
};
Result<SealedReply> decode_sealed_reply(std::string_view bytes);

namespace detail {
// The full readers behind decode_request and decode_sealed_reply (which
// first try a fast reader of the common shape): for the differential test
// and the fuzz family, which hold the two to the same answers.
Result<Request> decode_request_full(std::string_view bytes);
Result<SealedReply> decode_sealed_reply_full(std::string_view bytes);
// JSON values in bytes (objects, arrays, and the members and elements that
// commas and colons announce), strings skipped: an upper bound on the tree
// a parse would build, found without building it.
std::size_t count_json_values(std::string_view bytes);
}  // namespace detail
bool check_reply_mac(const SealedReply& r, std::string_view host, std::string_view request_hash,
                     std::string_view key);
bool check_reply_sig(const SealedReply& r, std::string_view host, std::string_view request_hash,
                     const sign::PublicKey& key);
// The fields of an authenticated reply; an error reply decodes to its Error.
Result<Reply> open_reply(const SealedReply& r);
// 32 lowercase hex digits of fresh randomness.
std::string make_nonce(Random& random);

struct Announcement {
  std::string service;
  std::uint64_t seq = 0;
  bool flags = false;  // a flag set's seq ("kind":"flags"), not a plan's
};
std::string encode_announcement(const Announcement& a);
Result<Announcement> decode_announcement(std::string_view bytes);

struct EnrollBody {
  std::string host, region, cluster;
  std::vector<std::string> services;
  sign::PublicKey public_key;
  std::string mesh_peer;       // "host:port" of the agent's mesh node
  std::string join_token;      // issued by an admin
  std::string sealed_mac_key;  // raw bytes of the sealed report key
  std::int64_t at = 0;         // unix seconds
};
nlohmann::json to_json(const EnrollBody& b);
Result<EnrollBody> enroll_body(const nlohmann::json& j);

struct HealthItem {
  std::string service;
  std::string release;  // artifact id, "" when nothing runs
  std::string slot;     // "blue", "green" or ""
  std::int64_t at_ms = 0;
  bool ok = false;
  std::string error;
  double error_rate = 0, p99_ms = 0, saturation = 0;
  std::map<std::string, double> custom;
  std::string state;  // running, starting, crash_loop, stopped
  // Blue/green hosts that split traffic (protocol additions of issue 15,
  // absent from older agents): the per mille of live traffic the slot
  // receives, whether the preview route reaches it, and whether it is the
  // other slot (not the release the host's plan names: the control).
  std::optional<int> traffic = {};
  bool preview = false;
  bool other = false;
};

struct EventItem {
  std::string service;
  std::int64_t at_ms = 0;
  std::string event;  // applied, apply_failed, plan_refused, replay_refused, ...
  std::uint64_t seq = 0;
  std::string detail;
  // Optional: the signed plan bundle (without manifest) the host holds, sent
  // with "replay_refused" so a coordinator restored from an old backup can
  // continue above a seq it never issued (docs/COORDINATOR.md, "Plan seqs").
  std::string proof = {};
};

struct ReportItem {
  std::optional<HealthItem> health;
  std::optional<EventItem> event;
};

struct ReportBody {
  std::uint64_t seq = 0;
  std::int64_t sent_at_ms = 0;
  std::vector<ReportItem> items;
};
nlohmann::json to_json(const ReportBody& b);
Result<ReportBody> report_body(const nlohmann::json& j);
// Cuts an item's free texts (error, detail) to their bounds, never mid-character.
void clip_texts(ReportItem& item);
// How many bytes an item takes in a request (escaped inside its body).
std::size_t encoded_size(const ReportItem& item);

// Parses a request body (JSON object), with a bound on its size.
Result<nlohmann::json> parse_body(std::string_view body);

// A report body read straight from its text, without a JSON tree, when it
// has the common shape (core/proto/report_reader.cpp); nullopt otherwise,
// and parse_body and report_body then read it and name what is wrong. What
// it returns is what they would.
std::optional<ReportBody> read_report_fast(std::string_view body);

}  // namespace drover::proto
