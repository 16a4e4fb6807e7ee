// Enrollment (docs/AGENT.md, "Enrollment"): the agent fetches the online
// key's certificate, verifies it against the pinned root and its trust floor,
// and enrolls its host id, public key and report key (sealed to the online
// key) with its join token. Until the coordinator knows it, nothing is pulled
// or reported; a coordinator that forgets the key (reset) makes it enroll
// again.
#pragma once

#include <cstdint>
#include <optional>

#include "agent/context.hpp"

namespace drover::agent {

// True when enrolled (now or before); false when the coordinator is away or
// refused (logged, and a refusal is an event line).
bool try_enroll(AgentContext& ctx, std::int64_t now_s);

// Pulls the online key's certificate; a verified newer one raises the trust
// floor at once (not only when a plan signed under it is applied), and its
// key becomes the one replies are checked against, so a host without plans
// still stops trusting a rotated-out key. Returns that key; nullopt when the
// coordinator is away or the certificate does not verify (logged).
std::optional<sign::PublicKey> refresh_trust(AgentContext& ctx, std::int64_t now_s);

// Walks the root documents the coordinator serves above the trusted root,
// one version at a time (docs/FORMATS.md, "Root documents"), each kept
// durably before the next; stops at the first that does not verify. True
// when the trusted root moved.
bool catch_up_roots(AgentContext& ctx, std::int64_t now_s);

}  // namespace drover::agent
