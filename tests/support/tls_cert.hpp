// A throwaway self-signed certificate for tests of TLS servers (HTTPS, the
// agent protocol): an EC P-256 key and a certificate for `name` (its CN and
// DNS name; "localhost" adds 127.0.0.1), valid a day, written to
// dir/<name>.crt and dir/<name>.key (0600).
#pragma once

#include <filesystem>
#include <string>

namespace drover::testing {

struct TlsFiles {
  std::filesystem::path cert, key;  // PEM
};
TlsFiles make_self_signed_cert(const std::filesystem::path& dir,
                               const std::string& name = "localhost");

}  // namespace drover::testing
