// Root rotation (docs/FORMATS.md, "Root documents"; TUF's root chain): root
// version 1 is the key pinned at install; each later root is a document
// signed by the previous root's key and by its own, and a relying party
// moves one version at a time, never skipping a link.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/base/result.hpp"
#include "core/sign/envelope.hpp"

namespace drover::sign {

struct RootDoc {
  static constexpr std::string_view kType = "drover.root.v1";
  PublicKey key;
  std::uint64_t version = 2;
  std::int64_t issued_at = 0;   // unix seconds
  std::int64_t expires_at = 0;  // unix seconds: the document is refused from then on
};

// A trusted root: its key and its version (1: the pinned one).
struct Root {
  PublicKey key;
  std::uint64_t version = 1;
};

// Signs doc (whose key is next's public key) with the previous root and the new one.
Result<Envelope> sign_root(const KeyPair& previous, const KeyPair& next, const RootDoc& doc);

// The next root after `current`: doc must be exactly version current.version
// + 1, signed by current's key and by the key it names, and (when
// check_expiry) not expired at now. As in TUF, only the newest document of
// a walk must be unexpired: a host offline for years still walks the older
// links. Errors name the missing link or signature.
Result<Root> next_root(const Envelope& doc, const Root& current, std::int64_t now,
                       bool check_expiry = true);

// The version a document claims, read without verifying it (to order a
// chain; never to trust one).
Result<std::uint64_t> claimed_root_version(const Envelope& doc);

}  // namespace drover::sign
