#include "coordinator/scm/scm.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/base/hex.hpp"
#include "core/sign/secret_box.hpp"

namespace drover::coordinator::scm {
namespace {

using nlohmann::json;

Error bad(const std::string& what) {
  return make_error(Errc::invalid_argument, "push event: " + what);
}

Result<json> object_of(std::string_view body) {
  if (body.size() > kMaxEventBytes) {
    return bad("the body is " + std::to_string(body.size()) + " bytes; at most " +
               std::to_string(kMaxEventBytes));
  }
  json j = json::parse(body, nullptr, false);
  if (!j.is_object()) return bad("the body is not a JSON object");
  return j;
}

bool is_hex(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  });
}

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

// "org/web": two parts of A-Z a-z 0-9 . _ - (what hosts allow), 1-200 bytes.
bool repository_name(const std::string& s) {
  if (s.empty() || s.size() > 200 || std::count(s.begin(), s.end(), '/') != 1) return false;
  if (s.front() == '/' || s.back() == '/') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == '/';
  });
}

// A string field at path (e.g. {"repository","full_name"}), or an error naming it.
Result<std::string> text_at(const json& j, std::initializer_list<const char*> path,
                            std::size_t max_bytes) {
  const json* at = &j;
  std::string name;
  for (const char* key : path) {
    name += (name.empty() ? "" : ".") + std::string(key);
    if (!at->is_object() || !at->contains(key)) return bad(name + " is missing");
    at = &(*at)[key];
  }
  if (!at->is_string()) return bad(name + " must be a string");
  std::string s = at->get<std::string>();
  if (s.empty() || s.size() > max_bytes) {
    return bad(name + " must be 1 to " + std::to_string(max_bytes) + " bytes");
  }
  return s;
}

}  // namespace

Result<std::string> repository_of(std::string_view body) {
  DROVER_ASSIGN(json j, object_of(body));
  DROVER_ASSIGN(std::string name, text_at(j, {"repository", "full_name"}, 200));
  if (!repository_name(name)) {
    return bad("repository.full_name must be OWNER/NAME of letters, digits, '.', '_', '-'");
  }
  return name;
}

Result<PushEvent> parse_push(std::string_view body) {
  DROVER_ASSIGN(json j, object_of(body));
  PushEvent e;
  DROVER_ASSIGN(e.repository, repository_of(body));
  DROVER_ASSIGN(e.ref, text_at(j, {"ref"}, 256));
  constexpr std::string_view kHeads = "refs/heads/";
  if (e.ref.rfind(kHeads, 0) == 0) e.branch = e.ref.substr(kHeads.size());
  DROVER_ASSIGN(e.after, text_at(j, {"after"}, 40));
  if (e.after.size() != 40 || !is_hex(e.after)) return bad("after must be 40 hex digits");
  e.after = lower(e.after);
  DROVER_ASSIGN(e.pusher, text_at(j, {"pusher", "name"}, 128));
  if (j.contains("deleted")) {
    if (!j["deleted"].is_boolean()) return bad("deleted must be true or false");
    e.deleted = j["deleted"].get<bool>();
  }
  return e;
}

Status check_signature(std::string_view secret, std::string_view body, std::string_view header) {
  constexpr std::string_view kPrefix = "sha256=";
  if (header.size() != kPrefix.size() + 64 || header.substr(0, kPrefix.size()) != kPrefix) {
    return make_error(Errc::crypto, "X-Hub-Signature-256 must be sha256=<64 hex digits>");
  }
  const std::string expected = to_hex(sign::hmac_sha256(secret, body));
  const std::string given = lower(std::string(header.substr(kPrefix.size())));
  // Compared in constant time: no early exit to time.
  unsigned char diff = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    diff |= static_cast<unsigned char>(given[i] ^ expected[i]);
  }
  if (diff != 0) {
    return make_error(Errc::crypto,
                      "X-Hub-Signature-256 does not match the body under the repository's secret");
  }
  return Ok{};
}

std::string repository_path(std::string_view source_repo) {
  std::string_view path;
  if (const std::size_t scheme = source_repo.find("://"); scheme != std::string_view::npos) {
    const std::size_t slash = source_repo.find('/', scheme + 3);
    if (slash == std::string_view::npos) return "";
    path = source_repo.substr(slash + 1);  // https://host/org/web.git, ssh://git@host/org/web
  } else if (const std::size_t colon = source_repo.find(':'); colon != std::string_view::npos) {
    path = source_repo.substr(colon + 1);  // git@host:org/web.git
  } else {
    path = source_repo;  // org/web
  }
  while (path.ends_with('/')) path.remove_suffix(1);
  if (path.ends_with(".git")) path.remove_suffix(4);
  return std::string(path);
}

bool names_repository(const std::string& source_repo, const PushEvent& event) {
  if (source_repo.empty() || event.repository.empty()) return false;
  // Only full_name picked the secret that signed the event: the URLs in the
  // body are the sender's to write, so they never match on their own.
  return repository_path(source_repo) == event.repository;
}

std::vector<ArtifactSha> matching_artifacts(const std::vector<ArtifactSha>& artifacts,
                                            const std::string& after) {
  const std::string commit = lower(after);
  std::vector<ArtifactSha> out;
  for (const auto& a : artifacts) {
    const std::string sha = lower(a.second);
    if (sha.size() < kMinShaPrefix || sha.size() > commit.size() || !is_hex(sha)) continue;
    if (commit.compare(0, sha.size(), sha) == 0) out.push_back(a);
  }
  return out;
}

}  // namespace drover::coordinator::scm
