#!/usr/bin/env bash
# Installs every Debian package drover needs to build, test and benchmark.
# Idempotent: quiet when everything is present; runs `apt-get update` only
# when something is missing. Must run as root (or with sudo available).
set -euo pipefail

packages=(
  build-essential cmake pkg-config ninja-build ccache clang-format
  libssl-dev libsodium-dev liblmdb-dev libnng-dev libzstd-dev zstd
  libarchive-dev libyaml-cpp-dev tzdata
  libtorrent-rasterbar-dev libboost-dev libboost-system-dev
  libcxxopts-dev nlohmann-json3-dev libgtest-dev libgmock-dev
  nginx curl iproute2 tar coreutils openssl
  nftables faketime  # drover-chaos: partitions, loss and clock skew on a real fleet
  prometheus  # promtool checks every scrape; a real server is a health source in tests
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
