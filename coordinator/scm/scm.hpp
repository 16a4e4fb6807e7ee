// Push events from a source host (docs/API.md, "The SCM webhook"): the
// GitHub-style body read into what drover acts on, the signature over it,
// and which pipelines and artifacts a push names. Pure: the coordinator keeps
// the secrets, the deduplication and the waiting triggers.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/result.hpp"

namespace drover::coordinator::scm {

inline constexpr std::size_t kMaxEventBytes = 1 << 20;
inline constexpr std::size_t kMinShaPrefix = 7;

struct PushEvent {
  std::string repository;  // repository.full_name: "org/web"
  std::string ref;         // "refs/heads/main"
  std::string branch;      // "main"; "" when the ref is not a branch (a tag)
  std::string after;       // the commit pushed: 40 lowercase hex digits
  std::string pusher;      // pusher.name: the login
  bool deleted = false;    // the ref was deleted: nothing to deploy
};

// Only the repository's full name: which secret checks the signature. The
// body is still unauthenticated; nothing else is read from it yet.
Result<std::string> repository_of(std::string_view body);

// The whole event, once its signature was checked. Errors name the field.
Result<PushEvent> parse_push(std::string_view body);

// X-Hub-Signature-256 ("sha256=" and the hex HMAC-SHA256 of the body under
// secret), compared in constant time. Errc::crypto when it does not match.
Status check_signature(std::string_view secret, std::string_view body, std::string_view header);

// The OWNER/NAME a pipeline's source_repo names: itself, or the path of a
// URL ("https://host/org/web.git", "git@host:org/web.git") without ".git".
std::string repository_path(std::string_view source_repo);
// Whether a pipeline's source_repo names the event's repository: by the
// event's full_name alone (which chose the secret that signed it), never by
// the URLs the body also carries.
bool names_repository(const std::string& source_repo, const PushEvent& event);

// The artifacts whose git SHA names the commit: a prefix of `after` of at
// least kMinShaPrefix hex digits (case ignored). Input and output are
// (artifact id, git sha) pairs.
using ArtifactSha = std::pair<std::string, std::string>;
std::vector<ArtifactSha> matching_artifacts(const std::vector<ArtifactSha>& artifacts,
                                            const std::string& after);

}  // namespace drover::coordinator::scm
