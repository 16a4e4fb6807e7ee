#!/usr/bin/env bash
# The main job: a round trip through the artifact store (packs a sample
# release tree, pushes a second version that changes one file, verifies,
# materializes and compares, collects garbage), then the whole system on
# loopback (tools/fleet.sh demo: staging, a four-eyes gate, production in
# region waves, and a rollback of production alone).
# Prints what it did. Installs what it needs first (tools/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "${DROVER_JOBS:-2}" --target drover >/dev/null

drover="$PWD/build/bin/drover"
work="$(mktemp -d /tmp/drover-demo.XXXXXX)"
trap 'rm -rf "$work"' EXIT
# mktemp makes it 0700; as root the fleet's services run as nobody, who must
# be able to reach their release directories below it.
chmod 755 "$work"
export DROVER_STORE="$work/store"
step() { printf '\n== %s\n' "$*"; }

step "a sample release tree in $work/tree"
tree="$work/tree"
mkdir -p "$tree/bin" "$tree/etc" "$tree/static/css" "$tree/var/empty" "$tree/i18n"
printf '#!/bin/sh\necho "checkout $(cat "$(dirname "$0")/../VERSION")"\n' > "$tree/bin/checkout"
chmod 755 "$tree/bin/checkout"
echo "1.0.0" > "$tree/VERSION"
printf 'port=8080\nworkers=4\n' > "$tree/etc/checkout.conf"
chmod 640 "$tree/etc/checkout.conf"
for i in $(seq 1 400); do
  printf 'body.c%d { margin: %dpx; padding: %dpx; }\n' "$i" "$i" "$((i * 2))" > "$tree/static/css/c$i.css"
done
head -c 12000000 /dev/urandom > "$tree/bin/checkout.so"
printf 'Grüß Gott\n' > "$tree/i18n/de-Grüße.txt"
printf 'latin-1 name\n' > "$tree/i18n/$(printf 'caf\xe9')"
ln -s checkout "$tree/bin/current"
ln -s ../etc/checkout.conf "$tree/bin/config"
find "$tree" | sed "s|$work/||" | sort | sed -n 1,12p
echo "... $(find "$tree" -type f | wc -l) files, $(du -sh "$tree" | cut -f1)"

step "drover artifact push (v1)"
"$drover" artifact push --no-register "$tree" --service checkout --git-sha 1a2b3c4d5e --meta build=demo-1 ci=local

step "one file changes; push v2: only the layer holding it is new"
echo "1.0.1" > "$tree/VERSION"
"$drover" artifact push --no-register "$tree" --service checkout --git-sha 1a2b3c4d5f --meta build=demo-2 ci=local

step "drover artifact ls"
"$drover" artifact ls
v1=$("$drover" artifact ls --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[1]["artifact_id"])')
v2=$("$drover" artifact ls --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["artifact_id"])')

step "drover artifact show v2"
"$drover" artifact show "$v2"

step "drover artifact verify --all (re-hashes every blob)"
"$drover" artifact verify --all

step "drover artifact materialize v2, then compare with the source tree"
"$drover" artifact materialize "$v2" "$work/release"
diff -r --no-dereference "$tree" "$work/release" && echo "identical: content, symlinks, empty dirs, odd names"
(cd "$tree" && find . -printf '%m %y %p\n' | sort) > "$work/modes-src"
(cd "$work/release" && find . -printf '%m %y %p\n' | sort) > "$work/modes-out"
diff "$work/modes-src" "$work/modes-out" && echo "identical: every mode"
"$work/release/bin/current"

step "drover artifact gc --keep 1"
"$drover" artifact gc --keep 1
"$drover" artifact verify --all
echo "store round trip ok"

step "the whole system on loopback: coordinator, origin, five seeds, ten agents in staging and production (tools/fleet.sh demo)"
DROVER_FLEET_DIR="$work/fleet" bash tools/fleet.sh demo
echo
echo "demo done: store round trip, promotion through a gate and region waves, scoped automatic rollback ok"
