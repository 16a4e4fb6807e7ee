// A throwaway self-signed certificate for tests of HTTPS servers: an EC
// P-256 key and a certificate for "localhost" and 127.0.0.1, valid a day.
#pragma once

#include <filesystem>

namespace drover::testing {

struct TlsFiles {
  std::filesystem::path cert, key;  // PEM
};
TlsFiles make_self_signed_cert(const std::filesystem::path& dir);

}  // namespace drover::testing
